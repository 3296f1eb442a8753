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
