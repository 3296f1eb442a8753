"""The gate: statistics against scipy, verdicts on synthetic samples, outputs, and bad input (exit 2)."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from optiplan.planner.ci.gate import (
    Settings,
    bootstrap_log_ratio,
    compare,
    compare_samples,
    mann_whitney_p,
    rank_test_p,
    signed_rank_p,
    smallest_p,
)
from optiplan.planner.cli.gate import gate as gate_cmd
from optiplan.planner.schema.bench import (
    KNOWN_METRICS,
    BenchResult,
    BenchWorkload,
    Environment,
    GateReport,
    GateRequest,
    MetricSamples,
)

ENV = Environment(hardware_fingerprint="abc", cpu="Test CPU", cpu_count=2, memory_bytes=8 * 2**30, os="Linux",
                  python="3.11.7", libraries={"optiplan": "0.1.0", "torch": "2.13.0"}, threads=1, device="cpu",
                  dtype="float32")
WORKLOAD = BenchWorkload(name="chat", prompts=4, prompt_tokens=128, max_new_tokens=64, prompts_sha256="f00",
                         warmup=1, repeats=10)


def metric(name: str, samples: list[float]) -> MetricSamples:
    unit, direction, noisy, family = KNOWN_METRICS[name]
    return MetricSamples(unit=unit, direction=direction, noisy=noisy, family=family, samples=samples,
                         rounds=list(range(len(samples))) if noisy else [])


def result(target: str, values: dict[str, list[float]], session: str = "s1", **env) -> BenchResult:
    return BenchResult(target=target, target_kind="model", created_at="2025-01-01T00:00:00+00:00",
                       session_id=session,
                       workload=WORKLOAD, environment=ENV.model_copy(update=env),
                       metrics={k: metric(k, v) for k, v in values.items()})


def noisy(n: int, scale: float = 1.0, cv: float = 0.02, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [10.0 * scale * rng.lognormvariate(0, cv) for _ in range(n)]


def pair(scale: float, cv: float = 0.02, n: int = 10, separate: bool = False) -> tuple[BenchResult, BenchResult]:
    """An interleaved bench run of two targets (one session), or two separate runs."""
    a = {"tpot_ms": noisy(n, 1, cv, 1), "tokens_per_s": [1000 / x for x in noisy(n, 1, cv, 2)]}
    b = {"tpot_ms": noisy(n, scale, cv, 3), "tokens_per_s": [1000 / x for x in noisy(n, scale, cv, 4)]}
    return result("base", a, session="s1"), result("head", b, session="s2" if separate else "s1")


def verdicts(report: GateReport) -> dict[str, str]:
    return {v.metric: v.verdict for v in report.metrics}


REQ = GateRequest(baseline="base.json", candidate="head.json")


# ------------------------------------------------------------------------------------------- statistics


# scipy 1.17.1's p-values of the samples below (stats.mannwhitneyu(b, a, method="exact"), stats.wilcoxon(log(b / a),
# method="exact"), and mannwhitneyu's asymptotic p of a tied pair), kept here so the test runs without scipy (it is
# not a test dependency: an importorskip had skipped it on a clean install)
SCIPY_P = {(3, 4): (0.22857142857142856, 0.25), (7, 7): (0.20862470862470864, 0.375),
           (10, 13): (0.11506329180309526, 0.130859375)}
SCIPY_TIED_P = 0.0499729998820132


def test_rank_tests_match_scipy():
    rng = random.Random(7)
    for n_a, n_b in ((3, 4), (7, 7), (10, 13)):
        a = [rng.lognormvariate(0, 0.1) for _ in range(n_a)]
        b = [rng.lognormvariate(0.05, 0.1) for _ in range(n_b)]
        assert mann_whitney_p(a, b) == pytest.approx(SCIPY_P[n_a, n_b][0], rel=1e-9)
        assert signed_rank_p(a, b[:n_a]) == pytest.approx(SCIPY_P[n_a, n_b][1], rel=1e-9)
    tied_a, tied_b = [1, 1, 2, 2, 3, 3, 4], [2, 3, 3, 4, 4, 5, 5]
    assert mann_whitney_p(tied_a, tied_b) == pytest.approx(SCIPY_TIED_P, rel=1e-9)


def test_exact_p_values_at_the_extremes():
    assert mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert mann_whitney_p(list(range(7)), list(range(10, 17))) == pytest.approx(2 / 3432)
    assert signed_rank_p([1.0] * 8, [float(2 + i) for i in range(8)]) == pytest.approx(2 / 256)
    assert signed_rank_p([1.0] * 5, [1.0] * 5) == 1.0


# ------------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("scale, expected", [(1.0, "pass"), (1.15, "regression"), (0.85, "improvement")])
def test_timing_verdicts_follow_the_true_change(scale, expected):
    report = compare(*pair(scale), REQ)
    assert verdicts(report) == {"tpot_ms": expected, "tokens_per_s": expected}
    assert report.verdict == expected
    assert report.exit_code == (1 if expected == "regression" else 0)
    tpot = report.metrics[0]
    assert tpot.ci_low_pct <= tpot.change_pct <= tpot.ci_high_pct
    assert tpot.change_pct == pytest.approx((scale - 1) * 100, abs=3)


def test_throughput_counts_a_drop_as_the_regression():
    a = result("base", {"tokens_per_s": noisy(10, 1, seed=1)})
    b = result("head", {"tokens_per_s": noisy(10, 0.85, seed=2)})
    v = compare(a, b, REQ).metrics[0]
    assert v.verdict == "regression" and v.change_pct < -10


def test_noise_makes_it_inconclusive_and_says_how_many_repeats():
    report = compare(*pair(1.10, cv=0.25), REQ)
    v = report.metrics[0]
    assert v.verdict == "inconclusive"
    assert v.more_repeats and v.more_repeats > 0 and f"about {v.more_repeats} more repeats" in v.reason
    assert report.exit_code == 0
    strict = compare(*pair(1.10, cv=0.25), REQ.model_copy(update={"fail_on_inconclusive": True}))
    assert strict.exit_code == 1


def test_a_change_inside_the_budget_passes_and_the_budget_decides():
    report = compare(*pair(1.03, cv=0.005), REQ)
    assert verdicts(report)["tpot_ms"] == "pass"
    tight = compare(*pair(1.03, cv=0.005), REQ.model_copy(update={"budgets": {"tpot_ms": 1.0}}))
    assert verdicts(tight)["tpot_ms"] == "regression" and tight.metrics[0].budget_pct == 1.0


def test_too_few_samples_never_decide():
    report = compare(*pair(1.5, n=2), REQ)
    assert set(verdicts(report).values()) == {"inconclusive"}
    assert report.metrics[0].more_repeats == 1
    assert report.metrics[0].reason.startswith("2 baseline and 2 candidate sample(s)")


@pytest.mark.parametrize("name, base, head, expected", [
    ("peak_memory_bytes", 1e9, 1.05e9, "regression"),
    ("peak_memory_bytes", 1e9, 1.02e9, "pass"),
    ("perplexity", 12.0, 12.05, "pass"),
    ("perplexity", 12.0, 12.5, "regression"),
    ("perplexity", 12.0, 11.0, "improvement"),
    ("prefix_agreement", 1.0, 0.97, "regression"),
    ("prefix_agreement", 1.0, 1.0, "pass"),
])
def test_repeatable_metrics_are_compared_against_their_budget(name, base, head, expected):
    a, b = result("base", {name: [base]}), result("head", {name: [head]}, session="s2")
    v = compare(a, b, REQ).metrics[0]
    assert v.verdict == expected and v.method.startswith("direct")
    assert v.budget_pct == {"speed": 5.0, "memory": 3.0, "quality": 1.0}[KNOWN_METRICS[name][3]]


def test_interleaved_rounds_are_paired_and_cancel_drift():
    rng = random.Random(5)
    drift = [1 + 0.4 * math.sin(i) for i in range(12)]  # the machine slows and speeds up by +-40%
    a = [10 * d * rng.lognormvariate(0, 0.01) for d in drift]
    b = [11 * d * rng.lognormvariate(0, 0.01) for d in drift]  # a true 10% slowdown
    base, head = result("base", {"tpot_ms": a}), result("head", {"tpot_ms": b})
    paired = compare(base, head, REQ).metrics[0]
    assert paired.method.startswith("paired") and paired.verdict == "regression"
    unpaired = compare(base, head, REQ.model_copy(update={"pairing": "off"})).metrics[0]
    assert not unpaired.method.startswith("paired") and unpaired.verdict == "inconclusive"


def test_six_interleaved_rounds_of_a_large_slowdown_are_a_regression():
    """Six pairs: the signed-rank test alone cannot go below p = 0.031, so a 2.6x slowdown whose whole interval is
    beyond the budget was inconclusive and blamed on noise. The Mann-Whitney test beside it (Bonferroni) can."""
    a = noisy(6, 1.0, 0.1, 1)
    b = noisy(6, 2.6, 0.1, 2)
    assert signed_rank_p(a, b) == pytest.approx(2 / 2**6) and rank_test_p(a, b, True) == pytest.approx(4 / 924)
    v = compare(result("base", {"tpot_ms": a}), result("head", {"tpot_ms": b}), REQ).metrics[0]
    assert v.method.startswith("paired") and v.verdict == "regression"
    # with four pairs no test can reach 0.01: it says so, and how many more rounds would
    v = compare(result("base", {"tpot_ms": a[:4]}), result("head", {"tpot_ms": b[:4]}), REQ).metrics[0]
    assert v.verdict == "inconclusive" and "too few repeats to call it, not too much noise" in v.reason
    assert smallest_p(4, True) >= 0.01 > smallest_p(4 + v.more_repeats * WORKLOAD.prompts, True)


def test_the_smallest_p_counts_unequal_sides_and_equal_pairs():
    assert smallest_p(3, False, 5) == pytest.approx(2 / math.comb(8, 3))
    assert smallest_p(6, True, nonzero=4) == pytest.approx(2 * min(2 / 2**4, 2 / math.comb(12, 6)))
    assert smallest_p(4, True) > 0.05 > smallest_p(5, True)  # verify needs five repeats to call a timing


def test_one_run_against_itself_passes():
    base = result("base", {"tpot_ms": noisy(10, 1, 0.2, 1), "tokens_per_s": noisy(10, 1, 0.2, 2)})
    report = compare(base, base, REQ)
    assert report.verdict == "pass" and {v.method for v in report.metrics} == {"the same samples"}


def test_separate_runs_regress_beyond_budget_plus_the_drift_allowance():
    """Two bench runs cannot show the machine's drift between them: their interval is widened by the default
    allowance (10%, the CI machine's measured 3-9% rounded up), so a 36% slowdown fails and a 12% one, within
    5% budget plus 10% drift, does not."""
    from optiplan.planner.ci.gate import DEFAULT_RUN_NOISE_PCT

    assert DEFAULT_RUN_NOISE_PCT == 10.0
    slow = compare(*pair(1.36, separate=True), REQ)
    assert verdicts(slow) == {"tpot_ms": "regression", "tokens_per_s": "regression"} and slow.exit_code == 1
    assert "widened by 10% run-to-run drift" in slow.metrics[0].method
    assert "up to 10% drift between runs (the default" in slow.notes[0]
    base, head = pair(1.12, separate=True)
    v = compare(base, head, REQ).metrics[0]
    assert v.verdict == "inconclusive" and not v.method.startswith("paired") and v.change_pct > 8
    assert v.more_repeats is None  # repeats cannot beat drift
    told = compare(base, head, REQ.model_copy(update={"run_noise_pct": 1.0}))
    assert verdicts(told) == {"tpot_ms": "regression", "tokens_per_s": "regression"}
    assert told.metrics[0].ci_low_pct > v.ci_low_pct  # a smaller allowance, a narrower interval
    assert "1% drift between runs (--run-noise)" in told.notes[0]
    same = compare(*pair(1.0, separate=True), REQ)
    assert set(verdicts(same).values()) == {"inconclusive"} and same.exit_code == 0  # never a false alarm
    exact = compare(*pair(1.0, separate=True), REQ.model_copy(update={"run_noise_pct": 0.0}))
    assert set(verdicts(exact).values()) == {"pass"}
    for drift in (0.91, 0.95, 1.05, 1.09):  # the drift seen between A/A runs here is no regression
        assert "regression" not in verdicts(compare(*pair(drift, separate=True), REQ)).values()


def test_separate_runs_whose_drift_exceeds_the_budget_say_no_repeats_can_pass_them():
    # the default 10% drift allowance is past the 5% budget: the same model run twice is never a pass, and the reason
    # says why and what would decide it (an interleaved run, or this machine's own drift)
    v = compare(*pair(1.0, separate=True), REQ).metrics[0]
    assert v.verdict == "inconclusive" and "no number of repeats passes it" in v.reason
    assert "optiplan bench BASE HEAD" in v.reason and "more repeats would hardly" not in v.reason
    # a slowdown whose estimate is past the budget names the interval reaching into budget plus drift
    slow = compare(*pair(1.12, separate=True), REQ).metrics[0]
    assert slow.verdict == "inconclusive" and "its interval reaches down into it plus 10% drift" in slow.reason


def test_a_zero_baseline_of_a_repeatable_metric_is_a_verdict_not_a_crash():
    # a prefix agreement of 0.0 is a legitimate value: from it, any move is beyond a percentage budget
    up = compare(result("base", {"prefix_agreement": [0.0]}), result("head", {"prefix_agreement": [0.5]}, session="s2"),
                 REQ).metrics[0]
    assert up.verdict == "improvement" and up.change_pct is None and "zero baseline" in up.reason
    down = compare(result("base", {"peak_memory_bytes": [0.0]}),
                   result("head", {"peak_memory_bytes": [1e6]}, session="s2"), REQ)
    assert down.metrics[0].verdict == "regression" and down.exit_code == 1
    from optiplan.planner.report.gate import markdown
    assert "n/a (zero baseline)" in markdown(down)


def test_a_min_effect_above_the_budget_counts_the_budget_as_a_change():
    # --min-effect 10% with a 5% budget: a clear 7% slowdown is a regression, not "inconclusive", and a note says so
    base, head = pair(1.07, cv=0.005, n=20)
    report = compare(base, head, REQ.model_copy(update={"min_effect_pct": 10.0}))
    assert verdicts(report)["tpot_ms"] == "regression"
    assert any("--min-effect 10% is larger than the budget of tpot_ms" in n for n in report.notes)


def test_a_paired_change_is_labelled_per_round_and_targets_are_text_not_markup(tmp_path):
    from optiplan.planner.report.gate import print_gate
    from rich.console import Console

    base, head = pair(1.2)
    report = compare(base.model_copy(update={"target": "ckpt/[/tmp]"}), head, REQ)
    console = Console(width=200, record=True)
    print_gate(report, console)
    text = console.export_text()
    assert "ckpt/[/tmp]" in text and "per round" in text


def test_same_input_same_verdict():
    base, head = pair(1.06, cv=0.03)
    assert compare(base, head, REQ) == compare(base, head, REQ)


def _random_bootstrap(a: list[float], b: list[float], paired: bool) -> list[float]:
    """20,000 random resamples' log ratio of medians (of per-round ratios where paired), sorted."""
    draws, n = random.Random(0), len(a)
    la, lb = [math.log(x) for x in a], [math.log(y) for y in b]
    d = [y - x for x, y in zip(la, lb)]
    if paired:
        return sorted(statistics.median(draws.choices(d, k=n)) for _ in range(20000))
    return sorted(statistics.median(draws.choices(lb, k=n)) - statistics.median(draws.choices(la, k=n))
                  for _ in range(20000))


@pytest.mark.parametrize("n, paired", [(7, False), (9, True), (31, False), (41, True)])
def test_exact_bootstrap_matches_random_resampling(n, paired):
    rng = random.Random(n)
    a = [rng.lognormvariate(0, 0.1) for _ in range(n)]
    b = [rng.lognormvariate(0.05, 0.1) for _ in range(n)]
    est, low, high = bootstrap_log_ratio(a, b, 0.95, paired)
    stats = _random_bootstrap(a, b, paired)
    assert low == pytest.approx(stats[500], abs=0.004) and high == pytest.approx(stats[19499], abs=0.004)
    assert low < est < high


@pytest.mark.parametrize("n, paired", [(10, False), (60, True)])
def test_an_even_count_gives_an_interval_a_little_wider_than_random_resampling(n, paired):
    """For an even n the exact bootstrap weighs either middle value where a resample's median is their mean
    (docs/gate.md): its interval holds the random bootstrap's and is at most 12% wider."""
    rng = random.Random(n)
    a = [rng.lognormvariate(0, 0.1) for _ in range(n)]
    b = [rng.lognormvariate(0.05, 0.1) for _ in range(n)]
    _, low, high = bootstrap_log_ratio(a, b, 0.95, paired)
    stats = _random_bootstrap(a, b, paired)
    assert low <= stats[500] + 0.002 and high >= stats[19499] - 0.002
    assert 1.0 <= (high - low) / (stats[19499] - stats[500]) <= 1.12


def test_bootstrap_interval_covers_the_truth_usually():
    s = Settings(confidence=0.9)
    covered = 0
    for trial in range(100):
        a = metric("tpot_ms", noisy(15, 1.0, 0.05, seed=100 + trial))
        b = metric("tpot_ms", noisy(15, 1.1, 0.05, seed=200 + trial))
        v = compare_samples("tpot_ms", a, b, 5.0, s)
        covered += v.ci_low_pct <= 10.0 <= v.ci_high_pct
    assert covered >= 85  # a 90% interval


# ------------------------------------------------------------------------------------------- CLI and outputs


def write(tmp_path, name: str, res: BenchResult | dict) -> str:
    path = tmp_path / name
    text = res.model_dump_json() if isinstance(res, BenchResult) else json.dumps(res)
    path.write_text(text)
    return str(path)


def run(args: list[str]):
    return CliRunner().invoke(gate_cmd, args)


def test_cli_exit_codes_and_formats(tmp_path):
    base, slow = pair(1.2)
    _, same = pair(1.0)
    b, s, o = write(tmp_path, "b.json", base), write(tmp_path, "s.json", slow), write(tmp_path, "o.json", same)
    assert run([b, o]).exit_code == 0
    res = run([b, s, "--format", "json", "--junit", str(tmp_path / "gate.xml")])
    assert res.exit_code == 1
    report = GateReport.model_validate_json(res.stdout)
    assert report.verdict == "regression" and report.exit_code == 1
    suite = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite")
    assert suite.get("failures") == "2" and len(suite.findall("testcase/failure")) == 2
    md = run([b, s, "--format", "markdown"]).stdout
    assert "| tpot_ms |" in md and "**REGRESSION**" in md and "optiplan gate: regression" in md
    table = run([b, s, "--max-slowdown", "50%"])
    assert table.exit_code == 0 and "pass" in table.stdout
    written = run([b, s, "-o", str(tmp_path / "gate.txt")])
    assert written.exit_code == 1 and "optiplan gate: regression" in (tmp_path / "gate.txt").read_text()


def test_different_environments_need_permission(tmp_path):
    base, head = pair(1.0)
    env = ENV.model_copy(update={"threads": 2, "libraries": {"torch": "2.9"}})
    head = head.model_copy(update={"environment": env})
    b, h = write(tmp_path, "b.json", base), write(tmp_path, "h.json", head)
    res = run([b, h])
    assert res.exit_code == 2 and "different environments" in res.stderr and "threads: 1 vs 2" in res.stderr
    assert "torch: 2.13.0 vs 2.9" in res.stderr and "Traceback" not in res.output
    allowed = run([b, h, "--allow-different-env", "--format", "json"])
    assert allowed.exit_code == 0 and "environments differ" in json.loads(allowed.stdout)["notes"][0]


def test_the_models_dtype_is_no_environment_and_a_prompts_file_is_one_workload_wherever_it_was_read(tmp_path):
    # a PR that changes the model's dtype is benched in two runs: measured (a note says so), not refused as another
    # machine; and a prompts file given by two paths, with one digest, is one workload
    base, head = pair(1.0, separate=True)
    head = head.model_copy(update={"environment": ENV.model_copy(update={"dtype": "bfloat16"})})
    file_workload = {"name": "file:../base/prompts.txt", "prompt_tokens": 0}
    base = base.model_copy(update={"workload": WORKLOAD.model_copy(update=file_workload)})
    head = head.model_copy(update={"workload": WORKLOAD.model_copy(update=file_workload | {"name": "file:prompts.txt"})})
    report = compare(base, head, REQ)
    assert report.environment_differences == [] and "the models ran in float32 and bfloat16" in report.notes
    other = head.model_copy(update={"workload": head.workload.model_copy(update={"prompts_sha256": "bad"})})
    with pytest.raises(Exception, match="ran different workloads"):
        compare(base, other, REQ)


def test_a_gate_that_fails_on_inconclusive_metrics_says_so_in_its_junit_report(tmp_path):
    from optiplan.planner.report.gate import junit

    base, head = pair(1.04, cv=0.3, n=6)  # a change near the budget in noise: inconclusive
    report = compare(base, head, REQ.model_copy(update={"fail_on_inconclusive": True}))
    assert "inconclusive" in verdicts(report).values() and report.exit_code == 1
    suite = ET.fromstring(junit(report)).find("testsuite")
    assert int(suite.get("failures")) >= 1 and suite.get("skipped") == "0"
    lenient = compare(base, head, REQ)
    assert lenient.exit_code == 0 and ET.fromstring(junit(lenient)).find("testsuite").get("failures") == "0"


def corrupt(data: dict, how: str) -> dict:
    if how == "version":
        data["schema_version"] = "2.0"
    elif how == "empty":
        data["metrics"]["tpot_ms"]["samples"] = []
    elif how == "nan":
        data["metrics"]["tpot_ms"]["samples"][3] = float("nan")
    elif how == "missing":
        del data["metrics"]["tokens_per_s"]
    elif how == "kind":
        data.pop("kind")
    elif how == "workload":
        data["workload"]["max_new_tokens"] = 8
    elif how == "prompt":  # another prompt length: other prompts, so another digest
        data["workload"]["prompt_tokens"] *= 4
        data["workload"]["prompts_sha256"] = "0" * 64
    elif how == "field":
        data["metrics"]["tpot_ms"]["direction"] = "sideways"
    return data


@pytest.mark.parametrize("how, message", [
    ("version", "schema version '2.0'"),
    ("empty", "metric tpot_ms has no samples"),
    ("nan", "metrics.tpot_ms.samples.3: Input should be a finite number"),
    ("missing", "has no metric tokens_per_s"),
    ("kind", "not an optiplan bench result"),
    ("workload", "different workloads (new tokens"),
    ("prompt", "different workloads (prompt tokens"),
    ("field", "metrics.tpot_ms.direction"),
])
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, how, message):
    base, head = pair(1.0)
    b = write(tmp_path, "b.json", base)
    h = write(tmp_path, "h.json", corrupt(json.loads(head.model_dump_json()), how))
    res = run([b, h])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--max-slowdown", "fast"], "--max-slowdown 'fast' is not a percentage"),
    (["--budget", "tpot_ms"], "is not METRIC=PERCENT"),
    (["--budget", "tpot=3%"], "unknown metric 'tpot'"),
    (["--metric", "ttft_ms"], "has no metric ttft_ms"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    base, head = pair(1.0)
    res = run([write(tmp_path, "b.json", base), write(tmp_path, "h.json", head), *args])
    assert res.exit_code == 2 and message in res.stderr, res.output


def test_unreadable_files_exit_2(tmp_path):
    base, _ = pair(1.0)
    b = write(tmp_path, "b.json", base)
    (tmp_path / "bad.json").write_text("{not json")
    assert "is not JSON" in run([b, str(tmp_path / "bad.json")]).stderr
    res = run([b, str(tmp_path / "absent.json")])
    assert res.exit_code == 2 and "cannot read" in res.stderr


def test_gate_never_imports_torch(tmp_path):
    base, head = pair(1.0)
    b, h = write(tmp_path, "b.json", base), write(tmp_path, "h.json", head)
    code = ("import sys; from click.testing import CliRunner; from optiplan.planner.cli.gate import gate; "
            f"r = CliRunner().invoke(gate, [{b!r}, {h!r}, '--format', 'markdown']); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_workflow_template_uses_real_options():
    import shlex
    from pathlib import Path

    import yaml
    from optiplan.planner.cli.gate import bench as bench_cmd

    path = Path(__file__).resolve().parents[3] / "templates" / "ci" / "github-gate.yml"
    flow = yaml.safe_load(path.read_text())
    steps = flow["jobs"]["gate"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps).replace("\\\n", " ")
    known = {"bench": bench_cmd, "gate": gate_cmd}
    used = {}
    for line in script.splitlines():
        words = shlex.split(line.strip()) if line.strip().startswith("optiplan ") else []
        if words:
            command = known[words[1]]
            opts = {o for p in command.params for o in getattr(p, "opts", [])}
            for w in words[2:]:
                if w.startswith("-"):
                    assert w in opts, f"optiplan {words[1]} has no option {w}"
            used[words[1]] = words
    assert set(used) == {"bench", "gate"}
    bench_args = [w for w in used["bench"][2:] if not w.startswith("-")]
    assert len([w for w in bench_args if "model-" in w]) == 2  # base and head in one interleaved run
    assert "--junit" in used["gate"] and "markdown" in used["gate"]
    assert any("exit_code" in s.get("run", "") for s in steps)


def test_bench_help_shows_the_schema_default_repeats():
    from optiplan.planner.cli.gate import bench as bench_cmd
    from optiplan.planner.schema.bench import DEFAULT_REPEATS

    option = next(p for p in bench_cmd.params if p.name == "repeats")
    assert option.show_default == str(DEFAULT_REPEATS) and option.default() == DEFAULT_REPEATS


def test_a_change_that_rounds_to_nothing_reads_plus_zero():
    from optiplan.planner.ci.gate import signed_pct

    assert signed_pct(-0.001, 2) == "+0.00%" and signed_pct(-0.04) == "+0.0%"
    assert signed_pct(-3.14159, 2) == "-3.14%" and signed_pct(1.26) == "+1.3%"


def test_a_budget_for_a_metric_that_is_not_gated_is_refused():
    """A memory or quality budget over files benched without them (--no-memory, --no-quality, an endpoint) would
    check nothing while reading as a check: it is refused, as an unknown --metric is."""
    from optiplan.planner.errors import GateInputError

    a, b = pair(1.0)
    with pytest.raises(GateInputError, match="--budget peak_memory_bytes: not measured in these files"):
        compare(a, b, REQ.model_copy(update={"budgets": {"peak_memory_bytes": 1.0, "tpot_ms": 5.0}}))
    two = result("a", {"tpot_ms": noisy(20), "ttft_ms": noisy(20)}), result("b", {"tpot_ms": noisy(20, seed=1),
                                                                                 "ttft_ms": noisy(20, seed=1)})
    with pytest.raises(GateInputError, match="--budget ttft_ms: not among the --metric chosen"):
        compare(*two, REQ.model_copy(update={"budgets": {"ttft_ms": 5.0}, "metrics": ("tpot_ms",)}))


# ------------------------------------------------------------------------------------------- review findings


def test_quality_measured_differently_is_refused_and_the_same_is_compared():
    """Perplexity over another evaluation length, or agreement with another greedy reference, is another measure:
    the gate had compared them as the models' change."""
    from optiplan.planner.errors import GateInputError

    def with_quality(target, values, **quality):
        return result(target, values).model_copy(update={"quality": {"eval_text_sha256": "t", "eval_tokens": "4096",
                                                                     "greedy_reference_sha256": "r", **quality}})
    base = with_quality("base", {"perplexity": [5.0], "prefix_agreement": [1.0]})
    with pytest.raises(GateInputError, match="eval_tokens"):
        compare(base, with_quality("head", {"perplexity": [5.5], "prefix_agreement": [1.0]}, eval_tokens="256"), REQ)
    with pytest.raises(GateInputError, match="greedy_reference_sha256"):
        compare(base, with_quality("head", {"perplexity": [5.0], "prefix_agreement": [0.9]},
                                   greedy_reference_sha256="other"), REQ)
    # a reference that differs only matters where agreement is gated
    only_ppl = GateRequest(baseline="a", candidate="b", metrics=["perplexity"])
    report = compare(base, with_quality("head", {"perplexity": [5.0], "prefix_agreement": [0.9]},
                                        greedy_reference_sha256="other"), only_ppl)
    assert verdicts(report) == {"perplexity": "pass"}
    # a baseline benched before bench recorded its reference's digest: its agreement is against a reference that
    # cannot be told the same, so it is benched again; two such files compare as before
    old = base.model_copy(update={"quality": {"eval_text_sha256": "t", "eval_tokens": "4096"}})
    head = with_quality("head", {"perplexity": [5.0], "prefix_agreement": [1.0]})
    with pytest.raises(GateInputError, match="bench baseline again"):
        compare(old, head, REQ)
    assert verdicts(compare(old, head, only_ppl)) == {"perplexity": "pass"}
    old_head = head.model_copy(update={"quality": old.quality})
    assert verdicts(compare(old, old_head, REQ))["prefix_agreement"] == "pass"


def test_two_endpoints_serving_two_models_are_compared_with_a_note():
    """The model two endpoints serve is what a gate over them compares: it had been refused as an environment
    difference."""
    a, b = pair(1.0)
    a = a.model_copy(update={"environment": ENV.model_copy(update={"server_model": "llama-8b"})})
    b = b.model_copy(update={"environment": ENV.model_copy(update={"server_model": "llama-8b-awq"})})
    report = compare(a, b, REQ)
    assert report.environment_differences == []
    assert "the endpoints serve llama-8b and llama-8b-awq" in report.notes


def test_a_zero_budget_on_an_interleaved_run_is_not_called_a_drift_problem():
    report = compare(*pair(1.0, cv=0.05, n=6), GateRequest(baseline="a", candidate="b", max_slowdown_pct=0))
    for v in report.metrics:
        assert "separate runs may drift" not in v.reason, v.reason


def test_a_quality_figure_fallen_to_zero_is_a_regression_whatever_the_budget():
    """prefix agreement 0.8 -> 0 had read as -100%, within a 70% budget (a linear change against a log limit)."""
    v = compare_samples("prefix_agreement", metric("prefix_agreement", [0.8]), metric("prefix_agreement", [0.0]),
                        70.0, Settings())
    assert v.verdict == "regression"


def test_a_workload_of_no_prompts_is_a_clear_refusal(tmp_path):
    from optiplan.planner.ci.results import load_result
    from optiplan.planner.errors import GateInputError

    data = json.loads(result("base", {"tpot_ms": [1.0, 1.1, 1.2]}).model_dump_json())
    data["workload"]["prompts"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"kind": "optiplan-bench", **data}))
    with pytest.raises(GateInputError, match="prompts"):
        load_result(path)


def test_a_greedy_reference_without_quality_is_refused():
    from optiplan.planner.ci.bench import BenchError, run_bench
    from optiplan.planner.schema.bench import BenchRequest

    with pytest.raises(BenchError, match="--save-reference"):
        run_bench(BenchRequest(models=["m"], quality=False, save_reference="ref.json"), show_progress=False)
    with pytest.raises(BenchError, match="endpoints are not scored"):
        run_bench(BenchRequest(endpoints=["http://localhost:1"], reference="ref.json"), show_progress=False)


def test_separate_runs_of_a_large_change_with_few_samples_ask_for_repeats_not_blame_the_interval():
    """Three samples a side from two runs, +47%: the interval (drift included) clears the budget and only the rank
    test's floor is missing; it had said the interval reached into the budget."""
    a, b = metric("tpot_ms", noisy(3, 1, 0.02, 1)), metric("tpot_ms", noisy(3, 1.5, 0.02, 3))
    v = compare_samples("tpot_ms", a, b, 5.0, Settings(), separate=True)
    assert v.verdict == "inconclusive" and "too few repeats to call it" in v.reason and v.more_repeats >= 1
    assert "reaches down into it" not in v.reason
