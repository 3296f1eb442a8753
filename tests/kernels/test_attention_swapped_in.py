"""`flash-attention:implementation=triton` on the trained test model, in triton's interpreter: registered in
transformers' AttentionInterface, greedy tokens identical to SDPA in fp32 (one prompt, and a left-padded batch that
takes the masked path), the manifest names the kernel and `optiplan.load` brings it back."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

TARGET = Path(__file__).resolve().parents[1] / "assets" / "models" / "target"
PROMPTS = ["The for statement is", "Classes provide a means of bundling data and functionality together"]


@pytest.fixture(scope="module")
def sdpa():
    from optiplan.optimizers.artifact import load

    return load(TARGET, "cpu", dtype="fp32")


def _greedy(loaded, prompts, n):
    ids = loaded.encode(prompts)
    out = loaded.generate(ids, max_new_tokens=n, min_new_tokens=n)
    return out[:, ids.shape[1]:].tolist()


def test_triton_attention_generates_the_same_greedy_tokens_as_sdpa_and_round_trips(sdpa, tmp_path):
    from artifact_helpers import roundtrip
    from optiplan.optimizers.artifact import load
    from optiplan.optimizers.registry import check_supported
    from optiplan.optimizers.workspace import Workspace
    from transformers import AttentionInterface

    loaded = load(TARGET, "cpu", dtype="fp32")
    ws = Workspace(model=loaded.model, tokenizer=loaded.tokenizer, device="cpu", source=TARGET)
    detail = check_supported("flash-attention", "cpu").apply(ws, {"implementation": "triton"})
    assert "optiplan.kernels.flash_attention" in detail and "flash_decoding" in detail
    assert ws.runtime.attn_implementation == "optiplan_triton"
    assert AttentionInterface()["optiplan_triton"].__name__ == "triton_attention"
    assert _greedy(loaded, PROMPTS[:1], 6) == _greedy(sdpa, PROMPTS[:1], 6)
    assert _greedy(loaded, PROMPTS, 3) == _greedy(sdpa, PROMPTS, 3)  # left padding: the masked path

    back = roundtrip(ws, tmp_path)
    assert back.runtime.attn_implementation == "optiplan_triton"
    assert back.model.config._attn_implementation == "optiplan_triton"
    assert _greedy(back, PROMPTS[:1], 2) == _greedy(sdpa, PROMPTS[:1], 2)


@pytest.mark.slow
def test_logits_match_sdpa_over_a_long_prompt(sdpa):
    from optiplan.optimizers.artifact import load
    from optiplan.optimizers.attention import set_attention

    loaded = load(TARGET, "cpu", dtype="fp32")
    set_attention(loaded.model, "optiplan_triton")
    ids = sdpa.encode([" ".join(PROMPTS * 2)])
    with torch.no_grad():
        ours, theirs = loaded.model(ids).logits, sdpa.model(ids).logits
    assert (ours - theirs).abs().max() < 1e-4


def test_refused_with_the_reason_where_triton_cannot_run(monkeypatch):
    from optiplan.kernels import common
    from optiplan.optimizers.attention import resolve
    from optiplan.optimizers.workspace import NotSupportedHere

    with pytest.raises(NotSupportedHere, match="CPU only"):
        resolve("triton", "cuda")
    monkeypatch.setattr(common, "interpreted", lambda: False)
    with pytest.raises(NotSupportedHere, match="TRITON_INTERPRET=1"):
        resolve("triton", "cpu")


GPU_CHECK = r'''
import torch
from pathlib import Path
from optiplan.optimizers.artifact import load
from optiplan.optimizers.attention import set_attention
from optiplan.optimizers.packed_weights import quantize_packed
from optiplan.optimizers.workspace import Workspace

target, prompt = Path(__import__("sys").argv[1]), "The for statement is"
sdpa = load(target, "cuda", dtype="fp32")
ours = load(target, "cuda", dtype="fp32")
set_attention(ours.model, "optiplan_triton")
ids = sdpa.encode([prompt])
greedy = lambda m: m.generate(ids, max_new_tokens=16, min_new_tokens=16)[0].tolist()
assert greedy(ours) == greedy(sdpa), "greedy tokens differ from SDPA"
ws = Workspace(model=ours.model, tokenizer=ours.tokenizer, device="cuda", source=target)
quantize_packed(ws, 4, 128)
with torch.no_grad():
    assert torch.isfinite(ours.model(ids).logits).all()
print("ok")
'''


@pytest.mark.gpu
def test_on_a_gpu_the_compiled_kernels_give_sdpas_greedy_tokens():
    import os
    import subprocess
    import sys

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", GPU_CHECK, str(TARGET)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.mark.parametrize("implementation", ["optiplan", "optiplan_triton"])
def test_a_static_cache_and_a_padded_batch_give_sdpas_tokens(sdpa, implementation):
    # a prompt into an empty static cache comes without a mask (transformers leaves sdpa's top-left is_causal to it):
    # it attends to its own keys, causally, not to the cache's unwritten slots (every prompt token had seen the whole
    # prompt and the empty slots); and a left-padded batch's padding rows give zeros, not NaN (the plain PyTorch path)
    from optiplan.optimizers.artifact import load
    from optiplan.optimizers.attention import set_attention

    loaded = load(TARGET, "cpu", dtype="fp32")
    set_attention(loaded.model, implementation)
    ids = sdpa.encode(PROMPTS[:1])

    def static(model):
        out = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, cache_implementation="static")
        return out[0, ids.shape[1]:].tolist()

    assert static(loaded.model) == static(sdpa.model)
    assert _greedy(loaded, PROMPTS, 2) == _greedy(sdpa, PROMPTS, 2)


def test_the_triton_kernels_refuse_a_training_step():
    # they have no backward pass: a step through them would leave the projections before them without gradients
    from optiplan.optimizers.attention import triton_attention

    q = torch.randn(1, 2, 3, 16, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        triton_attention(None, q, q, q, None)


@pytest.mark.parametrize("q_len", [1, 5])
def test_values_narrower_than_the_keys_as_in_mla(q_len):
    """DeepSeek-V2/V3's attention hands 192-wide queries and keys beside 128-wide values: the values are padded to
    the query's width and the output sliced back (the kernels take one head width), as the reference computes it."""
    from optiplan.optimizers.attention import reference_attention, triton_attention

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 4, q_len, 24, generator=g), torch.randn(1, 2, 9, 24, generator=g)
    v = torch.randn(1, 2, 9, 16, generator=g)
    with torch.no_grad():
        out, _ = triton_attention(None, q, k, v, None, scaling=0.2)
        expected, _ = reference_attention(None, q, k, v, None, scaling=0.2)
    assert out.shape == expected.shape == (1, q_len, 4, 16)
    assert (out - expected).abs().max() < 2e-5
