"""The verify report in every format: a rich table, Markdown, self-contained HTML with an SVG chart, JSON.
One list of rows feeds them all, so the formats cannot disagree."""

from __future__ import annotations

import math
import statistics
from html import escape
from typing import Any

from ... import __version__
from ..ci.gate import rank_test_p
from ..schema.optimize import VerifyReport

FORMATS = ("text", "md", "html", "json")
# (key, label, unit, lower is better)
METRICS = (("ttft_ms", "time to first token", "ms", True), ("tpot_ms", "time per output token", "ms", True),
           ("tokens_per_s", "tokens/s, batch 1", "tok/s", False),
           ("batched_tokens_per_s", "tokens/s, all prompts together", "tok/s", False),
           ("peak_memory_bytes", "peak memory", "MB", True), ("weights_bytes", "weights", "MB", True),
           ("cache_bytes", "KV cache, 384-token context", "MB", True),
           ("perplexity", "perplexity (held-out)", "", True))


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1e6:,.2f}" if unit == "MB" else f"{value:,.2f}"


# a timing change is called better or worse only when it is beyond this and its interleaved samples say so
SIGNIFICANCE = 0.05
# every round moving one way counts (`established_ratios`) only from this many rounds: by chance alone all n agree in
# one chosen direction with probability 2^-n, 3.1% at five (within SIGNIFICANCE); at two a model timed against itself
# agreed half the time (a review's finding: "worse" in 2 of 2 such runs)
AGREEING_ROUNDS = 5


def crossover_ratio(per_round: list[float | None]) -> float:
    """The after / before ratio of interleaved rounds that alternate which side runs first (ABBA: "after" second in
    rounds 0, 2, 4, ...): the geometric mean of the two orders' medians, so that an advantage of running second (or a
    drift within a round) cancels however many rounds there are. A plain median of five rounds sides with the order
    "after" ran second in three times; with one round it is that round. A round without the figure is None."""
    orders = [kept for i in (0, 1) if (kept := [r for r in per_round[i::2] if r is not None])]
    if not orders:
        raise ValueError("no rounds to take a ratio of")
    return math.prod(statistics.median(o) for o in orders) ** (1 / len(orders))


def significant(report: VerifyReport, key: str) -> bool:
    """Whether the interleaved samples of a timed metric differ beyond chance (the gate's rank test, paired by
    repeat); a metric measured once (weights, perplexity, memory) is exact and always counts."""
    b, a = report.measured["before"].samples.get(key), report.measured["after"].samples.get(key)
    if not b or not a:
        return True
    if len(b) != len(a) or len(b) < 2:
        return False
    return rank_test_p(b, a, paired=True) < SIGNIFICANCE


def established_ratios(report: VerifyReport) -> dict[str, float]:
    """verify's measured ratios (after / before) as far as its interleaved rounds establish them: a metric measured
    once (weights, memory) as measured; a timed one at its median where the paired test finds it beyond chance, else,
    where every one of at least AGREEING_ROUNDS rounds moved the same way (a drift between rounds can hide that from
    the test: its signed-rank half cannot reach 5% below seven rounds), at the round nearest no change, else at 1. A
    loss then counts only as far as the rounds show it."""
    out = {}
    for key, ratio in report.measured_ratios.items():
        b, a = report.measured["before"].samples.get(key), report.measured["after"].samples.get(key)
        if not b or not a or len(a) != len(b):
            out[key] = ratio
            continue
        rounds = [y / x for x, y in zip(b, a) if x]
        same_way = len(rounds) >= AGREEING_ROUNDS and (all(r > 1 for r in rounds) or all(r < 1 for r in rounds))
        out[key] = ratio if significant(report, key) else min(rounds, key=lambda r: abs(r - 1)) if same_way else 1.0
    return out


def rows(report: VerifyReport) -> list[dict[str, Any]]:
    """One row per metric: before, after, ratio, predicted ratio, and whether it got better (beyond 3% and, for a
    timed metric, as far as its interleaved rounds establish it: `established_ratios`, so that five rounds all 1.6x
    slower, drifting between rounds, are called worse although the rank test does not find it)."""
    before, after = report.measured["before"], report.measured["after"]
    established = established_ratios(report)
    out = []
    for key, label, unit, lower in METRICS:
        if key == "cache_bytes" and report.workload.get("cache_context"):  # read past the cache's kept span
            label = f"KV cache, {report.workload['cache_context']:,}-token context"
        b, a = getattr(before, key), getattr(after, key)
        ratio = report.measured_ratios.get(key, a / b if a is not None and b else None)
        judged = established[key] if key in established else ratio if significant(report, key) else None
        better = judged is not None and (judged < 0.97 if lower else judged > 1.03)
        worse = judged is not None and (judged > 1.03 if lower else judged < 0.97)
        spread_b, spread_a = before.spread.get(key), after.spread.get(key)
        out.append({"metric": label, "unit": unit, "before": _fmt(b, unit), "after": _fmt(a, unit),
                    "spread": (f"±{spread_b / 2:,.2f} / ±{spread_a / 2:,.2f}" if spread_b is not None
                               and spread_a is not None else ""),
                    "ratio": f"{ratio:.3f}x" if ratio is not None else "n/a",
                    "predicted": (f"{report.predicted_ratios[key]:.3f}x" if key in report.predicted_ratios else ""),
                    "verdict": "better" if better else ("worse" if worse else "same"), "value": ratio})
    return out


def worse_line(report: VerifyReport) -> str | None:
    """What got worse after than before beyond the rounds' noise (a slower or larger model), said in every format;
    None where nothing did."""
    worse = [f"{r['metric']} {r['ratio']}" for r in rows(report) if r["verdict"] == "worse"]
    return "worse after than before: " + ", ".join(worse) if worse else None


def step_rows(report: VerifyReport) -> list[dict[str, str]]:
    out = []
    for s in report.steps:
        pm = ", ".join(f"{k} {v:.2f}x" for k, v in s.predicted.items() if k in ("tpot_ms", "weights_bytes",
                                                                               "cache_bytes"))
        mm = ", ".join(f"{k} {v:.2f}x" for k, v in s.measured.items())
        shown = {True: "yes", False: "NO: gain did not show", None: "-"}[s.gain_shown]
        out.append({"technique": s.technique, "status": s.status, "detail": s.detail, "predicted": pm or "-",
                    "measured": mm or "-", "gain": shown})
    return out


def ratio_chart(report: VerifyReport) -> str:
    """Horizontal bars of after/before per metric around 1.0; green where it got better."""
    data = [r for r in rows(report) if r["value"]]
    width, left, bar_h = 640, 220, 22
    height = 30 + len(data) * (bar_h + 8)
    top = max(max(r["value"] for r in data), 1.0) * 1.1 if data else 2.0
    span = width - left - 60

    def x(v: float) -> float:
        return left + span * v / top

    body = ['<text x="10" y="16" font-weight="bold">after / before (1.0 = unchanged)</text>']
    for i, r in enumerate(data):
        y = 26 + i * (bar_h + 8)
        color = {"better": "#59a14f", "worse": "#e15759", "same": "#bab0ac"}[r["verdict"]]
        body.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(r["metric"])}</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{x(r["value"]) - left:.1f}" height="{bar_h}" fill="{color}"/>')
        body.append(f'<text x="{x(r["value"]) + 4:.1f}" y="{y + 15}">{r["ratio"]}</text>')
    one = x(1.0)
    body.append(f'<line x1="{one:.1f}" y1="22" x2="{one:.1f}" y2="{height - 4}" stroke="#000" stroke-dasharray="4 3"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12" role="img" aria-label="measured ratios">' + "".join(body) + "</svg>")


def render(report: VerifyReport, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    from .advice import template_env

    if fmt == "text":
        return text_report(report, color=False)
    name = "verify.md.j2" if fmt == "md" else "verify.html.j2"
    chart = ratio_chart(report) if fmt == "html" else ""
    return template_env().get_template(name).render(r=report, rows=rows(report), steps=step_rows(report), chart=chart,
                                                    worse=worse_line(report), version=__version__)


def text_report(report: VerifyReport, color: bool = True, file=None) -> str:
    """The report as rich tables (printed when `color`, returned as plain text otherwise)."""
    from rich.console import Console
    from rich.table import Table

    import io

    # colour only where rich finds a terminal (and NO_COLOR unset): a log or a pipe gets plain text; the plain report
    # is returned, not printed
    console = Console(file=file if color else io.StringIO(), width=120, no_color=not color, record=not color)
    table = Table(title=f"verify on {report.device}: {report.baseline} -> {report.optimized}", title_justify="left")
    for col in ("metric", "before", "after", "spread (before / after)", "after/before", "verdict", "predicted"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for r in rows(report):
        style = {"better": "green", "worse": "red", "same": ""}[r["verdict"]]
        table.add_row(f"{r['metric']} ({r['unit']})" if r["unit"] else r["metric"], r["before"], r["after"],
                      r["spread"], f"[{style}]{r['ratio']}[/]" if style else r["ratio"],
                      r["verdict"] if r["verdict"] != "same" else "", r["predicted"])
    console.print(table)
    if worse := worse_line(report):
        console.print(f"[bold red]{worse}[/]")
    q = report.quality
    console.print(f"quality: KL divergence {q.kl_divergence:.5f}, next-token agreement {q.next_token_agreement:.1%}, "
                  f"greedy generation agreement {q.generation_agreement:.1%}, perplexity "
                  f"{q.perplexity_change_pct:+.2f}%")
    if report.speculative:
        s = report.speculative
        console.print(f"speculative: acceptance {s['acceptance_rate']:.0%}, {s['tokens_per_target_pass']:.2f} tokens "
                      f"per target pass; speedup predicted {s['predicted_speedup']:.2f}x (for the measured "
                      f"acceptance), measured {s['measured_speedup']:.2f}x")
    if report.steps:
        steps = Table(title="steps: predicted and measured (after/before of each step)", title_justify="left")
        for col in ("technique", "status", "predicted", "measured", "gain shown"):
            steps.add_column(col)
        for s in step_rows(report):
            steps.add_row(s["technique"], s["status"], s["predicted"], s["measured"], s["gain"])
        console.print(steps)
    for note in report.notes:
        console.print(f"note: {note}")
    return "" if color else console.export_text()
