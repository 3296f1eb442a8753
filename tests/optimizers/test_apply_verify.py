"""`apply` writes an artifact all or nothing, rolls back steps without gain on request, refuses bad input with
one clear sentence; `verify` measures both models and reports in every format."""

from __future__ import annotations

import json
import shutil

import pytest
from optiplan.optimizers.apply import PlanError, apply, gain_shown, parse_technique
from optiplan.optimizers.artifact import MANIFEST, ArtifactError, load, verify_checksums
from optiplan.optimizers.workspace import NotSupportedHere


def test_apply_writes_a_complete_artifact_that_loads_both_ways(target_path, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "opt"
    manifest = apply(target_path, out, techniques=["weight-int8", "kv-fp8"], verify=False)
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", MANIFEST} <= names
    assert [s.technique for s in manifest.steps] == ["weight-int8", "kv-fp8"]
    assert all(s.status == "applied" and s.measured for s in manifest.steps)
    assert manifest.libraries["transformers"] and manifest.libraries["torchao"]
    assert verify_checksums(out) == []
    loaded = load(out, "cpu")
    assert loaded.runtime.cache == {"kind": "quantized", "backend": "fp8"}
    assert loaded.generate_text("The for statement", 4)
    plain = AutoModelForCausalLM.from_pretrained(out)  # the generation config carries the cache setting
    assert plain.generation_config.cache_implementation == "quantized"
    (out / "config.json").write_text((out / "config.json").read_text() + " ")
    assert verify_checksums(out) == ["config.json"]


def test_steps_named_by_hand_are_predicted_beside_measured(target_path, tmp_path):
    """-t steps get the planner's prediction for this machine too, each over the step before it (weights and cache
    bytes are exact here: int8 about 0.56x of the bf16 weights, a 4-bit cache 0.28x of the 16-bit one)."""
    manifest = apply(target_path, tmp_path / "opt", techniques=["kv-int4", "weight-int8"], verify=False)
    steps = {s.technique: s for s in manifest.steps}
    assert steps["weight-int8"].predicted["weights_bytes"] == pytest.approx(steps["weight-int8"].measured[
        "weights_bytes"], rel=0.1)
    assert steps["kv-int4"].predicted["cache_bytes"] == pytest.approx(steps["kv-int4"].measured["cache_bytes"],
                                                                      rel=0.1)


def test_an_existing_folder_is_replaced_only_with_force(target_path, tmp_path):
    out = tmp_path / "opt"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="--force"):
        apply(target_path, out, techniques=["kv-fp8"], verify=False)
    assert (out / "keep.txt").read_text() == "mine"
    apply(target_path, out, techniques=["kv-fp8"], verify=False, force=True)
    assert not (out / "keep.txt").exists() and (out / MANIFEST).is_file()


def test_an_interrupted_apply_leaves_nothing_behind(target_path, tmp_path, monkeypatch):
    from optiplan.optimizers import artifact

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "sha256_files", interrupted)  # after the weights are written
    with pytest.raises(KeyboardInterrupt):
        apply(target_path, tmp_path / "opt", techniques=["kv-fp8"], verify=False)
    assert list(tmp_path.iterdir()) == []


def test_a_forced_replacement_keeps_the_old_folder_until_the_new_one_is_verified(target_path, tmp_path, monkeypatch):
    """--force replaces a folder only once its successor is written and verified: a short evaluation text is refused
    before any step runs, and a verify that fails (an error, an interrupt) puts the old folder back."""
    from optiplan.optimizers import verify as verify_module
    from optiplan.planner.errors import OptiplanError

    out = tmp_path / "opt"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    short = tmp_path / "short.txt"
    short.write_text("too few words")
    with pytest.raises(OptiplanError, match="too short"):
        apply(target_path, out, techniques=["kv-fp8"], force=True, verify_options={"eval_text": short})
    assert (out / "keep.txt").read_text() == "mine"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        apply(target_path, out, techniques=["kv-fp8"], force=True)
    assert (out / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["opt",
                                                                                                        "short.txt"]


def test_a_step_without_its_gain_is_rolled_back_on_request(target_path, tmp_path):
    # a window longer than the measured context evicts nothing: no cache saved, so no gain to keep
    manifest = apply(target_path, tmp_path / "opt", techniques=["sliding-window-sinks:window=2048", "weight-int8"],
                     drop_unprofitable=True, verify=False)
    status = {s.technique: (s.status, s.gain_shown) for s in manifest.steps}
    assert status == {"weight-int8": ("applied", True), "sliding-window-sinks": ("rolled-back", False)}
    assert not manifest.runtime.cache  # the sinks cache went with its step


def test_gain_shown_needs_more_than_noise():
    step = parse_technique("weight-int8")
    assert gain_shown(step, {"weights_bytes": 100}, {"weights_bytes": 30})[0]
    assert not gain_shown(step, {"weights_bytes": 100}, {"weights_bytes": 99})[0]
    assert gain_shown(parse_technique("paged-kv"), {"batched_tokens_per_s": 10}, {"batched_tokens_per_s": 20})[0]


def test_technique_options_parse():
    step = parse_technique("sliding-window-sinks:window=256,num_sinks=4")
    assert step.technique == "sliding-window-sinks" and step.params == {"window": 256, "num_sinks": 4}
    with pytest.raises(PlanError, match="key=value"):
        parse_technique("kv-int4:residual")


def test_a_plan_for_another_deployment_says_so(target_path, tmp_path):
    import optiplan

    plan = tmp_path / "plan.json"
    plan.write_text(optiplan.advise(str(target_path), hardware="h100-sxm", num_devices=1, engine="vllm",
                                    workload="chat").model_dump_json())
    lines = []
    apply(target_path, tmp_path / "opt", plan=plan, verify=False, log=lines.append)
    assert any("the plan was made for vllm on 1 x h100-sxm" in line and "not of this machine" in line
               for line in lines)


def test_a_plan_file_names_no_folder_apply_reads(target_path, tmp_path):
    # a draft's folder is --draft's to give: one written into a plan's step parameters is dropped, not loaded
    import json

    import optiplan
    from optiplan.optimizers.apply import steps_from_plan

    advice = json.loads(optiplan.advise(str(target_path), hardware="h100-sxm", engine="vllm",
                                        workload="chat").model_dump_json())
    assert advice["plan"]["steps"]
    advice["plan"]["steps"][0]["params"]["draft"] = "/etc"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(advice))
    steps, _ = steps_from_plan(plan, target_path)
    assert steps[0].technique == advice["plan"]["steps"][0]["technique"]
    assert all("draft" not in s.params for s in steps)


def test_a_plan_made_for_another_model_is_refused(target_path, tmp_path):
    import optiplan

    plan = tmp_path / "plan.json"
    plan.write_text(optiplan.advise("llama-3.1-8b", hardware="l4", workload="chat").model_dump_json())
    with pytest.raises(PlanError, match="made for"):
        apply(target_path, tmp_path / "opt", plan=plan, verify=False)
    plan.write_text("{not json")
    with pytest.raises(PlanError, match="not a plan"):
        apply(target_path, tmp_path / "opt", plan=plan, verify=False)


def test_a_plan_for_this_model_applies_what_runs_here(target_path, tmp_path):
    import optiplan

    plan, workload = tmp_path / "plan.json", tmp_path / "short.yaml"
    workload.write_text("name: short\nprompt_tokens_mean: 256\nprompt_tokens_p95: 512\noutput_tokens_mean: 128\n"
                        "output_tokens_p95: 256\nconcurrency: 4\nmax_quality_loss_pct: 2.0\n")
    advice = optiplan.advise(str(target_path), hardware="local", num_devices=1, goal="memory", engine="transformers",
                             workload=str(workload))
    plan.write_text(advice.model_dump_json())
    lines = []
    manifest = apply(target_path, tmp_path / "opt", plan=plan, verify=False, log=lines.append)
    assert not any("the plan was made for" in line for line in lines)  # made for this machine and engine
    planned = [s.technique for s in advice.plan.steps]
    assert sorted(s.technique for s in manifest.steps) == sorted(planned)
    assert manifest.plan["model"]["num_layers"] == 8
    # every step that runs here was applied and measured (kept, or rolled back with the measurement that said so)
    ran = [s for s in manifest.steps if s.status in ("applied", "rolled-back")]
    assert ran and all(s.predicted and s.measured for s in ran)
    assert all("rolled back" in s.detail for s in ran if s.status == "rolled-back")


def test_a_technique_this_device_cannot_run_is_refused(target_path, tmp_path):
    with pytest.raises(NotSupportedHere, match="cuda"):
        apply(target_path, tmp_path / "opt", techniques=["weight-nf4"], verify=False)
    assert not (tmp_path / "opt").exists()


def test_an_unknown_technique_name_is_an_error_not_a_skip(target_path, tmp_path):
    with pytest.raises(NotSupportedHere, match="it can apply: .*weight-int8"):
        apply(target_path, tmp_path / "opt", techniques=["weight-int9"], verify=False)


def test_missing_draft_and_missing_choice_are_clear(target_path, tmp_path):
    with pytest.raises(PlanError, match="--draft"):
        apply(target_path, tmp_path / "opt", techniques=["spec-draft"], verify=False)
    with pytest.raises(PlanError, match="one of --goal, --plan or --technique"):
        apply(target_path, tmp_path / "opt", verify=False)


@pytest.mark.parametrize("techniques, message", [
    (["weight-int8", "weight-int4"], "both in the weight-format group"),
    (["kv-int8", "paged-kv"], "one KV cache per generation"),
    (["sliding-window-sinks", "kv-int8"], "one KV cache per generation"),
])
def test_steps_that_cannot_stand_together_are_refused_before_any_runs(target_path, tmp_path, techniques, message):
    with pytest.raises(PlanError, match=message):
        apply(target_path, tmp_path / "opt", techniques=techniques, verify=False)
    assert not (tmp_path / "opt").exists()


def test_a_model_is_applied_and_compared_as_it_is_stored(target_path, tmp_path):
    """The test model is stored in bf16: apply works on it in bf16 (an unchanged folder is not doubled to fp32), and
    verify's baseline is the same bf16 model."""
    from optiplan.optimizers.artifact import stored_dtype

    assert stored_dtype(target_path) == "bf16" and stored_dtype(tmp_path) == "fp32"  # no config: transformers' default
    out = tmp_path / "opt"
    manifest = apply(target_path, out, techniques=["kv-fp8"], verify=False)
    assert manifest.runtime.dtype == "bf16" and json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    size = (target_path / "model.safetensors").stat().st_size
    assert (out / "model.safetensors").stat().st_size == pytest.approx(size, rel=0.01)
    assert load(target_path, "cpu").runtime.dtype == "bf16" and load(target_path, "cpu", dtype="fp32").runtime.dtype \
        == "fp32"


def test_zero_repeats_are_refused_and_a_failed_verify_leaves_no_folder(target_path, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from optiplan.optimizers import verify as verify_module
    from optiplan.planner.cli.main import main
    from optiplan.planner.errors import RequestError

    for args in (["apply", str(target_path), "-o", str(tmp_path / "o"), "-t", "kv-fp8", "--repeats", "0"],
                 ["verify", str(target_path), str(target_path), "--repeats", "0"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "--repeats" in result.output
    with pytest.raises(RequestError, match="at least one repeat"):
        verify_module.verify(target_path, target_path, repeats=0)

    def broken(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(verify_module, "verify", broken)
    with pytest.raises(RuntimeError):
        apply(target_path, tmp_path / "opt", techniques=["kv-fp8"])
    assert not (tmp_path / "opt").exists()


def test_errors_name_the_real_cause(target_path, tmp_path):
    import torch
    from optiplan.planner.errors import RequestError

    with pytest.raises(PlanError, match=r"\(got --goal and --technique\)"):
        apply(target_path, tmp_path / "o", goal="latency", techniques=["weight-int8"], verify=False)
    with pytest.raises(NotSupportedHere, match="unknown technique 'no-such-tech'"):
        apply(target_path, tmp_path / "o", techniques=["no-such-tech"], verify=False)
    if not torch.cuda.is_available():
        with pytest.raises(RequestError, match="no CUDA device"):
            apply(target_path, tmp_path / "o", techniques=["weight-int8"], device="cuda", verify=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load(bad, "cpu")
    assert not (tmp_path / "o").exists()


def test_pickle_weights_need_a_flag(target_path, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(target_path / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ArtifactError, match="--allow-pickle"):
        load(folder, "cpu")


def test_unreadable_eval_text_fails_before_loading(target_path, tmp_path):
    from optiplan.optimizers.metrics import MetricsError
    from optiplan.optimizers.verify import verify

    with pytest.raises(MetricsError, match="cannot read"):
        verify(target_path, target_path, eval_text=tmp_path / "missing.txt")
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(MetricsError, match="too short"):
        verify(target_path, target_path, eval_text=tmp_path / "short.txt")


def test_verify_cli_reports_before_and_after_in_every_format(target_path, tmp_path, untimed_step_checks):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main
    from optiplan.planner.report.verify import render
    from optiplan.planner.schema.optimize import VerifyReport

    out = tmp_path / "opt"
    apply(target_path, out, techniques=["weight-int8"], verify=False)
    result = CliRunner().invoke(main, ["verify", str(target_path), str(out), "--repeats", "2", "--max-new-tokens", "4",
                                       "--no-memory", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for side in ("before", "after"):
        for key in ("ttft_ms", "tpot_ms", "tokens_per_s", "peak_memory_bytes", "weights_bytes", "perplexity"):
            assert key in data["measured"][side]
        assert len(data["measured"][side]["samples"]["tpot_ms"]) == 2  # one per repeat (median over prompts)
    # both as stored (bf16): int8 weights with their scales, about half
    assert data["measured"]["after"]["weights_bytes"] < 0.6 * data["measured"]["before"]["weights_bytes"]
    assert data["quality"]["next_token_agreement"] > 0.9
    assert any("with 2 repeats no timing change can be told from noise" in n for n in data["notes"])
    report = VerifyReport.model_validate(data)
    assert "| weights (MB) |" in render(report, "md")
    # the one step named by hand carries the planner's prediction: it fills the table's predicted column
    step = report.steps[0]
    assert report.predicted_ratios["weights_bytes"] == pytest.approx(step.predicted["weights_bytes"])
    assert report.predicted_ratios["tpot_ms"] == pytest.approx(step.predicted["tpot_ms"])
    assert any(n.startswith("the predicted column is the planner's for the workload preset") for n in report.notes)
    html = render(report, "html")
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "time per output token" in render(report, "text")


def test_apply_cli_refuses_bad_input_with_one_line(target_path, tmp_path):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    result = CliRunner().invoke(main, ["apply", str(target_path), "-o", str(tmp_path / "o"), "-t", "weight-nf4"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: weight-nf4 needs cuda") and "Traceback" not in result.output


def _verify_says(monkeypatch, ratios: dict[str, float], perplexity_change_pct: float = 0.0) -> None:
    """apply's verify answers with these ratios (speed unchanged) and this perplexity change, and the steps' quick
    speed checks are left out (timing on a shared machine; the tests take `untimed_step_checks`): the weights and cache
    gains of a memory plan show deterministically, so its steps are applied, and verify's verdict alone decides what
    ships."""
    from optiplan.optimizers import apply as apply_module
    from optiplan.optimizers import verify as verify_module
    from optiplan.planner.schema.optimize import Measured, Quality, VerifyReport

    def answer(baseline, optimized, **kwargs):
        m = Measured(ttft_ms=1, tpot_ms=1, tokens_per_s=1, weights_bytes=1, perplexity=1)
        return VerifyReport(baseline=str(baseline), optimized=str(optimized), device="cpu", workload={},
                            measured={"before": m, "after": m},
                            quality=Quality(kl_divergence=0, next_token_agreement=1, generation_agreement=1,
                                            perplexity_change_pct=perplexity_change_pct),
                            measured_ratios={"tpot_ms": 1.0, "batched_tokens_per_s": 1.0, **ratios})

    monkeypatch.setattr(verify_module, "verify", answer)
    monkeypatch.setattr(apply_module, "QUICK_TPOT_CEILING", float("inf"))
    monkeypatch.setattr(apply_module, "QUICK_BATCHED_FLOOR", 0.0)
    monkeypatch.setattr(apply_module, "QUICK_NOISE", float("inf"))


def test_a_plan_that_verifies_as_a_loss_ships_the_original(target_path, tmp_path, monkeypatch, untimed_step_checks):
    """apply --goal never ships a loss: when the interleaved verify finds the goal's figure worse, the folder holds
    the original model and every step says it was rolled back."""
    _verify_says(monkeypatch, {"weights_bytes": 1.2})
    manifest = apply(target_path, tmp_path / "opt", goal="memory", concurrency=4)
    assert manifest.steps and all(s.status in ("rolled-back", "skipped") for s in manifest.steps)
    assert any("rolled back with the whole plan: verify measured weights_bytes 1.20x" in s.detail
               for s in manifest.steps)
    assert manifest.runtime.cache is None and manifest.runtime.speculative is None
    reloaded = load(tmp_path / "opt", "cpu")
    assert type(reloaded.model.model.layers[0].mlp.up_proj.weight).__name__ in ("Parameter", "Tensor")
    assert "rolled back" in manifest.verify.notes[-1]
    # the report says the same as the manifest: its steps rolled back, no prediction for a folder that holds none
    assert [s.status for s in manifest.verify.steps] == [s.status for s in manifest.steps]
    assert manifest.verify.predicted is None and not manifest.verify.predicted_ratios


def test_losses_judge_quick_figures_only_beyond_their_noise():
    from optiplan.optimizers.apply import losses

    assert losses("latency", {"tpot_ms": 1.06}) and not losses("latency", {"tpot_ms": 1.06}, quick=True)
    assert losses("latency", {"tpot_ms": 1.2}, quick=True) == ["tpot_ms 1.20x, against the latency goal"]
    assert losses("memory", {"weights_bytes": 0.3, "batched_tokens_per_s": 0.7}) == ["batched tokens/s 0.70x"]
    assert not losses("memory", {"weights_bytes": 0.3, "batched_tokens_per_s": 0.7}, quick=True)
    assert losses("memory", {"batched_tokens_per_s": 0.17}, quick=True) == ["batched tokens/s 0.17x"]
    assert losses("throughput", {"batched_tokens_per_s": 0.5, "tpot_ms": 1.3}) == \
        ["batched_tokens_per_s 0.50x, against the throughput goal"]
    assert losses(None, {"tpot_ms": 3.0}, quick=True) == ["time per token 3.00x"]
    # a speed goal ships only the gain verify established (a review's finding: a latency plan that verify measured
    # no faster had shipped with its quantization's quality cost)
    assert losses("latency", {"tpot_ms": 1.0}) == ["no tpot_ms gain verify could establish for the latency goal"]
    assert losses("latency", {"tpot_ms": 0.8}) == [] and losses("latency", {"tpot_ms": 1.0}, quick=True) == []
    assert losses("throughput", {"batched_tokens_per_s": 1.5}) == []


def test_a_16_bit_model_on_a_cpu_without_bf16_says_fp32_runs_faster(monkeypatch):
    from optiplan.optimizers.runtime import dtype_hint
    from optiplan.planner.machine import probe

    monkeypatch.setattr(probe, "cpu_has_bf16", lambda: False)
    assert "--dtype fp32 runs faster" in dtype_hint("bf16", "cpu")
    assert dtype_hint("fp32", "cpu") == "" and dtype_hint("bf16", "cuda") == ""
    monkeypatch.setattr(probe, "cpu_has_bf16", lambda: True)
    assert dtype_hint("bf16", "cpu") == ""


def test_a_step_is_timed_against_a_copy_of_the_model_before_it_interleaved(target_path, tmp_path, monkeypatch):
    # two timings apart in time once showed int8 as 0.95x time per token where verify measured 1.31x: a model small
    # enough to hold twice is timed against its copy from before the step, back to back in alternating order
    from optiplan.optimizers import apply as apply_module

    calls = []

    def interleaved(ws, saved, cache):
        calls.append(saved[0] is not None and saved[0] is not ws.model)
        return {"tpot_ms": 1.31, "ttft_ms": 1.22, "weights_bytes": 0.54}

    monkeypatch.setattr(apply_module, "interleaved_step_ratios", interleaved)
    manifest = apply(target_path, tmp_path / "opt", techniques=["weight-int8", "kv-fp8"], verify=False)
    # the weight step against its own copy; the cache step, which changes no weights, against the same model under
    # the settings before it (no copy)
    assert calls == [True, False]
    steps = {s.technique: s for s in manifest.steps}
    assert steps["weight-int8"].measured == {"tpot_ms": 1.31, "ttft_ms": 1.22, "weights_bytes": 0.54}
    assert "tpot_ms" in steps["kv-fp8"].measured


def test_a_memory_plan_ships_only_what_verify_measures_saved(target_path, tmp_path, untimed_step_checks):
    """verify measures the cache one sequence holds at a 384-token context, so a cache step's saving is on record; a
    memory plan that saved nothing verify measures has only its costs left and is not shipped."""
    from optiplan.optimizers.apply import losses
    from optiplan.optimizers.verify import verify

    apply(target_path, tmp_path / "kv", techniques=["kv-int4"], verify=False)
    report = verify(target_path, tmp_path / "kv", repeats=2, memory=False, max_new_tokens=8,
                    prompts=["The for statement", "A list comprehension"], eval_text=_short_text(tmp_path, 1200))
    assert report.measured_ratios["cache_bytes"] < 0.5 and report.measured["after"].cache_bytes
    assert losses("memory", {"weights_bytes": 1.0, "cache_bytes": 0.28, "tpot_ms": 1.2}) == []
    assert losses("memory", {"weights_bytes": 1.0, "cache_bytes": 1.0, "tpot_ms": 1.2}) == [
        "no memory saved in weights, cache or peak memory"]


def test_quality_reads_the_text_through_the_optimized_cache(target_path, tmp_path, untimed_step_checks):
    """A cache technique changes what attention reads only as the text runs through the cache: verify scores it a
    token at a time through it, over a window that reaches past its kept span (a sink cache of 4 + 8 tokens had read
    +0.00% perplexity and 100% next-token agreement, scored in one pass without it)."""
    from optiplan.optimizers.verify import verify

    apply(target_path, tmp_path / "sinks", techniques=["sliding-window-sinks:window=8,num_sinks=4"], verify=False)
    report = verify(target_path, tmp_path / "sinks", repeats=1, memory=False, max_new_tokens=8,
                    prompts=["The for statement"], eval_text=_short_text(tmp_path, 1600))
    assert report.quality.perplexity_change_pct > 5 and report.quality.kl_divergence > 0.05
    assert report.quality.next_token_agreement < 0.9


def _short_text(folder, chars: int):
    """The held-out corpus's first `chars` characters as an evaluation file: a few windows, scored a token at a time
    through a cache in seconds."""
    from optiplan.optimizers.corpus import default_eval_text

    path = folder / "eval.txt"
    path.write_text(default_eval_text()[:chars])
    return path


def test_a_plan_past_its_quality_budget_ships_the_original(target_path, tmp_path, monkeypatch,
                                                          untimed_step_checks):
    """A plan is made within its workload's quality budget; where verify measures more perplexity lost than that (a
    cache technique scored through its cache), the folder holds the original model."""
    _verify_says(monkeypatch, {"weights_bytes": 0.5}, perplexity_change_pct=14.0)
    manifest = apply(target_path, tmp_path / "opt", goal="memory", concurrency=4, max_quality_loss_pct=1.0)
    assert manifest.steps and all(s.status in ("rolled-back", "skipped") for s in manifest.steps)
    assert any("perplexity +14.00%, over the plan's 1% quality budget" in s.detail for s in manifest.steps)


def test_a_planned_step_that_cannot_run_on_this_model_is_skipped(target_path, tmp_path, monkeypatch,
                                                                 untimed_step_checks):
    """A step the planner chose that finds, once applied, that it cannot run on this model (int8 weights on a model
    whose experts are fused tensors) is rolled back and skipped with its reason; the rest of the plan goes on. Named
    with -t, the same refusal is an error."""
    from optiplan.optimizers import quantize
    from optiplan.optimizers.workspace import NotSupportedHere

    def refused(ws, params):
        ws.model.model.layers[0].mlp.up_proj.weight.data.zero_()  # half done when it finds out
        raise NotSupportedHere("not on this model")
    monkeypatch.setattr(quantize, "int8_weight_only", refused)
    manifest = apply(target_path, tmp_path / "opt", goal="memory", concurrency=4, verify=False)
    step = next(s for s in manifest.steps if s.technique == "weight-int8")
    assert step.status == "skipped" and step.detail == "not on this model"
    assert load(tmp_path / "opt", "cpu").model.model.layers[0].mlp.up_proj.weight.abs().sum() > 0  # rolled back
    with pytest.raises(NotSupportedHere, match="not on this model"):
        apply(target_path, tmp_path / "named", techniques=["weight-int8"], verify=False)


def test_verify_pairs_its_rounds_so_a_second_runs_penalty_cancels(target_path, tmp_path, monkeypatch,
                                                                  untimed_step_checks):
    """Whichever model runs second in a round is 10% slower here, the two otherwise alike: five ABBA rounds put "after"
    second three times, and the ratio of the two sides' medians read 1.10x; verify's ratios are of the rounds' pairs,
    the two orders weighed alike (`crossover_ratio`), and read 1.00x."""
    from optiplan.optimizers import metrics
    from optiplan.optimizers.verify import verify

    # a step with no cache of its own: quality is scored in one pass (a cache's token by token is a test of its own)
    apply(target_path, tmp_path / "kv", techniques=["weight-int8"], verify=False)
    calls = {"single": 0, "batched": 0}

    def slower_second(kind: str) -> float:
        n = calls[kind]
        calls[kind] += 1
        return 1.1 if n >= 2 and (n - 2) % 2 else 1.0  # after the two warm-ups: the second of each pair

    def generation_samples(loaded, prompts, **kwargs):
        f = slower_second("single")
        return {"ttft_ms": [10.0 * f], "tpot_ms": [10.0 * f], "tokens_per_s": [100.0 / f]}

    def batched_tokens_per_s(loaded, prompts, repeats=3, **kwargs):
        return [200.0 / slower_second("batched")] if repeats else [slower_second("batched")]

    monkeypatch.setattr(metrics, "generation_samples", generation_samples)
    monkeypatch.setattr(metrics, "batched_tokens_per_s", batched_tokens_per_s)
    report = verify(target_path, tmp_path / "kv", repeats=5, memory=False, max_new_tokens=4,
                    prompts=["The for statement"], eval_text=_short_text(tmp_path, 1200))
    before, after = report.measured["before"], report.measured["after"]
    assert after.tpot_ms / before.tpot_ms == pytest.approx(1.1)  # the medians lean to the order run more often
    for key in ("tpot_ms", "ttft_ms", "tokens_per_s", "batched_tokens_per_s"):
        assert report.measured_ratios[key] == pytest.approx(1.0), key
