"""optiplan's Triton kernels against the libraries they replace, on one GPU (made for an H200, at most 8 minutes).

Decode attention (batch 1-64, context 1k-32k): ours (split-K flash decoding) vs torch SDPA vs FlashAttention's
`flash_attn_with_kvcache` where installed, in GB/s of KV cache read and the share of the HBM peak; paged decode
over a shuffled block table of 256-token pages, ours vs flash-attn's paged kvcache call. Prefill attention
(causal, 1k-16k tokens): ours vs SDPA vs `flash_attn_func`, in TFLOP/s and the share of the dense bf16 peak.
Weight-only GEMM (M = 1..4096 at 8192 x 8192 and 28672 x 8192): ours int4 (group 128) and int8 vs cuBLAS bf16
(`torch.matmul`) vs torchao int4 where it runs, in TFLOP/s, GB/s and the speed-up over cuBLAS.

Every kernel is first checked against its PyTorch reference on the GPU (`--check` runs only that). Figures are
printed and written as JSON (`--out`), with the goals of issue 18 judged: decode attention >= 80% of HBM bandwidth
at long context, int4 GEMM at M = 1 >= 3x faster than bf16 cuBLAS at 8192 x 8192, prefill >= 60% of bf16 peak.
`--dry-run` lists the cases without touching a GPU (and without importing torch).

    bash benchmarks/gpu/run.sh            # the whole run, JSON in benchmarks/results/gpu_kernels.json
    python benchmarks/gpu/bench_kernels.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# the shares' denominators: the catalog's datasheet peaks of the GPU it runs on (`device_peaks`, set by main); an
# H200 SXM's (HBM3e 4.8 TB/s, ~989 dense bf16 TFLOP/s) until then, and for a GPU the catalog does not know
PEAKS = {"gbps": 4800.0, "bf16_tflops": 989.0, "hardware": "h200-sxm (assumed)"}
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128  # Llama-3-8B/70B-like grouped-query attention

DECODE = [(b, c) for b in (1, 8, 32, 64) for c in (1024, 4096, 16384, 32768)]
PAGED = [(8, 4096), (64, 4096), (8, 32768), (64, 32768)]
PAGE_SIZE = 256  # transformers' continuous batching uses 256-token blocks on CUDA (optimizers/batching.py)
PREFILL = [(1, 1024), (1, 4096), (1, 8192), (1, 16384), (4, 4096)]
GEMM_SHAPES = [(8192, 8192), (28672, 8192)]
GEMM_M = (1, 4, 16, 64, 256, 1024, 4096)
GOALS = {"decode_hbm_share_long_context": 0.80, "int4_m1_speedup_over_cublas_8192": 3.0,
         "prefill_bf16_peak_share": 0.60}


def plan(sections: list[str], quick: bool) -> list[dict]:
    """The cases to run, section by section in the order given (a run cut short by its budget keeps the first);
    `quick` keeps a few of each."""
    def gemm():
        return [{"section": "gemm", "m": m, "n": n, "k": k} for n, k in (GEMM_SHAPES[:1] if quick else GEMM_SHAPES)
                for m in (GEMM_M[:3] if quick else GEMM_M)]

    builders = {
        "decode": lambda: [{"section": "decode", "batch": b, "context": c} for b, c in (DECODE[::3] if quick else DECODE)],
        "paged": lambda: [{"section": "paged", "batch": b, "context": c} for b, c in (PAGED[::3] if quick else PAGED)],
        "prefill": lambda: [{"section": "prefill", "batch": b, "seq": s} for b, s in (PREFILL[:2] if quick else PREFILL)],
        "gemm": gemm,
    }
    return [case for section in sections for case in builders[section]()]


def _bench(fn) -> float:
    """Median milliseconds of `fn` as a caller runs it, launches included (triton's do_bench: flushes L2 between
    runs, so the cache is read from HBM). On a slow host a small kernel's time is mostly its launches."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _graph_ms(fn, reps: int = 20, replays: int = 5) -> float | None:
    """Milliseconds of `fn`'s GPU work alone: `reps` calls captured in a CUDA graph, each after an L2 flush, less a
    graph of the flushes alone (median of `replays`). None where `fn` cannot be captured (a host sync inside); 0.0
    where its work is within the replays' noise (rows then carry no GPU-alone rates)."""
    import statistics

    import torch

    flush = torch.empty(64 * 2**20, dtype=torch.int32, device="cuda")  # 256 MiB, over four times the H200's L2

    def timed(graph) -> float:
        times = []
        for _ in range(replays):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm: compiled and tuned before capture
        torch.cuda.current_stream().wait_stream(side)
        with_fn, flushes = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(with_fn):
            for _ in range(reps):
                flush.zero_()
                fn()
        with torch.cuda.graph(flushes):
            for _ in range(reps):
                flush.zero_()
        return max(timed(with_fn) - timed(flushes), 0.0) / reps
    except Exception as exc:  # noqa: BLE001 - reported as not measured
        print(f"  not captured in a CUDA graph: {str(exc).splitlines()[0][:100]}")
        torch.cuda.synchronize()
        return None


def _timed(fns: dict) -> dict[str, tuple[float, float | None]]:
    """(as called, GPU work alone) milliseconds of each function."""
    return {impl: (_bench(fn), _graph_ms(fn)) for impl, fn in fns.items()}


def _optional(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except Exception:  # noqa: BLE001 - absent or built for another GPU/torch: reported as not run
        return None


def check(device) -> dict[str, float]:
    """Each kernel against its reference on the GPU at small shapes; raises when one is off."""
    import torch
    from optiplan.kernels.flash_attention import flash_attention, reference_attention
    from optiplan.kernels.flash_decoding import flash_decode, reference_decode
    from optiplan.kernels.paged_attention import paged_decode, reference_paged_decode
    from optiplan.kernels.weight_only_gemm import pack_int4, pack_int8, reference_matmul, weight_only_matmul

    g = torch.Generator(device=device).manual_seed(0)
    errors = {}
    # few variants: each one is compiled for every autotune config (head dims plain; every feature at 128)
    variants = {64: {}, 256: {}, 128: {"window": 64, "num_sinks": 4, "softcap": 30.0,
                                       "q_lens": torch.tensor([300, 17]), "k_lens": torch.tensor([333, 40])}}
    for d, kw in variants.items():
        q = torch.randn(2, 8, 300, d, device=device, generator=g, dtype=torch.bfloat16)
        k = torch.randn(2, 2, 333, d, device=device, generator=g, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        out, ref = flash_attention(q, k, v, **kw), reference_attention(q, k, v, **kw)
        errors[f"prefill d{d} {' '.join(kw) or 'causal'}"] = (out.float() - ref.float()).abs().max().item()
        dkw = {key: val for key, val in kw.items() if key != "q_lens"}
        out, ref = flash_decode(q[:, :, 0], k, v, **dkw), reference_decode(q[:, :, 0], k, v, **dkw)
        errors[f"decode d{d} {' '.join(dkw) or 'plain'}"] = (out.float() - ref.float()).abs().max().item()
    k_cache = torch.randn(40, 16, 2, 128, device=device, generator=g, dtype=torch.bfloat16)
    v_cache = torch.randn_like(k_cache)
    table = torch.randperm(40, device=device, generator=g).to(torch.int32).view(2, 20)
    lens = torch.tensor([300, 77], dtype=torch.int32, device=device)
    qp = torch.randn(2, 8, 128, device=device, generator=g, dtype=torch.bfloat16)
    out, ref = paged_decode(qp, k_cache, v_cache, table, lens), reference_paged_decode(qp, k_cache, v_cache, table, lens)
    errors["paged decode d128"] = (out.float() - ref.float()).abs().max().item()
    w = torch.randn(1000, 1024, device=device, generator=g, dtype=torch.bfloat16)
    for m in (1, 7, 300):
        x = torch.randn(m, 1024, device=device, generator=g, dtype=torch.bfloat16)
        for bits, packed in ((4, (*pack_int4(w, 128), 128)), (8, (*pack_int8(w), None, None))):
            qw, s, z, group = packed
            y = weight_only_matmul(x, qw, s, z, bits=bits, group_size=group, out_features=1000)
            ref = reference_matmul(x, qw, s, z, bits=bits, in_features=1024)
            errors[f"gemm int{bits} m{m} (relative)"] = ((y.float() - ref.float()).abs().max()
                                                          / ref.float().abs().max()).item()
    bad = {k: e for k, e in errors.items() if e > (2e-2 if "relative" in k else 3e-2)}
    for name, err in errors.items():
        print(f"  check {name:<32} max error {err:.2e}")
    if bad:
        raise SystemExit(f"kernels off their references: {bad}")
    return errors


def _bandwidth_row(case, impl, ms, graph_ms, moved) -> dict:
    row = {**case, "impl": impl, "ms": ms, "gbps": moved / ms / 1e6, "hbm_share": moved / ms / 1e6 / PEAKS["gbps"],
           "graph_ms": graph_ms}
    if graph_ms:
        row.update(graph_gbps=moved / graph_ms / 1e6, graph_hbm_share=moved / graph_ms / 1e6 / PEAKS["gbps"])
    return row


def run_decode(case, device, libs) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from optiplan.kernels.flash_decoding import flash_decode

    b, c = case["batch"], case["context"]
    q = torch.randn(b, HEADS, 1, HEAD_DIM, device=device, dtype=torch.bfloat16)
    k = torch.randn(b, KV_HEADS, c, HEAD_DIM, device=device, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    cache_bytes = 2 * k.numel() * k.element_size()
    fns = {"optiplan": lambda: flash_decode(q, k, v),
           "torch-sdpa": lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)}
    if libs.get("flash_attn"):
        kf, vf, qf = k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(), q.transpose(1, 2).contiguous()
        fns["flash-attn"] = lambda: libs["flash_attn"].flash_attn_with_kvcache(qf, kf, vf)
    return [_bandwidth_row(case, impl, ms, graph, cache_bytes) for impl, (ms, graph) in _timed(fns).items()]


def run_paged(case, device, libs) -> list[dict]:
    """Decode over a block table whose pages are shuffled through the pool, as a serving cache's are."""
    import torch
    from optiplan.kernels.paged_attention import paged_decode

    b, c = case["batch"], case["context"]
    pages_per_seq = c // PAGE_SIZE
    k_cache = torch.randn(b * pages_per_seq, PAGE_SIZE, KV_HEADS, HEAD_DIM, device=device, dtype=torch.bfloat16)
    v_cache = torch.randn_like(k_cache)
    table = torch.randperm(b * pages_per_seq, device=device).to(torch.int32).view(b, pages_per_seq)
    lens = torch.full((b,), c, dtype=torch.int32, device=device)
    q = torch.randn(b, HEADS, HEAD_DIM, device=device, dtype=torch.bfloat16)
    cache_bytes = 2 * k_cache.numel() * k_cache.element_size()
    fns = {"optiplan": lambda: paged_decode(q, k_cache, v_cache, table, lens)}
    if libs.get("flash_attn"):
        qf = q[:, None]
        fns["flash-attn"] = lambda: libs["flash_attn"].flash_attn_with_kvcache(qf, k_cache, v_cache, cache_seqlens=lens,
                                                                              block_table=table)
    return [_bandwidth_row(case, impl, ms, graph, cache_bytes) for impl, (ms, graph) in _timed(fns).items()]


def run_prefill(case, device, libs) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from optiplan.kernels import flash_attention as flash_attention_module
    from optiplan.kernels.flash_attention import flash_attention

    b, s = case["batch"], case["seq"]
    q = torch.randn(b, HEADS, s, HEAD_DIM, device=device, dtype=torch.bfloat16)
    k = torch.randn(b, KV_HEADS, s, HEAD_DIM, device=device, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    flops = 4 * b * HEADS * s * s * HEAD_DIM / 2  # two matmuls, causal half
    fns = {"optiplan": lambda: flash_attention(q, k, v),
           "torch-sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)}
    if libs.get("flash_attn"):
        qf, kf, vf = (t.transpose(1, 2).contiguous() for t in (q, k, v))
        fns["flash-attn"] = lambda: libs["flash_attn"].flash_attn_func(qf, kf, vf, causal=True)
    rows = []
    for impl, (ms, graph) in _timed(fns).items():
        row = {**case, "impl": impl, "ms": ms, "tflops": flops / ms / 1e9, "bf16_peak_share": flops / ms / 1e9
               / PEAKS["bf16_tflops"], "graph_ms": graph}
        if graph:
            row.update(graph_tflops=flops / graph / 1e9, graph_bf16_peak_share=flops / graph / 1e9 / PEAKS["bf16_tflops"])
        if impl == "optiplan":  # the tile and whether whole tiles skip their masks (WHOLE_TILES), as autotuned
            row["config"] = str(getattr(flash_attention_module._flash_fwd_tuned, "best_config", None))
        rows.append(row)
    return rows


def _torchao_int4(w, libs):
    """torchao's int4 weight-only linear (group 128, tinygemm layout), or None where its kernel does not run here."""
    import torch

    if not libs.get("torchao"):
        return None
    try:
        from torchao.quantization import Int4WeightOnlyConfig, quantize_

        linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device=w.device, dtype=w.dtype)
        linear.weight.data.copy_(w)
        try:  # tinygemm (torch's _weight_int4pack_mm), the kernel torchao's int4 has run on CUDA without fbgemm
            config = Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d")
        except TypeError:  # a torchao before packing formats: tinygemm is its only int4 layout
            config = Int4WeightOnlyConfig(group_size=128)
        quantize_(linear, config)
        linear(torch.randn(1, w.shape[1], device=w.device, dtype=w.dtype))
        return linear
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        print(f"  torchao int4 not run: {str(exc).splitlines()[0][:120]}")
        libs["torchao"] = None
        return None


def run_gemm(case, device, libs, cache) -> list[dict]:
    import torch
    from optiplan.kernels.weight_only_gemm import pack_int4, pack_int8, tuned_config, weight_only_matmul

    m, n, k = case["m"], case["n"], case["k"]
    key = (n, k)
    if key not in cache:  # one weight per shape, packed once
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16) / k ** 0.5
        cache.clear()
        cache[key] = {"w": w, "int4": pack_int4(w, 128), "int8": pack_int8(w), "torchao": _torchao_int4(w, libs)}
    entry = cache[key]
    x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    q4, s4, z4 = entry["int4"]
    q8, s8 = entry["int8"]
    weight_bytes = {"cublas-bf16": n * k * 2, "optiplan-int4": q4.numel() + 2 * s4.numel() * 2,
                    "optiplan-int8": q8.numel() + s8.numel() * 2, "torchao-int4": n * k // 2 + 2 * (n * k // 128) * 2}
    fns = {"cublas-bf16": lambda: torch.matmul(x, entry["w"].t()),
           "optiplan-int4": lambda: weight_only_matmul(x, q4, s4, z4, bits=4, group_size=128, out_features=n),
           "optiplan-int8": lambda: weight_only_matmul(x, q8, s8, bits=8, out_features=n)}
    if entry["torchao"] is not None:
        fns["torchao-int4"] = lambda: entry["torchao"](x)
    rows = []
    for impl, (ms, graph) in _timed(fns).items():
        row = _bandwidth_row(case, impl, ms, graph, weight_bytes[impl] + 2 * m * (k + n))
        row["tflops"] = 2 * m * n * k / ms / 1e9
        if impl.startswith("optiplan"):  # the tile the autotuner kept (at M <= 4: tensor-core or matrix-vector)
            fns[impl]()
            row["config"] = tuned_config(m)
        rows.append(row)
    base = next(r for r in rows if r["impl"] == "cublas-bf16")
    for r in rows:
        r["speedup_over_cublas"] = base["ms"] / r["ms"]
        if r["graph_ms"] and base["graph_ms"]:
            r["graph_speedup_over_cublas"] = base["graph_ms"] / r["graph_ms"]
    return rows


def device_peaks(name: str) -> dict:
    """HBM GB/s and dense bf16 TFLOP/s of the GPU called `name`, from the hardware catalog (its datasheet figures),
    with the catalog id they came from; the H200's, marked assumed, for a GPU the catalog does not know."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.errors import OptiplanError

    try:
        hw = resolve_hardware(name.lower())
    except OptiplanError as exc:
        print(f"peaks: {exc}; the shares assume an H200's")
        return dict(PEAKS)
    dense = hw.peak_tflops.get("bf16") or hw.peak_tflops.get("fp16")  # a T4 has no bf16: its fp16 rate
    if dense is None:
        print(f"peaks: {hw.id} states no 16-bit rate; the shares assume an H200's")
        return dict(PEAKS)
    return {"gbps": hw.memory_bandwidth_bytes_per_s / 1e9, "bf16_tflops": dense, "hardware": hw.id}


def keep_as_profile(result: dict, folder: Path | None = None) -> Path | None:
    """The run as profiles/kernels/<hardware id>.json (planner/catalog/kernels.py reads it), where the device is in
    the hardware catalog; `folder` in place of profiles/kernels/."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.kernels import KERNELS_DIR
    from optiplan.planner.errors import OptiplanError

    try:
        hw = resolve_hardware(result["device"].lower())
    except OptiplanError as exc:
        print(f"not kept as a profile: {exc}")
        return None
    path = (folder or KERNELS_DIR) / f"{hw.id}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"kept as {path}: the planner now predicts and plans optiplan's kernels on {hw.id} from it")
    return path


def goals(rows: list[dict]) -> dict[str, dict]:
    """Issue 18's goals against the measured rows (None where the section did not run): `measured` as a caller runs
    the kernel (launches included), `kernel` its GPU work alone (CUDA graph replay)."""
    ours = [r for r in rows if r["impl"].startswith("optiplan")]

    def best(keys: tuple[str, str], pick) -> dict[str, float | None]:
        return {label: max((r[key] for r in ours if pick(r) and r.get(key) is not None), default=None)
                for label, key in zip(("measured", "kernel"), keys)}

    figures = {
        "decode_hbm_share_long_context": best(("hbm_share", "graph_hbm_share"), lambda r: r["section"] in (
            "decode", "paged") and r["context"] >= 16384),
        "int4_m1_speedup_over_cublas_8192": best(("speedup_over_cublas", "graph_speedup_over_cublas"), lambda r: (
            r["section"] == "gemm" and r["impl"] == "optiplan-int4" and r["m"] == 1 and r["n"] == r["k"] == 8192)),
        "prefill_bf16_peak_share": best(("bf16_peak_share", "graph_bf16_peak_share"), lambda r: (
            r["section"] == "prefill" and r["seq"] >= 4096)),
    }
    return {k: {"goal": GOALS[k], **v, "met": None if v["measured"] is None else v["measured"] >= GOALS[k],
                "kernel_met": None if v["kernel"] is None else v["kernel"] >= GOALS[k]} for k, v in figures.items()}


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        shape = {"decode": lambda: f"b={r['batch']:<3} ctx={r['context']:<6}",
                 "paged": lambda: f"b={r['batch']:<3} ctx={r['context']:<6}",
                 "prefill": lambda: f"b={r['batch']:<3} seq={r['seq']:<6}",
                 "gemm": lambda: f"M={r['m']:<5} {r['n']}x{r['k']}"}[r["section"]]()
        figures = "  ".join(f"{k}={r[k]:.3g}" for k in ("ms", "tflops", "gbps", "hbm_share", "bf16_peak_share",
                                                          "speedup_over_cublas", "graph_ms", "graph_hbm_share",
                                                          "graph_bf16_peak_share", "graph_speedup_over_cublas")
                            if r.get(k) is not None)
        print(f"{r['section']:<8} {shape:<22} {r['impl']:<14} {figures}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="decode,paged,prefill,gemm",
                        help="comma-separated: decode, paged, prefill, gemm")
    parser.add_argument("--quick", action="store_true", help="a few cases of each section")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting cases after this many seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "gpu_kernels.json")
    parser.add_argument("--profile", action="store_true",
                        help="also keep the JSON as profiles/kernels/<hardware id>.json, where the planner reads it")
    parser.add_argument("--check", action="store_true", help="only check the kernels against their references")
    parser.add_argument("--dry-run", action="store_true", help="list the cases; needs no GPU")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - {"decode", "paged", "prefill", "gemm"})
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from decode, paged, prefill, gemm")
    cases = plan(sections, args.quick)
    if args.dry_run:
        for c in cases:
            print(json.dumps(c))
        print(f"{len(cases)} cases; budget {args.budget_s:.0f} s; results to {args.out}")
        return 0
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("TRITON_INTERPRET=1 is set: this benchmark times the compiled kernels on a GPU; unset it")
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (use --dry-run to see the cases)", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    PEAKS.update(device_peaks(torch.cuda.get_device_name()))
    print(f"shares of {PEAKS['hardware']}'s peaks: {PEAKS['gbps']:.0f} GB/s, {PEAKS['bf16_tflops']:.0f} bf16 TFLOP/s")
    start = time.perf_counter()
    errors = check(device)
    if args.check:
        return 0
    libs = {"flash_attn": _optional("flash_attn"), "torchao": _optional("torchao")}
    rows, skipped, gemm_cache = [], [], {}
    runners = {"decode": lambda c: run_decode(c, device, libs), "paged": lambda c: run_paged(c, device, libs),
               "prefill": lambda c: run_prefill(c, device, libs),
               "gemm": lambda c: run_gemm(c, device, libs, gemm_cache)}
    for case in cases:
        if time.perf_counter() - start > args.budget_s:
            skipped.append(case)
            continue
        new = runners[case["section"]](case)
        print_rows(new)
        rows.extend(new)
        torch.cuda.empty_cache()
    verdicts = goals(rows)
    result = {"device": torch.cuda.get_device_name(), "peaks": dict(PEAKS),
              "versions": {"torch": torch.__version__, "triton": __import__("triton").__version__,
                           "flash_attn": getattr(libs["flash_attn"], "__version__", None),
                           "torchao": getattr(libs["torchao"], "__version__", None)},
              "attention_shape": {"heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "dtype": "bf16"},
              "check_max_errors": errors, "rows": rows, "skipped_for_time": skipped, "goals": verdicts,
              "seconds": time.perf_counter() - start}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.profile:
        keep_as_profile(result)
    for name, v in verdicts.items():
        shown = ", ".join("not measured" if v[key] is None else f"{v[key]:.3g} {label} ("
                          f"{'met' if v[ok] else 'missed'})" for key, ok, label in (
                              ("measured", "met", "as called"), ("kernel", "kernel_met", "GPU work alone")))
        print(f"goal {name}: >= {v['goal']}: {shown}")
    print(f"wrote {args.out} ({len(rows)} rows, {len(skipped)} cases skipped for time, "
          f"{result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
