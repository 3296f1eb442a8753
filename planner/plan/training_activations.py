"""What a training step's decoder layers keep for their backward, in bytes per token and hidden unit at 16 bits (a
"unit"): a bf16 layer's own activations by architecture (`layer_activation_units`; its state mixer's in
`state_mixer_activations`), what the rendered script's recipes change in them (fp32 weights under bf16 autocast:
`autocast_units`; peft's LoRA: `lora_units`), the model's rotary tables (`rotary_table_units`) and the output
projection's copy where a flash kernel runs (`output_copy_units`); what other kernels keep beyond the fused one is
`attention_activations`'. Each term is measured on transformers' eager layers under autograd's saved-tensor hooks
(benchmarks/bench_activation_memory.py); `training` turns them into bytes."""

from __future__ import annotations

from ..catalog.engine_refusals import dense_experts, sdpa_refused
from ..schema import ModelSpec
from .state_mixer_activations import (
    STATE_MIXER_ADAPTERS,
    STATE_MIXER_READERS,
    STATE_MIXER_UNITS,
    state_mixer_recipe_units,
)

# Model types whose attention projections (query, key and value) or gated MLP projections (gate and up) are one
# fused linear layer, which takes one adapter (transformers' modeling files: Phi-3's qkv_proj and gate_up_proj,
# GPT-NeoX's and Falcon's query_key_value, GPT-2's c_attn, Granite 4's shared_mlp.input_linear)
FUSED_QKV_TYPES = frozenset({"phi3", "gpt_neox", "falcon", "gpt2"})
FUSED_GATE_UP_TYPES = frozenset({"phi3", "granitemoehybrid"})


# Bytes per token and hidden unit a decoder layer keeps for its backward at 16 bits, measured on transformers 5.24's
# eager layers in bf16 under autograd's saved-tensor hooks (benchmarks/bench_activation_memory.py, 2026-12-07, this
# machine's CPU; attention through SDPA's fused kernel, no dropout), each term fitted to the layers it varies over:
# per norm: an RMSNorm upcasts its input to fp32 in eager transformers; a LayerNorm keeps its 16-bit input; OLMo's
# weightless one its fp32 copy ("F.layer_norm(hidden_states.to(torch.float32)": 4.03, measured on its layer, where none
# had been counted: 0.75 of the layer)
NORM_UNITS = {"rmsnorm": 6.0, "layernorm": 2.0, "nonparametric": 4.0}
# An RMSNorm that multiplies its weight in fp32 keeps its fp32 normalized input for the weight's gradient, not a 16-bit
# one (8 units: measured on OLMo-2's and Gemma 3's layers, each norm 4 + 4): Gemma's "output = output * (1.0 +
# self.weight.float())" (Gemma 1-3, RecurrentGemma, Qwen3-Next), "(self.weight * hidden_states).to(input_dtype)"
# (OLMo-2 and -3, gpt-oss), "(self.weight.to(torch.float32) * hidden_states)" (Nemotron-H), where Llama's is
# "self.weight * hidden_states.to(input_dtype)" (transformers 5.24's modeling files)
FP32_WEIGHT_NORM_UNITS = 8.0
FP32_WEIGHT_NORM_TYPES = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "recurrent_gemma", "qwen3_next",
                                    "olmo2", "olmo3", "gpt_oss", "nemotron_h"})
# Cohere's LayerNorm computes in fp32 and keeps three fp32 tensors of the layer's width (CohereLayerNorm:
# "hidden_states = hidden_states.to(torch.float32) ... hidden_states = (hidden_states - mean) * torch.rsqrt(variance +
# self.variance_epsilon)"), its per-head query and key norms too: 12 units, measured on its layer (where the LayerNorm's
# 2 had been counted: 0.78 of the layer, 0.59 with its query and key norms)
UPCAST_LAYERNORM_UNITS = 12.0
UPCAST_LAYERNORM_TYPES = frozenset({"cohere", "cohere2"})
# Llama 4's L2 query-key norm (Llama4TextL2Norm: "self._norm(x.float()).type_as(x)"): 4.1 units per unit of query and
# key width, measured on its layer (5.2 with it, where none had been counted)
L2_QK_NORM_UNITS = 4.0
# Attention through SDPA's fused kernel keeps the projections' shared input (2 units), the rotated queries and its
# output (the output projection's input is a view of it: 4 units a query width over hidden), the rotated keys and the
# values (4 a key-value width), and its fp32 log-sum-exp (4 bytes a query head and token). Exact on Llama layers at
# hidden sizes 256, 1,024 and 4,096 (5.625, 5.531 and 5.156 units in the attention module; where 2.14 + 4.5 a query
# width, fitted at heads of 32 with the rotary tables inside, had counted a Llama-3.1-8B layer 1% high: 49.64 against
# 49.16). The rotary tables are the model's, not a layer's (`rotary_table_units`).
ATTENTION_INPUT_UNITS = 2.0
HEAD_STAT_BYTES = 4.0
# Where a model concatenates its rotated and unrotated query parts (partial rotary: Phi-3's, StableLM's, GPT-NeoX's,
# RecurrentGemma's and Bamba's "torch.cat((q_rot, q_pass), dim=-1)"; GLM-4.5's; latent attention's "torch.cat((q_pass,
# q_rot), dim=-1)"), its queries are laid out head by head, and a flash kernel allocates its output as its query
# (CPU's; CUDA's "out = at::empty_like(q_padded)", flash_api.cpp), so the output projection's input is a copy, not a
# view: 2 units an output width more (`output_copy_units`; measured on all eight, 2.0 at their widths). SDPA runs a
# flash kernel on a CPU, masked or not; on CUDA the rendered script's packed-document mask sends it to the
# memory-efficient kernel, which writes its output token-major (as it does for latent attention whose values' heads
# are narrower than its queries', DeepSeek's 128 against 192): no copy there.
CONCAT_QUERY_TYPES = frozenset({"phi3", "stablelm", "gpt_neox", "recurrent_gemma", "bamba", "glm4_moe", "deepseek_v2",
                                "deepseek_v3"})
# Qwen3-Next's gated attention (its query projection also yields a gate: "attn_output = attn_output *
# torch.sigmoid(gate)") keeps, per query width, the gate, its sigmoid and the gated product (the output projection's
# input) beside the attention's output: 6 units, read tensor by tensor at hidden sizes 256 and 2,048 (where none had
# been counted: 0.92 of the layer; 5.75, fitted beside the rotary tables' share of 2.14, until those were the model's)
OUTPUT_GATE_UNITS = 6.0
QUERY_UNITS = 4.0  # per query width over hidden: the rotated queries and the attention's output
KV_UNITS = 4.0  # per key-value width over hidden: the rotated keys and the values, 2 bytes each
MLP_BASE_UNITS = 2.0  # the MLP's input
MLP_WIDTH_UNITS = {True: 8.0, False: 4.0}  # per intermediate width over hidden: gate, up, activation, product (gated)
# gpt-oss's clamped SwiGLU experts keep the fused gate-up output, the clamped gate, its sigmoid, the shifted clamped
# up, the gated product and the down projection's input (its modeling file's _apply_gate: "gate = gate.clamp(min=None,
# max=self.limit) ... glu = gate * torch.sigmoid(gate * self.alpha) ... gated_output = (up + 1) * glu"): 14, counted
# tensor by tensor on its layer
# GPT-2's and GPT-J's "gelu_new" is tanh's approximation written out in Python ("0.5 * input * (1.0 +
# torch.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * torch.pow(input, 3.0))))"), whose steps keep 8 and the
# output projection's input 2: 10, measured on GPT-J's layer (where a plain MLP's 4 had been counted: 0.58 of it)
MLP_WIDTH_UNITS_BY_TYPE = {"gpt_oss": 14.0, "gptj": 10.0, "gpt2": 10.0}
# per routed expert a token goes to: its gathered input and its output before the weighting (4 units), and the
# dispatch's int64 indices (three) and fp32 weight, 28 bytes a token whatever the width (read tensor by tensor on
# Mixtral's layer, where a flat 4.15 units had been fitted at a hidden size of 256)
EXPERT_COPY_UNITS = 4.0
EXPERT_INDEX_BYTES = 28.0
# per expert where transformers runs them densely (Llama 4's): its weighted copy of the input and its output, no
# gathered indices (measured: 4 experts 48.0 units with their MLPs, 16 experts 192.1)
DENSE_EXPERT_COPY_UNITS = 4.0
# A shared expert reads the block's input, which the router or the routed experts keep already: it adds its MLP's
# width alone (measured on Granite 4's, Llama 4's, DeepSeek-V3's and GLM-4.5's layers, each 2 units below a count with
# an input of its own); a gated one (Qwen2-MoE's and Qwen3-Next's "F.sigmoid(self.shared_expert_gate(hidden_states)) *
# shared_expert_output") keeps its output for the gate's gradient, 2 units
SHARED_GATE_UNITS = 2.0
# the router's fp32 probabilities over every expert (4 bytes each), its top-k's int64 indices and fp32 weights (12
# bytes each) and their sum (4), a token: Mixtral's 60 bytes, Qwen3-30B-A3B's 612 (a flat 0.2 units, fitted at 256,
# had been counted: 51 bytes there, 819 at Mixtral's width)
ROUTER_EXPERT_BYTES = 4.0
ROUTER_TOP_K_BYTES = 12.0
ROUTER_BYTES = 4.0
# DeepSeek's and GLM-4.5's routers upcast their input to fp32 first (DeepseekV2TopkRouter, DeepseekV3TopkRouter,
# Glm4MoeTopkRouter: "F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))"), which the matmul
# keeps; the other catalog families' routers take the 16-bit input (transformers 5.24's modeling files)
FP32_ROUTER_UNITS = 4.0
FP32_ROUTER_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "glm4_moe"})


def layer_activation_units(spec: ModelSpec, layer: int) -> float:
    """The bytes per token and hidden unit `layer` keeps for its backward at 16 bits: its attention block (norm,
    projections, fused attention) and its MLP block (norm, and a dense MLP, or the routed experts a token goes to and
    the shared ones). A state mixer is priced as transformers' PyTorch path runs it (`state_mixer_activations`); RWKV's
    is not (its spec has no attention widths: its norm and its input alone are counted). A layer running attention
    beside a state mixer counts both (Falcon-H1's), or its shared transformer block before the mixer (Zamba2's).
    Latent attention is priced at the widths of the keys and values it expands. A layer without a mixer (Nemotron-H's
    MLP layers) or without an MLP (Mamba's, Nemotron-H's mixer layers) has no such block, nor its norms."""
    norm = FP32_WEIGHT_NORM_UNITS if spec.norm == "rmsnorm" and spec.model_type in FP32_WEIGHT_NORM_TYPES \
        else UPCAST_LAYERNORM_UNITS if spec.model_type in UPCAST_LAYERNORM_TYPES else NORM_UNITS.get(spec.norm, 0.0)
    # a block's norms (Gemma's after the attention and the MLP as well); one norm feeding both blocks is attention's
    block_norms = norm * _block_norms(spec)
    state = state_mixer_kind(spec, layer)
    if spec.mixer(layer) == "none":
        mixer = 0.0
    elif state in STATE_MIXER_UNITS:
        # a state mixer, alone after its norms or beside attention off the same norm (Falcon-H1's, each reading its
        # own copy of the normalized input: attention's scaled by attention_in_multiplier; Zamba2's hybrid layers)
        if _shared_block(spec, layer):
            attention = _shared_block_units(spec, layer, norm)
        elif "attention" in spec.mixer(layer):
            attention = _attention_block_units(spec, layer, norm, block_norms)
        else:
            attention = block_norms
        mixer = attention + STATE_MIXER_UNITS[state](spec)
    else:
        mixer = _attention_block_units(spec, layer, norm, block_norms)
    return mixer + (_mlp_block_units(spec, layer, block_norms) if spec.has_mlp(layer) else 0.0)


def _attention_block_units(spec: ModelSpec, layer: int, norm: float, block_norms: float) -> float:
    """`layer_activation_units`' attention block: its norms, projections and fused attention."""
    h = spec.hidden_size
    latent = 0.0
    if spec.mla is not None:
        a = spec.mla
        q = spec.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        kv = spec.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) / 2
        # the norms of the compressed query and key-value (q_a_layernorm, kv_a_layernorm), each kept as a layer's
        # norm is, and their outputs, the up-projections' inputs (2 a width); and the values the kernel keeps are a
        # view of kv_b_proj's output, which keeps the keys' part of it
        latent = (norm + ATTENTION_INPUT_UNITS) * ((a.q_lora_rank or 0) + a.kv_lora_rank) / h \
            + 2 * spec.num_heads * a.qk_nope_head_dim / h
    else:
        q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    # eager attention (no SDPA for the model) keeps its probabilities instead of the statistics (packed_attention_units)
    stats = 0.0 if sdpa_refused(spec.model_type) else HEAD_STAT_BYTES * spec.num_heads / h
    attention = block_norms + latent + ATTENTION_INPUT_UNITS + QUERY_UNITS * q / h + KV_UNITS * kv / h + stats \
        + (OUTPUT_GATE_UNITS * q / h if spec.attn_output_gate else 0.0)
    if spec.model_type in LAYER_ROTARY_TYPES:
        attention += _rotary_bytes(spec, fp32_weights=False) * _rotary_width(spec) / h
    if spec.model_type in FUSED_QKV_TYPES and spec.rotary_fraction > 0 and not spec.learned_positions:
        # the values the kernel keeps are a view of the fused projection's output, which keeps the queries' and keys'
        # part of it alive beside their rotated copies (measured on Phi-3's layer: 4 units where separate values keep
        # 1); without rotary positions the kernel keeps the queries and keys as views of it too (GPT-2's, measured)
        attention += 2 * (q + kv) / h
    if spec.qk_norm == "l2":  # Llama 4's weightless norm on its rotary layers (its chunked ones) keeps an fp32 copy
        attention += L2_QK_NORM_UNITS * (q + kv) / h if l2_norm_runs(spec, layer) else 0.0
    elif spec.qk_norm != "none":  # a norm over the queries and the keys (per head or whole), kept as a norm keeps
        attention += norm * (q + kv) / h
    return attention


def l2_norm_runs(spec: ModelSpec, layer: int) -> bool:
    """Whether Llama 4's L2 query-key norm runs in `layer`: on its rotary layers, the chunked ones."""
    return not spec.layer_chunks or spec.layer_chunks[layer] is not None


# The rotary tables (a cosine and a sine a rotary dimension and token) are built once by the model and handed to every
# layer, whose rotation keeps them for its backward: one set a model (`rotary_table_units`), measured at 4 units a
# rotary dimension over hidden in a one-layer model. Gemma 3 builds a set for each layer type (its rotary_emb "by
# layer_type": the window layers' and the global ones'); RecurrentGemma's attention builds its own in each layer
# ("self.rotary_emb = RecurrentGemmaRotaryEmbedding" in RecurrentGemmaAttention), and GPT-J's rotation repeats the
# model's tables into a new pair for the queries and another for the keys ("sin = torch.repeat_interleave(sin[:, :,
# None, :], 2, 3)"), which it keeps: two sets a layer (measured). They are 16-bit in a 16-bit model
# ("cos.to(dtype=x.dtype)"), fp32 over fp32 weights and in OLMo's ("return cos, sin" without the cast); DeepSeek-V2's
# and Llama 4's complex rotation keeps complex64 frequencies, 8 bytes a pair of dimensions. The hybrids that rotate
# nothing (Jamba, Nemotron-H, Granite 4 without "rope", Zamba2 without use_mem_rope) have a rotary_fraction of 0
# (catalog/hybrid_spec.py). Cohere 2 rotates its window layers only ("if self.sliding_window is not None", set on
# window layers), EXAONE 4 its window layers where its config sets a window and every layer where it sets none ("if
# self.sliding_window is None or self.is_sliding": a model without window layers is taken to set none)
# (NOPE_FULL_LAYER_TYPES, NOPE_FULL_IF_WINDOWED_TYPES).
LAYER_ROTARY_TYPES = {"recurrent_gemma": 1, "gptj": 2}  # the sets each attention layer builds and keeps
# RecurrentGemma's are built in the values' dtype ("self.rotary_emb(value_states, position_ids)"): 16-bit under
# autocast whatever the weights (measured)
VALUE_DTYPE_TABLE_TYPES = frozenset({"recurrent_gemma"})
NOPE_FULL_LAYER_TYPES = frozenset({"cohere2"})
NOPE_FULL_IF_WINDOWED_TYPES = frozenset({"exaone4"})
LAYER_TYPE_ROTARY_TYPES = frozenset({"gemma3", "gemma3_text"})
FP32_TABLE_TYPES = frozenset({"olmo", "olmo2", "olmo3"})
COMPLEX_ROTARY_TYPES = frozenset({"deepseek_v2", "llama4", "llama4_text"})


def _rotary_width(spec: ModelSpec) -> float:
    """The dimensions of a head that rotary positions rotate (latent attention's rope part), 0 without them."""
    if spec.learned_positions:
        return 0.0
    return spec.mla.qk_rope_head_dim if spec.mla is not None else spec.head_dim * spec.rotary_fraction


def _rotary_bytes(spec: ModelSpec, fp32_weights: bool) -> float:
    """Bytes a rotary dimension and token a set of its tables takes: cos and sin in the model's dtype (fp32 in OLMo's),
    or complex64 frequencies; times the sets a layer keeps where it builds its own (LAYER_ROTARY_TYPES)."""
    if spec.model_type in COMPLEX_ROTARY_TYPES:
        return 4.0
    fp32 = (fp32_weights and spec.model_type not in VALUE_DTYPE_TABLE_TYPES) or spec.model_type in FP32_TABLE_TYPES
    return (8.0 if fp32 else 4.0) * LAYER_ROTARY_TYPES.get(spec.model_type, 1)


def rotary_table_units(spec: ModelSpec, fp32_weights: bool) -> float:
    """The units a token's rotary tables take, once a model (a set for each layer type that rotates in Gemma 3's;
    RecurrentGemma's and GPT-J's, built in each attention layer, are that layer's); `fp32_weights`: fp32 weights
    under bf16 autocast, whose tables are fp32."""
    if spec.model_type in LAYER_ROTARY_TYPES:
        return 0.0
    nope = spec.model_type in NOPE_FULL_LAYER_TYPES or (spec.model_type in NOPE_FULL_IF_WINDOWED_TYPES
                                                         and any(w is not None for w in spec.layer_windows))
    rotating = {spec.layer_windows[layer] is None for layer in range(spec.num_layers)
                if "attention" in spec.mixer(layer) and not (nope and spec.layer_windows[layer] is None)}
    sets = len(rotating) if spec.model_type in LAYER_TYPE_ROTARY_TYPES else min(len(rotating), 1)
    return sets * _rotary_bytes(spec, fp32_weights) * _rotary_width(spec) / spec.hidden_size


def output_copied(spec: ModelSpec, flash_kernel: bool) -> bool:
    """Whether the output projection reads a copy of attention's output (CONCAT_QUERY_TYPES) where a flash kernel
    runs the attention (`flash_kernel`: on a CPU); latent attention with queries wider than its values runs none."""
    a = spec.mla
    return flash_kernel and spec.model_type in CONCAT_QUERY_TYPES and not sdpa_refused(spec.model_type) \
        and (a is None or a.qk_nope_head_dim + a.qk_rope_head_dim == a.v_head_dim)


def output_copy_units(spec: ModelSpec, layer: int, flash_kernel: bool) -> float:
    """What `layer` keeps beyond `layer_activation_units` where its output projection reads a copy of attention's
    output (`output_copied`)."""
    if "attention" not in spec.mixer(layer) or not output_copied(spec, flash_kernel):
        return 0.0
    return ATTENTION_INPUT_UNITS * spec.num_heads * spec.v_head_dim / spec.hidden_size


def _mlp_block_units(spec: ModelSpec, layer: int, block_norms: float) -> float:
    """`layer_activation_units`' MLP block: its norms, and a dense MLP or the routed and shared experts."""
    h = spec.hidden_size
    # one norm feeding both side-by-side blocks (GPT-J, Cohere) is attention's; so is a second LayerNorm of the same
    # input, which keeps that input once (GPT-NeoX's: 0.02 units measured, its statistics)
    shared = spec.parallel_attention and (spec.norms_per_layer == 1 or spec.norm == "layernorm")
    mlp_norms = 0.0 if shared else block_norms
    width = MLP_WIDTH_UNITS_BY_TYPE.get(spec.model_type, MLP_WIDTH_UNITS[spec.mlp_gated])
    m = spec.moe
    if m is not None and spec.layer_moe[layer]:
        # every expert a token goes through: its top-k, or all where transformers runs them densely (Llama 4's)
        dense = dense_experts(spec.model_type)
        routed = (m.num_experts if dense else m.top_k) * (width * m.expert_intermediate_size / h
                                                          + (DENSE_EXPERT_COPY_UNITS if dense
                                                             else EXPERT_COPY_UNITS + EXPERT_INDEX_BYTES / h))
        router = (ROUTER_EXPERT_BYTES * m.num_experts + ROUTER_TOP_K_BYTES * m.top_k + ROUTER_BYTES) / h \
            + (FP32_ROUTER_UNITS if spec.model_type in FP32_ROUTER_TYPES else 0.0)
        mlp = mlp_norms + MLP_BASE_UNITS + router + routed
        if m.shared_intermediate_size:
            mlp += width * m.shared_intermediate_size / h + (SHARED_GATE_UNITS if m.shared_expert_gate else 0.0)
    else:
        mlp = mlp_norms + MLP_BASE_UNITS + width * spec.intermediate_size / h
    if spec.parallel_attention and spec.norms_per_layer == 1:
        mlp -= MLP_BASE_UNITS  # one norm feeds both blocks (GPT-J, Cohere): the MLP's input is attention's, kept once
    return mlp


# Zamba2's hybrid layers run a shared transformer block before their Mamba-2 mixer: a norm and attention over the
# hidden state beside the original embeddings (2 x hidden wide), a norm and a gated MLP, a linear layer back into the
# stream, then the mixer's own norm, and its MLP's adapter's rank output (ModelSpec.adapter_rank; measured on its
# layer at 512 tokens: 216.9 units, 216.3 counted, where its attention block and mixer alone had been: 0.81 of it).
# Under the script's recipes (measured on its layer alike, 2026-12-08): over fp32 weights under autocast its wide norm
# and the mixer's read the fp32 residual (3 widths; its MLP's norm reads attention's 16-bit output), and its key and
# value projections keep their own casts of the wide input (4 widths) as its MLP's adapter does of the MLP's (1);
# under LoRA the key and value adapters' casts, adapters on its MLP's gate-up and down projections and its linear
# layer beside attention's and the mixer's, and its frozen adapter's rank output gone (the script leaves the adapter
# lists frozen). The adapters use_shared_attention_adapter puts on its query, key and value are not counted.
SHARED_BLOCK_TYPES = frozenset({"zamba2"})
SHARED_BLOCK_NORM_WIDTHS = 4  # the block's two-wide norm, its MLP's and the mixer's
SHARED_BLOCK_RESIDUAL_NORM_WIDTHS = 3
SHARED_BLOCK_CASTS = {"autocast": 5, "lora": 4}
SHARED_BLOCK_ADAPTERS = 3


def _shared_block(spec: ModelSpec, layer: int) -> bool:
    """Whether `layer` runs a shared transformer block before its state mixer (SHARED_BLOCK_TYPES' hybrid layers)."""
    return spec.model_type in SHARED_BLOCK_TYPES and spec.mixer(layer) == "attention+state"


def _shared_block_units(spec: ModelSpec, layer: int, norm: float) -> float:
    """A Zamba2 hybrid layer's shared transformer block and the mixer's norm (SHARED_BLOCK_TYPES)."""
    h = spec.hidden_size
    # attention as a layer's (its norms apart), over an input twice the hidden state's width
    attention = _attention_block_units(spec, layer, norm, block_norms=0.0) + ATTENTION_INPUT_UNITS
    # the MLP beside its adapter's rank output (the adapter's second layer's input)
    mlp = MLP_BASE_UNITS + MLP_WIDTH_UNITS[spec.mlp_gated] * spec.intermediate_size / h + 2 * spec.adapter_rank / h
    return norm * SHARED_BLOCK_NORM_WIDTHS + attention + mlp + ATTENTION_INPUT_UNITS  # the linear layer's input


def _block_norms(spec: ModelSpec) -> int:
    """The norms of one block (a mixer or an MLP): two where the model also norms each block's output (Gemma's four a
    layer), one elsewhere (where a layer has one block, as Mamba's and Nemotron-H's, its one norm; where attention
    and the MLP run side by side off one norm, that one: GPT-J's, Cohere's)."""
    return max(spec.norms_per_layer // 2, 1)


def norms_run(spec: ModelSpec, layer: int) -> int:
    """The norms `layer` runs: its blocks' (`_block_norms`), or the one both side-by-side blocks read."""
    if spec.parallel_attention and spec.norms_per_layer == 1:
        return 1
    if _shared_block(spec, layer):
        return SHARED_BLOCK_NORM_WIDTHS  # in widths of the hidden state (`_shared_block_units`)
    blocks = (spec.mixer(layer) != "none") + spec.has_mlp(layer)
    return _block_norms(spec) * blocks


def state_mixer_kind(spec: ModelSpec, layer: int) -> str | None:
    """The kind of `layer`'s state mixer (mamba, mamba2, ...), alone or beside attention, else None."""
    return spec.state.kind if "state" in spec.mixer(layer) and spec.state is not None else None


# What a recipe changes in a layer's activations, measured as `layer_activation_units` was (units; at two token
# counts, benchmarks/bench_activation_memory.py): peft's LoRA as the script runs it is `lora_units`; fp32 weights
# under bf16 autocast (a full fine-tune without FSDP) are `autocast_units`, and a bf16 cast of the layer's weights
# held, 2 bytes a parameter.
# Under bf16 autocast over fp32 weights the residual stream is fp32, and what a block keeps differs from a bf16 model's
# by three things, measured block by block (benchmarks/bench_activation_memory.py, autocast blocks: the tensors each
# submodule saves, on 22 layers of 16 families, 2026-12-07):
# - a norm that reads the residual keeps it (LayerNorm) or its normalized copy (Llama's RMSNorm) at 4 bytes, not 2:
#   2 units a norm; none where the norm keeps fp32 in a 16-bit model as well (FP32_WEIGHT_NORM_TYPES, Cohere's
#   UPCAST_LAYERNORM_TYPES, OLMo's weightless "F.layer_norm(hidden_states.to(torch.float32)") or reads the blocks'
#   16-bit outputs only (POST_NORM_TYPES); a parallel block's two norms of one input keep it once (GPT-NeoX: 2.02 and
#   0.02);
AUTOCAST_NORM_UNITS = 2.0
POST_NORM_TYPES = frozenset({"olmo2", "olmo3", "exaone4"})  # "hidden_states = self.post_attention_layernorm(...)"
# - autocast casts a linear layer's fp32 input to bf16 for each layer anew (it caches the weights' casts only), so
#   where a bf16 model's projections share the norm's output, each keeps its own cast: 2 units for each linear layer
#   beyond the first that reads one input (`_readers`: a Llama layer's key and value, up projections, 6 units; a fused
#   projection's none; Qwen2-MoE's router, shared expert and its gate, 6 more); a router that upcasts its input to fp32
#   (FP32_ROUTER_TYPES) runs its matmul in bf16 under autocast and keeps a cast, not the fp32 copy (-4 units);
AUTOCAST_CAST_UNITS = 2.0
# - the rotary tables are fp32 (the model's dtype), 2 more bytes a rotary dimension for cos and sin each, once a model
#   (`rotary_table_units` with fp32 weights). A state mixer's own activations are priced as `layer_activation_units`
#   prices them: its casts beside are its input projections' (and a Mamba mixer's inner copy).
# A Llama layer: 4 + 6 = 10, and its model's tables 4 x 128 / 4096 = 0.125 once (0.5 at the measured one-layer
# model's 32 / 256: 10.5 there); Mixtral's, Phi-3's, OLMo 2's, DeepSeek-V3's and Qwen2-MoE's one-layer models 8.5, 4.5,
# 6.0, 6.2 and 14.5 (a flat 10.5, the Llama layer's, had been counted for all).


def _readers(spec: ModelSpec, layer: int) -> tuple[int, int]:
    """The linear layers that read the attention block's normalized input and the MLP block's, each (transformers'
    modeling files): separate query, key and value projections, a fused one, or latent attention's query and
    compressed key-value projections; a state mixer's input projections; a gated MLP's gate and up projections unless
    fused; a mixture of experts' router, its shared expert's projections and the shared expert's gate (the routed
    experts read a gathered copy)."""
    kind = spec.mixer(layer)
    mixer = 0
    if "attention" in kind:
        mixer += 1 if spec.model_type in FUSED_QKV_TYPES else 2 if spec.mla is not None else 3
    if "state" in kind and spec.state is not None:
        # beside attention a state mixer reads its own copy of the input (Falcon-H1's attention a scaled one): its
        # first reader takes the cast attention's first does not share
        mixer += STATE_MIXER_READERS.get(spec.state.kind, 1) - ("attention" in kind)
    gated = 2 if spec.mlp_gated and spec.model_type not in FUSED_GATE_UP_TYPES else 1
    m = spec.moe
    if not spec.has_mlp(layer):
        mlp = 0
    elif m is not None and spec.layer_moe[layer]:
        mlp = 1 + (gated if m.shared_intermediate_size else 0) + (1 if m.shared_expert_gate else 0)
    else:
        mlp = gated
    return mixer, mlp


def _shared_input_casts(spec: ModelSpec, mixer: int, mlp: int) -> int:
    """The casts of one input beyond the first that `mixer` and `mlp` linear layers reading their blocks' inputs keep
    (`_readers`): a block's readers share one input, or both blocks' where one norm feeds them side by side (GPT-J)."""
    if spec.parallel_attention and spec.norms_per_layer == 1:
        return max(mixer + mlp - 1, 0)
    return max(mixer - 1, 0) + max(mlp - 1, 0)


def autocast_units(spec: ModelSpec, layer: int) -> float:
    """What fp32 weights under bf16 autocast add to `layer_activation_units` (AUTOCAST_NORM_UNITS, AUTOCAST_CAST_UNITS):
    the norms that read the fp32 residual, the casts of a shared input (the model's fp32 rotary tables are
    `rotary_table_units`'; a layer's own, RecurrentGemma's and GPT-J's, are the layer's)."""
    h = spec.hidden_size
    mixer, mlp = _readers(spec, layer)
    fp32_norms = spec.model_type in FP32_WEIGHT_NORM_TYPES | UPCAST_LAYERNORM_TYPES | POST_NORM_TYPES \
        or spec.norm == "nonparametric"
    # one norm a block reads the residual (a parallel block's norms read one input, kept once)
    norms = 0 if fp32_norms else 1 if spec.parallel_attention else (spec.mixer(layer) != "none") + spec.has_mlp(layer)
    casts = _shared_input_casts(spec, mixer, mlp)
    if _shared_block(spec, layer):  # its wide norm and the mixer's read the residual; its MLP's norm attention's output
        norms, casts = SHARED_BLOCK_RESIDUAL_NORM_WIDTHS, SHARED_BLOCK_CASTS["autocast"]
    units = AUTOCAST_NORM_UNITS * norms + AUTOCAST_CAST_UNITS * casts
    state = state_mixer_kind(spec, layer)
    if state:  # what the mixer's own path keeps differently (`state_mixer_activations`)
        units += state_mixer_recipe_units(spec, lora=False, autocast=True)
    routed = spec.moe is not None and spec.layer_moe[layer] and spec.has_mlp(layer)
    if routed and spec.model_type in FP32_ROUTER_TYPES:
        units -= FP32_ROUTER_UNITS
    if routed and dense_experts(spec.model_type):  # each expert's copy of the fp32 input, weighted by its score
        units += AUTOCAST_NORM_UNITS * spec.moe.num_experts
    if "attention" in spec.mixer(layer) and spec.model_type in LAYER_ROTARY_TYPES:
        units += (_rotary_bytes(spec, fp32_weights=True) - _rotary_bytes(spec, fp32_weights=False)) \
            * _rotary_width(spec) / h
    return units


# peft's LoRA as the rendered script runs it (a frozen 16-bit base, fp32 adapters under bf16 autocast, dropout 0;
# QLoRA's NF4 base is counted alike, unmeasured: bitsandbytes' CPU path computes in fp32, and on CUDA its 4-bit matmul
# keeps its input in ctx.tensors and prepare_model_for_kbit_training leaves the norms and embedding in fp32; LoRA over
# fp32 weights without autocast is counted without the casts, unmeasured too)
# changes a layer's count by what its frozen weights no longer need and what its adapters keep, measured block by
# block on the second layer of two-layer models (the first layer's input needs no gradient, the embedding being
# frozen: it keeps less, and is counted as the others) (benchmarks/bench_activation_memory.py, LoRA rows, 2026-12-07):
# the terms read from 29 layers of 19 families; EXAONE 4's, OLMo 3's and two Llama 4 layers, measured after, come out
# exact. A flat 0.42, a first Llama layer's, had been counted: 4.4 on a Llama layer, -12.6 on Gemma 3's, -9.6 on
# DeepSeek-V3's, +8.4 on OLMo's.
# - A frozen linear layer keeps nothing for its weight, and an adapter keeps its own bf16 cast of its input (peft casts
#   it to the adapter's fp32, autocast back for the matmul): 2 units (AUTOCAST_CAST_UNITS) for each adapted layer
#   beyond the first that reads one input (a Llama layer's key, value and up projections; none for a fused one), and
#   the output projection's cast where attention's kernel keeps its output in the storage the projection reads (as
#   flash kernels do); none where the projection reads a copy only it keeps (`output_copied`: measured on Phi-3's,
#   GPT-NeoX's, StableLM's, GLM-4.5's and latent attention's layers on this CPU; GPT-2's and GPT-J's keep the cast).
#   Each adapter also keeps its rank's output.
# - A frozen norm keeps nothing for its weight: a Llama RMSNorm its 16-bit normalized copy (2 units), one that
#   multiplies its weight in fp32 its fp32 copy (4: FP32_WEIGHT_NORM_TYPES, Cohere's), a LayerNorm nothing it drops
#   (its input serves the input's gradient too).
# - A mixture of experts' router and shared experts stay frozen (the script's MOE_FROZEN): the input only they kept
#   goes (MLP_BASE_UNITS), the shared experts' down projections' inputs, and an fp32 router's copy (FP32_ROUTER_UNITS);
#   the routed experts, merged with their adapters, keep what they kept.
LORA_NORM_UNITS = {"rmsnorm": 2.0, "layernorm": 0.0, "nonparametric": 0.0}
LORA_FP32_NORM_UNITS = 4.0


def lora_units(spec: ModelSpec, layer: int, rank: int, autocast: bool, flash_kernel: bool = True) -> float:
    """What peft's LoRA of `rank` (LORA_NORM_UNITS, and above) changes in `layer`'s count: the adapters' casts of their
    inputs under autocast (an fp32 model's adapters read its fp32 inputs as they are), the frozen norms' and frozen
    layers' tensors gone. `flash_kernel`: attention runs a flash kernel (on a CPU; `output_copied`)."""
    h, m = spec.hidden_size, spec.moe
    mixer, mlp = _readers(spec, layer)
    routed = m is not None and spec.layer_moe[layer] and spec.has_mlp(layer)
    frozen_mlp = m is not None  # a mixture of experts' dense MLPs and shared experts take no adapters
    casts = _shared_input_casts(spec, mixer, 0 if frozen_mlp else mlp)  # a frozen MLP's layers take no cast
    shared_block = _shared_block(spec, layer)
    if shared_block:
        casts = SHARED_BLOCK_CASTS["lora"]
    attention = "attention" in spec.mixer(layer)
    # (a gated attention's output projection reads the gated product, which only it keeps: no cast beside it)
    shared_output = attention and not output_copied(spec, flash_kernel) and not spec.attn_output_gate
    units = AUTOCAST_CAST_UNITS * (casts + (spec.num_heads * spec.v_head_dim / h if shared_output else 0.0)) \
        if autocast else 0.0
    adapters = (5 if spec.mla is not None and spec.mla.q_lora_rank else 4 if spec.mla is not None
                else 2 if spec.model_type in FUSED_QKV_TYPES else 4) if attention else 0
    if not frozen_mlp and spec.has_mlp(layer):
        adapters += 2 if spec.model_type in FUSED_GATE_UP_TYPES or not spec.mlp_gated else 3
    state = state_mixer_kind(spec, layer)
    adapters += STATE_MIXER_ADAPTERS.get(state, 0)  # the mixer's projections adapted, the rest frozen
    if shared_block:  # its MLP's and linear layer's adapters; its frozen adapter's rank output goes
        adapters += SHARED_BLOCK_ADAPTERS
        units -= 2 * spec.adapter_rank / h
    if state:  # the mixer's frozen parts and its path's casts (`state_mixer_activations`)
        units += state_mixer_recipe_units(spec, lora=True, autocast=autocast)
    units += adapters * 2 * rank / h
    fp32_norm = spec.model_type in FP32_WEIGHT_NORM_TYPES | UPCAST_LAYERNORM_TYPES
    norm = LORA_FP32_NORM_UNITS if fp32_norm else LORA_NORM_UNITS.get(spec.norm, 0.0)
    widths: float = norms_run(spec, layer)
    if attention and spec.qk_norm in ("head", "full"):  # an L2 norm has no weight to free
        widths += (spec.num_heads + spec.num_kv_heads) * spec.head_dim / h
    if attention and spec.mla is not None:
        widths += ((spec.mla.q_lora_rank or 0) + spec.mla.kv_lora_rank) / h
    units -= norm * widths
    if routed:
        units -= MLP_BASE_UNITS + AUTOCAST_CAST_UNITS * m.shared_intermediate_size / h \
            + (FP32_ROUTER_UNITS if spec.model_type in FP32_ROUTER_TYPES else 0.0)
    elif frozen_mlp and spec.has_mlp(layer):  # a dense layer's frozen MLP: its input, its down projection's
        units -= MLP_BASE_UNITS + AUTOCAST_CAST_UNITS * spec.intermediate_size / h
    return units
