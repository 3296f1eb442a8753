"""The CLI's one error boundary: bad input is one sentence and exit 2 (3 when nothing meets the workload), a bug
is one line with exit 70, never a traceback without --debug; numeric options of any value never crash; an
infeasible workload still gets its document."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from optiplan.planner.cli.main import main

SETTINGS = settings(max_examples=60, deadline=None)


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_an_unexpected_exception_is_one_line_with_exit_70(monkeypatch):
    from optiplan.planner.analytic import profile as module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(module, "profile", broken)
    result = invoke("profile", "llama-3.1-8b")
    assert result.exit_code == 70
    assert result.stderr.strip() == ("error: internal error (ZeroDivisionError: division by zero); rerun with --debug "
                                     "and report it")
    assert "Traceback" not in result.output
    debug = invoke("profile", "llama-3.1-8b", "--debug")
    assert isinstance(debug.exception, ZeroDivisionError)


INTS = st.one_of(st.integers(-3, 3), st.integers(-10**20, 10**20), st.sampled_from([1, 2, 4, 8, 4096, 131072]))


@SETTINGS
@given(batch=INTS, context=INTS, gpus=INTS, pp=INTS, group=INTS, prompt=INTS)
def test_profile_numeric_options_never_crash(batch, context, gpus, pp, group, prompt):
    result = invoke("profile", "llama-3.1-8b", "--batch", str(batch), "--context", str(context), "--gpus", str(gpus),
                    "--pp", str(pp), "--group-size", str(group), "--prompt", str(prompt), "--json")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if result.exit_code == 0:
        doc = json.loads(result.stdout)
        json.dumps(doc, allow_nan=False)
        assert doc["memory"]["per_device_bytes"] > 0 and doc["latency"]["tpot_ms"] > 0


@SETTINGS
@given(concurrency=INTS, context=INTS, gpus=INTS,
       quality=st.one_of(st.sampled_from(["1%", "lossless", "0", "150%", "-1", "nan", "inf", "abc", "1e999"]),
                         st.text(max_size=6)))
def test_advise_numeric_options_never_crash(concurrency, context, gpus, quality):
    result = invoke("advise", "llama-3.1-8b", "-H", "l4", "--concurrency", str(concurrency), "--context",
                    str(context), "--gpus", str(gpus), "--max-quality-loss", quality, "--format", "json")
    assert result.exit_code in (0, 2, 3), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if result.exit_code in (0, 3) and result.stdout.strip():
        json.dumps(json.loads(result.stdout), allow_nan=False)


def test_infeasible_advice_still_answers_in_every_format():
    result = invoke("advise", "qwen3-30b-a3b", "-H", "l4", "--format", "json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["feasible"] is False and doc["plan"]["predicted"]["fits"]
    assert any("TPOT" in v and "ms >" in v for v in doc["plan"]["predicted"]["slo_violations"])
    # the nearest change that meets the SLOs: more GPUs, or int4 (Marlin on vLLM) under a looser quality budget
    assert doc["nearest_feasible"] and ("--gpus" in doc["nearest_feasible"]
                                        or "--max-quality-loss" in doc["nearest_feasible"])
    assert "nearest feasible" in result.stderr
    for fmt in ("md", "html", "text"):
        shown = invoke("advise", "qwen3-30b-a3b", "-H", "l4", "--format", fmt)
        assert shown.exit_code == 3 and "Not feasible" in shown.output, fmt
    nothing = json.loads(invoke("advise", "llama-3.1-405b", "-H", "l4", "--format", "json").stdout)
    assert nothing["feasible"] is False and not nothing["plan"]["predicted"]["fits"]


def test_training_goal_brings_the_fine_tune_workload():
    doc = json.loads(invoke("advise", "llama-3.2-1b", "-H", "a100-80gb-sxm", "--goal", "training",
                            "--format", "json").stdout)
    assert doc["workload"]["name"] == "fine-tune" and doc["workload"]["training"] is not None


@pytest.mark.parametrize("text", ["weight-int4:engine=triton", "weight-int4:kernel=cutlass",
                                  "kv-int4:residual_length=-3", "kv-int4:group_size=7",
                                  "weight-int8:keep_lm_head=yes", "sliding-window-sinks:window=abc"])
def test_technique_parameters_are_checked_against_the_declaration(text):
    from optiplan.optimizers.apply import parse_technique
    from optiplan.optimizers.registry import registry
    from optiplan.planner.errors import RequestError

    step = parse_technique(text)
    with pytest.raises(RequestError) as err:
        registry()[step.technique].declared.check_options(step.technique, step.params)
    if "engine" in text:  # an unknown name: the error lists the valid ones
        assert "no parameter 'engine'" in str(err.value) and "kernel" in str(err.value)
    if "cutlass" in text:
        assert "kernel must be one of" in str(err.value)


@SETTINGS
@given(text=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_:=,0123456789.\"' ", max_size=40))
def test_any_technique_string_is_accepted_or_refused_in_one_sentence(text):
    from optiplan.optimizers.apply import parse_technique
    from optiplan.optimizers.registry import registry
    from optiplan.planner.errors import OptiplanError

    try:
        step = parse_technique(text)
        if step.technique in registry():
            registry()[step.technique].declared.check_options(step.technique, step.params)
    except OptiplanError as exc:
        assert str(exc) and "\n" not in str(exc)


def _hint_options(text: str) -> list[str]:
    """The command-line options a 'nearest feasible' hint names: `(--gpus 2)` or `--context 1024`."""
    import re
    import shlex

    inner = re.findall(r"\((--[^)]*)\)", text) or re.findall(r"(--[a-z-]+ \S+)", text)
    return [arg for part in inner for arg in shlex.split(part)]


@pytest.mark.parametrize("request_args", [
    dict(model="llama-3.1-405b", hardware="l4"),                       # nothing fits: another device
    dict(model="qwen3-30b-a3b", hardware="l4"),                        # an SLO missed: more devices
    dict(model="llama-3.1-70b", hardware="h100-sxm", max_quality_loss_pct=0.0, workload="chat"),
    dict(model="gpt2", hardware="h100-sxm", workload="rag-long-context", max_context=131072),  # context
])
def test_every_nearest_feasible_hint_is_a_valid_command_line(request_args):
    from optiplan.planner.errors import ImpossibleError
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    try:
        advise(AdviseRequest(**request_args))
    except ImpossibleError as exc:
        hint = str(exc).split("nearest feasible:", 1)[1]
    else:
        pytest.skip("feasible now: no hint to check")
    options = _hint_options(hint)
    if not options:
        assert "relax" in hint or "a model with a longer context" in hint or "a smaller model of its family" in hint
        return
    for command in ("advise", "apply"):
        cmd = main.commands[command]
        base = ["x", "-o", "y"] if command == "apply" else ["x"]
        if command == "apply" and not set(options) & {"--context", "--max-quality-loss"}:
            continue  # apply plans for this machine: device options are advise's
        cmd.make_context(command, [*base, *options])  # raises click.UsageError on an unknown option or value
