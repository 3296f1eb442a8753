"""The profile's text report names a state-space model's layers instead of placeholder attention heads, and splits
its cache into attention keys/values and fixed recurrent state."""

from __future__ import annotations

from click.testing import CliRunner
from optiplan.planner.cli.main import main


def text(model: str) -> str:
    out = CliRunner().invoke(main, ["profile", model, "-H", "h100-sxm", "--context", "8192"])
    assert out.exit_code == 0, out.output
    return " ".join(out.output.split())


def test_a_pure_ssm_names_its_layers_and_its_state():
    out = text("mamba-codestral-7b")
    assert "64 mamba2" in out and "heads /" not in out
    assert "of it attention 0 B, recurrent and convolution state" in out


def test_a_hybrid_keeps_its_heads_and_adds_its_layer_mix():
    out = text("jamba-1.5-mini")
    assert "32 heads / 8 KV heads" in out and "layers: 28 mamba, 4 attention" in out


def test_a_transformer_is_unchanged():
    out = text("llama-3.1-8b")
    assert "32 heads / 8 KV heads x 128 (GQA)" in out and "layers:" not in out and "recurrent" not in out
