"""Reports of an Advice: text (rich, readable in 80 columns), Markdown, self-contained HTML with
charts, and JSON (the versioned Advice model)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ... import __version__
from ..analytic.accuracy import band_text, bands_note
from ..catalog.engines import engine_fact
from ..catalog.workloads import priced_tokens
from ..numbers import rate, usd
from ..schema.advice import Advice
from .figures import (AS_IF_NOTE, WAIT_NOTE, alternative_columns, any_as_if, any_wait, baseline_label, cost_and_loss,
                      plan_below, predicted_summary, step_columns)

FORMATS = ("text", "md", "html", "json")


def _params(params: dict[str, Any], engine: str | None = None) -> str:
    """A step's parameters as the plan names them, each beside the engine's own option for it where its profile names
    one (`options`): "max_running=32 (--max-running-requests)" for SGLang; a running cap the engine has no option for
    is the load the plan is priced at, and said so (TGI: its configs set none)."""
    options = engine_fact(engine, "options") or {}

    def option(k: str) -> str:
        if k in options:
            return f" ({options[k]['option']})"
        served = engine not in (None, "transformers")  # a serving engine's config, not `optiplan apply`'s batch
        return f" (the load it is priced at: {engine} has no running cap to set)" if k == "max_running" and served \
            else ""
    return ", ".join(f"{k}={v}{option(k)}" for k, v in params.items() if v is not None)


def plan_diff(techniques: list[str], advice: Advice) -> str:
    """An alternative as its difference from the plan: what it adds and what it leaves out."""
    plan = [s.technique for s in advice.plan.steps]
    added = [t for t in techniques if t not in plan]
    dropped = [t for t in plan if t not in techniques]
    parts = ([f"with {', '.join(added)}"] if added else []) + ([f"without {', '.join(dropped)}"] if dropped else [])
    return "; ".join(parts) or "the same techniques"


def measured_steps(advice: Advice) -> list:
    """The plan's steps whose speed effect was measured on this machine (the others follow the analytic rule)."""
    return [s for s in advice.plan.steps if s.effect_source.startswith(("measured here", "step cost measured"))]


MEASURED_HEADING = "Speed effects measured on this machine (`optiplan calibrate`); the other steps follow the analytic rule:"
# what a plan step the engine runs by default is doing there (`PlanStep.engine_default`)
def paying_off_note(step, goal: str) -> str:
    """What a step that alone worsens the goal is in the plan for (`PlanStep.pays_off_with`)."""
    return (f"{step.technique}: alone it leaves the {goal} goal worse than the row before; the plan keeps it for what "
            f"it does with {', '.join(step.pays_off_with)} after it")


DEFAULT_NOTE = ("on by default in {engine}: the baseline runs it already and it gains nothing; the options its row "
                "names are the ones the configs set for the plan's load (a running cap, a step budget), not the "
                "engine's defaults")


@lru_cache(maxsize=1)
def template_env():
    import jinja2

    from ...templates import TEMPLATES_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=jinja2.select_autoescape(
        enabled_extensions=("html.j2",), default_for_string=False), trim_blocks=False, keep_trailing_newline=True)
    env.filters["params"] = _params
    env.filters["plan_diff"] = plan_diff
    env.filters["measured_steps"] = measured_steps
    env.globals["band"] = band_text
    env.filters["usd"] = usd
    env.globals["priced_tokens"] = priced_tokens
    env.globals["bands_note"] = bands_note
    env.globals["step_columns"] = step_columns
    env.globals["alternative_columns"] = alternative_columns
    env.globals["predicted_summary"] = predicted_summary
    env.globals["plan_below"] = plan_below
    env.globals["any_as_if"] = any_as_if
    env.globals["as_if_note"] = AS_IF_NOTE
    env.globals["any_wait"] = any_wait
    env.globals["wait_note"] = WAIT_NOTE
    env.globals["cost_and_loss"] = cost_and_loss
    env.globals["baseline_label"] = baseline_label
    env.globals["measured_heading"] = MEASURED_HEADING
    env.globals["default_note"] = DEFAULT_NOTE
    env.globals["paying_off_note"] = paying_off_note
    return env


def render(advice: Advice, fmt: str) -> str:
    if fmt == "json":
        return advice.model_dump_json(indent=2)
    if fmt == "md":
        return template_env().get_template("advice.md.j2").render(a=advice, version=__version__)
    if fmt == "html":
        from ..catalog.hardware import resolve_hardware
        from . import charts

        hw = resolve_hardware(advice.hardware.id)
        training = advice.workload.goal == "training"  # a training step has no prefill or decode to place
        figures = {"memory": charts.memory_chart(advice.baseline, advice.plan.predicted),
                   "roofline": "" if training else charts.roofline_chart(advice, hw.peak_tflops, hw.bandwidth_tbps),
                   "steps": charts.steps_chart(advice), "graph": charts.graph_chart(advice)}
        return template_env().get_template("advice.html.j2").render(a=advice, charts=figures, version=__version__)
    if fmt == "text":
        return text_report(advice, color=False)
    raise ValueError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")


def text_report(advice: Advice, color: bool = True, file=None) -> str:
    """The rich terminal report, 80 columns wide. Printed to `file` (stdout) when color is on;
    returned as plain text otherwise."""
    import io

    from rich.console import Console
    from rich.table import Table

    buffer = None if color else io.StringIO()
    console = Console(width=80, file=file if color else buffer, no_color=not color, highlight=False)
    a = advice
    w = a.workload
    console.print(f"[bold]{a.model.name}[/] on [bold]{a.hardware.count} x {a.hardware.id}[/], "
                  f"workload [bold]{w.name}[/] (goal {w.goal}, budget "
                  f"{'lossless' if w.max_quality_loss_pct == 0 else f'{w.max_quality_loss_pct:g}%'}, engine {w.engine})")
    if not a.feasible:
        console.print(f"\n[bold red]Not feasible:[/] {a.infeasible_reason}.\nNearest feasible: {a.nearest_feasible}. "
                      f"{plan_below(a)}.")
    console.print(f"\n[bold]Bottleneck:[/] {a.bottleneck.primary} ({a.bottleneck.category})"
                  + (f", then {a.bottleneck.secondary}" if a.bottleneck.secondary else ""))
    for e in a.bottleneck.evidence:
        console.print(f"  - {e}")
    table = Table(title="Plan", title_justify="left", pad_edge=False, padding=(0, 0))
    columns = step_columns(a)
    for col, justify in (("#", "right"), ("technique", "left"), *((c, "right") for c, _ in columns),
                         ("GB/dev", "right"), ("risk", "left")):
        # a technique's name on one line; the figures give way first
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col == "technique")

    def row(i, name, p, risk=""):
        table.add_row(str(i), name, *(cell(p) for _, cell in columns),
                      f"{p.memory_per_device_bytes / 1e9:,.1f}" + ("" if p.fits else " [red]![/]"), risk)

    row(0, baseline_label(a), a.baseline)
    for i, s in enumerate(a.plan.steps, 1):
        row(i, s.technique + (" (default)" if s.engine_default else ""), s.predicted,
            s.quality_risk + (f" {s.quality_loss_pct:g}%" if s.quality_loss_pct else ""))
    console.print(table)
    if any(s.engine_default for s in a.plan.steps):
        console.print(f"[dim](default): {DEFAULT_NOTE.format(engine=a.workload.engine)}[/]")
    for s in a.plan.steps:
        if s.pays_off_with:
            console.print(f"[dim]{paying_off_note(s, a.workload.goal)}[/]")
    if any_as_if(a):
        console.print(f"[dim]{AS_IF_NOTE}[/]")
    if any_wait(a):
        console.print(f"[dim]{WAIT_NOTE}[/]")
    console.print(f"Predicted: {predicted_summary(a)}{cost_and_loss(a)}")
    if a.accuracy:  # what the ± mean, as the Markdown and HTML reports say under the same line
        console.print(f"[dim]{bands_note(a.accuracy)}[/]")
    for s in a.plan.steps:
        if s.params:
            console.print(f"  {s.technique}: {_params(s.params, a.workload.engine)}")
    if measured_steps(a):
        console.print(MEASURED_HEADING.replace("`", ""))
        for s in measured_steps(a):
            console.print(f"  {s.technique}: {s.effect_source}")
    if a.alternatives:
        console.print("\n[bold]Alternatives[/]")
        for alt in a.alternatives:
            console.print(f"  - {plan_diff(alt.techniques, a)}: {alt.note}")
    if a.hardware_ranking:
        console.print(f"\n[bold]Hardware ranking[/] (cheapest per million {priced_tokens(a.workload.goal)} first)")
        if a.hardware_reason:
            console.print(f"  {a.hardware_reason}")
        for h in a.hardware_ranking[:8]:
            cost = f"{usd(h.cost_per_million_tokens_usd)}/M" if h.cost_per_million_tokens_usd is not None else "no price"
            if h.cost_range_usd:  # over the catalog's price range
                cost += f" ({usd(h.cost_range_usd[0])}-{usd(h.cost_range_usd[1])})"
            console.print(f"  {h.count} x {h.id}: {cost}, {rate(h.throughput_tokens_per_s)} tokens/s ({h.note})")
        if len(a.hardware_ranking) > 8:
            console.print(f"  ... and {len(a.hardware_ranking) - 8} more (--format json, md or html lists them all; the "
                          f"unpriced ones by tokens/s)")
    console.print("\n[bold]Not in the plan[/]")
    for r in a.rejected:
        console.print(f"  - {r.technique}: {r.reason}")
    for warning in a.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return buffer.getvalue() if buffer is not None else ""
