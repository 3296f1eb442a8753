"""Shared fixtures. Tests never read ../shared and never touch the network."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that would reach the hub fails fast instead
# this machine's own calibration (fitted factors, measured technique effects) must not change what tests see
os.environ["OPTIPLAN_CACHE"] = tempfile.mkdtemp(prefix="optiplan-test-cache-")


@pytest.fixture(scope="session")
def catalog_entries():
    from optiplan import profiles

    return {name: profiles.load_model(name) for name in profiles.model_names()}
