"""The figures every report shows: one definition for the terminal, Markdown and HTML."""

from __future__ import annotations

from optiplan.planner.report.figures import rate


def test_a_slow_rate_keeps_its_digits():
    # a 70B offloaded to the host of an L4 serves half a token a second: not "0 tokens/s"
    assert rate(0.48) == "0.48" and rate(0.0) == "0"
    assert rate(9.4) == "9.4" and rate(12.4) == "12" and rate(12345.6) == "12,346"


def test_a_loaded_time_per_token_carries_the_loaded_runs_band():
    """The batch-1 decode points validate a lone sequence's TPOT (3.7% median); at batch 32 the figure is validated
    by the loaded runs (request and inter-token latencies under load), whose band is wider."""
    from optiplan.planner.analytic.accuracy import band_text, decode_band
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.figures import predicted_summary
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", workload="chat"))
    assert a.plan.predicted.batch > 1 and decode_band(a.plan.predicted.batch, a.accuracy) == "request_latency_ms"
    loaded, alone = band_text(a.accuracy, "request_latency_ms"), band_text(a.accuracy, "tpot_ms")
    assert loaded != alone and f"TPOT {a.plan.predicted.tpot_ms:,.2f} ms{loaded}," in predicted_summary(a)


def test_a_rate_below_ten_keeps_two_significant_digits():
    from optiplan.planner.numbers import rate

    assert rate(0.72) == "0.72" and rate(1.2) == "1.2" and rate(9.96) == "10" and rate(12_345.6) == "12,346"


def test_eager_transformers_time_per_token_carries_its_own_band_at_any_batch():
    """Our H200 runs validate eager transformers' TPOT at batch 1 and 16 in one band: a batch of 32 shows it, where the
    serving engines' loaded band (request latencies) does not exist for it."""
    from optiplan.planner.analytic.accuracy import band_text, decode_band
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.figures import predicted_summary
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", workload="chat", engine="transformers"))
    assert a.plan.predicted.batch > 1 and "request_latency_ms" not in a.accuracy
    assert decode_band(a.plan.predicted.batch, a.accuracy) == "tpot_ms"
    assert f"TPOT {a.plan.predicted.tpot_ms:,.2f} ms{band_text(a.accuracy, 'tpot_ms')}," in predicted_summary(a)


def test_a_band_of_one_sequence_runs_is_not_put_on_a_loaded_time_per_token():
    """llama.cpp on Apple GPUs is validated at batch 1 only: a batch of 32 shows its TPOT without a band."""
    from optiplan.planner.analytic.accuracy import band_text, decode_band
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.figures import predicted_summary
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="m2-ultra", workload="chat"))
    assert a.accuracy["tpot_ms"].category == "batch1-decode" and a.plan.predicted.batch > 1
    assert band_text(a.accuracy, decode_band(a.plan.predicted.batch, a.accuracy)) == ""
    assert decode_band(1, a.accuracy) == "tpot_ms" and band_text(a.accuracy, "tpot_ms").startswith(" (±")
    assert f"TPOT {a.plan.predicted.tpot_ms:,.2f} ms," in predicted_summary(a)


def test_rows_that_do_not_fit_show_their_speeds_as_if_they_did():
    """70B in bf16 on one H100 does not fit: the baseline's speeds are in parentheses, with the note saying why, in
    every format; where nothing fits at all the summary drops its speed bands and says what the plan is."""
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.advice import render
    from optiplan.planner.report.figures import plan_below, predicted_summary
    from optiplan.planner.schema import AdviseRequest

    from optiplan.planner.errors import ImpossibleError

    a = none = None
    try:  # infeasible advice is raised with its document: the report shown
        advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", workload="chat"))
    except ImpossibleError as exc:
        a = exc.document
    assert a is not None and not a.baseline.fits and a.plan.predicted.fits
    for fmt in ("text", "md", "html"):
        out = render(a, fmt)
        assert f"({a.baseline.tpot_ms:,.2f})" in out and "a row that does not fit, priced as if it did" in out, fmt
    assert plan_below(a) == "The plan below is the best that fits in memory"
    try:
        advise(AdviseRequest(model="llama-3.1-405b", hardware="rtx-4090", workload="chat"))
    except ImpossibleError as exc:
        none = exc.document
    assert not none.plan.predicted.fits and plan_below(none).startswith("Nothing fits: the plan below")
    summary = predicted_summary(none)
    assert summary.count("(±") == 1 and "GB per device (±" in summary  # the memory's band only


def test_a_first_token_that_waits_for_the_front_end_says_so():
    """The 1B for throughput on an H100: its fp8 row's first token came at 227 ms where the baseline's had come at 88,
    at the same 13,333 tokens/s, with nothing to say why: the faster device leaves more requests waiting for vLLM's
    API server. The rows now mark such a TTFT, a note says what the mark means, and the plan's line says how much of
    its TTFT is that wait; the plan that scales the API servers out waits for none."""
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.report.advice import render
    from optiplan.planner.report.figures import WAIT_NOTE, predicted_summary
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="llama-3.2-1b", hardware="h100-sxm", workload="chat", goal="throughput",
                             engine="vllm"))
    fp8 = next(s.predicted for s in a.plan.steps if s.technique == "weight-fp8")
    assert 0.5 * fp8.ttft_ms < fp8.front_end_wait_ms < fp8.ttft_ms
    assert 0 < a.baseline.front_end_wait_ms < fp8.front_end_wait_ms
    assert a.plan.steps[-1].technique == "api-server-scale-out" and a.plan.predicted.front_end_wait_ms == 0
    assert "front_end_wait_ms" not in a.plan.predicted.model_dump()  # left out of the JSON where there is none
    for fmt in ("md", "html", "text"):
        assert f"{fp8.ttft_ms:,.1f} †" in render(a, fmt), fmt
    assert WAIT_NOTE in render(a, "md") and WAIT_NOTE.replace("'", "&#39;") in render(a, "html")
    assert "waiting for the engine's front end" not in predicted_summary(a)
    one = advise(AdviseRequest(model="llama-3.2-1b", hardware="h100-sxm", workload="chat", goal="throughput",
                               engine="vllm", without=("api-server-scale-out",)))
    assert f", of which {one.plan.predicted.front_end_wait_ms:,.0f} ms waiting for the engine's front end (a " in \
        predicted_summary(one)
