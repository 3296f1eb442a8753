"""GGUF files as llama.cpp's `llama-quantize` writes them: the block type of each tensor for a file type, and so the
bits per weight of the blocks' matmul weights, the token embedding and the output head of a model.

Block sizes (ggml-org/llama.cpp ggml/src/ggml-common.h @aca2e6ce7909): Q4_0, Q4_K and Q5_0 store 4.5, 4.5 and 5.5
bits per weight (block_q4_K: "Effectively 4.5 bits per weight"), Q5_K 5.5, Q5_1 6, Q6_K 6.5625, Q8_0 8.5 (a 16-bit
scale per 32 weights). K-quant blocks hold 256 weights of a row, the others 32.

Types per tensor (src/llama-quant.cpp @8784689fee07, `llama_tensor_get_type`), for separate q/k/v projections:

- the file type's default block type (Q4_0, Q4_K for Q4_K_M, Q8_0);
- the output head, and the token embedding where it is tied to the head: Q6_K (Q8_0 files keep Q8_0);
- Q4_K_M: `attn_v` and `ffn_down` in Q6_K in the layers `use_more_bits` picks (the first and last eighth and every
  third layer between);
- an 8-expert model (Mixtral): `attn_k` and `attn_v` in Q8_0, and in Q4_K_M `attn_output` in Q5_K;
- a tensor whose rows do not divide into its block type's blocks falls back: Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to
  Q8_0 (a head whose rows do not divide into 256 is Q8_0).

Architectures with other tensors (fused QKV, latent attention, state layers, Falcon's own ladder) and the 70B
`attn_v` bump are not modelled: `gguf_bits` returns None for them, and the weights keep the format's usual layout.
A checkpoint that stores its routed experts in a format of its own (gpt-oss's MXFP4) converts to llama.cpp's
MXFP4_MOE file: "MoE tensors -> MXFP4, other tensors -> Q8_0" (`llama_tensor_get_type`); the engine's profile says so
(`checkpoint_other_formats`) and the tensors beside the experts are read as a Q8_0 file's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog.engines import engine_storage
from ..errors import RequestError
from ..schema import ModelSpec

BLOCK_BITS = {"Q4_0": 4.5, "Q4_K": 4.5, "Q5_0": 5.5, "Q5_K": 5.5, "Q5_1": 6.0, "Q6_K": 6.5625, "Q8_0": 8.5}
K_BLOCK = 256  # weights per row in one K-quant block
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}  # convert_incompatible_tensor


@dataclass(frozen=True)
class FileType:
    """A GGUF file type llama-quantize writes: its default block type and the weight format it stores."""

    block: str
    format: str


FILE_TYPES = {"Q4_0": FileType("Q4_0", "int4"), "Q4_K_M": FileType("Q4_K", "int4"), "Q8_0": FileType("Q8_0", "int8")}
# model types whose GGUF conversion keeps separate attn_q/attn_k/attn_v and ffn_gate/up/down tensors (llama.cpp's
# LLM_ARCH_LLAMA, QWEN2, QWEN2MOE, QWEN3, QWEN3MOE, GEMMA2, GEMMA3, GRANITE tensor lists)
MODELLED = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2",
                      "gemma3_text", "gemma3", "granite"})


def file_type(name: str) -> FileType:
    """The file type of that name (any case), or a clear error naming the ones modelled."""
    try:
        return FILE_TYPES[name.upper()]
    except KeyError:
        raise RequestError(f"GGUF file type {name}: optiplan models {', '.join(FILE_TYPES)}") from None


@dataclass(frozen=True)
class GgufBits:
    """Bits per weight of one model's tensors in a GGUF file."""

    file_type: str
    linear: float  # mean over the blocks' matmul weights
    embedding: float  # the token embedding
    output: float  # the output head
    linear_params: float  # the matmul weights the rules went through (the model's linear weights)


def gguf_file_type(name: str | None, weight_dtype: str, engine: str | None) -> str | None:
    """The GGUF file type a request names (`--gguf-type`, any case), checked: one modelled here, of the weights'
    format, on an engine that reads GGUF files (its profile stores the format in one); None where it names none."""
    if name is None:
        return None
    stored = file_type(name).format
    name = name.upper()
    if stored != weight_dtype:
        raise RequestError(f"a GGUF {name} file holds {stored} weights; --dtype is {weight_dtype}")
    if engine_storage(engine, weight_dtype) is None:
        raise RequestError(f"--gguf-type names the GGUF file llama.cpp reads the weights from; {engine} reads no GGUF "
                           "file (give --engine llama.cpp)")
    return name


def use_more_bits(layer: int, layers: int) -> bool:
    """llama-quant.cpp's choice of the layers whose sensitive tensors get more bits."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def block_bits(block: str, row: int) -> float:
    """Bits per weight of a tensor of `block` type whose rows hold `row` weights (after the size fallback)."""
    if block in FALLBACK and row % K_BLOCK:
        block = FALLBACK[block]
    return BLOCK_BITS[block]


def gguf_bits(spec: ModelSpec, name: str) -> GgufBits | None:
    """The bits per weight of `spec`'s tensors in a GGUF file of type `name` (Q4_0, Q4_K_M, Q8_0), or None for an
    architecture whose tensors the rules here do not cover."""
    base = file_type(name).block
    name = name.upper()
    if name == "Q8_0" and spec.moe is not None and spec.checkpoint_modules == "experts":
        # every tensor beside a checkpoint's own routed experts (gpt-oss's MXFP4) in Q8_0: llama.cpp's MXFP4_MOE file,
        # as a Q8_0 file; MXFP4_MOE would put the head in Q6_K where its rows divide into 256-weight blocks, which
        # gpt-oss's 2,880 do not
        q8 = BLOCK_BITS["Q8_0"]
        return GgufBits(name, q8, q8, q8, 0.0)
    if spec.model_type not in MODELLED or spec.mla is not None or spec.layer_mixers:
        return None
    k_quants = name == "Q4_K_M"
    h, layers = spec.hidden_size, spec.num_layers
    output = BLOCK_BITS["Q8_0"] if base == "Q8_0" else block_bits("Q6_K", h)
    embedding = output if spec.tie_word_embeddings else block_bits(base, h)
    eight_experts = spec.moe is not None and spec.moe.num_experts == 8
    q_out, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    v_out, o_in = spec.num_kv_heads * spec.v_head_dim, spec.num_heads * spec.v_head_dim
    gated = 2 if spec.mlp_gated else 1
    bits = params = 0.0

    def add(block: str, row: int, count: float) -> None:
        nonlocal bits, params
        bits += block_bits(block, row) * count
        params += count

    for layer in range(layers):
        more = k_quants and use_more_bits(layer, layers)
        add(base, h, h * q_out)
        add("Q8_0" if eight_experts else base, h, h * kv)
        add("Q8_0" if eight_experts else "Q6_K" if more else base, h, h * v_out)
        add("Q5_K" if eight_experts and k_quants else base, o_in, o_in * h)
        down = "Q6_K" if more else base
        if spec.moe is not None and spec.layer_moe[layer]:
            moe = spec.moe
            for width, copies in ((moe.expert_intermediate_size, moe.num_experts), (moe.shared_intermediate_size, 1)):
                if width:
                    add(base, h, copies * gated * h * width)
                    add(down, width, copies * width * h)
        else:
            add(base, h, gated * h * spec.intermediate_size)
            add(down, spec.intermediate_size, spec.intermediate_size * h)
    return GgufBits(name, bits / params, embedding, output, params)
