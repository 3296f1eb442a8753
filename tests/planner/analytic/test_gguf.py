"""GGUF file types' block types per tensor (`analytic.gguf`) against files llama-quantize wrote: the quantize README's
measured bits per weight, and published file sizes."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.gguf import gguf_bits, use_more_bits
from optiplan.planner.analytic.params import param_counts
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import RequestError


def _file_bytes(model: str, file_type: str) -> tuple[float, float]:
    """(file bytes, bits per weight) of the model's GGUF file by the rules; norms in F32."""
    spec = resolve_model(model)
    c, b = param_counts(spec), gguf_bits(spec, file_type)
    assert b.linear_params == pytest.approx(c.linear, rel=1e-9)  # the rules went through every matmul weight
    bits = c.linear * b.linear + c.embedding * b.embedding + c.lm_head * b.output + c.small * 32
    return bits / 8, bits / c.total


def test_the_rules_reproduce_files_llama_quantize_wrote():
    # tools/quantize/README.md @f4a71e707e2c, Llama-3.1-8B: Q4_K_M 4.8944 and Q8_0 8.5008 bits per weight
    assert _file_bytes("llama-3.1-8b", "Q4_K_M")[1] == pytest.approx(4.8944, rel=5e-4)
    assert _file_bytes("llama-3.1-8b", "Q8_0")[1] == pytest.approx(8.5008, rel=5e-4)
    # huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF: Qwen2.5-7B-Instruct-Q4_K_M.gguf, 4.68 GB
    assert _file_bytes("qwen2.5-7b", "Q4_K_M")[0] / 1e9 == pytest.approx(4.68, rel=0.01)
    # huggingface.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF: Qwen2.5-0.5B-Instruct-Q4_K_M.gguf, 398 MB. Its rows of
    # 896 do not divide into 256-weight blocks: Q4_K falls back to Q5_0 and the tied head to Q8_0 (0.34 GB without)
    assert _file_bytes("qwen2.5-0.5b", "Q4_K_M")[0] / 1e6 == pytest.approx(398, rel=0.02)
    small = gguf_bits(resolve_model("qwen2.5-0.5b"), "Q4_K_M")
    assert small.embedding == small.output == 8.5 and small.linear > 5.4


def test_which_layers_and_tensors_get_more_bits():
    assert sum(use_more_bits(i, 32) for i in range(32)) == 16  # first and last 4, and every third between
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]
    one = gguf_bits(resolve_model("llama-3.2-1b"), "Q4_K_M")
    assert one.embedding == one.output == 6.5625  # tied: the embedding takes the head's Q6_K
    assert gguf_bits(resolve_model("llama-3.1-8b"), "Q4_K_M").embedding == 4.5
    # Mixtral (8 experts) keeps attn_k and attn_v in Q8_0 in any file type, and attn_output in Q5_K in Q4_K_M
    mixtral = resolve_model("mixtral-8x7b")
    assert gguf_bits(mixtral, "Q4_0").linear > 4.5
    assert gguf_bits(mixtral, "Q4_K_M").linear > gguf_bits(resolve_model("llama-3.1-8b"), "Q4_K_M").linear
    # tensors the rules do not cover (fused QKV, latent attention, state layers): no file modelled
    assert gguf_bits(resolve_model("phi-3-mini-4k"), "Q4_K_M") is None
    assert gguf_bits(resolve_model("deepseek-v3"), "Q4_K_M") is None
    with pytest.raises(RequestError, match="optiplan models Q4_0, Q4_K_M, Q8_0"):
        gguf_bits(resolve_model("llama-3.1-8b"), "IQ2_XXS")


def test_a_request_names_the_gguf_file_llama_cpp_reads():
    """`profile --gguf-type Q4_0`: llama.cpp reads the weights from that file (Q4_0's 4.5 bits per weight, its head in
    Q6_K) rather than the Q4_K_M its profile writes for int4, in any case; a file of another format, an engine that
    reads no GGUF file, an unknown type or a group size beside it are refused."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run(**kw):
        base = {"model": "llama-3.1-8b", "hardware": "rtx-4090", "engine": "llama.cpp", "dtype": "int4"}
        return profile(ProfileRequest(**{**base, **kw}))

    stored, q4_0 = run(), run(gguf_type="q4_0")
    assert q4_0.request.gguf_type == "Q4_0"  # the echoed request names the file type as llama-quantize does
    assert stored.memory.weights_bits_per_param == pytest.approx(run(gguf_type="Q4_K_M").memory.weights_bits_per_param)
    spec = resolve_model("llama-3.1-8b")
    c, b = param_counts(spec), gguf_bits(spec, "Q4_0")
    assert b.linear == 4.5 and b.output == 6.5625
    # the weights' bytes are the file's: the blocks and the untied embedding in Q4_0, the head in Q6_K
    assert q4_0.memory.weights_bytes < stored.memory.weights_bytes
    assert q4_0.memory.weights_bytes == pytest.approx(((c.linear + c.embedding) * 4.5 + c.lm_head * 6.5625) / 8,
                                                      rel=0.01)
    assert q4_0.latency.tpot_ms < stored.latency.tpot_ms  # fewer bytes to read a token
    for kw, why in (({"gguf_type": "Q8_0"}, "holds int8 weights"), ({"gguf_type": "Q3_K_S"}, "optiplan models"),
                    ({"gguf_type": "Q4_0", "engine": "vllm"}, "reads no GGUF file"),
                    ({"gguf_type": "Q4_0", "group_size": 32}, "sets its own blocks")):
        with pytest.raises(RequestError, match=why):
            run(**kw)
