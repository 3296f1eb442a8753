"""This machine, read without torch: the probe and the calibration file's place."""

from __future__ import annotations

import subprocess
import sys

from optiplan.planner.machine import calibration, probe


def test_the_probe_reads_this_machine_without_torch():
    code = ("import sys; from optiplan.planner.machine import probe; spec = probe.estimated_cpu(); "
            "assert spec.id == 'local' and spec.peak_tflops['fp32'] > 0 and spec.memory_bytes > 2**28; "
            "sys.exit('torch' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert probe.total_memory_bytes() > 2**28
    assert probe.proc_kib_bytes("/proc/self/status", "NoSuchField") is None
    assert probe.proc_kib_bytes("/nonexistent", "MemTotal") is None


def test_the_fingerprint_is_stable_and_the_file_lives_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIPLAN_CACHE", str(tmp_path))
    assert calibration.fingerprint() == calibration.fingerprint() and len(calibration.fingerprint()) == 16
    assert calibration.calibration_path().parent == tmp_path / "calibration"
    assert calibration.load_calibration() is None  # never calibrated here
    calibration.save_calibration({"calibration_version": "0"})
    assert calibration.load_calibration() is None  # another version is not used
    calibration.save_calibration({"calibration_version": calibration.CALIBRATION_VERSION, "x": 1})
    assert calibration.load_calibration()["x"] == 1
