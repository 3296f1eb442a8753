"""The training step model against published fine-tuning step times.

Reads `benchmarks/published/training/*.yaml` (each point: model, method, sequence length, seconds per optimizer
step, and whether it is fitted or held out), predicts each with `planner/plan/training.py` and prints
predicted/published per point with the median and p90 error of the fitted and the held-out points; and the
memory each run peaked at against the prediction's memory per device (nothing of it fitted: every memory point is
held out, and `--write-accuracy` writes its error as the band of a training plan's memory). A source's `recipes`
say where its runs differ from the rendered script's (`training.Recipe`): each point is priced as it ran.

`--fit` first solves the three constants of the `training` section of profiles/efficiency.yaml on the fitted points
only (least squares on relative error: the FLOP-efficiency share and the per-layer cost from the LoRA points, then
the dequantization bytes from the Q-LoRA points; the bandwidth-bound kernels' time is measured, not fitted:
`training_traffic`) and prints them; paste them there, then run again without it.

    python benchmarks/bench_training_published.py [--fit]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.accuracy import TRAINING_ACCURACY_FILE  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from optiplan.planner.catalog.model_spec import model_spec_from_config  # noqa: E402
from optiplan.planner.plan.state import baseline_state  # noqa: E402
from optiplan.planner.plan.training import Recipe, training_prediction  # noqa: E402
from optiplan.planner.schema.workload import Training, Workload  # noqa: E402

FOLDER = Path(__file__).resolve().parent / "published" / "training"
METHODS = {"lora": {"mixed-precision", "lora"}, "qlora": {"mixed-precision", "qlora"}, "full": {"mixed-precision"}}


def load_points() -> list[dict]:
    points = []
    for path in sorted(FOLDER.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        setup = doc["setup"]
        for p in doc["points"]:
            model = doc["models"][p["model"]]
            recipe = doc.get("recipes", {}).get(p["method"], {})  # where the runs differ from the script's
            points.append({**p, "setup": setup, "config": model["config"], "source": path.name, "recipe": recipe})
    return points


def predict(point: dict, table: dict) -> float:
    """Seconds per optimizer step with the given `training` constants."""
    return prediction(point, table).training_step_s


def prediction(point: dict, table: dict | None = None):
    """The training prediction of a published point (with the given `training` constants, else the profile's)."""
    table = table if table is not None else {k: v for k, v in profiles.efficiency_table()["training"].items()
                                             if k != "source"}
    setup = point["setup"]
    spec = model_spec_from_config(point["config"], point["model"], point["source"])
    hw = resolve_hardware(setup["hardware"])
    applied = METHODS[point["method"]] | ({"activation-checkpointing"} if setup["activation_checkpointing"] else set())
    state = baseline_state(spec, hw, setup["num_devices"]).with_(training=frozenset(applied))
    job = Training(sequence_length=point["sequence_length"], micro_batch=setup["micro_batch"],
                   global_batch=setup["micro_batch"] * setup["gradient_accumulation"] * setup["num_devices"],
                   lora_rank=setup.get("lora_rank", 16))
    workload = Workload(name="published", goal="training", engine="transformers", training=job)
    original = profiles.efficiency_table()["training"]
    try:
        original_values = dict(original)
        original.update(table)
        return training_prediction(state, workload, Recipe(**point.get("recipe", {})))
    finally:
        original.clear()
        original.update(original_values)


def fit(points: list[dict]) -> dict:
    """Least squares on relative error over the fitted points: t = B + C / share + F * layer_cost (+ D * bytes), B
    the bandwidth-bound kernels' time (`training_traffic`, measured, not fitted)."""
    unit = {"flop_efficiency_share": 1.0, "layer_overhead_s": 0.0, "dequant_bytes_per_param": 0.0}
    only_layer = {"flop_efficiency_share": 1e12, "layer_overhead_s": 1.0, "dequant_bytes_per_param": 0.0}
    neither = {"flop_efficiency_share": 1e12, "layer_overhead_s": 0.0, "dequant_bytes_per_param": 0.0}
    rows = []
    for p in (q for q in points if q["split"] == "fit" and q["method"] == "lora"):
        b = predict(p, neither)
        c, f = predict(p, unit) - b, predict(p, only_layer) - b
        t = p["seconds_per_iteration"]
        rows.append((c / t, f / t, 1 - b / t))  # (t - b) / t = (c/t) * x + (f/t) * y, x = 1/share, y = layer cost
    sxx = sum(a * a for a, _, _ in rows)
    sxy = sum(a * b for a, b, _ in rows)
    syy = sum(b * b for _, b, _ in rows)
    sxg = sum(a * g for a, _, g in rows)
    syg = sum(b * g for _, b, g in rows)
    det = sxx * syy - sxy * sxy
    x = (sxg * syy - syg * sxy) / det
    y = (sxx * syg - sxy * sxg) / det
    table = {"flop_efficiency_share": round(1 / x, 3), "layer_overhead_s": round(y, 6), "dequant_bytes_per_param": 0.0}
    extra = []
    for p in (q for q in points if q["split"] == "fit" and q["method"] == "qlora"):
        base = predict(p, table)
        per_byte = predict(p, {**table, "dequant_bytes_per_param": 1.0}) - base
        extra.append((p["seconds_per_iteration"] - base) / per_byte)
    table["dequant_bytes_per_param"] = round(statistics.median(extra), 1)
    return table


def errors(rows: list[dict]) -> tuple[float, float]:
    e = sorted(abs(r["ratio"] - 1) * 100 for r in rows)
    return statistics.median(e), e[min(len(e) - 1, int(round(0.9 * (len(e) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="solve the training constants on the fitted points first")
    ap.add_argument("--write-accuracy", action="store_true",
                    help="write the held-out error as the band reports show (profiles/training_accuracy.yaml)")
    args = ap.parse_args()
    points = load_points()
    table = dict(profiles.efficiency_table()["training"])
    table.pop("source", None)
    if args.fit:
        table = fit(points)
        print("fitted (paste into the training section of profiles/efficiency.yaml):")
        for k, v in table.items():
            print(f"  {k}: {v}")
    rows = []
    print(f"{'model':<10} {'method':<6} {'tokens':>6} {'published s':>11} {'predicted s':>11} {'ratio':>6}  split")
    for p in points:
        pred = predict(p, table)
        rows.append({"model": p["model"], "method": p["method"], "sequence_length": p["sequence_length"],
                     "published_s": p["seconds_per_iteration"], "predicted_s": round(pred, 3),
                     "ratio": round(pred / p["seconds_per_iteration"], 3), "split": p["split"]})
        r = rows[-1]
        print(f"{r['model']:<10} {r['method']:<6} {r['sequence_length']:>6} {r['published_s']:>11.2f} "
              f"{r['predicted_s']:>11.2f} {r['ratio']:>6.2f}  {r['split']}")
    summary = {}
    for split in ("fit", "held-out"):
        for method in ("lora", "qlora", "full"):
            part = [r for r in rows if r["split"] == split and r["method"] == method]
            if part:
                med, p90 = errors(part)
                summary[f"{split} {method}"] = {"points": len(part), "median_error_pct": round(med, 1),
                                                "p90_error_pct": round(p90, 1)}
                print(f"{split:>8} {method:<6}: {len(part)} points, median error {med:.1f}%, p90 {p90:.1f}%")
    slower = [r for r in rows if r["method"] == "qlora"]
    print("QLoRA slower than LoRA at every published point: "
          + str(all(q["published_s"] > 0 and q["predicted_s"] > next(
              r["predicted_s"] for r in rows if r["method"] == "lora" and r["model"] == q["model"]
              and r["sequence_length"] == q["sequence_length"]) for q in slower)))
    memory = []
    print(f"\n{'model':<10} {'method':<6} {'tokens':>6} {'published GB':>12} {'predicted GB':>12} {'ratio':>6}")
    for p in (q for q in points if q.get("memory_gb")):
        gb = prediction(p, table).memory_per_device_bytes / 1e9
        memory.append({"model": p["model"], "method": p["method"], "sequence_length": p["sequence_length"],
                       "published_gb": p["memory_gb"], "predicted_gb": round(gb, 2),
                       "ratio": round(gb / p["memory_gb"], 3)})
        r = memory[-1]
        print(f"{r['model']:<10} {r['method']:<6} {r['sequence_length']:>6} {r['published_gb']:>12.1f} "
              f"{r['predicted_gb']:>12.1f} {r['ratio']:>6.2f}")
    for method in ("lora", "qlora", "full"):
        part = [r for r in memory if r["method"] == method]
        if part:
            med, p90 = errors(part)
            summary[f"memory {method}"] = {"points": len(part), "median_error_pct": round(med, 1),
                                           "p90_error_pct": round(p90, 1)}
            print(f"  memory {method:<6}: {len(part)} points, median error {med:.1f}%, p90 {p90:.1f}%")
    write_results("training_published", {"constants": table, "points": rows, "memory": memory, "summary": summary})
    if args.write_accuracy:
        held = [r for r in rows if r["split"] == "held-out" and r["method"] != "full"]  # the adapters' band
        med, p90 = errors(held)
        band = {"category": "training-step", "points": len(held), "median_pct": round(med, 1),
                "p90_pct": round(p90, 1)}
        methods = {}  # the memory of each kind of adapter against its own points (QLoRA's base is another matter)
        for method in ("lora", "qlora"):
            part = [r for r in memory if r["method"] == method]
            mem_med, mem_p90 = errors(part)
            methods[method] = {"memory_bytes": {"category": f"training-memory-{method}", "points": len(part),
                                                "median_pct": round(mem_med, 1), "p90_pct": round(mem_p90, 1)}}
        doc = {"source": f"benchmarks/bench_training_published.py on {date.today()}: {len(held)} held-out published "
                         f"fine-tuning step times and {len(memory)} memory peaks (QwenLM/Qwen README, A100)",
               "figures": {"training_step_s": band, "throughput_tokens_per_s": dict(band)}, "methods": methods}
        TRAINING_ACCURACY_FILE.write_text(
            "# The training model's error on held-out published fine-tuning step times and memory: reports show the\n"
            "# median as the band. Written by `python benchmarks/bench_training_published.py --write-accuracy`.\n"
            + yaml.safe_dump(doc, sort_keys=False, width=110))
        print(f"wrote {TRAINING_ACCURACY_FILE}")


if __name__ == "__main__":
    main()
