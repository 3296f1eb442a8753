"""The verify report calls a timing better or worse only when its interleaved repeats tell it from noise."""

from __future__ import annotations

import pytest
from optiplan.planner.report.verify import render, rows, worse_line
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


def test_rounds_that_all_agree_are_called_so_from_five():
    """A timing that every round moved the same way is called at the round nearest no change (as the apply gate reads
    it) from five rounds, where chance gives that 3% of the time; below, not at all: two rounds of a model timed
    against itself had agreed half the time (a review's finding), so three rounds 2.4x slower are 'same', shown, not
    judged."""
    def timed(before, after):
        r = report(before, after)
        return r.model_copy(update={"measured_ratios": {"tpot_ms": r.measured["after"].tpot_ms /
                                                        r.measured["before"].tpot_ms}})
    assert verdict(timed([6.0, 6.1, 5.9], [14.5, 14.6, 14.3]), "time per output token") == "same"
    assert worse_line(timed([6.0, 6.1], [6.6, 6.5])) is None
    slower = timed([6.0, 9.1, 5.9, 8.8, 6.2], [14.5, 14.0, 14.3, 9.0, 14.1])  # drifting: every round slower
    assert verdict(slower, "time per output token") == "worse"
    assert "time per output token" in worse_line(slower)
    assert verdict(timed([10, 10.1, 9.9, 10, 10.2], [13, 7, 10.5, 12, 11]), "time per output token") == "same"


def batched_report(before: list[float], after: list[float]) -> VerifyReport:
    """A report whose batched throughput was measured in interleaved rounds (as verify now times it)."""
    def side(batched: list[float], weights: int) -> Measured:
        return Measured(ttft_ms=10, tpot_ms=10, tokens_per_s=100, weights_bytes=weights, perplexity=5.0,
                        batched_tokens_per_s=sorted(batched)[len(batched) // 2], samples={"batched_tokens_per_s": batched})
    b, a = side(before, 1000), side(after, 500)
    return VerifyReport(baseline="a", optimized="b", device="cpu", workload={"prompts": 2, "max_new_tokens": 8,
                                                                             "repeats": len(before), "eval_text": "x"},
                        measured={"before": b, "after": a},
                        quality=Quality(kl_divergence=0, next_token_agreement=1, generation_agreement=1,
                                        perplexity_change_pct=0),
                        measured_ratios={"batched_tokens_per_s": a.batched_tokens_per_s / b.batched_tokens_per_s,
                                         "weights_bytes": 0.5})


def test_a_loss_counts_as_far_as_the_rounds_establish_it():
    """The same weights timed twice differed by 28% in one batched run each (a review's finding): the apply gate now
    reads the interleaved rounds. Noise counts as no change, a loss every round shows counts, and a metric measured
    once (weights) counts as measured."""
    from optiplan.optimizers.apply import losses
    from optiplan.planner.report.verify import established_ratios

    noisy = batched_report([400, 520, 380, 500, 450], [390, 510, 400, 300, 505])  # median 0.89x, rounds both ways
    assert established_ratios(noisy) == {"batched_tokens_per_s": 1.0, "weights_bytes": 0.5}
    assert losses("memory", established_ratios(noisy)) == []
    assert losses("memory", noisy.measured_ratios) == []  # 0.89x is above the 0.8x floor either way
    slower = batched_report([400, 410, 395, 405, 400], [200, 210, 190, 205, 200])  # every round half as fast
    assert established_ratios(slower)["batched_tokens_per_s"] == 0.5
    assert losses("memory", established_ratios(slower)) == ["batched tokens/s 0.50x"]
    # rounds that drift (a busy machine) hide a loss from the rank test at five rounds: every round shows 0.6x
    drifting = batched_report([400, 700, 380, 650, 450], [240, 420, 228, 390, 270])
    assert established_ratios(drifting)["batched_tokens_per_s"] == pytest.approx(0.6)
    assert losses("memory", established_ratios(drifting)) == ["batched tokens/s 0.60x"]
    # three rounds cannot reach the test's significance, nor does their agreeing establish a loss
    few = batched_report([400, 410, 395], [300, 200, 210])
    assert established_ratios(few)["batched_tokens_per_s"] == 1.0
    assert established_ratios(batched_report([400, 410, 395], [200, 500, 210]))["batched_tokens_per_s"] == 1.0


def test_a_slower_model_is_said_to_be_worse_in_plain_text_too(capsys):
    # colour alone is lost in a log: the text names the verdict and says what got worse, in words, without escapes
    from optiplan.planner.report.verify import text_report, worse_line

    slower = report([10, 10.2, 9.9, 10.1, 10], [13, 13.2, 12.9, 13.1, 13])
    assert worse_line(slower) == "worse after than before: time per output token 1.300x"
    text = render(slower, "text")
    assert "worse after than before: time per output token 1.300x" in text and "\x1b[" not in text
    assert capsys.readouterr().out == ""  # returned (for -o), not printed as well
    assert any(line.split("│")[6].strip() == "worse" for line in text.splitlines() if "time per output" in line)
    text_report(slower, color=True)  # printed: pytest's capture is no terminal, so no colour codes either
    assert "\x1b[" not in capsys.readouterr().out
    assert "worse after than before" in render(slower, "md") and "worse after than before" in render(slower, "html")
    assert worse_line(report([10, 12, 9, 11, 10], [11, 9, 12, 10, 10.6])) is None


def test_verify_fails_on_a_worse_figure_when_asked(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from optiplan.optimizers import verify as verify_module
    from optiplan.planner.cli.main import main

    monkeypatch.setattr(verify_module, "verify", lambda *a, **k: report([10, 10.2, 9.9, 10.1, 10],
                                                                        [13, 13.2, 12.9, 13.1, 13]))
    args = ["verify", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]
    assert CliRunner().invoke(main, args).exit_code == 0  # reported, not judged, unless asked
    failed = CliRunner().invoke(main, [*args, "--fail-on-worse"])
    assert failed.exit_code == 1 and "verify: worse after than before: time per output token 1.300x" in failed.output


def test_apply_says_when_the_model_it_wrote_measured_worse_and_can_fail_on_it(monkeypatch, tmp_path):
    """Steps named with -t are kept as asked even where verify measures them slower: the log says so in words, and
    --fail-on-worse exits 1 as verify's own flag does (it had been a red table line and exit 0)."""
    from click.testing import CliRunner
    from optiplan.optimizers import apply as apply_module
    from optiplan.planner.cli.main import main
    from optiplan.planner.schema.optimize import ArtifactManifest, Runtime

    slower = report([10, 10.2, 9.9, 10.1, 10], [13, 13.2, 12.9, 13.1, 13])
    manifest = ArtifactManifest(source="a", created="", device="cpu", goal=None, steps=[], runtime=Runtime(),
                                libraries={}, sha256={}, verify=slower)
    monkeypatch.setattr(apply_module, "apply", lambda *args, **kwargs: manifest)
    args = ["apply", str(tmp_path), "-o", str(tmp_path / "out"), "-t", "kv-fp8"]
    kept = CliRunner().invoke(main, args)
    assert kept.exit_code == 0 and "warning: the model written measured time per output token 1.300x" in kept.output
    failed = CliRunner().invoke(main, [*args, "--fail-on-worse"])
    assert failed.exit_code == 1
    refused = CliRunner().invoke(main, [*args, "--fail-on-worse", "--no-verify"])
    assert refused.exit_code == 2 and "drop --no-verify" in refused.output
    # a plan verify measured as a loss was rolled back: the folder holds the original, which nothing measured worse
    from optiplan.planner.schema.optimize import StepRecord

    rolled = manifest.model_copy(update={"steps": [StepRecord(
        technique="weight-int8", status="rolled-back", detail="int8; rolled back with the whole plan: verify measured "
        "tpot_ms 1.30x", params={})]})
    monkeypatch.setattr(apply_module, "apply", lambda *args, **kwargs: rolled)
    shipped = CliRunner().invoke(main, [*args, "--fail-on-worse"])
    assert shipped.exit_code == 0 and "holds the original model" in shipped.output and "warning" not in shipped.output


def test_the_shown_ratio_weighs_the_two_orders_alike():
    """Five ABBA rounds put "after" second three times: a 10% advantage of running second then tilted the ratio of the
    two sides' medians (1.10x for no change); the crossover ratio of the rounds reads 1.0, and the row shows it."""
    from optiplan.planner.report.verify import crossover_ratio

    # no effect; whichever side runs second is 10% slower (rounds 0, 2, 4: after second; 1, 3: before second)
    before = [10.0, 11.0, 10.0, 11.0, 10.0]
    after = [11.0, 10.0, 11.0, 10.0, 11.0]
    assert sorted(after)[2] / sorted(before)[2] == pytest.approx(1.1)
    assert crossover_ratio([a / b for b, a in zip(before, after)]) == pytest.approx(1.0)
    # a real 2x slowdown with the same order effect reads 2x; one round is that round
    assert crossover_ratio([2.2, 1 / 1.1 * 2, 2.2, 2 / 1.1, 2.2]) == pytest.approx(2.0)
    assert crossover_ratio([1.3]) == 1.3
    assert crossover_ratio([None, 1.0, 1.21]) == pytest.approx(1.1)  # a round without the figure keeps its place
    r = report(before, after).model_copy(update={"measured_ratios": {"tpot_ms": 1.0}})
    assert next(x["ratio"] for x in rows(r) if x["metric"] == "time per output token") == "1.000x"
    with pytest.raises(ValueError):
        crossover_ratio([])
