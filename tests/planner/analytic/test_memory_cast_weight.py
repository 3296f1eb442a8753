"""An int8 weight-only matmul that casts its weight whole to 16 bits (torchao's Int8Tensor, gpt-fast's eager prefill)
holds that copy beside the pass's activations: measured on this CPU, and counted by `Setup.cast_weight_bytes`."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import pytest
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.setup import build_setup
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest

CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _forward_transient_bytes(model, ids) -> int:
    """Resident memory one eager forward pass adds above what the process held before it (VmHWM reset first)."""
    import torch

    with torch.no_grad():
        model(ids)  # first call: lazy initialisation out of the way
        gc.collect()
        before = _status_bytes("VmRSS")
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident size
        for _ in range(3):
            model(ids)
        return _status_bytes("VmHWM") - before


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_torchao_int8_weight_only_holds_a_16bit_copy_of_the_matrix_it_multiplies():
    if not CLEAR_REFS.exists():
        pytest.skip("no /proc/self/clear_refs to reset the resident high-water mark")
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, quantize_
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128_256, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False)
    ids = torch.randint(0, 1000, (1, 4))
    head_copy = config.vocab_size * config.hidden_size * 2  # the largest matrix, the head, in bf16
    bf16 = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    plain = _forward_transient_bytes(bf16, ids)
    quantize_(bf16, Int8WeightOnlyConfig())  # every linear layer, the head included (optiplan apply's default)
    cast = _forward_transient_bytes(bf16, ids)
    assert plain < 0.1 * head_copy
    assert cast - plain == pytest.approx(head_copy, rel=0.1)


def _setup(engine: str, dtype: str, model: str = "llama-3.1-8b", **kw):
    request = ProfileRequest(model=model, hardware="a100-80gb-sxm", engine=engine, dtype=dtype, context=256,
                             prompt_tokens=128, **kw)
    return setup_for_request(request, resolve_model(request.model), resolve_hardware(request.hardware))


def test_the_prefill_holds_the_largest_cast_matrix():
    spec = resolve_model("llama-3.1-8b")
    head = spec.vocab_size * spec.hidden_size * 2
    # gpt-fast's quantizer and optiplan apply's torchao path (transformers) convert the head with the other layers:
    # the head is the largest matrix, cast in an eager pass (gpt-fast's prefill, every transformers pass)
    assert _setup("gpt-fast", "int8").cast_weight_bytes == head
    assert _setup("transformers", "int8").cast_weight_bytes == head
    # a head tied to the embedding stays 16-bit: an MLP matrix is the largest cast
    tied = resolve_model("llama-3.2-1b")
    assert tied.tie_word_embeddings
    assert _setup("transformers", "int8", "llama-3.2-1b").cast_weight_bytes == tied.intermediate_size * tied.hidden_size * 2
    # a 16-bit model, W8A8 (an int8 GEMM) and vLLM's int8 casts nothing whole
    for engine, dtype, kw in (("gpt-fast", "bf16", {}), ("transformers", "int8", {"activations": "int8"}),
                              ("vllm", "int8", {})):
        assert _setup(engine, dtype, **kw).cast_weight_bytes == 0
    # tensor parallel splits the layers' matrices, not the head, which stays the largest
    assert _setup("transformers", "int8", num_devices=2, tensor_parallel=2).cast_weight_bytes == head


def test_a_swapped_kernel_or_a_compiled_forward_casts_nothing():
    # optiplan's Triton int8 GEMM dequantizes inside its kernel; compiling transformers' forward (a plan's
    # torch-compile step runs it on the serving runtime) fuses the cast into the matmul
    spec, hw = resolve_model("llama-3.1-8b"), resolve_hardware("h200-sxm")
    own = build_setup(spec, hw, weight_dtype="int8", runtime="transformers", engine="transformers")
    assert own.cast_weight_bytes > 0
    assert build_setup(spec, hw, weight_dtype="int8", runtime="transformers", engine="transformers",
                       weight_kernel="triton").cast_weight_bytes == 0
    assert build_setup(spec, hw, weight_dtype="int8", runtime="serving", engine="transformers").cast_weight_bytes == 0


def test_the_copy_is_in_the_reported_activation_peak():
    args = {"model": "llama-3.1-8b", "hardware": "a100-80gb-sxm", "engine": "gpt-fast", "context": 256,
            "prompt_tokens": 128}
    int8, bf16 = profile(ProfileRequest(dtype="int8", **args)), profile(ProfileRequest(dtype="bf16", **args))
    spec = resolve_model("llama-3.1-8b")
    copy = spec.vocab_size * spec.hidden_size * 2
    assert int8.memory.activation_peak_bytes - bf16.memory.activation_peak_bytes == pytest.approx(copy, rel=0.01)
