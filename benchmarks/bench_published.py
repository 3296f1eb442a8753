"""How close `optiplan profile` comes to published measurements of real engines (issue 14's validation set in
benchmarks/published/). Each point is predicted with the same request a user would make (catalog model of the
same architecture, device, count, tensor parallel, weight dtype, batch, prompt and output lengths, engine), and
the ratio predicted/published is printed with the median and p90 absolute error per category, per engine, per
dtype and per source. Writes benchmarks/results/published.json.
Two predictions per point, side by side: the *step view* (before issue 14: throughput is batch / decode step time,
a request's latency TTFT plus output tokens x TPOT, TTFT the prefill of the whole batch's prompts at once) and the
*request view* (`profile --input-tokens I --output-tokens O --concurrency C|max`: prefill included, the engine's
scheduling, TTFT under load). An offline run with no batch given is served at `--concurrency max`, or, where the
source states how many prompts it sent at once (`num_requests`), as that burst (`--concurrency N --at-once`); a point
with both a batch and `num_requests` as that run (`--concurrency C --num-requests N`). Points the
catalog cannot express (a model of an architecture it lacks, a GGUF format) are listed as skipped with the reason.

    python benchmarks/bench_published.py [--show-points] [--write-accuracy] [--fit-overheads [serving|compiled]]
                                         [--fit-flops [fp8|fp4|bf16|fp16]] [--fit-kv [serving]]
                                         [--fit-engine-flops] [--fit-engine-flops-before-hopper]
                                         [--fit-front-end [vllm|sglang]] [--fit-kernel KERNEL]
                                         [--fit-first-token [vllm|sglang|trtllm|trtllm-cpp]]
                                         [--fit-moe-overheads]
                                         [--fit-backend-layers [rocm]] [--fit-expert-bandwidth]
                                         [--fit-routing-skew] [--fit-allreduce-fusion]
                                         [--fit-state-layers] [--fit-host-layers] [--fit-eager-prefill]
                                         [--fit-mxfp4-experts] [--fit-mxfp4-reads] [--fit-apple]

The fits (benchmarks/published_fits.py, benchmarks/published_moe_fits.py for a MoE or hybrid model's layers,
benchmarks/published_apple_fits.py for the Apple GPUs) search
a group of factors on two thirds of the points and report the errors on both parts, a fixed third held out.

`--write-accuracy` stores the request view's errors by figure in profiles/accuracy.yaml: the bands reports show
beside each predicted figure (`optiplan.planner.analytic.accuracy`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import published_apple_fits as apple_fits  # noqa: E402
import published_gemm_fits as gemm_fits  # noqa: E402
import published_fits as fits  # noqa: E402
import published_moe_fits as moe_fits  # noqa: E402
from _common import write_results  # noqa: E402
from optiplan import profiles  # noqa: E402
from optiplan.planner.catalog.engines import engine_table  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from published_points import MEMORY_CATEGORIES, PUBLISHED, point_kind, predict, published_points, summary  # noqa: E402

# validation category -> the predicted figure its error bands
FIGURE_OF = {"batch1-decode": "tpot_ms", "ttft": "ttft_ms", "request-throughput": "throughput_tokens_per_s",
             "e2e-latency": "request_latency_ms", "memory": "memory_bytes", "kv-cache": "kv_cache_tokens"}

# a group's own band (an engine's, a kind of model's, an engine's of one kind) for a figure where it has at least this
# many points of that figure
ENGINE_BAND_POINTS = 8
# the kinds of model the bands tell apart (`accuracy.architecture_kind`)
KINDS = ("dense", "moe", "hybrid")

def write_accuracy(rows: list[dict], sources: int) -> None:
    import datetime

    def bands(rows: list[dict]) -> dict[str, dict]:
        return {FIGURE_OF[c]: {"category": c, "points": v["points"], "median_pct": round(v["median_pct"], 1),
                               "p90_pct": round(v["p90_pct"], 1)}
                for c, v in summary(rows, "category").items() if c in FIGURE_OF}
    def own(group: list[dict]) -> dict[str, dict]:
        return {f: b for f, b in bands(group).items() if b["points"] >= ENGINE_BAND_POINTS}

    device_kind = {h: resolve_hardware(h).kind for h in {r["hardware"] for r in rows}}
    on_gpus = [r for r in rows if device_kind[r["hardware"]] == "gpu"]

    def groups(engine: str | None, kind: str | None) -> list[dict]:
        return [r for r in on_gpus if engine in (None, r["engine"]) and kind in (None, r["kind"])]

    def kept(d: dict) -> dict:  # the groups with a band of their own
        return {k: v for k, v in d.items() if v}

    engines = sorted({r["engine"] for r in rows} & set(engine_table()))
    others = sorted(set(device_kind.values()) - {"gpu"})
    data = {"source": f"benchmarks/bench_published.py on {datetime.date.today().isoformat()}: {len(rows)} published "
                      f"points from {sources} sources, request view",
            "figures": bands(rows), "engines": kept({e: own(groups(e, None)) for e in engines}),
            "kinds": kept({k: own(groups(None, k)) for k in KINDS}),
            "engine_kinds": kept({e: kept({k: own(groups(e, k)) for k in KINDS}) for e in engines}),
            "devices": kept({d: kept({e: own([r for r in rows if device_kind[r["hardware"]] == d and r["engine"] == e])
                                      for e in engines}) for d in others})}
    header = ("# The analytic model's absolute error against published measurements of real engines, by predicted\n"
              "# figure: reports show the median as the band, that of the points most like the prediction with at\n"
              f"# least {ENGINE_BAND_POINTS} of the figure: on a GPU the engine's of the model's kind (`engine_kinds`: "
              "dense,\n# moe or hybrid), the kind's (`kinds`), the engine's (`engines`), all (`figures`), the first\n"
              "# three of GPU runs only; on another kind of device (`devices`: Apple GPUs) the engine's runs there,\n"
              "# and none where it has none. Written by `python benchmarks/bench_published.py --write-accuracy`; do\n"
              "# not edit by hand.\n")
    target = Path(profiles.ROOT) / "accuracy.yaml"
    target.write_text(header + yaml.safe_dump(data, sort_keys=False))
    print(f"wrote {target}")


# The fits `main` runs, by the flag's destination: the results file each writes (`{}`: the flag's value, e.g. the
# runtime or the engine it fits) and its search, given the points and that value.
FITS = {
    "fit_host_layers": ("published_host_layers_fit", lambda points, _: fits.fit_host_layers(points)),
    "fit_gemm_units": ("published_gemm_units_fit", lambda points, _: gemm_fits.fit_gemm_units(points)),
    "fit_apple": ("published_apple_fit", lambda points, _: apple_fits.fit_apple(points)),
    "fit_front_end": ("published_front_end_fit_{}", fits.fit_front_end),
    "fit_first_token": ("published_first_token_fit_{}", lambda points, engine: (
        fits.fit_in_process_first_token(points) if engine == "trtllm-cpp"
        else fits.fit_first_token_latency(points, engine))),
    "fit_moe_overheads": ("published_moe_overhead_fit", lambda points, _: moe_fits.fit_moe_overheads(points)),
    "fit_eager_prefill": ("published_eager_prefill_fit", lambda points, _: moe_fits.fit_eager_prefill(points)),
    "fit_mxfp4_experts": ("published_mxfp4_expert_fit", lambda points, _: moe_fits.fit_mxfp4_experts(points)),
    "fit_mxfp4_reads": ("published_mxfp4_read_fit", lambda points, _: moe_fits.fit_mxfp4_reads(points)),
    "fit_state_layers": ("published_state_layer_fit", lambda points, _: moe_fits.fit_state_layer_costs(points)),
    "fit_expert_bandwidth": ("published_expert_bandwidth_fit",
                             lambda points, _: moe_fits.fit_expert_bandwidth(points)),
    "fit_routing_skew": ("published_routing_skew_fit", lambda points, _: moe_fits.fit_routing_skew(points)),
    "fit_allreduce_fusion": ("published_allreduce_fusion_fit",
                             lambda points, _: moe_fits.fit_allreduce_fusion(points)),
    "fit_backend_layers": ("published_backend_layer_fit_{}", moe_fits.fit_backend_layer_costs),
    "fit_engine_flops": ("published_engine_flop_fit", lambda points, _: fits.fit_engine_flop_share(points)),
    "fit_engine_flops_before_hopper": ("published_engine_flop_fit_before_hopper",
                                       lambda points, _: fits.fit_engine_flop_share_before_hopper(points)),
    "fit_kv": ("published_kv_fit_{}", fits.fit_kv_share),
    "fit_flops": ("published_flop_fit_{}", fits.fit_flop_efficiency),
    "fit_overheads": ("published_overhead_fit_{}", fits.fit_overheads),
}


def arguments() -> argparse.ArgumentParser:
    """The script's command line: the card (default), the points, the bands written, or one fit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-points", action="store_true")
    parser.add_argument("--write-accuracy", action="store_true", help="store the bands in profiles/accuracy.yaml")
    parser.add_argument("--fit-overheads", nargs="?", const="serving", default=None, choices=fits.FITTED_RUNTIMES,
                        help="fit a runtime's fixed costs and small-matmul rows (serving, the default, or compiled) on "
                             "two thirds of the points of the engines that run it")
    parser.add_argument("--fit-flops", nargs="?", const="fp8", default=None, choices=("fp8", "fp4", "bf16", "fp16"),
                        help="fit the GPU flop efficiency of one compute dtype (fp8, the default) on two thirds of the "
                             "points whose linear layers run at its rate")
    parser.add_argument("--fit-kv", nargs="?", const="serving", default=None, choices=("serving",),
                        help="fit the share of the peak at which the serving engines' paged decode attention reads "
                             "the KV cache on two thirds of the points of the engines that page it")
    parser.add_argument("--fit-engine-flops-before-hopper", action="store_true",
                        help="fit vLLM's and SGLang's shares on CUDA GPUs before Hopper (the A100's runs), the dense "
                             "layers' and the MoE experts', on two thirds of their points there")
    parser.add_argument("--fit-front-end", nargs="?", const="vllm", default=None, choices=("vllm", "sglang"),
                        help="fit an engine's front end (host time per request, the share of it taking requests in; "
                             "vllm, the default, or sglang) on two thirds of its bursts")
    parser.add_argument("--fit-first-token", nargs="?", const="vllm", default=None,
                        choices=("vllm", "sglang", "trtllm", "trtllm-cpp"),
                        help="fit an engine's fixed first-token latency over HTTP (vllm, the default, sglang or "
                             "trtllm) on two thirds of its points served through its server; trtllm-cpp: "
                             "TensorRT-LLM's v0.5-v0.6 C++ runtime's in its caller's process, on two thirds of its "
                             "in-process points")
    parser.add_argument("--fit-engine-flops", action="store_true",
                        help="fit the share of the device's compute rate vLLM's and SGLang's steps reach (one for "
                             "both) on two thirds of their points")
    parser.add_argument("--fit-moe-overheads", action="store_true",
                        help="fit the serving runtime's fixed kernel time per MoE layer and per latent-attention "
                             "layer on two thirds of the serving engines' points (minutes)")
    parser.add_argument("--fit-backend-layers", nargs="?", const="rocm", default=None, choices=("rocm",),
                        help="fit the serving runtime's fixed kernel time per MoE and latent-attention layer on a GPU "
                             "backend (rocm) as a multiple of the CUDA GPUs', with SGLang's routed experts' compute "
                             "share there, on two thirds of the backend's MoE points (about a minute)")
    parser.add_argument("--fit-state-layers", action="store_true",
                        help="fit the serving runtime's fixed kernel time per state layer (linear attention, SSM) on "
                             "two thirds of the serving engines' hybrid points")
    parser.add_argument("--fit-expert-bandwidth", action="store_true",
                        help="fit the share of the weights' bandwidth the serving engines' grouped MoE GEMM reads "
                             "the routed experts at, on two thirds of their MoE points")
    parser.add_argument("--fit-routing-skew", action="store_true",
                        help="fit the skew of the routed experts' popularity (how many distinct experts a few decode "
                             "tokens reach) on two thirds of the serving engines' MoE points")
    parser.add_argument("--fit-allreduce-fusion", action="store_true",
                        help="fit the fixed time an engine's all-reduce fused with the RMSNorm after it saves, on two "
                             "thirds of the serving points whose deployment fuses them")
    parser.add_argument("--fit-eager-prefill", action="store_true",
                        help="fit SGLang's host time per layer of an eager prefill step (and per latent-attention and "
                             "state layer) with its first-token latency, on two thirds of its points (minutes)")
    parser.add_argument("--fit-mxfp4-reads", action="store_true",
                        help="fit the share of the peak bandwidth at which vLLM's MXFP4 MoE kernel on Hopper reads "
                             "gpt-oss's experts, on two thirds of its gpt-oss points")
    parser.add_argument("--fit-mxfp4-experts", action="store_true",
                        help="fit the share of the compute rate vLLM's and TensorRT-LLM's grouped GEMMs over MXFP4 "
                             "experts reach (gpt-oss), rule by rule, on two thirds of their gpt-oss points")
    parser.add_argument("--fit-host-layers", action="store_true",
                        help="fit the share of the host memory's peak at which llama.cpp reads the layers it keeps "
                             "there (--n-gpu-layers below all) on two thirds of its points with such layers")
    parser.add_argument("--fit-gemm-units", action="store_true",
                        help="fit the TFLOP/s per SM of llama.cpp's quantized and 16-bit GEMMs on CUDA GPUs "
                             "(gemm_unit_tflops) on two thirds of its prompt-processing points there")
    parser.add_argument("--fit-apple", action="store_true",
                        help="fit the Apple GPUs' shares of their bandwidth (16-bit and 4-bit weights) and of their "
                             "compute, and llama.cpp's fixed host time per token and layer on Metal, on two thirds of "
                             "the points run on Apple Silicon (about a minute)")
    parser.add_argument("--fit-kernel", default=None, metavar="KERNEL",
                        help="fit one weight kernel of profiles/efficiency.yaml (ggml-mmvq, ggml-mmvf: llama.cpp's "
                             "GGUF and 16-bit mat-vecs; torchao-int8, tinygemm: gpt-fast's) on two thirds of the "
                             "points whose engine runs it: its bandwidth share alone, with a device time per layer, "
                             "with a bound per SM and with both (minutes)")
    parser.add_argument("--gemm", action="store_true",
                        help="with --fit-kernel: fit instead the share of the GEMM that takes the steps above the "
                             "kernel's rows (rocm-skinny-fp8: vLLM's hipBLASLt above its FP8 GEMV)")
    return parser


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    kernels = profiles.efficiency_table()["weight_kernels"]
    if args.fit_kernel:
        if "bandwidth_efficiency" not in kernels.get(args.fit_kernel, {}):
            parser.error(f"--fit-kernel: choose a kernel with a bandwidth share of its own: "
                         f"{', '.join(k for k, v in kernels.items() if 'bandwidth_efficiency' in v)}")
        if args.gemm and "gemm_bandwidth_efficiency" not in kernels[args.fit_kernel]:
            parser.error(f"--gemm: {args.fit_kernel} takes steps of any size (no GEMM share of its own)")
        fit = fits.fit_kernel_gemm_share if args.gemm else fits.fit_kernel_factors
        write_results(f"published_kernel_fit_{args.fit_kernel}", fit(published_points(), args.fit_kernel))
        return
    for dest, (name, search) in FITS.items():  # one fit a run: the flag's search, its results file
        if value := getattr(args, dest):
            write_results(name.format(value), search(published_points(), value))
            return
    views: dict[str, list[dict]] = {"step": [], "requests": []}
    skipped = []
    for path in sorted(PUBLISHED.glob("*.yaml")):
        for p in yaml.safe_load(path.read_text())["points"]:
            for view, rows in views.items():
                value, why = predict(p, view)
                if value is None:
                    if view == "requests":
                        skipped.append({"id": p["id"], "reason": why})
                    continue
                ratio = value / p["value"]
                rows.append({"id": p["id"], "source": path.stem, "category": p["category"], "engine": p["engine"],
                             "kind": point_kind(p), "dtype": p["dtype"], "hardware": p["hardware"],
                             "published": p["value"],
                             "predicted": value, "ratio": ratio, "abs_error_pct": abs(ratio - 1) * 100})
    if args.show_points:
        step = {r["id"]: r["ratio"] for r in views["step"]}  # the request view skips points the step view keeps
        for r in views["requests"]:
            print(f"  {r['id']:48s} {r['category']:18s} published {r['published']:>10.4g} predicted "
                  f"{r['predicted']:>10.4g}  ratio {r['ratio']:.2f} (step view {step[r['id']]:.2f})")
    print(f"{len(views['requests'])} points predicted, {len(skipped)} skipped (no catalog architecture, a per-GPU "
          f"throughput without a device count, unstated request lengths, a weight format optiplan does not model, "
          f"a causal mask the engine does not build, speculative decoding at an unstated acceptance, FP8 or FP4 "
          f"weights on a GPU without that rate, a run that cannot hold one of its requests as modelled)")
    keys = ("category", "kind", "engine", "dtype", "source")
    # a kind of model's, an engine's and a format's figures are their times and rates: the memory a run holds (its
    # engine's cache at start-up among it) is a category of its own, and its near-exact figures would hide them
    timed_keys = ("kind", "engine", "dtype")

    def rows_for(key: str, rows: list[dict]) -> list[dict]:
        return [r for r in rows if r["category"] not in MEMORY_CATEGORIES] if key in timed_keys else rows

    tables = {view: {key: summary(rows_for(key, rows), key) for key in keys} | {"kind/category": summary(
        [r | {"kind/category": f"{r['kind']} {r['category']}"} for r in rows], "kind/category")}
              for view, rows in views.items()}
    for key in (*keys, "kind/category"):
        what = " (times and rates)" if key in timed_keys else ""
        print(f"\nabsolute error by {key}{what}: step view (before) -> request view")
        width = max(28, *(len(name) for name in tables["requests"][key]))
        for name, after in tables["requests"][key].items():
            before = tables["step"][key].get(name, {"median_pct": float("nan"), "p90_pct": float("nan")})
            print(f"  {name:{width}s} {after['points']:3d} points  median {before['median_pct']:6.1f}% -> "
                  f"{after['median_pct']:6.1f}%  p90 {before['p90_pct']:6.1f}% -> {after['p90_pct']:6.1f}%")
    if args.write_accuracy:
        write_accuracy(views["requests"], len({r["source"] for r in views["requests"]}))
    write_results("published", {"points": views["requests"], "step_view_points": views["step"], "skipped": skipped,
                                "summary": tables["requests"], "step_view_summary": tables["step"]})

if __name__ == "__main__":
    main()
