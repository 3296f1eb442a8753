"""GGUF files as llama.cpp's `llama-quantize` writes them: the block type of each tensor for a file type, and so the
bits per weight of the blocks' matmul weights, the token embedding and the output head of a model.

Block sizes (ggml-org/llama.cpp ggml/src/ggml-common.h @aca2e6ce7909): Q4_0 and Q4_K store 4.5 bits per weight
(block_q4_K: "Effectively 4.5 bits per weight"), Q5_K 5.5, Q6_K 6.5625, Q8_0 8.5 (a 16-bit scale per 32 weights).

Types per tensor (src/llama-quant.cpp @8784689fee07, `llama_tensor_get_type`): the file type's default block type,
except that the output head, and the token embedding where it is tied to the head, take Q6_K (Q8_0 files keep
Q8_0); in Q4_K_M files `attn_v` and `ffn_down` take Q6_K in the layers `use_more_bits` picks (the first and last
eighth and every third layer between), and an 8-expert model (Mixtral) stores `attn_v` and `attn_k` in Q8_0 and
`attn_output` in Q5_K. Rules for other file types, Falcon, fused QKV tensors and the 70B `attn_v` bump are not
modelled: a format this module does not know raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RequestError
from ..schema import ModelSpec
from .params import param_counts

BLOCK_BITS = {"Q4_0": 4.5, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625, "Q8_0": 8.5}
FILE_TYPES = ("Q4_0", "Q4_K_M", "Q8_0")


@dataclass(frozen=True)
class GgufBits:
    """Bits per weight of one model's tensors in a GGUF file."""

    file_type: str
    linear: float  # mean over the blocks' matmul weights
    embedding: float  # the token embedding
    output: float  # the output head


def use_more_bits(layer: int, layers: int) -> bool:
    """llama-quant.cpp's choice of the layers whose sensitive tensors get more bits."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def gguf_bits(spec: ModelSpec, file_type: str) -> GgufBits:
    """The bits per weight of `spec`'s tensors in a GGUF file of `file_type` (Q4_0, Q4_K_M, Q8_0)."""
    if file_type not in FILE_TYPES:
        raise RequestError(f"GGUF file type {file_type}: optiplan models {', '.join(FILE_TYPES)}")
    if file_type == "Q8_0":
        return GgufBits(file_type, 8.5, 8.5, 8.5)
    output = BLOCK_BITS["Q6_K"]
    base = BLOCK_BITS["Q4_0" if file_type == "Q4_0" else "Q4_K"]
    embedding = output if spec.tie_word_embeddings else base
    if file_type == "Q4_0":
        return GgufBits(file_type, base, embedding, output)
    counts = param_counts(spec)
    h = spec.hidden_size
    extra = 0.0  # bits above the default type, summed over the promoted tensors
    attention = [i for i in range(spec.num_layers) if "attention" in spec.mixer(i)]
    if spec.mla is None:
        v = h * spec.num_kv_heads * spec.v_head_dim
        k = h * spec.num_kv_heads * spec.head_dim
        if spec.moe is not None and spec.moe.num_experts == 8:
            o = spec.num_heads * spec.v_head_dim * h
            extra += len(attention) * ((v + k) * (BLOCK_BITS["Q8_0"] - base) + o * (BLOCK_BITS["Q5_K"] - base))
        else:
            promoted = sum(use_more_bits(n, len(attention)) for n in range(len(attention)))
            extra += promoted * v * (BLOCK_BITS["Q6_K"] - base)
    mlps = [i for i in range(spec.num_layers) if spec.has_mlp(i)]
    for n, layer in enumerate(mlps):
        if not use_more_bits(n, len(mlps)):
            continue
        if spec.moe is not None and spec.layer_moe[layer]:
            down = h * (spec.moe.num_experts * spec.moe.expert_intermediate_size + spec.moe.shared_intermediate_size)
        else:
            down = h * spec.intermediate_size
        extra += down * (BLOCK_BITS["Q6_K"] - base)
    return GgufBits(file_type, base + extra / counts.linear, embedding, output)
