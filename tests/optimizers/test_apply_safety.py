"""apply's safety around measurement: the baseline verify compares against, runtime steps timed interleaved, nothing
at the output path until verified, what a killed attempt leaves, and speed plans that need enough rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from optiplan.optimizers.apply import apply


def test_a_killed_apply_leaves_only_what_its_job_tag_names(target_path, tmp_path, monkeypatch, untimed_step_checks):
    """A service job's apply writes every temporary folder under its tag, so that the worker removes what a killed
    attempt left: the staging folder is written in place (a temporary sibling of it had carried a name the tag's
    pattern does not match). A kill runs no cleanup: rmtree is made a no-op here to leave what a kill would."""
    from optiplan.optimizers import apply as apply_module
    from optiplan.optimizers import artifact
    from optiplan.planner.fsutil import TAG_ENV
    from optiplan.planner.service.paths import partial_folders

    monkeypatch.setenv(TAG_ENV, "job1-1")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "sha256_files", killed)  # while the weights are being written
    monkeypatch.setattr(apply_module.shutil, "rmtree", lambda *args, **kwargs: None)
    out = tmp_path / "opt"
    with pytest.raises(KeyboardInterrupt):
        apply(target_path, out, techniques=["kv-fp8"], verify=False)
    left = sorted(tmp_path.iterdir())
    assert left and left == partial_folders(out, "job1-1")


def test_nothing_is_at_the_output_path_until_it_is_verified(target_path, tmp_path, monkeypatch, untimed_step_checks):
    """verify runs on a staged folder beside the output, renamed into place once verified (and rolled back where
    verify says so): a kill during verify (which no handler sees) left an unverified folder at the output path, its
    manifest saying 'applied' (a review's finding)."""
    from optiplan.optimizers import verify as verify_module

    out, seen = tmp_path / "opt", []
    real = verify_module.verify

    def watching(baseline, optimized, **kwargs):
        seen.append((out.exists(), Path(optimized).parent == tmp_path, (Path(optimized) / "optiplan.json").exists()))
        return real(baseline, optimized, **kwargs)

    monkeypatch.setattr(verify_module, "verify", watching)
    manifest = apply(target_path, out, techniques=["kv-fp8"], verify_options={
        "repeats": 1, "max_new_tokens": 2, "memory": False, "prompts": ["The for statement is"],
        "eval_text": _eval_text(tmp_path)})
    assert seen == [(False, True, True)]  # verified where it was staged, nothing at the output yet
    assert manifest.verify.optimized == str(out) and (out / "optiplan.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.txt", "opt"]


def test_a_speed_plan_is_refused_rounds_too_few_to_establish_its_gain(target_path, tmp_path):
    # below five rounds verify establishes no timing, so a speed plan would always be rolled back: said up front
    from optiplan.planner.errors import RequestError

    with pytest.raises(RequestError, match="needs --repeats 5 or more \\(got 2\\)"):
        apply(target_path, tmp_path / "o", goal="latency", verify_options={"repeats": 2})
    assert not (tmp_path / "o").exists()


def test_verify_runs_the_baseline_in_the_dtype_apply_worked_in(target_path, tmp_path, untimed_step_checks):
    """The test model is stored in bf16 and applied in fp32: verify had loaded the baseline as stored, so the fp32
    weights read as 2x larger and its speed as the techniques' (a review's finding). The baseline now takes the
    optimized model's working dtype; another --dtype is taken as asked, with a note that the dtype is in every
    difference."""
    from optiplan.optimizers.verify import verify

    out, text = tmp_path / "opt", _eval_text(tmp_path)
    apply(target_path, out, techniques=["kv-fp8"], dtype="fp32", verify=False)
    same = verify(target_path, out, repeats=1, max_new_tokens=2, memory=False, prompts=["The for statement is"],
                  eval_text=text)
    assert same.measured_ratios["weights_bytes"] == pytest.approx(1.0)
    assert not any("dtype's" in n for n in same.notes)
    other = verify(target_path, out, dtype="bf16", repeats=1, max_new_tokens=2, memory=False,
                   prompts=["The for statement is"], eval_text=text)
    assert other.measured_ratios["weights_bytes"] == pytest.approx(2.0, rel=0.01)
    assert any("baseline ran in bf16 and the optimized model in fp32" in n for n in other.notes)


def test_a_runtime_step_is_timed_interleaved_against_the_same_model_before_it(target_path, tmp_path, monkeypatch):
    """A step that changes only runtime settings (a cache) is timed back to back against the same model under the
    settings before it: it had been judged by two samples taken apart in time (a first token at 25x, a review's
    finding), the interleaved check kept for steps that copy the model."""
    import optiplan.optimizers.apply as apply_module

    calls = []
    real = apply_module.interleaved_step_ratios

    def recording(ws, saved, cache):
        calls.append((saved[0] is None, saved[1].cache, ws.runtime.cache))
        return real(ws, saved, cache)

    monkeypatch.setattr(apply_module, "interleaved_step_ratios", recording)
    manifest = apply(target_path, tmp_path / "opt", techniques=["kv-fp8"], dtype="fp32", verify=False)
    assert len(calls) == 1 and calls[0][0] and not calls[0][1] and calls[0][2]["kind"]
    assert manifest.steps[0].measured  # the interleaved ratios


def _eval_text(folder: Path) -> Path:
    """The held-out corpus's first 1,500 characters as an evaluation file: quality scored in seconds (what these tests
    check is not the quality figure)."""
    from optiplan.optimizers.corpus import default_eval_text

    path = folder / "eval.txt"
    path.write_text(default_eval_text()[:1500])
    return path


def test_verify_alternates_which_side_runs_first(target_path, tmp_path, monkeypatch):
    """A machine on which the second of two runs is always 10% slower: verify had run the baseline first in every
    round, so the same model against itself came out 10% slower "after", in every round alike (an established loss).
    Run before-after, then after-before, the drift lands on both sides and nothing is established."""
    from optiplan.optimizers import metrics
    from optiplan.optimizers.verify import verify
    from optiplan.planner.report.verify import established_ratios

    calls = {"n": 0}

    def drifting(loaded, prompts, **kw):
        calls["n"] += 1
        slow = 1.1 if calls["n"] % 2 == 0 else 1.0  # the second run of each pair
        return {"ttft_ms": [10.0 * slow], "tpot_ms": [5.0 * slow], "tokens_per_s": [200.0 / slow]}

    def batched(loaded, prompts, **kw):
        calls["n"] += 1
        return [] if kw.get("repeats") == 0 else [100.0 / (1.1 if calls["n"] % 2 == 0 else 1.0)]

    monkeypatch.setattr(metrics, "generation_samples", drifting)
    monkeypatch.setattr(metrics, "batched_tokens_per_s", batched)
    report = verify(target_path, target_path, repeats=7, max_new_tokens=2, memory=False,
                    prompts=["The for statement is"], eval_text=_eval_text(tmp_path))
    ratios = established_ratios(report)
    assert all(ratios[k] == 1.0 for k in ("ttft_ms", "tpot_ms", "tokens_per_s", "batched_tokens_per_s")), ratios


def test_no_model_of_apply_stays_alive_while_verify_loads_its_two(target_path, tmp_path, monkeypatch,
                                                                   untimed_step_checks):
    """verify loads the baseline and the optimized model: apply's own (the workspace's, and the copy of the model
    before the last step, kept to roll it back) had stayed alive beside them, three models in memory where two fit."""
    import gc

    import torch
    from optiplan.optimizers import verify as verify_module

    def models() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.nn.Module) and hasattr(o, "generate"))

    before, during = models(), []

    def counting(*args, **kwargs):
        during.append(models())
        raise KeyboardInterrupt  # what verify would measure does not matter here

    monkeypatch.setattr(verify_module, "verify", counting)
    with pytest.raises(KeyboardInterrupt):
        apply(target_path, tmp_path / "opt", techniques=["weight-int8"], verify=True)
    assert during == [before]
