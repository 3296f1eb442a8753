"""What `optiplan gate` and `optiplan bench` show: a rich table, Markdown for a pull-request comment,
JUnit XML for CI test reports, and JSON (the GateReport itself)."""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET

from ..ci.gate import signed_pct
from ..schema.bench import BenchResult, GateReport, MetricVerdict
from .console import fmt_bytes

STYLE = {"pass": "green", "improvement": "cyan", "regression": "bold red", "inconclusive": "yellow"}
MARK = {"pass": "pass", "improvement": "improvement", "regression": "**REGRESSION**",
        "inconclusive": "inconclusive"}


def fmt_value(value: float, unit: str) -> str:
    """A metric value with its unit, readable: bytes in MB/GB, milliseconds with two decimals."""
    if unit == "bytes":
        return fmt_bytes(value)
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit == "tokens/s":
        return f"{value:,.1f} tok/s"
    if unit == "fraction":
        return f"{value:.3f}"
    return f"{value:,.4g}"


def _ci(v: MetricVerdict) -> str:
    return "" if v.ci_low_pct == v.ci_high_pct else f"{signed_pct(v.ci_low_pct)} .. {signed_pct(v.ci_high_pct)}"


def _change(v: MetricVerdict) -> str:
    """The change column: n/a from a zero baseline; a paired comparison's median per-round ratio says so (it can
    differ in sign from the two medians beside it)."""
    if v.change_pct is None:
        return "n/a (zero baseline)"
    return signed_pct(v.change_pct, 2) + (" per round" if v.method.startswith("paired") else "")


def _rows(report: GateReport) -> list[tuple[str, ...]]:
    return [(v.metric, fmt_value(v.baseline_median, v.unit), fmt_value(v.candidate_median, v.unit),
             _change(v), _ci(v), f"{v.budget_pct:g}%", f"{v.n_baseline}/{v.n_candidate}", v.verdict)
            for v in report.metrics]


HEADER = ("metric", "baseline", "candidate", "change", "CI", "budget", "n", "verdict")


def headline(report: GateReport) -> str:
    counts = {k: sum(v.verdict == k for v in report.metrics) for k in STYLE}
    parts = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return f"optiplan gate: {report.verdict} ({parts}; exit {report.exit_code})"


def print_gate(report: GateReport, console=None) -> None:
    """The verdict table on the terminal, then one line of reasons per metric that did not simply pass."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=130)
    # targets are paths and names the user chose: "ckpt/[v2]" is text, not rich markup
    table = Table(title=escape(f"{report.baseline} -> {report.candidate} ({report.workload})"), title_justify="left")
    for col in HEADER:
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for row, v in zip(_rows(report), report.metrics):
        table.add_row(*map(escape, row[:-1]), f"[{STYLE[v.verdict]}]{v.verdict}[/]")
    console.print(table)
    for v in report.metrics:
        if v.verdict != "pass":
            console.print(f"[{STYLE[v.verdict]}]{escape(v.metric)}[/]: {escape(v.reason)}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"[{STYLE[report.verdict]}]{escape(headline(report))}[/]")


def markdown(report: GateReport) -> str:
    """A pull-request comment: the verdict, the table, the reasons and how the statistics were done."""
    lines = [f"### {headline(report)}", "",
             (f"`{report.baseline}` (baseline) against `{report.candidate}` (candidate), "
              f"workload `{report.workload}`."),
             "", "| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row, v in zip(_rows(report), report.metrics):
        lines.append("| " + " | ".join([*row[:-1], MARK[v.verdict]]) + " |")
    reasons = [f"- **{v.metric}** ({v.verdict}): {v.reason}" for v in report.metrics if v.verdict != "pass"]
    if reasons:
        lines += ["", *reasons]
    lines += [""] + [f"> note: {n}" for n in report.notes]
    methods = sorted({v.method for v in report.metrics})
    lines.append(f"<sub>{'; '.join(methods)}; minimum effect {report.min_effect_pct:g}%. A timing metric "
                 f"fails only when its change is beyond the budget and significant at {report.confidence:.0%}, "
                 f"passes when its one-sided {report.pass_confidence:.0%} bound is within the budget, and is "
                 "inconclusive when the runner was too noisy to tell.</sub>")
    return "\n".join(lines)


def junit(report: GateReport) -> str:
    """JUnit XML: one test case per metric; a regression fails, an inconclusive metric is skipped (fails, where the
    gate was told to fail on it: the exit code and the report then agree)."""
    fails = ("regression", "inconclusive") if report.fail_on_inconclusive else ("regression",)
    failed = sum(v.verdict in fails for v in report.metrics)
    skipped = 0 if report.fail_on_inconclusive else sum(v.verdict == "inconclusive" for v in report.metrics)
    suite = ET.Element("testsuite", name="optiplan gate", tests=str(len(report.metrics)), failures=str(failed),
                       errors="0", skipped=str(skipped))
    for v in report.metrics:
        case = ET.SubElement(suite, "testcase", classname=f"optiplan.gate.{report.workload}", name=v.metric)
        text = (f"{v.metric}: baseline {fmt_value(v.baseline_median, v.unit)}, candidate "
                f"{fmt_value(v.candidate_median, v.unit)}, {v.verdict}: {v.reason}")
        if v.verdict in fails:
            ET.SubElement(case, "failure", message=v.reason, type=v.verdict).text = text
        elif v.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=v.reason)
        ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites", name="optiplan gate", tests=suite.get("tests"), failures=str(failed))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def render(report: GateReport, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2)
    if fmt == "markdown":
        return markdown(report)
    if fmt == "junit":
        return junit(report)
    raise ValueError(f"unknown format {fmt}")


def half_iqr(samples: list[float]) -> float:
    """Half the interquartile range: the spread beside a median, which one outlier does not set (on a shared 2-core
    machine one 656 ms sample among 40 made a standard deviation three times the mean)."""
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return (q3 - q1) / 2


def print_bench(results: list[BenchResult], console=None) -> None:
    """Medians and spread of each target's metrics, side by side."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True, width=130)
    first = results[0]
    console.print(f"[bold]bench {first.workload.name}[/]: {first.workload.prompts} prompts, "
                  f"{first.workload.max_new_tokens} new tokens, {first.workload.repeats} interleaved rounds "
                  f"({first.environment.device}, {first.environment.threads or '-'} threads); median ± half the "
                  "interquartile range")
    table = Table()
    table.add_column("metric")
    for r in results:
        table.add_column(r.target, justify="right", overflow="fold")
    names = list(dict.fromkeys(k for r in results for k in r.metrics))
    for name in names:
        cells = []
        for r in results:
            m = r.metrics.get(name)
            if m is None or m.summary is None:
                cells.append("-")
                continue
            spread = f" ±{half_iqr(m.samples) / m.summary.median:.1%}" if m.summary.n > 1 and m.summary.median else ""
            cells.append(fmt_value(m.summary.median, m.unit) + spread)
        table.add_row(name, *cells)
    console.print(table)
    for r in results:
        for note in r.notes:
            console.print(f"[yellow]note ({r.target}):[/] {note}")
