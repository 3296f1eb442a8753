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
    whole = {"calibration_version": calibration.CALIBRATION_VERSION, "machine": {"device": "cpu"},
             "peak_tflops": {"fp32": 1.0}, "bandwidth_bytes_per_s": 1e10, "runtime_overhead_bytes": 0, "runtimes": {},
             "measured_at": "2026-12-06T00:00:00+00:00"}
    calibration.save_calibration(whole)
    assert calibration.load_calibration() == whole


def test_a_calibration_file_that_cannot_be_used_is_ignored_with_a_warning(tmp_path, monkeypatch, capsys):
    """A file edited by hand, cut short or written by hand without what the readers take had given an internal
    error in every `--hardware local` command (a KeyError, an AttributeError, a UnicodeDecodeError)."""
    monkeypatch.setenv("OPTIPLAN_CACHE", str(tmp_path))
    path = calibration.calibration_path()
    path.parent.mkdir(parents=True)
    for content, why in ((b"\xff\xfe", "not readable JSON"), (b"[1, 2]", "not a JSON object"),
                         (('{"calibration_version": "%s", "machine": {}}' % calibration.CALIBRATION_VERSION).encode(),
                          "without bandwidth_bytes_per_s, measured_at, peak_tflops")):
        path.write_bytes(content)
        assert calibration.load_calibration() is None
        said = capsys.readouterr().err
        assert why in said and "ignored; `optiplan calibrate` writes it again" in said


def test_the_fingerprint_is_the_same_whether_or_not_torch_is_imported(monkeypatch, tmp_path):
    """`calibrate` imports torch and `advise` does not: the fingerprint reads nvidia-smi either way (with
    CUDA_VISIBLE_DEVICES's indices), where torch's view of the devices had given the calibration a name later commands
    never found."""
    import sys
    import types

    monkeypatch.setattr(probe, "_smi_all", lambda: [("NVIDIA H100 80GB HBM3", 80 * 2**30), ("NVIDIA L4", 24 * 2**30)])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    without = calibration.fingerprint()
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 1, get_device_name=lambda i: "H100",
        get_device_properties=lambda i: types.SimpleNamespace(total_memory=1)))
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert calibration.fingerprint() == without
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert probe.smi_devices() == [("NVIDIA L4", 24 * 2**30)] and calibration.fingerprint() != without
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")  # CUDA stops at its first entry that is no device
    assert probe.smi_devices() == [("NVIDIA H100 80GB HBM3", 80 * 2**30)]
