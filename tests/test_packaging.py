"""The wheel holds every subpackage and data file, so a regular (non-editable) install works like the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"api": "optiplan", "planner": "optiplan/planner", "profiles": "optiplan/profiles",
           "optimizers": "optiplan/optimizers", "kernels": "optiplan/kernels", "templates": "optiplan/templates"}
DATA = ("*.py", "*.yaml", "*.json", "*.j2", "*.yml")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> dict[str, bytes]:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("optiplan-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = {name: b"" for name in zf.namelist()}
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        names[entry] = zf.read(entry)
    return names


def test_every_module_and_data_file_of_the_mapped_folders_is_in_the_wheel(wheel_names):
    expected = set()
    for folder, package in FOLDERS.items():
        for pattern in DATA:
            for path in (ROOT / folder).rglob(pattern):
                if "__pycache__" not in path.parts:
                    expected.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    missing = sorted(expected - set(wheel_names))
    assert not missing, f"missing from the wheel: {missing[:20]}"


def test_the_wheel_has_the_console_script_and_no_top_level_planner(wheel_names):
    tops = {name.split("/")[0] for name in wheel_names}
    assert not tops & {"planner", "kernels", "templates", "profiles", "optimizers", "api"}
    entry = next(n for n in wheel_names if n.endswith("entry_points.txt"))
    assert b"optiplan = optiplan.planner.cli.main:main" in wheel_names[entry]
