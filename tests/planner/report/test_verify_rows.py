"""The verify report calls a timing better or worse only when its interleaved repeats tell it from noise."""

from __future__ import annotations

from optiplan.planner.report.verify import render, rows
from optiplan.planner.schema.optimize import Measured, Quality, VerifyReport


def report(before: list[float], after: list[float]) -> VerifyReport:
    def side(tpot: list[float], weights: int) -> Measured:
        return Measured(ttft_ms=10, tpot_ms=sorted(tpot)[len(tpot) // 2], tokens_per_s=100, weights_bytes=weights,
                        perplexity=5.0, samples={"tpot_ms": tpot})
    return VerifyReport(baseline="a", optimized="b", device="cpu", workload={"prompts": 2, "max_new_tokens": 8,
                                                                             "repeats": len(before), "eval_text": "x"},
                        measured={"before": side(before, 1000), "after": side(after, 500)},
                        quality=Quality(kl_divergence=0, next_token_agreement=1, generation_agreement=1,
                                        perplexity_change_pct=0), measured_ratios={})


def verdict(r: VerifyReport, metric: str) -> str:
    return next(x["verdict"] for x in rows(r) if x["metric"] == metric)


def test_noise_is_not_colored_a_real_change_is():
    same_model = report([10, 12, 9, 11, 10], [11, 9, 12, 10, 10.6])  # 1.06x, within the repeats' spread
    assert verdict(same_model, "time per output token") == "same"
    slower = report([10, 10.2, 9.9, 10.1, 10], [13, 13.2, 12.9, 13.1, 13])
    assert verdict(slower, "time per output token") == "worse"
    assert verdict(slower, "weights") == "better"  # measured once, exact: 0.5x
    md = render(slower, "md")
    assert "(worse)" in md and "(better)" in md and "rank test" in md
    assert verdict(report([10, 10.1], [13, 13.1]), "time per output token") == "same"  # two repeats decide nothing
