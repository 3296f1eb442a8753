"""The `optiplan bench` and `optiplan gate` commands: thin click wrappers over planner.bench and
planner.gate. Exit codes: 0 pass, 1 regression, 2 usage error or bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import OptiplanError
from .common import emit, friendly


def _default_repeats() -> int:
    """The schema's default rounds, read only when a command runs: importing the schema at CLI start-up
    would cost every `optiplan` command (profile and advise included) a fifth of a second."""
    from ..schema.bench import DEFAULT_REPEATS

    return DEFAULT_REPEATS


def _percent(text: str, option: str) -> float:
    """'5%' or '5' -> 5.0; anything else is a usage error naming the option."""
    try:
        value = float(str(text).strip().rstrip("%"))
    except ValueError:
        raise OptiplanError(f"{option} '{text}' is not a percentage such as 5%") from None
    if not 0 <= value < 100:
        raise OptiplanError(f"{option} {text} must be at least 0% and under 100%")
    return value


def _budgets(items: tuple[str, ...]) -> dict[str, float]:
    budgets = {}
    for item in items:
        name, sep, pct = item.partition("=")
        if not sep or not name.strip():
            raise OptiplanError(f"--budget '{item}' is not METRIC=PERCENT, e.g. tpot_ms=3%")
        budgets[name.strip()] = _percent(pct, f"--budget {name.strip()}")
    return budgets


@click.command()
@click.argument("models", nargs=-1)
@click.option("--endpoint", "endpoints", multiple=True,
              help="Benchmark a running OpenAI-compatible server at this base URL instead (repeatable).")
@click.option("--workload", "-w", default="chat", show_default=True,
              help="chat, code-completion, rag-long-context or smoke.")
@click.option("--repeat", "--repeats", "repeats", type=click.IntRange(min=1),
              default=_default_repeats, show_default="15",
              help="Measured rounds; each target runs the whole workload once per round.")
@click.option("--warmup", type=click.IntRange(min=0),
              default=1, show_default=True, help="Unmeasured generations per target first.")
@click.option("--prompt-tokens", type=click.IntRange(min=1),
              default=None, help="Override the workload's prompt length.")
@click.option("--max-new-tokens", type=click.IntRange(min=2),
              default=None, help="Override the workload's output length.")
@click.option("--prompts", "prompts_file", default=None, help="A text file with one prompt per line.")
@click.option("--tokenizer", default=None, help="Folder of the tokenizer, for model folders that have none.")
@click.option("--device", default=None, help="cpu or cuda [default: cuda when available].")
@click.option("--threads", type=click.IntRange(min=1),
              default=None, help="torch threads (fix it in CI for stable timings).")
@click.option("--no-quality", is_flag=True, help="Skip perplexity and greedy prefix agreement.")
@click.option("--eval-text", default=None, help="Perplexity text file [default: built-in held-out English].")
@click.option("--eval-tokens", type=click.IntRange(min=16), default=4096, show_default=True)
@click.option("--reference", default=None, help="Greedy-token reference to measure agreement against.")
@click.option("--save-reference", default=None, help="Write the first model's greedy tokens to this file.")
@click.option("--no-memory", is_flag=True, help="Skip peak memory (a fresh process per sample).")
@click.option("--memory-repeats", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--endpoint-model", default=None, help="Model name to request [default: the first served].")
@click.option("--timeout", "request_timeout_s", type=click.FloatRange(0, min_open=True),
              default=120.0, show_default=True,
              help="Seconds per endpoint request.")
@click.option("--max-requests", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Refuse an endpoint run that would send more requests.")
@click.option("--output", "-o", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Result file, one per target in order [default with one target: stdout].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
@friendly
def bench(models: tuple[str, ...], endpoints: tuple[str, ...], outputs: tuple[Path, ...], no_quality: bool,
          no_memory: bool, quiet: bool, **options) -> None:
    """Run a fixed workload on model folders, artifacts or endpoints and write every sample as JSON.

    Several targets are measured in interleaved rounds (A B, B A, ...), which is how a base and a
    head should be compared on a noisy runner:

    \b
      optiplan bench ./my-model-opt --workload chat --repeat 15 -o results.json
      optiplan bench ./base-model ./head-model -o base.json -o head.json
      optiplan bench --endpoint http://localhost:8000 --no-quality -o served.json
    """
    from ..ci.bench import run_bench
    from ..schema.bench import BenchRequest

    targets = len(models) + len(endpoints)
    if outputs and len(outputs) != targets:
        raise OptiplanError(f"{targets} target(s) but {len(outputs)} --output file(s); give one per target")
    if not outputs and targets > 1:
        raise OptiplanError("several targets need one --output file each, e.g. -o base.json -o head.json")
    request = BenchRequest(models=list(models), endpoints=list(endpoints), quality=not no_quality,
                           memory=not no_memory, **options)
    results = run_bench(request, show_progress=not quiet)
    if not quiet:
        from ..report.gate import print_bench

        print_bench(results)
    for result, out in zip(results, outputs or [None]):
        emit(result.model_dump_json(indent=2), out)


@click.command()
@click.argument("baseline")
@click.argument("candidate")
@click.option("--max-slowdown", default="5%", show_default=True, help="Budget for TTFT, TPOT and throughput.")
@click.option("--max-memory-growth", default="3%", show_default=True, help="Budget for peak memory.")
@click.option("--max-quality-loss", default="1%", show_default=True,
              help="Budget for perplexity and greedy prefix agreement.")
@click.option("--budget", "budgets", multiple=True, help="METRIC=PERCENT for one metric, e.g. ttft_ms=10%.")
@click.option("--min-effect", default="1%", show_default=True, help="Smaller changes count as no change.")
@click.option("--confidence", type=click.FloatRange(0.5, 1, min_open=True, max_open=True),
              default=0.99, show_default=True,
              help="Two-sided confidence a regression (or improvement) must reach.")
@click.option("--pass-confidence", type=click.FloatRange(0.5, 1, min_open=True, max_open=True),
              default=0.95, show_default=True,
              help="One-sided confidence that a change stays within its budget, for a pass.")
@click.option("--metric", "metrics", multiple=True, help="Compare only these metrics (repeatable).")
@click.option("--allow-different-env", is_flag=True, help="Compare results from different machines or libraries.")
@click.option("--fail-on-inconclusive", is_flag=True, help="Exit 1 when a metric is inconclusive too.")
@click.option("--no-pairing", is_flag=True, help="Compare medians even for interleaved rounds of one session.")
@click.option("--run-noise", default=None,
              help="How far a timing median drifts between separate bench runs on this machine, at most "
                   "[default: 10%, measured on the 2-core CI machine]; separate runs regress only beyond the "
                   "budget plus this.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "junit"]), default="table",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write JUnit XML here.")
@friendly
def gate(baseline: str, candidate: str, max_slowdown: str, max_memory_growth: str, max_quality_loss: str,
         budgets: tuple[str, ...], min_effect: str, confidence: float, pass_confidence: float,
         metrics: tuple[str, ...], allow_different_env: bool, fail_on_inconclusive: bool, no_pairing: bool,
         run_noise: str | None, fmt: str, output: Path | None, junit_path: Path | None) -> None:
    """Compare two `optiplan bench` results metric by metric: pass, regression, improvement or
    inconclusive (too noisy; it says how many more repeats would decide).

    \b
      optiplan gate baseline.json results.json --max-slowdown 5% --max-memory-growth 3% --max-quality-loss 1%
      optiplan gate base.json head.json --format markdown -o comment.md --junit gate.xml

    Exit codes: 0 pass (or improvement, or inconclusive), 1 regression, 2 bad input.
    """
    from ..ci.gate import gate as run_gate
    from ..report.gate import print_gate, render
    from ..schema.bench import GateRequest

    request = GateRequest(baseline=baseline, candidate=candidate,
                          max_slowdown_pct=_percent(max_slowdown, "--max-slowdown"),
                          max_memory_growth_pct=_percent(max_memory_growth, "--max-memory-growth"),
                          max_quality_loss_pct=_percent(max_quality_loss, "--max-quality-loss"),
                          budgets=_budgets(budgets), min_effect_pct=_percent(min_effect, "--min-effect"),
                          confidence=confidence, pass_confidence=pass_confidence, metrics=list(metrics),
                          allow_different_env=allow_different_env, fail_on_inconclusive=fail_on_inconclusive,
                          pairing="off" if no_pairing else "auto",
                          run_noise_pct=None if run_noise is None else _percent(run_noise, "--run-noise"))
    report = run_gate(request)
    if junit_path is not None:
        emit(render(report, "junit"), junit_path)
    if fmt == "table":
        if output is None:
            print_gate(report)
        else:
            import io

            from rich.console import Console

            buffer = io.StringIO()
            print_gate(report, Console(file=buffer, width=130))
            emit(buffer.getvalue().rstrip("\n"), output)
    else:
        emit(render(report, fmt), output)
    sys.exit(report.exit_code)
