"""The CI gate: compare two bench results metric by metric and say pass, regression, improvement or
inconclusive, with statistics that respect noise.

Why not a threshold on one number: a noisy runner then fails good pull requests. Here a timing
metric is a regression only when its median moved beyond the budget *and* the move is significant
(the 99% confidence interval of the change clears the minimum effect and a rank test agrees); it
passes when the one-sided 95% bound of the change is within the budget (an equivalence test);
otherwise it is inconclusive and the gate says about how many more repeats would decide.
Interleaved samples of one bench session are compared pair by pair (the same prompt in the same
round), which cancels the machine's drift; two separate runs cannot show that drift, so their interval is
widened at both ends by an allowance for it (`run_noise_pct`, DEFAULT_RUN_NOISE_PCT unless given): a change
beyond budget plus drift is a regression, one within it passes or is inconclusive. Repeatable metrics
(peak memory, quality) are compared directly against their budget. Pure Python and exact (no random
resampling): the same files always give the same verdict, and torch is never imported.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from functools import lru_cache

from ..errors import GateInputError, UnknownNameError
from ..schema.bench import (
    KNOWN_METRICS,
    BenchResult,
    GateReport,
    GateRequest,
    MetricSamples,
    MetricVerdict,
)
from .results import environment_differences, load_result, same_quality_measure

MIN_NOISY_SAMPLES = 3

# How far a timing median moves between two separate bench runs of the same model on the project's 2-core CI
# machine: 3-9% over the runs of benchmarks/bench_gate_statistics.py ("run_to_run_pct"), rounded up. Separate
# runs' intervals are widened by it; `--run-noise` sets the figure of another machine.
DEFAULT_RUN_NOISE_PCT = 10.0


def _binom_sf(n: int, p: float, k: int) -> float:
    """P(Binomial(n, p) >= k), in log space so that large n neither overflows nor underflows."""
    if p >= 1:
        return 1.0
    lp, lq, lg = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    return min(1.0, sum(math.exp(lg - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                        for i in range(k, n + 1)))


@lru_cache(maxsize=512)
def _median_weights(n: int) -> tuple[float, ...]:
    """Probability, over all n**n bootstrap resamples, that the resample's median is the j-th smallest sample.

    Exact (Maritz and Jarrett): the median is the k-th order statistic, at most x_(j) exactly when at least
    k of n draws are, a binomial tail. For an even n, half the weight goes to each middle order statistic, where a
    resample's median is their mean: a wider distribution (intervals 2-10% wider at n = 10-60; docs/gate.md)."""
    ks = sorted({(n + 1) // 2, n // 2 + 1})
    weights = [0.0] * n
    for k in ks:
        below = 0.0
        for j in range(1, n + 1):
            upto = _binom_sf(n, j / n, k)
            weights[j - 1] += (upto - below) / len(ks)
            below = upto
    return tuple(weights)


def _median_atoms(xs: list[float]) -> list[tuple[float, float]]:
    """(value, probability) of the bootstrap distribution of the median of xs."""
    return [(x, w) for x, w in zip(sorted(xs), _median_weights(len(xs))) if w > 1e-12]


def _atom_quantile(atoms: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of a discrete distribution: the first value whose cumulative probability reaches q."""
    atoms.sort()
    total = sum(w for _, w in atoms)
    cum = 0.0
    for value, w in atoms:
        cum += w / total
        if cum >= q - 1e-12:
            return value
    return atoms[-1][0]


def bootstrap_quantiles(a: list[float], b: list[float], paired: bool, qs: tuple[float, ...]
                        ) -> tuple[float, list[float]]:
    """ln(median b / median a) and quantiles of its bootstrap distribution, computed over all resamples exactly
    (no random draws: the same files always give the same interval). Paired: the median of the per-round log
    ratios instead."""
    if paired:
        d = [math.log(y / x) for x, y in zip(a, b)]
        est, atoms = statistics.median(d), _median_atoms(d)
    else:
        atoms_a = _median_atoms([math.log(x) for x in a])
        atoms_b = _median_atoms([math.log(y) for y in b])
        atoms = [(vb - va, wb * wa) for vb, wb in atoms_b for va, wa in atoms_a if wb * wa > 1e-12]
        est = statistics.median(math.log(y) for y in b) - statistics.median(math.log(x) for x in a)
    return est, [_atom_quantile(atoms, q) for q in qs]


def bootstrap_log_ratio(a: list[float], b: list[float], confidence: float,
                        paired: bool) -> tuple[float, float, float]:
    """(estimate, low, high): the log ratio with its two-sided bootstrap percentile interval."""
    est, (low, high) = bootstrap_quantiles(a, b, paired, ((1 - confidence) / 2, (1 + confidence) / 2))
    return est, low, high


@lru_cache(maxsize=256)
def _mann_whitney_counts(m: int, n: int) -> tuple[int, ...]:
    """Arrangements of m and n untied values per value of U: the coefficients of the Gaussian binomial."""
    c = [1] + [0] * (m * n)
    for i in range(1, m + 1):  # multiply by (1 - q^(n+i)) / (1 - q^i)
        for j in range(m * n, n + i - 1, -1):
            c[j] -= c[j - n - i]
        for j in range(i, m * n + 1):
            c[j] += c[j - i]
    return tuple(c)


@lru_cache(maxsize=256)
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """Sign patterns of n untied differences per value of W+ (the sum of the positive ranks)."""
    c = [1] + [0] * (n * (n + 1) // 2)
    for i in range(1, n + 1):
        for j in range(len(c) - 1, i - 1, -1):
            c[j] += c[j - i]
    return tuple(c)


def _two_sided_exact(counts: tuple[int, ...], stat: int) -> float:
    total = sum(counts)
    return min(1.0, 2 * min(sum(counts[: stat + 1]), sum(counts[stat:])) / total)


def _two_sided_normal(stat: float, mean: float, var: float) -> float:
    if var <= 0:
        return 1.0
    z = max(0.0, abs(stat - mean) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(z / math.sqrt(2)))


def _ranks(xs: list[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based) and the sizes of the tie groups."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks, ties, i = [0.0] * len(xs), [], 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test: exact without ties, else normal with tie correction."""
    m, n = len(a), len(b)
    ranks, ties = _ranks(a + b)
    u = sum(ranks[m:]) - n * (n + 1) / 2  # pairs where b is larger
    if max(ties) == 1 and m * n <= 2500:
        return _two_sided_exact(_mann_whitney_counts(m, n), round(u))
    tie_term = sum(t**3 - t for t in ties) / ((m + n) * (m + n - 1))
    return _two_sided_normal(u, m * n / 2, m * n / 12 * ((m + n + 1) - tie_term))


def signed_rank_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on the pairs (zero differences dropped)."""
    d = [math.log(y / x) for x, y in zip(a, b) if y != x]
    if not d:
        return 1.0
    ranks, ties = _ranks([abs(x) for x in d])
    w = sum(r for r, x in zip(ranks, d) if x > 0)
    n = len(d)
    if max(ties) == 1 and n <= 60:
        return _two_sided_exact(_signed_rank_counts(n), round(w))
    var = n * (n + 1) * (2 * n + 1) / 24 - sum(t**3 - t for t in ties) / 48
    return _two_sided_normal(w, n * (n + 1) / 4, var)


def rank_test_p(a: list[float], b: list[float], paired: bool) -> float:
    """The rank test's two-sided p. Paired samples take the better of the signed-rank test (which cancels the drift
    between rounds) and the Mann-Whitney test (whose smallest p falls far faster with few samples: 0.0022 against
    0.031 at six a side), at twice its p (Bonferroni), so the two together keep the confidence asked."""
    if not paired:
        return mann_whitney_p(a, b)
    return min(1.0, 2 * min(signed_rank_p(a, b), mann_whitney_p(a, b)))


def smallest_p(n: int, paired: bool, m: int | None = None, nonzero: int | None = None) -> float:
    """The smallest p `rank_test_p` can give with n samples on one side and m (default n) on the other, `nonzero` of
    the pairs differing (default all; the signed-rank test drops the others), every difference one way, no ties."""
    m = n if m is None else m
    mann_whitney = 2 / math.comb(n + m, n)
    if not paired:
        return min(1.0, mann_whitney)
    k = n if nonzero is None else nonzero
    return min(1.0, 2 * min(2 / 2**k if k else 1.0, mann_whitney))


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.99
    min_effect_pct: float = 1.0
    run_noise_pct: float = DEFAULT_RUN_NOISE_PCT  # how far a median drifts between separate runs, at most
    pass_confidence: float = 0.95  # one-sided: pass needs this upper bound within the budget (equivalence test)


def _worse_threshold(pct: float, direction: str) -> float:
    """A change of `pct` percent in the bad direction, as a log ratio oriented so that worse is positive."""
    return math.log(1 + pct / 100) if direction == "lower" else -math.log(1 - min(pct, 99.999) / 100)


def _pct(log_ratio: float) -> float:
    return (math.exp(log_ratio) - 1) * 100


def signed_pct(value: float, digits: int = 1) -> str:
    """'+1.2%', '-0.4%', and '+0.0%' for a change that rounds to nothing (never '-0.0%')."""
    rounded = round(value, digits) or 0.0  # -0.0 is falsy
    return f"{rounded:+.{digits}f}%"


def _more_repeats(n: int, half_width: float, gap: float, per_round: int, fixed: float = 0.0) -> int | None:
    """Rounds to add so the interval (its sampling part narrowing as 1/sqrt(samples), its run-to-run part
    `fixed` not at all) clears the decision boundary."""
    if gap <= fixed or gap - fixed <= 0.05 * half_width:
        return None  # the change sits on the boundary, or within the drift: no number of repeats decides it
    return max(1, math.ceil((n * half_width**2 / (gap - fixed) ** 2 - n) / per_round))


def compare_samples(name: str, a: MetricSamples, b: MetricSamples, budget_pct: float, settings: Settings,
                    paired: bool = False, per_round: int = 1, separate: bool = False) -> MetricVerdict:
    """The verdict on one metric from its baseline samples `a` and candidate samples `b`; a bench round
    gives `per_round` samples, so "more repeats" counts rounds. `separate`: the samples come from two
    bench runs, whose difference includes the machine's drift between them, which no sample shows."""
    sign = 1 if a.direction == "lower" else -1  # makes "worse" positive
    limit = _worse_threshold(budget_pct, a.direction)
    effect = _worse_threshold(settings.min_effect_pct, a.direction)
    med_a, med_b = statistics.median(a.samples), statistics.median(b.samples)
    common = {"metric": name, "unit": a.unit, "direction": a.direction, "baseline_median": med_a,
              "candidate_median": med_b, "budget_pct": budget_pct, "n_baseline": len(a.samples),
              "n_candidate": len(b.samples)}
    if not a.noisy:
        if med_a == 0 and med_b != 0:
            # no percentage of a zero baseline (a prefix agreement of 0): any move is beyond a budget, in its direction
            worse_now = sign * med_b > 0
            verdict = "regression" if worse_now else "improvement"
            reason = (f"{med_a:g} -> {med_b:g}: a change from a zero baseline, "
                      + (f"beyond any {budget_pct:g}% budget" if worse_now else "better"))
            return MetricVerdict(**common, verdict=verdict, change_pct=None, ci_low_pct=None, ci_high_pct=None,
                                 method="direct comparison (repeatable metric)", reason=reason)
        change = (med_b / med_a - 1) * 100 if med_a else 0.0
        # a figure fallen to 0 from a positive one is all of it gone (a prefix agreement of 0): beyond any budget
        worse = sign * math.log(med_b / med_a) if med_a > 0 and med_b > 0 else \
            -sign * math.inf if med_a > 0 and med_b == 0 else sign * change / 100
        verdict = "regression" if worse > limit else "improvement" if worse < -effect else "pass"
        reason = {"regression": f"{signed_pct(change, 2)} is beyond the {budget_pct:g}% budget",
                  "improvement": f"{signed_pct(change, 2)} better",
                  "pass": f"{signed_pct(change, 2)} is within the {budget_pct:g}% budget"}
        return MetricVerdict(**common, verdict=verdict, change_pct=change, ci_low_pct=change, ci_high_pct=change,
                             method="direct comparison (repeatable metric)", reason=reason[verdict])
    n = min(len(a.samples), len(b.samples))
    alpha, pass_tail = 1 - settings.confidence, 1 - settings.pass_confidence
    est, (lo, hi, pass_lo, pass_hi) = bootstrap_quantiles(a.samples, b.samples, paired,
                                                          (alpha / 2, 1 - alpha / 2, pass_tail, 1 - pass_tail))
    bound = pass_hi if sign > 0 else pass_lo  # the one-sided bound on the bad side
    sampling_lo, sampling_bound = min(sign * lo, sign * hi), sign * bound  # worse-oriented, before any drift
    p = rank_test_p(a.samples, b.samples, paired)
    method = (f"{'paired ' if paired else ''}bootstrap {settings.confidence:.0%} CI of the "
              f"{'median per-round ratio' if paired else 'ratio of medians'}, "
              + ("Wilcoxon signed-rank and Mann-Whitney tests (Bonferroni: twice the smaller p)" if paired
                 else "Mann-Whitney test"))
    fixed = fixed_pass = 0.0
    if separate and settings.run_noise_pct:  # the runs may have drifted this far apart: either way, at most
        fixed = fixed_pass = math.log(1 + settings.run_noise_pct / 100)
        lo, hi = lo - fixed, hi + fixed
        bound = bound + sign * fixed
        method += f", widened by {settings.run_noise_pct:g}% run-to-run drift"
    w, w_lo, w_hi, w_bound = sign * est, min(sign * lo, sign * hi), max(sign * lo, sign * hi), sign * bound
    ci = f"{settings.confidence:.0%} CI {signed_pct(_pct(lo))} .. {signed_pct(_pct(hi))}"
    more = None
    if n < MIN_NOISY_SAMPLES:
        verdict, more = "inconclusive", math.ceil((MIN_NOISY_SAMPLES - n) / per_round)
        reason = (f"{len(a.samples)} baseline and {len(b.samples)} candidate sample(s); a timing metric needs at least "
                  f"{MIN_NOISY_SAMPLES} on each side: about {more} more "
                  f"repeat{'s' if more > 1 else ''} (bench --repeat) would decide")
    elif w > limit and w_lo > (limit if fixed else effect) and p < alpha:
        # separate runs: the interval, widened by the drift allowance, must clear the budget itself
        verdict, reason = "regression", (f"{signed_pct(_pct(est))} ({ci}, p={p:.2g}) is beyond the {budget_pct:g}% budget"
                                         + (f" plus {settings.run_noise_pct:g}% drift" if fixed else ""))
    elif w_hi < -effect and p < alpha:
        verdict, reason = "improvement", f"{signed_pct(_pct(est))} ({ci}, p={p:.2g})"
    elif w_bound <= limit:
        verdict, reason = "pass", (f"{signed_pct(_pct(est))} ({ci}); its one-sided {settings.pass_confidence:.0%} bound "
                                   f"{signed_pct(_pct(bound))} is within the {budget_pct:g}% budget")
    else:
        verdict = "inconclusive"
        floor = smallest_p(len(a.samples), paired, len(b.samples),
                           sum(x != y for x, y in zip(a.samples, b.samples)) if paired else None)
        cleared = w_lo > (limit if fixed else effect)  # the interval (with any drift allowance) clears the boundary
        if w > limit and cleared and floor >= alpha:
            # the interval clears the budget, but with so few samples no rank test can reach the confidence asked
            need = next(k for k in range(n + 1, 10 * n + 60) if smallest_p(k, paired) < alpha)
            more = math.ceil((need - n) / per_round)
            reason = (f"{signed_pct(_pct(est))} ({ci}) is beyond the {budget_pct:g}% budget, but with {n} samples a side "
                      f"the rank test's smallest p is {floor:.2g}, not below {alpha:.2g}: too few "
                      f"repeats to call it, not too much noise")
        elif w > limit:
            # an interval that clears already leaves only the rank test to decide: its p says no count of repeats
            more = None if cleared else _more_repeats(n, w - sampling_lo, w - (limit if fixed else effect), per_round,
                                                      fixed)
            reason = (f"{signed_pct(_pct(est))} looks beyond the {budget_pct:g}% budget but "
                      + (f"is not significant ({ci}, p={p:.2g})" if cleared else
                         f"its interval reaches down into it plus {settings.run_noise_pct:g}% drift between the runs "
                         f"({ci})" if fixed else
                         f"is not significant ({ci}, p={p:.2g})" if p >= alpha else
                         f"is not established: its interval reaches below the {settings.min_effect_pct:g}% that "
                         f"counts as a change ({ci}, p={p:.2g})"))
        elif fixed_pass and fixed_pass >= limit:
            # separate runs: the drift allowance alone is past the budget, so no interval of theirs can pass
            reason = (f"{signed_pct(_pct(est))} ({ci}), but separate runs may drift {settings.run_noise_pct:g}% apart, "
                      f"more than the {budget_pct:g}% budget: no number of repeats passes it; compare the two "
                      "interleaved (optiplan bench BASE HEAD), or set --run-noise to this machine's measured drift")
        else:
            more = _more_repeats(n, sampling_bound - w, limit - w, per_round, fixed_pass)
            reason = (f"{signed_pct(_pct(est))} ({ci}), but its one-sided {settings.pass_confidence:.0%} bound "
                      f"{signed_pct(_pct(bound))} does not rule out more than the {budget_pct:g}% budget")
        if not (fixed_pass and fixed_pass >= limit and w <= limit):  # that reason already says what would decide it
            reason += (f"; about {more} more repeat{'s' if more > 1 else ''} (bench --repeat) would decide"
                       if more is not None else "; more repeats may decide it (how many, the rank test's p does not "
                       "say)" if w > limit and cleared else
                       "; more repeats would hardly decide it")
    return MetricVerdict(**common, verdict=verdict, change_pct=_pct(est), ci_low_pct=_pct(lo), ci_high_pct=_pct(hi),
                         p_value=p, method=method, more_repeats=more, reason=reason)


def _budget(name: str, m: MetricSamples, request: GateRequest) -> float:
    if name in request.budgets:
        return request.budgets[name]
    return {"speed": request.max_slowdown_pct, "memory": request.max_memory_growth_pct,
            "quality": request.max_quality_loss_pct}[m.family]


def _paired(a: BenchResult, b: BenchResult, ma: MetricSamples, mb: MetricSamples, request: GateRequest) -> bool:
    return (request.pairing == "auto" and a.session_id == b.session_id and a.target != b.target
            and bool(ma.rounds) and ma.rounds == mb.rounds)


def compare(a: BenchResult, b: BenchResult, request: GateRequest, names: tuple[str, str] = ("baseline", "candidate")
            ) -> GateReport:
    """Compare two loaded results under the request's budgets and settings."""
    wa, wb = a.workload, b.workload
    # a prompts file is one workload wherever it was read from (its digest says it is the same text)
    same_name = wa.name == wb.name or (wa.name.startswith("file:") and wb.name.startswith("file:"))
    if not same_name or (wa.prompts_sha256, wa.max_new_tokens) != (wb.prompts_sha256, wb.max_new_tokens):
        differ = [f"{what} {x} vs {y}" for what, x, y in (
            ("workload", wa.name, wb.name), ("prompt tokens", wa.prompt_tokens, wb.prompt_tokens),
            ("new tokens", wa.max_new_tokens, wb.max_new_tokens)) if x != y]
        raise GateInputError(f"{names[0]} and {names[1]} ran different workloads "
                             f"({', '.join(differ) or 'different prompt texts'}); bench both with the same options")
    diffs = environment_differences(a, b)
    served = a.environment.server_model, b.environment.server_model  # what two endpoints serve is what is compared
    if diffs and not request.allow_different_env:
        raise GateInputError(f"{names[0]} and {names[1]} come from different environments ({'; '.join(diffs)}); "
                             "bench both on the same machine, or pass --allow-different-env")
    for name in request.budgets:
        if name not in KNOWN_METRICS and name not in a.metrics:
            raise UnknownNameError("metric", name, set(KNOWN_METRICS) | set(a.metrics), "in --budget")
    order = [*KNOWN_METRICS, *sorted((set(a.metrics) | set(b.metrics)) - set(KNOWN_METRICS))]
    wanted = list(request.metrics) or [m for m in order if m in a.metrics or m in b.metrics]
    same_quality_measure(a, b, wanted, names)
    for name in wanted:
        for label, result in zip(names, (a, b)):
            if name not in result.metrics:
                raise GateInputError(f"{label} has no metric {name} (it has {', '.join(sorted(result.metrics))}); "
                                     "bench both the same way, or choose metrics with --metric")
    if idle := sorted(set(request.budgets) - set(wanted)):  # a budget that gates nothing must not read as a check
        why = "not among the --metric chosen" if request.metrics else "not measured in these files"
        raise GateInputError(f"--budget {', '.join(idle)}: {why} (gated: {', '.join(wanted)}), so it would check "
                             "nothing; bench with it (no --no-memory / --no-quality), or drop the budget")
    run_noise = DEFAULT_RUN_NOISE_PCT if request.run_noise_pct is None else request.run_noise_pct
    settings = Settings(request.confidence, request.min_effect_pct, run_noise, request.pass_confidence)
    separate = a.session_id != b.session_id
    same_run = not separate and a.target == b.target  # one file given twice, or two copies of one run
    verdicts, clamped = [], []
    for name in wanted:
        ma, mb = a.metrics[name], b.metrics[name]
        if (ma.direction, ma.noisy, ma.unit) != (mb.direction, mb.noisy, mb.unit):
            raise GateInputError(f"metric {name} is described differently in the two files")
        if same_run and ma.samples == mb.samples:
            med = statistics.median(ma.samples)
            verdicts.append(MetricVerdict(
                metric=name, unit=ma.unit, direction=ma.direction, baseline_median=med, candidate_median=med,
                budget_pct=_budget(name, ma, request), n_baseline=len(ma.samples), n_candidate=len(mb.samples),
                verdict="pass", change_pct=0.0, ci_low_pct=0.0, ci_high_pct=0.0, method="the same samples",
                reason="both files hold the same bench run of the same model: no change"))
            continue
        budget = _budget(name, ma, request)
        # a change past the budget is a change: the smallest that counts is at most the budget, else a change between
        # the two would be neither a pass nor a regression
        own = settings if settings.min_effect_pct <= budget else replace(settings, min_effect_pct=budget)
        if own is not settings:
            clamped.append(name)
        verdicts.append(compare_samples(name, ma, mb, budget, own, paired=_paired(a, b, ma, mb, request),
                                        per_round=a.workload.prompts, separate=separate))
    kinds = {v.verdict for v in verdicts}
    overall = next(k for k in ("regression", "inconclusive", "improvement", "pass") if k in kinds or k == "pass")
    failed = "regression" in kinds or (request.fail_on_inconclusive and "inconclusive" in kinds)
    notes = [f"environments differ (allowed): {'; '.join(diffs)}"] if diffs else []
    if served[0] != served[1]:
        notes.append(f"the endpoints serve {served[0]} and {served[1]}")
    if a.environment.dtype != b.environment.dtype:  # the models', not the machine's: a change the gate measures
        notes.append(f"the models ran in {a.environment.dtype} and {b.environment.dtype}")
    if clamped:
        notes.append(f"--min-effect {request.min_effect_pct:g}% is larger than the budget of {', '.join(clamped)}: "
                     "there the budget is the smallest change that counts")
    if separate and any(a.metrics[name].noisy for name in wanted):
        notes.append("timings from two separate bench runs: their intervals allow for "
                     + (f"{run_noise:g}% drift between runs (--run-noise)" if request.run_noise_pct is not None
                        else f"up to {run_noise:g}% drift between runs (the default, measured on the CI machine; "
                             "--run-noise sets yours)")
                     + "; an interleaved run (optiplan bench BASE HEAD) compares prompt by prompt")
    return GateReport(verdict=overall, exit_code=1 if failed else 0, fail_on_inconclusive=request.fail_on_inconclusive,
                      baseline=a.target, candidate=b.target,
                      workload=wa.name, confidence=request.confidence, pass_confidence=request.pass_confidence,
                      min_effect_pct=request.min_effect_pct, environment_differences=diffs, metrics=verdicts,
                      notes=notes)


def gate(request: GateRequest) -> GateReport:
    """Load the two result files of the request and compare them."""
    a, b = load_result(request.baseline), load_result(request.candidate)
    return compare(a, b, request, names=(request.baseline, request.candidate))
