"""The gate's statistics under real noise of this machine (issue 7 goals, at the default repeat count:
false alarms on identical code (A/A) at most 1%, a true 10% slowdown detected at least 95% of the time).

1. Collect: fresh worker processes (one torch thread each) load the tiny target model and run the
   `bench` workload (chat by default) in interleaved slots exactly as `optiplan bench` does. In every
   slot three targets run the same prompt: A and A2 (the same model twice: identical code) and S (the
   same model with every interval of generation really stretched by 10%: the CPU spins for a tenth of
   the time each token took, inside the measured region).
2. Resample: draw bench runs of R rounds from the collected slots and gate them, many times:
   interleaved runs of one session (paired: A vs A2, A vs A2 x 1.10, A vs S) and separate runs of
   different processes (unpaired: A of one process vs A2 of another, and x 1.10, 1.25, 1.36) with the gate's
   default drift allowance for separate runs (10%), and with --run-noise set to the drift between processes
   measured here. A false alarm or a detection is an overall gate verdict of regression (exit code 1) with the
   default budgets.
3. Check on real runs: consecutive R-round blocks of each process, gated as measured, no resampling.

    python benchmarks/bench_gate_statistics.py [--processes 3] [--rounds 15] [--trials 2000]   # ~8 minutes
    python benchmarks/bench_gate_statistics.py --samples benchmarks/results/gate_statistics.json  # ~2 minutes
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import write_results

TARGET = Path(__file__).resolve().parents[1] / "tests" / "assets" / "models" / "target"
METRICS = ("ttft_ms", "tpot_ms", "tokens_per_s")
SLOWDOWN = 1.10


# ------------------------------------------------------------------------------------------- worker


class _Stretch:
    """A streamer proxy: before each token is stamped, spin for `extra` of the time the token took."""

    def __init__(self, inner, extra: float):
        self.inner, self.extra, self.last = inner, extra, time.perf_counter()

    def spin(self) -> None:
        now = time.perf_counter()
        end = now + self.extra * (now - self.last)
        while time.perf_counter() < end:
            pass
        self.last = time.perf_counter()

    def put(self, value) -> None:
        self.spin()
        self.inner.put(value)

    def end(self) -> None:
        self.inner.end()


def worker(rounds: int, workload: str) -> None:
    """Measure A, A2 and S in interleaved slots; print {metric: {target: [samples]}} as JSON."""
    import torch

    torch.set_num_threads(1)
    from optiplan.planner.ci.bench import ModelTarget, build_prompts, resolve_workload
    from optiplan.planner.schema.bench import BenchRequest

    count, prompt_tokens, new_tokens = resolve_workload(BenchRequest(workload=workload))
    target = ModelTarget(str(TARGET), "cpu")
    prompts = build_prompts(count, prompt_tokens, target.loaded.tokenizer)
    plain_generate = target.loaded.generate

    def slowed_generate(input_ids, streamer=None, **kwargs):
        stretch = _Stretch(streamer, SLOWDOWN - 1)
        out = plain_generate(input_ids, streamer=stretch, **kwargs)
        stretch.spin()  # the tail after the last token
        return out

    target.warm_up(prompts, new_tokens, 1)
    out = {m: {"A": [], "A2": [], "S": []} for m in METRICS}
    orders = list(itertools.permutations(("A", "A2", "S")))  # every target before and after every other alike
    for slot in range(rounds * len(prompts)):
        prompt = prompts[slot % len(prompts)]
        for name in orders[slot % len(orders)]:
            target.loaded.generate = slowed_generate if name == "S" else plain_generate
            for m, value in target.run_one(prompt, new_tokens).items():
                out[m][name].append(value)
    target.loaded.generate = plain_generate
    print(json.dumps({"prompts": len(prompts), "samples": out}))


def collect(processes: int, rounds: int, workload: str) -> list[dict]:
    runs = []
    for i in range(processes):
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--worker", "--rounds", str(rounds), "--workload", workload]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"worker failed: {proc.stderr.strip().splitlines()[-1:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"process {i + 1}/{processes}: {rounds} rounds in {time.perf_counter() - start:.0f} s", flush=True)
    return runs


# ------------------------------------------------------------------------------------------- gating


def gate_once(a: dict, b: dict, paired: bool, rounds: int, prompts: int, run_noise_pct: float | None = None
              ) -> dict[str, str]:
    """Gate two bench results made of these samples (one session when paired) with the default settings."""
    from optiplan.planner.ci.bench import environment
    from optiplan.planner.ci.gate import compare
    from optiplan.planner.schema.bench import BenchResult, BenchWorkload, GateRequest, metric_samples

    workload = BenchWorkload(name="chat", prompts=prompts, prompt_tokens=0, max_new_tokens=0, prompts_sha256="-",
                             warmup=1, repeats=rounds)
    env = gate_once.env = getattr(gate_once, "env", None) or environment("cpu", 1, "float32", with_torch=False)
    base, head = (BenchResult(target=name, target_kind="model", created_at="-", session_id=session,
                              workload=workload, environment=env,
                              metrics={m: metric_samples(m, v, list(range(len(v)))) for m, v in values.items()})
                  for name, values, session in (("A", a, "s1"), ("B", b, "s1" if paired else "s2")))
    report = compare(base, head, GateRequest(baseline="A", candidate="B", run_noise_pct=run_noise_pct))
    return {"overall": report.verdict, **{v.metric: v.verdict for v in report.metrics}}


def _scale(values: dict[str, list[float]], factor: float) -> dict[str, list[float]]:
    return {m: [x / factor if m == "tokens_per_s" else x * factor for x in v] for m, v in values.items()}


def _pick(run: dict, name: str, idx: list[int]) -> dict[str, list[float]]:
    return {m: [run["samples"][m][name][i] for i in idx] for m in METRICS}


def tally(verdicts: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    return {k: {v: sum(d[k] == v for d in verdicts) / len(verdicts)
                for v in ("pass", "regression", "improvement", "inconclusive")} for k in ("overall", *METRICS)}


def simulate(runs: list[dict], rounds: int, trials: int, rng: random.Random, run_noise_pct: float
             ) -> dict[str, dict]:
    """Resampled bench runs of `rounds` rounds, gated; rates per scenario."""
    prompts = runs[0]["prompts"]
    n, size = rounds * prompts, len(runs[0]["samples"]["tpot_ms"]["A"])
    slots = [(r, i) for r in range(len(runs)) for i in range(size)]
    told = f"--run-noise {run_noise_pct:.0f}%"
    out: dict[str, list] = {}
    for _ in range(trials):
        # interleaved: whole slots, so that A, A2 and S of a slot stay paired
        chosen = [slots[rng.randrange(len(slots))] for _ in range(n)]
        a, a2, s = ({m: [runs[r]["samples"][m][t][i] for r, i in chosen] for m in METRICS} for t in ("A", "A2", "S"))
        # separate runs: the baseline from one process, the candidate from another
        p, q = rng.sample(range(len(runs)), 2)
        base = _pick(runs[p], "A", [rng.randrange(size) for _ in range(n)])
        head = _pick(runs[q], "A2", [rng.randrange(size) for _ in range(n)])
        for name, args in (("interleaved A/A", (a, a2, True)),
                           ("interleaved +10% (synthetic)", (a, _scale(a2, SLOWDOWN), True)),
                           ("interleaved +10% (real S)", (a, s, True)),
                           ("separate runs A/A (default drift)", (base, head, False)),
                           ("separate +10% (default drift)", (base, _scale(head, SLOWDOWN), False)),
                           ("separate +25% (default drift)", (base, _scale(head, 1.25), False)),
                           ("separate +36% (default drift)", (base, _scale(head, 1.36), False)),
                           (f"separate A/A, {told}", (base, head, False, run_noise_pct)),
                           (f"separate +10%, {told}", (base, _scale(head, SLOWDOWN), False, run_noise_pct))):
            a_, b_, paired, *noise_pct = args
            out.setdefault(name, []).append(gate_once(a_, b_, paired, rounds, prompts, *noise_pct))
    return {k: tally(v) for k, v in out.items()}


def real_blocks(runs: list[dict], rounds: int) -> dict[str, dict]:
    """Consecutive blocks of `rounds` rounds as measured: A vs A2 and A vs S of the same slots."""
    prompts = runs[0]["prompts"]
    n = rounds * prompts
    out = {"real interleaved A/A": [], "real interleaved +10% (S)": []}
    for run in runs:
        for start in range(0, len(run["samples"]["tpot_ms"]["A"]) - n + 1, n):
            idx = list(range(start, start + n))
            a = _pick(run, "A", idx)
            out["real interleaved A/A"].append(gate_once(a, _pick(run, "A2", idx), True, rounds, prompts))
            out["real interleaved +10% (S)"].append(gate_once(a, _pick(run, "S", idx), True, rounds, prompts))
    return {k: {"blocks": len(v), **tally(v)} for k, v in out.items() if v}


def noise(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Spread of single samples, spread of a whole run's median between processes (the drift no sample of one
    run shows), and the measured size of the real slowdown (median of the per-slot ratios S/A)."""
    import math
    import statistics

    out = {}
    for m in METRICS:
        a = [x for run in runs for x in run["samples"][m]["A"]]
        ratios = [s / x for run in runs for x, s in zip(run["samples"][m]["A"], run["samples"][m]["S"])]
        run_medians = [math.log(statistics.median(run["samples"][m][t])) for run in runs for t in ("A", "A2")]
        out[m] = {"median": statistics.median(a), "cv": statistics.stdev(a) / statistics.fmean(a),
                  "run_to_run_pct": (math.exp(statistics.stdev(run_medians)) - 1) * 100,
                  "real_slowdown_pct": (statistics.median(ratios) - 1) * 100}
    return out


def main() -> None:
    from optiplan.planner.schema.bench import DEFAULT_REPEATS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=3, help="fresh processes to measure in")
    parser.add_argument("--rounds", type=int, default=DEFAULT_REPEATS, help="rounds per process")
    parser.add_argument("--workload", default="chat")
    parser.add_argument("--trials", type=int, default=2000,
                        help="resampled runs per scenario at the default --repeat (a quarter at the others)")
    parser.add_argument("--repeats", default=f"5,10,{DEFAULT_REPEATS}", help="--repeat counts to simulate")
    parser.add_argument("--samples", type=Path, default=None, help="re-simulate the samples of an earlier run")
    args = parser.parse_args()
    if args.worker:
        worker(args.rounds, args.workload)
        return
    runs = json.loads(args.samples.read_text())["runs"] if args.samples else collect(args.processes, args.rounds,
                                                                                     args.workload)
    measured = noise(runs)
    print(f"\n{len(runs[0]['samples']['tpot_ms']['A'])} samples per target in each of {len(runs)} processes:")
    for m, v in measured.items():
        print(f"  {m:13s} median {v['median']:8.2f}, one sample's cv {v['cv']:.1%}, a run's median moves "
              f"{v['run_to_run_pct']:.1f}% between processes, real S slowdown {v['real_slowdown_pct']:+.1f}%")
    run_noise = max(v["run_to_run_pct"] for v in measured.values())
    rng, simulated = random.Random(0), {}
    for rounds in sorted({int(x) for x in args.repeats.split(",")}):
        start = time.perf_counter()
        trials = args.trials if rounds == DEFAULT_REPEATS else max(100, args.trials // 4)
        simulated[rounds] = simulate(runs, rounds, trials, rng, run_noise)
        print(f"\n--repeat {rounds} ({rounds * runs[0]['prompts']} samples per side, {trials} resampled runs per "
              f"scenario, {time.perf_counter() - start:.0f} s){'  <- default' if rounds == DEFAULT_REPEATS else ''}")
        print(f"  {'':34s} {'regression':>10s} {'inconclusive':>12s} {'pass':>6s}   regression per metric")
        for name, rates in simulated[rounds].items():
            o = rates["overall"]
            per = ", ".join(f"{m} {rates[m]['regression']:.1%}" for m in METRICS)
            print(f"  {name:34s} {o['regression']:10.2%} {o['inconclusive']:12.1%} {o['pass']:6.1%}   {per}")
    real = real_blocks(runs, DEFAULT_REPEATS)
    print(f"\nreal runs, no resampling (consecutive blocks of {DEFAULT_REPEATS} rounds):")
    for name, rates in real.items():
        print(f"  {name:34s} regression in {rates['overall']['regression']:.0%} of {rates['blocks']} blocks")
    d = simulated.get(DEFAULT_REPEATS)
    if d:
        aa = max(d[k]["overall"]["regression"] for k in d if "A/A" in k)
        hit = min(d[k]["overall"]["regression"] for k in d if k.startswith("interleaved +10%"))
        print(f"\nat the default --repeat {DEFAULT_REPEATS}: A/A false alarms at most {aa:.2%} in any scenario "
              f"(goal <= 1%); a 10% slowdown in an interleaved run detected {hit:.1%} (goal >= 95%)")
        far = d["separate +36% (default drift)"]["overall"]["regression"]
        print(f"separate runs at the default drift allowance: A/A false alarms "
              f"{d['separate runs A/A (default drift)']['overall']['regression']:.2%}, a 36% slowdown detected "
              f"{far:.1%} (budget 5% + drift 10%: changes under about 15% are never called regressions)")
    write_results("gate_statistics", {"default_repeats": DEFAULT_REPEATS, "workload": args.workload,
                                      "trials": args.trials, "noise": measured, "simulated": simulated,
                                      "real_blocks": real, "runs": runs})


if __name__ == "__main__":
    main()
