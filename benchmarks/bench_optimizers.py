"""What the optimizers gain on this CPU, measured on the committed test models (issue 5 goals), side by side
in one process with interleaved rounds so that machine noise hits every variant alike.

1. int8 dynamic-activation (and weight-only) quantization: decode time, weights, perplexity against fp32
   (goal: >= 1.5x faster decode, >= 3x smaller weights, perplexity up <= 2%).
2. Speculative decoding with the draft model: greedy speedup with identical output, and the planner's
   prediction from the measured acceptance rate (goal: >= 1.3x, within 25% of the prediction).
3. KV-cache quantization: cache bytes at a long context (goal: >= 2x less).
4. Attention sinks: cache bytes as the stream grows, and streaming perplexity against full attention and a
   plain window without sinks (goal: flat memory, near full attention, far better than the plain window).

    python benchmarks/bench_optimizers.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from _common import write_results

MODELS = Path(__file__).resolve().parents[1] / "tests" / "assets" / "models"
PROMPTS = ("The for statement is used to iterate over", "An object is hashable if it has a hash value which",
           "The import system finds a module by", "A class definition defines a class object and")


def workspace(device="cpu"):
    from optiplan.optimizers.artifact import load
    from optiplan.optimizers.workspace import Workspace

    loaded = load(MODELS / "target", device)
    return Workspace(model=loaded.model, tokenizer=loaded.tokenizer, device=device, source=MODELS / "target")


def as_loaded(ws):
    from optiplan.optimizers.runtime import LoadedModel

    return LoadedModel(ws.model, ws.tokenizer, ws.device, ws.runtime, ws.draft, path=ws.source)


def quantization(rounds: int) -> dict:
    from optiplan.optimizers import metrics
    from optiplan.optimizers.registry import check_supported

    variants = {"fp32": as_loaded(workspace())}
    for technique in ("weight-w8a8-int8", "weight-int8"):
        ws = workspace()
        check_supported(technique, "cpu").apply(ws, {})
        variants[technique] = as_loaded(ws)
    tpot = {k: [] for k in variants}
    for m in variants.values():
        metrics.generation_samples(m, PROMPTS[:1], max_new_tokens=32, repeats=1, warmup=1)
    for _ in range(rounds):
        for name, m in variants.items():
            tpot[name].extend(metrics.generation_samples(m, PROMPTS, max_new_tokens=32, repeats=1, warmup=0)["tpot_ms"])
    out = {}
    for name, m in variants.items():
        out[name] = {"tpot_ms": statistics.median(tpot[name]), "tpot_samples_ms": tpot[name],
                     "weights_bytes": metrics.weights_bytes(m), "perplexity": metrics.perplexity(m)}
    for r in out.values():
        r["decode_speedup"] = out["fp32"]["tpot_ms"] / r["tpot_ms"]
        r["weights_reduction"] = out["fp32"]["weights_bytes"] / r["weights_bytes"]
        r["perplexity_change_pct"] = 100 * (r["perplexity"] / out["fp32"]["perplexity"] - 1)
    return out


def speculative(rounds: int, new_tokens: int = 64) -> dict:
    import torch
    from optiplan.optimizers.registry import check_supported
    from optiplan.optimizers.speculative import measure_acceptance
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.predict import speculative_speedup

    ws = workspace()
    detail = check_supported("spec-draft", "cpu").apply(ws, {"draft": str(MODELS / "draft")})
    k = ws.runtime.speculative["num_assistant_tokens"]
    spec = as_loaded(ws)
    plain = as_loaded(workspace())
    times = {"plain": [], "speculative": []}
    identical = True
    with torch.no_grad():
        for _ in range(rounds):
            for prompt in PROMPTS:
                ids = plain.encode([prompt])
                outs = {}
                for name, m in (("plain", plain), ("speculative", spec)):
                    start = time.perf_counter()
                    outs[name] = m.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
                    times[name].append(time.perf_counter() - start)
                identical &= bool(torch.equal(outs["plain"], outs["speculative"]))
    rates = [measure_acceptance(spec.model, spec.tokenizer, {"assistant_model": spec.draft}, "cpu", k, prompt=p,
                                new_tokens=new_tokens)["acceptance_rate"] for p in PROMPTS]
    rate = statistics.mean(rates)
    hw = resolve_hardware("local")
    predicted = speculative_speedup(resolve_model(str(MODELS / "target")), resolve_model(str(MODELS / "draft")), hw,
                                    rate, k, context=32 + new_tokens // 2, weight_dtype="fp32")
    measured = statistics.median(times["plain"]) / statistics.median(times["speculative"])
    return {"tuning": detail, "drafted_tokens": k, "acceptance_rate": rate, "identical_output": identical,
            "plain_s": statistics.median(times["plain"]), "speculative_s": statistics.median(times["speculative"]),
            "measured_speedup": measured, "predicted_speedup": predicted,
            "prediction_error_pct": 100 * (predicted / measured - 1), "hardware": hw.name}


def kv_quantization(context: int = 1536) -> dict:
    import torch
    from optiplan.optimizers.kv_cache import cache_bytes
    from optiplan.optimizers.registry import check_supported

    ids = torch.randint(1, 1024, (1, context), generator=torch.Generator().manual_seed(0))
    out = {}
    for technique in (None, "kv-int8", "kv-int4", "kv-fp8"):
        ws = workspace()
        if technique:
            check_supported(technique, "cpu").apply(ws, {})
        m = as_loaded(ws)
        with torch.no_grad():
            res = ws.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, min_new_tokens=4,
                                    return_dict_in_generate=True, **m.generate_kwargs())
        out[technique or "fp32"] = {"cache_bytes": cache_bytes(res.past_key_values)}
    for r in out.values():
        r["reduction"] = out["fp32"]["cache_bytes"] / r["cache_bytes"]
    return {"context": context, "variants": out}


def streaming_nll(model, ids, cache, chunk: int = 16) -> tuple[float, list[int]]:
    """Feed `ids` through `model` in chunks with `cache`; mean next-token NLL and the cache bytes along the way."""
    import torch
    from optiplan.optimizers.kv_cache import cache_bytes

    nll, count, sizes = 0.0, 0, []
    with torch.no_grad():
        for start in range(0, ids.shape[1] - 1, chunk):
            piece = ids[:, start:start + chunk]
            logits = model(input_ids=piece, cache=cache, use_cache=True).logits[0].float()
            target = ids[0, start + 1:start + 1 + piece.shape[1]]
            logp = torch.log_softmax(logits[: target.numel()], dim=-1)
            nll -= float(logp.gather(-1, target[:, None]).sum())
            count += target.numel()
            sizes.append(cache_bytes(cache))
    return nll / count, sizes


def sinks(tokens: int = 2048, window: int = 124, num_sinks: int = 4) -> dict:
    from optiplan.optimizers.corpus import default_eval_text
    from optiplan.optimizers.kv_cache import install_position_hook, make_sink_cache
    from transformers import DynamicCache

    ws = workspace()
    install_position_hook(ws.model)
    ids = ws.tokenizer(default_eval_text(), return_tensors="pt").input_ids[:, :tokens]
    out = {}
    for name, cache in (("full attention", DynamicCache(config=ws.model.config)),
                        (f"sinks {num_sinks} + window {window}", make_sink_cache(ws.model, num_sinks, window)),
                        (f"window {window + num_sinks}, no sinks", make_sink_cache(ws.model, 0, window + num_sinks))):
        nll, sizes = streaming_nll(ws.model, ids, cache)
        quarter = len(sizes) // 4
        out[name] = {"perplexity": math.exp(nll), "cache_bytes_at": {str(16 * (i + 1)): sizes[i]
                                                                     for i in (quarter, 2 * quarter, len(sizes) - 1)}}
    return {"tokens": int(ids.shape[1]), "variants": out}


def main() -> None:
    import torch
    from optiplan.planner.measure.runtime import quiet_libraries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads()}

    q = results["quantization"] = quantization(args.rounds)
    print(f"\n1. weight quantization, decode of 32 tokens, median of {args.rounds} interleaved rounds x 4 prompts")
    print(f"{'variant':<18}{'TPOT ms':>9}{'speedup':>9}{'weights MB':>12}{'smaller':>9}{'perplexity':>12}{'change':>9}")
    for name, r in q.items():
        print(f"{name:<18}{r['tpot_ms']:>9.2f}{r['decode_speedup']:>8.2f}x{r['weights_bytes'] / 1e6:>12.2f}"
              f"{r['weights_reduction']:>8.2f}x{r['perplexity']:>12.3f}{r['perplexity_change_pct']:>+8.2f}%")

    s = results["speculative"] = speculative(max(args.rounds // 2, 2))
    print(f"\n2. speculative decoding with the draft ({s['tuning']})")
    print(f"   plain {s['plain_s'] * 1e3:.0f} ms, speculative {s['speculative_s'] * 1e3:.0f} ms for 64 tokens: "
          f"measured {s['measured_speedup']:.2f}x, identical output: {s['identical_output']}")
    print(f"   acceptance {s['acceptance_rate']:.0%}; planner's prediction for it on {s['hardware']}: "
          f"{s['predicted_speedup']:.2f}x ({s['prediction_error_pct']:+.0f}% vs measured)")

    kv = results["kv_cache"] = kv_quantization()
    print(f"\n3. KV-cache bytes after a {kv['context']}-token context")
    for name, r in kv["variants"].items():
        print(f"   {name:<8} {r['cache_bytes'] / 1e6:8.2f} MB  {r['reduction']:.2f}x less")

    sk = results["sinks"] = sinks()
    print(f"\n4. streaming {sk['tokens']} held-out tokens (the model was trained on 128-token sequences)")
    for name, r in sk["variants"].items():
        sizes = ", ".join(f"{int(t)} tok: {b / 1e6:.2f} MB" for t, b in r["cache_bytes_at"].items())
        print(f"   {name:<26} perplexity {r['perplexity']:10.2f}   cache {sizes}")
    write_results("optimizers", results)


if __name__ == "__main__":
    main()
