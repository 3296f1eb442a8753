"""Fixtures for optimizer tests: the committed tiny test models (tests/assets/models), one thread."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


@pytest.fixture(scope="session")
def target_path() -> Path:
    return MODELS / "target"


@pytest.fixture(scope="session")
def draft_path() -> Path:
    return MODELS / "draft"


# The optimizers' own tests load the bf16-stored test model in fp32: they compare logits, sizes and caches at full
# precision (apply and verify load a model as it is stored).
@pytest.fixture(scope="session")
def base(target_path):
    from optiplan.optimizers.artifact import load

    return load(target_path, "cpu", dtype="fp32")


@pytest.fixture()
def workspace(target_path):
    from optiplan.optimizers.artifact import load
    from optiplan.optimizers.workspace import Workspace

    loaded = load(target_path, "cpu", dtype="fp32")
    return Workspace(model=loaded.model, tokenizer=loaded.tokenizer, device="cpu", source=target_path)


@pytest.fixture()
def untimed_step_checks(monkeypatch):
    """apply's quick checks after each step answer their timed parts at once, speed unchanged: for tests that judge
    something else (what verify says, what ships), where those timings were most of their time. The weight and cache
    sizes, which decide a memory step's gain, are still measured."""
    from optiplan.optimizers import effects

    timings = {"decode": {"tpot_ms": 1.0, "tokens_per_step": 1.0}, "prefill": {"ttft_ms": 1.0},
               "batch": {"batched_tokens_per_s": 1.0}}
    monkeypatch.setattr(effects, "timed", lambda loaded, prompts, part, *args, **kwargs: timings[part])
