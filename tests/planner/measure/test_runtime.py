"""Third-party libraries stay quiet unless asked: importing torchao prints a dozen lines of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torchao")

CODE = "from optiplan.planner.measure.runtime import quiet_libraries; quiet_libraries(); import torchao"


def _stderr(verbose: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPTIPLAN_VERBOSE"}
    if verbose:
        env["OPTIPLAN_VERBOSE"] = "1"
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stderr


def test_torchao_is_silent_by_default_and_heard_with_verbose():
    loud = _stderr(verbose=True)
    if not loud.strip():
        pytest.skip("this torchao prints nothing at import")
    assert _stderr(verbose=False).strip() == ""


def test_a_measurement_process_that_fails_says_how(monkeypatch):
    """A worker killed (the out-of-memory killer's signal 9), hung, silent, or followed by a library's line after its
    answer: each named, never a traceback of ours (an IndexError and a JSONDecodeError had reached users)."""
    import re
    import subprocess

    from optiplan.planner.measure import workers
    from optiplan.planner.measure.runtime import MeasureError

    def answers(stdout: str = "", stderr: str = "", code: int = 0, hang: bool = False):
        def run(args, **kwargs):
            if hang:
                raise subprocess.TimeoutExpired(args, kwargs["timeout"])
            return subprocess.CompletedProcess(args, code, stdout, stderr)
        monkeypatch.setattr(workers.subprocess, "run", run)

    answers('{"peak_memory_bytes": 5}\nsome library said goodbye\n')
    assert workers.run_worker("m", []) == {"peak_memory_bytes": 5}
    for kwargs, words in ((dict(stderr="loading weights\n", code=-9), "killed by signal 9 (out of memory?)"),
                          (dict(hang=True), "gave no answer in 1800 s"),
                          (dict(code=0), "ended without its answer"),
                          (dict(stderr="ValueError: bad\n", code=1), "failed: ValueError: bad")):
        answers(**kwargs)
        with pytest.raises(MeasureError, match=re.escape(words)):
            workers.run_worker("m", [])
    assert workers.pad_token(type("C", (), {"eos_token_id": [7, 8]})()) == 7
    assert workers.pad_token(type("C", (), {"eos_token_id": None})()) == 0
