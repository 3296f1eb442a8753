"""`optiplan apply` and `optiplan verify`: thin commands over `optiplan.optimizers.apply` and `.verify`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import emit, friendly

FORMATS = ("text", "md", "html", "json")


def _log(line: str) -> None:
    click.echo(line, err=True)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The optimized model folder to write (never overwritten without --force).")
@click.option("--goal", type=click.Choice(["memory", "latency", "throughput", "context", "cost"]), default=None,
              help="Let the planner choose the steps for this goal on this machine.")
@click.option("--plan", "plan", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A plan saved by `optiplan advise MODEL --format json`.")
@click.option("--technique", "-t", "techniques", multiple=True,
              help="Apply these techniques, e.g. -t weight-w8a8-int8 -t 'sliding-window-sinks:window=256'.")
@click.option("--hardware", "-H", default="local", show_default=True, help="Hardware the planner plans for.")
@click.option("--workload", "-w", default=None, help="Workload the planner plans for [default: chat].")
@click.option("--context", type=click.IntRange(min=1), default=None, help="Override the workload's longest sequence.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Override the workload's concurrent sequences.")
@click.option("--max-quality-loss", "quality", default=None, help="Perplexity increase allowed, e.g. 1%.")
@click.option("--draft", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Draft model folder for speculative decoding (same tokenizer).")
@click.option("--device", default=None, help="cpu or cuda [default: cuda when present].")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Load the model in this dtype [default: as stored; an fp32 checkpoint in bf16 on a GPU].")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--drop-unprofitable", is_flag=True,
              help="Also roll back a step named with -t whose measured gain did not show.")
@click.option("--keep-all", is_flag=True,
              help="Keep planner-chosen steps that measured as a loss here (rolled back by default).")
@click.option("--no-verify", is_flag=True, help="Skip the before/after verification at the end.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Interleaved repeats when verifying.")
@click.option("--eval-text", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Held-out text for perplexity [default: built-in corpus].")
@click.option("--allow-pickle", is_flag=True, help="Load pickle (*.bin) weights: only for a source you trust.")
@click.option("--fail-on-worse", is_flag=True,
              help="Exit 1 where verify measured a figure worse after than before beyond the rounds' noise (steps "
                   "named with -t are kept as asked; the folder is written either way), as a CI step would.")
@friendly
def apply(model: Path, out: Path, goal, plan, techniques, hardware, workload, context, concurrency, quality, draft,
          device, dtype, force, drop_unprofitable, keep_all, no_verify, repeats, eval_text, allow_pickle,
          fail_on_worse) -> None:
    """Apply a plan to a real model and write an optimized model folder (then verify it).

    \b
      optiplan apply ./my-model --goal latency -o ./my-model-opt
      optiplan apply ./my-model --plan plan.json -o ./out
      optiplan apply ./my-model -t weight-w8a8-int8 -t spec-draft --draft ./small -o ./out
    """
    from ...optimizers.apply import WHOLE_PLAN_ROLLED_BACK
    from ...optimizers.apply import apply as run
    from ..catalog.workloads import parse_percent

    if fail_on_worse and no_verify:
        raise click.UsageError("--fail-on-worse reads verify's measurements: drop --no-verify")
    manifest = run(model, out, goal=goal, plan=plan, techniques=list(techniques) or None, hardware=hardware,
                   workload=workload, draft=draft, device=device, dtype=dtype, force=force,
                   drop_unprofitable=drop_unprofitable, keep_all=keep_all, verify=not no_verify,
                   allow_pickle=allow_pickle, context=context, concurrency=concurrency,
                   max_quality_loss_pct=parse_percent(quality),
                   verify_options={"repeats": repeats, "eval_text": eval_text, "progress": _log}, log=_log)
    _log(f"wrote {out}")
    if manifest.verify is not None:
        from ..report.verify import text_report, worse_line

        text_report(manifest.verify, color=True)
        rolled_back = any(WHOLE_PLAN_ROLLED_BACK in s.detail for s in manifest.steps)
        if rolled_back:  # the report is of the plan verify measured as a loss; the folder holds the original model
            _log("the folder holds the original model: verify measured the plan as a loss and it was rolled back")
        elif worse := worse_line(manifest.verify):  # kept as asked (-t, --keep-all): said in the log, not in red only
            _log(f"warning: the model written measured {worse.removeprefix('worse after than before: ')} against "
                 "the original" + ("" if fail_on_worse else "; --fail-on-worse makes that exit 1"))
            if fail_on_worse:
                sys.exit(1)


@click.command()
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("optimized", type=click.Path(path_type=Path))
@click.option("--eval-text", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Held-out text for perplexity and KL divergence [default: built-in corpus].")
@click.option("--repeats", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Interleaved repeats per model.")
@click.option("--max-new-tokens", type=click.IntRange(1, 100000), default=32, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Load the baseline in this dtype [default: the optimized model's working dtype, as apply "
                   "measured it].")
@click.option("--device", default=None, help="cpu or cuda [default: cuda when present].")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory processes.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--allow-pickle", is_flag=True, help="Load pickle (*.bin) baseline weights: only if you trust them.")
@click.option("--fail-on-worse", is_flag=True,
              help="Exit 1 where a figure got worse after than before beyond the rounds' noise (a slower or larger "
                   "optimized model), as a CI step would.")
@friendly
def verify(baseline: Path, optimized: Path, eval_text, repeats, max_new_tokens, dtype, device, no_memory, fmt,
           output, allow_pickle, fail_on_worse) -> None:
    """Measure a baseline and an optimized model on the same workload, interleaved, and compare quality."""
    from ...optimizers.verify import verify as run
    from ..report.verify import render, text_report, worse_line

    report = run(baseline, optimized, device=device, dtype=dtype, eval_text=eval_text, repeats=repeats,
                 max_new_tokens=max_new_tokens, memory=not no_memory, allow_pickle=allow_pickle, progress=_log)
    if fmt == "text" and output is None:
        text_report(report, color=True)
    else:
        emit(render(report, fmt), output)
    if fail_on_worse and (worse := worse_line(report)):
        click.echo(f"verify: {worse}", err=True)
        sys.exit(1)
