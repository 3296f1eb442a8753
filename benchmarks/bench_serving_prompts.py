"""The prompts `sglang.bench_serving --dataset-name random` sent in the SGLang cookbook's runs, reproduced from its
seed, and the prefix cache they found: the `warm_requests` and `cached_tokens` of the cookbook's points
(benchmarks/published/sglang-cookbook-*.yaml), derived here rather than guessed.

How bench_serving draws a run (sgl-project/sglang python/sglang/bench_serving.py, stored copy @0033168f):
- it seeds both generators with --seed (default 1): "random.seed(args.seed) np.random.seed(args.seed)";
- its lengths: "input_lens = np.random.randint(max(int(input_len * range_ratio), 1), input_len + 1, size=num_prompts)",
  then the output lengths the same way; --random-range-ratio is 0.0 by default, so each is uniform from one token;
- its prompts: ShareGPT's conversations, "random.shuffle(dataset)", the i-th cut or repeated to its length:
  "input_ids = (prompt_token_ids * ratio)[: input_lens[i]]".

So the i-th prompt of every run is cut from the same conversation, whatever the run's prompt count and input length:
the i-th prompt of a run at 8,000 tokens begins with the i-th prompt of a run at 1,000, whole when it is the longer.
On a server that keeps its prefix cache (SGLang's radix cache, on by default) a run finds there, for each prompt,
what the earlier runs sent of the same conversation: all of it where a run at its own input length sent that prompt
(`warm_requests`; every run also sends its first prompt once to warm up), else the longest prefix an earlier run at
another length sent (`cached_tokens`: their mean over the run's other prompts; a prompt no longer than that earlier
one is found whole, folded into the mean, since a prediction takes one prefix for every fresh prompt).

The runs' order is the page's (chat 1K/1K, reasoning 1K/8K, summarization 8K/1K, each at rising concurrency), on one
server: an inference, as the points' notes say. The seeds are checked against the pages: every run's drawn lengths
must add up to the totals its output printed ("Total input tokens", "Total generated tokens"). They do, every run of
every page, but that the B200 pages print one generated token fewer a request than drawn, and the Llama 4 page's
Scout runs two input totals one digit off the draw (`MISPRINTED_INPUT`).

    python benchmarks/bench_serving_prompts.py [--check]

prints each run's prompts, totals and cache, and with --check fails where a point's fields or a quoted total
disagree with the derivation; writes benchmarks/results/bench_serving_prompts.json.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

PUBLISHED = Path(__file__).resolve().parent / "published"
SEED = 1  # bench_serving's --seed default
# the cookbook pages' scenarios in the order they list them (input, output tokens); runs at rising concurrency
SCENARIOS = [(1000, 1000), (1000, 8000), (8000, 1000)]
TOTALS = {"input": re.compile(r"Total input tokens:\s+(\d+)"), "output": re.compile(r"Total generated tokens:\s+(\d+)")}
# the pages that print one generated token fewer a request than bench_serving drew, in every run (the same draw)
ONE_SHORT = {"sglang-cookbook-deepseek-r1-b200.yaml", "sglang-cookbook-qwen3-235b-b200.yaml"}
# input totals a page prints that are one digit off the draw, where another page's runs of the same size print the
# draw (the Llama 4 page's Maverick runs: 39,668 and 249,831): (page, prompts) -> the printed total
MISPRINTED_INPUT = {("sglang-cookbook-llama4-scout-mi300x.yaml", 80): 49668,
                    ("sglang-cookbook-llama4-scout-mi300x.yaml", 500): 249841}


def random_lengths(input_len: int, output_len: int, n: int, range_ratio: float = 0.0,
                   seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The input and output lengths of a bench_serving random run of `n` prompts (numpy's legacy generator, whose
    stream numpy keeps fixed across releases)."""
    rng = np.random.RandomState(seed)
    inputs = rng.randint(max(int(input_len * range_ratio), 1), input_len + 1, size=n)
    outputs = rng.randint(max(int(output_len * range_ratio), 1), output_len + 1, size=n)
    return inputs, outputs


def page_runs(points: list[dict]) -> list[tuple[int, int, int, int]]:
    """The page's runs (stated input and output length, prompt count, concurrency), in the page's order."""
    runs = {(stated_lengths(p) + (p["num_requests"], p["batch"])) for p in points if p.get("num_requests")}
    return sorted(runs, key=lambda r: (SCENARIOS.index(r[:2]), r[3]))


def stated_lengths(point: dict) -> tuple[int, int]:
    """The --random-input-len and --random-output-len a point's run was given (its id names them)."""
    match = re.search(r"-(\d+)-(\d+)-c\d+", point["id"])
    return int(match.group(1)), int(match.group(2))


def run_cache(runs: list[tuple[int, int, int, int]]) -> dict[tuple[int, int, int, int], dict]:
    """Each run's prompts and what of them the earlier runs left in the prefix cache: `warm` (the first prompts found
    whole) and `cached_tokens` (the mean prefix the others find, rounded down)."""
    sent: dict[int, int] = {}  # input length -> prompts sent at it so far (a prompt index below it was sent)
    out = {}
    for run in runs:
        input_len, output_len, n, _ = run
        inputs, outputs = random_lengths(input_len, output_len, n)
        warm = min(max(sent.get(input_len, 0), 1), n)  # the warm-up sends the first prompt before the run
        # the prompts the earlier runs at other input lengths sent, by length: the i-th shares min(its, ours)
        earlier = [random_lengths(other, 1, count)[0] for other, count in sent.items() if other != input_len]
        prefixes = [max((min(lengths[i], inputs[i]) for lengths in earlier if i < len(lengths)), default=0)
                    for i in range(warm, n)]
        out[run] = {"input_tokens": int(inputs.sum()), "output_tokens": int(outputs.sum()), "warm": warm,
                    "cached_tokens": int(sum(prefixes) / len(prefixes)) if prefixes else 0,
                    "cached_share": sum(prefixes) / max(int(inputs[warm:].sum()), 1)}
        sent[input_len] = max(sent.get(input_len, 0), n)
    return out


def check_page(path: Path) -> tuple[list[dict], list[str]]:
    """The page's runs with their derived cache, and every disagreement with its points."""
    points = yaml.safe_load(path.read_text())["points"]
    cache = run_cache(page_runs(points))
    problems = []
    for p in points:
        if not p.get("num_requests"):
            continue
        run = stated_lengths(p) + (p["num_requests"], p["batch"])
        derived = cache[run]
        for kind, pattern in TOTALS.items():
            quoted = pattern.search(p["quote"])
            drawn = derived[f"{kind}_tokens"]
            short = p["num_requests"] if kind == "output" and path.name in ONE_SHORT else 0
            printed = MISPRINTED_INPUT.get((path.name, p["num_requests"])) if kind == "input" else None
            if quoted and int(quoted.group(1)) != (printed or drawn - short):
                problems.append(f"{p['id']}: the page printed {quoted.group(1)} {kind} tokens, the seed draws {drawn}")
        for field, value in (("warm_requests", derived["warm"]), ("cached_tokens", derived["cached_tokens"])):
            if p.get(field, 0) != value:
                problems.append(f"{p['id']}: {field} {p.get(field, 0)}, derived {value}")
    rows = [{"page": path.name, "input": r[0], "output": r[1], "prompts": r[2], "concurrency": r[3]} | c
            for r, c in cache.items()]
    return rows, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail where a point disagrees with the derivation")
    args = parser.parse_args()
    rows, problems = [], []
    for path in sorted(PUBLISHED.glob("sglang-cookbook-*.yaml")):
        page_rows, page_problems = check_page(path)
        rows += page_rows
        problems += page_problems
    print(f"{'page':42s} {'run':>12s} {'N':>4s} {'C':>4s} {'in total':>9s} {'out total':>9s} {'warm':>5s} "
          f"{'cached':>7s} {'share':>6s}")
    for r in rows:
        print(f"{r['page']:42s} {r['input']:>5d}/{r['output']:<6d} {r['prompts']:4d} {r['concurrency']:4d} "
              f"{r['input_tokens']:9d} {r['output_tokens']:9d} {r['warm']:5d} {r['cached_tokens']:7d} "
              f"{r['cached_share']:6.1%}")
    write_results("bench_serving_prompts", {"seed": SEED, "runs": rows, "problems": problems})
    for line in problems:
        print("MISMATCH", line)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
