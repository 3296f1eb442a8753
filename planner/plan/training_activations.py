"""What a training step's decoder layers keep for their backward, in bytes per token and hidden unit at 16 bits (a
"unit"): a bf16 layer's own activations by architecture (`layer_activation_units`), what the rendered script's
recipes change in them (fp32 weights under bf16 autocast: `autocast_units`; peft's LoRA: `lora_units`), and what
attention over packed documents keeps beyond them (`packed_attention_units`). Each term is measured on transformers'
eager layers under autograd's saved-tensor hooks (benchmarks/bench_activation_memory.py); `training` turns them into
bytes."""

from __future__ import annotations

from ..catalog.engine_refusals import dense_experts, sdpa_refused
from ..schema import ModelSpec

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
ATTENTION_BASE_UNITS = 2.14  # the block's input and its output projection's, rotary, the kernel's statistics
# Qwen3-Next's gated attention (its query projection also yields a gate: "attn_output = attn_output *
# torch.sigmoid(gate)") keeps, per query width, the gate's half of the projection, its sigmoid and the gated product
# beside the attention's output: 5.75 units, measured on its layer at four widths (5.70-5.75 per query width over
# hidden, where none had been counted: 0.92 of the layer)
OUTPUT_GATE_UNITS = 5.75
QUERY_UNITS = 4.5  # per query width over hidden: the queries and the attention's output
KV_UNITS = 4.0  # per key-value width over hidden: the keys and values, 2 bytes each
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
EXPERT_COPY_UNITS = 4.15  # per routed expert a token goes to: its gathered input and its output before the weighting
ROUTER_UNITS = 0.2  # the router's logits and weights
# DeepSeek's and GLM-4.5's routers upcast their input to fp32 first (DeepseekV2TopkRouter, DeepseekV3TopkRouter,
# Glm4MoeTopkRouter: "F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))"), which the matmul
# keeps; the other catalog families' routers take the 16-bit input (transformers 5.24's modeling files)
FP32_ROUTER_UNITS = 4.0
FP32_ROUTER_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "glm4_moe"})


def layer_activation_units(spec: ModelSpec, layer: int) -> float:
    """The bytes per token and hidden unit `layer` keeps for its backward at 16 bits: its attention block (norm,
    projections, fused attention) and its MLP block (norm, and a dense MLP, or the routed experts a token goes to and
    the shared ones). A Mamba or Mamba-2 mixer is priced as transformers' PyTorch path runs it (`mamba_mixer_units`,
    `mamba2_mixer_units`); another state-space or linear-attention mixer as attention of the model's widths, its own
    activations not modelled apart.
    Latent attention is priced at the widths of the keys and values it expands. A layer without a mixer (Nemotron-H's
    MLP layers) or without an MLP (Mamba's, Nemotron-H's mixer layers) has no such block, nor its norms."""
    h = spec.hidden_size
    norm = FP32_WEIGHT_NORM_UNITS if spec.norm == "rmsnorm" and spec.model_type in FP32_WEIGHT_NORM_TYPES \
        else UPCAST_LAYERNORM_UNITS if spec.model_type in UPCAST_LAYERNORM_TYPES else NORM_UNITS.get(spec.norm, 0.0)
    # a block's norms (Gemma's after the attention and the MLP as well); one norm feeding both blocks is attention's
    block_norms = norm * _block_norms(spec)
    mlp_norms = 0.0 if spec.parallel_attention and spec.norms_per_layer == 1 else block_norms
    latent = 0.0
    if spec.mla is not None:
        a = spec.mla
        q = spec.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        kv = spec.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) / 2
        # the norms of the compressed query and key-value (q_a_layernorm, kv_a_layernorm), each kept as a layer's
        # norm is; and the values the kernel keeps are a view of kv_b_proj's output, which keeps the keys' part of it
        latent = norm * ((a.q_lora_rank or 0) + a.kv_lora_rank) / h + 2 * spec.num_heads * a.qk_nope_head_dim / h
    else:
        q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    attention = block_norms + latent + ATTENTION_BASE_UNITS + QUERY_UNITS * q / h + KV_UNITS * kv / h \
        + (OUTPUT_GATE_UNITS * q / h if spec.attn_output_gate else 0.0)
    if spec.model_type in FUSED_QKV_TYPES and spec.rotary_fraction > 0 and not spec.learned_positions:
        # the values the kernel keeps are a view of the fused projection's output, which keeps the queries' and keys'
        # part of it alive beside their rotated copies (measured on Phi-3's layer: 4 units where separate values keep
        # 1); without rotary positions the kernel keeps the queries and keys as views of it too (GPT-2's, measured)
        attention += 2 * (q + kv) / h
    if spec.qk_norm == "l2":  # Llama 4's weightless norm on its rotary layers (its chunked ones) keeps an fp32 copy
        rotary = not spec.layer_chunks or spec.layer_chunks[layer] is not None
        attention += L2_QK_NORM_UNITS * (q + kv) / h if rotary else 0.0
    elif spec.qk_norm != "none":  # a norm over the queries and the keys (per head or whole), kept as a norm keeps
        attention += norm * (q + kv) / h
    width = MLP_WIDTH_UNITS_BY_TYPE.get(spec.model_type, MLP_WIDTH_UNITS[spec.mlp_gated])
    m = spec.moe
    if m is not None and spec.layer_moe[layer]:
        # every expert a token goes through: its top-k, or all where transformers runs them densely (Llama 4's, each
        # keeping its weighted copy of the input, measured: 4 experts 40 units, 8 experts 80)
        routed = (m.num_experts if dense_experts(spec.model_type) else m.top_k) \
            * (EXPERT_COPY_UNITS + width * m.expert_intermediate_size / h)
        router = ROUTER_UNITS + (FP32_ROUTER_UNITS if spec.model_type in FP32_ROUTER_TYPES else 0.0)
        mlp = mlp_norms + MLP_BASE_UNITS + router + routed
        if m.shared_intermediate_size:
            mlp += MLP_BASE_UNITS + width * m.shared_intermediate_size / h
    else:
        mlp = mlp_norms + MLP_BASE_UNITS + width * spec.intermediate_size / h
    if spec.parallel_attention and spec.norms_per_layer == 1:
        mlp -= MLP_BASE_UNITS  # one norm feeds both blocks (GPT-J, Cohere): the MLP's input is attention's, kept once
    state = _state_mixer(spec, layer)
    if state in STATE_MIXER_UNITS:
        attention = block_norms + STATE_MIXER_UNITS[state](spec)
    return (attention if spec.mixer(layer) != "none" else 0.0) + (mlp if spec.has_mlp(layer) else 0.0)


def _block_norms(spec: ModelSpec) -> int:
    """The norms of one block (a mixer or an MLP): two where the model also norms each block's output (Gemma's four a
    layer), one elsewhere (where a layer has one block, as Mamba's and Nemotron-H's, its one norm; where attention
    and the MLP run side by side off one norm, that one: GPT-J's, Cohere's)."""
    return max(spec.norms_per_layer // 2, 1)


def _norms(spec: ModelSpec, layer: int) -> int:
    """The norms `layer` runs: its blocks' (`_block_norms`), or the one both side-by-side blocks read."""
    if spec.parallel_attention and spec.norms_per_layer == 1:
        return 1
    blocks = (spec.mixer(layer) != "none") + spec.has_mlp(layer)
    return _block_norms(spec) * blocks


# transformers' Mamba mixer without the mamba-ssm kernels (its PyTorch path, slow_forward: what the rendered script
# runs, whose packages do not include them; transformers warns "falling back to its reference PyTorch
# implementation") discretizes the whole sequence in fp32 and scans it token by token, keeping for each token and
# inner channel its decay, its input term and its state for every state dimension: 14.0 bytes per channel and state
# dimension, and 20.1 per channel beside (measured on Mamba's and Jamba's mixers at inner widths of 2 and 4 x hidden
# and state sizes of 8 and 16, within 0.1%; benchmarks/bench_activation_memory.py). The fused kernels keep far less
# (not counted: the script does not install them).
MAMBA_CHANNEL_UNITS = 20.1
MAMBA_STATE_UNITS = 14.0


# transformers' Mamba-2 mixer without the kernels (torch_forward and mamba2_chunk_scan: what the script runs) keeps, per
# token, tensor by tensor as its forward saves them (read off a tiny layer's saved tensors, 2026-12-07): its input (2
# bytes a hidden unit), the whole input projection and the convolution's output (2 bytes a channel), 42 bytes per
# inner channel (the fp32 input, its dt-scaled copy and the copies the einsums make of them, the inter-chunk output,
# the gated norm's five fp32 tensors, the output projection's input), 12 per head and chunk position (the decay
# matrix, the scores, their masked product and its copy), 20 per head and state (B and C in fp32 and their copies),
# 8 per inner channel and state a chunk (the chunk states' copies) and 20 per head. Measured on whole layers at the
# catalog's widths, 1,024 tokens: mamba2-2.7b 290.2 units (counted 289.1), Mamba-Codestral 291.7 (290.7), Nemotron-H
# 8B's Mamba layer 253.7 (252.7); a Mamba-2 layer had been priced as attention of no heads: 8.1.
MAMBA2_CHANNEL_BYTES = 42.0
MAMBA2_HEAD_CHUNK_BYTES = 12.0
MAMBA2_HEAD_STATE_BYTES = 20.0
MAMBA2_CHUNK_STATE_BYTES = 8.0
MAMBA2_HEAD_BYTES = 20.0


def _mamba2_widths(spec: ModelSpec) -> tuple[int, int, int, int, float, int]:
    """A Mamba-2 mixer's (inner width, convolved channels, input projection's width, heads, states, chunk)."""
    h, st = spec.hidden_size, spec.state
    inner, conv = st.out_proj_inputs, st.conv_channels
    projected = (st.linear_params - inner * h) // h  # z, x, B, C and dt
    return inner, conv, projected, projected - inner - conv, st.recurrent_state_elements / inner, st.scan_chunk or 256


def mamba2_mixer_units(spec: ModelSpec) -> float:
    """A Mamba-2 mixer's units beside its norm, as its PyTorch path keeps them (MAMBA2_*)."""
    h = spec.hidden_size
    inner, conv, projected, heads, states, chunk = _mamba2_widths(spec)
    kept = 2 * h + 2 * projected + 2 * conv + MAMBA2_CHANNEL_BYTES * inner + MAMBA2_HEAD_BYTES * heads \
        + MAMBA2_HEAD_CHUNK_BYTES * heads * chunk + MAMBA2_HEAD_STATE_BYTES * heads * states \
        + MAMBA2_CHUNK_STATE_BYTES * inner * states / chunk
    return kept / h


# Under bf16 autocast the scan's einsums run in bf16, so the copies they keep of their fp32 inputs (6 bytes an inner
# channel, 8 a head and state, 4 a head and chunk position, 4 an inner channel and state a chunk) are kept at half;
# over fp32 weights the convolution also keeps its own cast of x, B and C, not the whole projection (2 bytes an inner
# channel and a head fewer). Under LoRA its frozen D, A, gated norm and output projection keep nothing for their
# gradients (the fp32 input D scales, dt where A scales it, the gated norm's fp32 output, the projection's input: 10
# bytes an inner channel, 4 a head). Read off the same layer's saved tensors under each recipe (2026-12-07): its mixer
# -37.06 units under autocast over fp32 weights, the layer -55.06 under LoRA, counted alike.
def mamba2_recipe_units(spec: ModelSpec, lora: bool, autocast: bool) -> float:
    """What autocast (over fp32 weights, or under LoRA) and LoRA's frozen weights change in a Mamba-2 mixer."""
    inner, conv, projected, heads, states, chunk = _mamba2_widths(spec)
    halved = 6 * inner + 8 * heads * states + 4 * heads * chunk + 4 * inner * states / chunk if autocast else 0.0
    changed = -halved - (10 * inner + 4 * heads if lora else 2 * inner + 2 * heads if autocast else 0.0)
    return changed / spec.hidden_size


# LFM2's short convolution without the causal-conv1d kernels (its torch fallback, causal_conv1d_fn: what the script
# runs) keeps its input, and per convolved channel its input projection's B, C and x (6 bytes), their product B·x the
# convolution reads (2), the convolution's output C multiplies (2) and the output projection's input (2): 12, read off
# its layer's saved tensors (2026-12-07, within 0.01 units of the measured mixer)
SHORT_CONV_CHANNEL_BYTES = 12.0


def short_conv_mixer_units(spec: ModelSpec) -> float:
    """A short-convolution mixer's units beside its norm (SHORT_CONV_CHANNEL_BYTES)."""
    return MLP_BASE_UNITS + SHORT_CONV_CHANNEL_BYTES * spec.state.conv_channels / spec.hidden_size


# Qwen3-Next's gated DeltaNet without the flash-linear-attention kernels (torch_chunk_gated_delta_rule, its chunk of 64
# tokens: what the script runs) keeps, per token, read off its layer's saved tensors (2026-12-07): its input (2 bytes
# a hidden unit), the convolution's input and output (4 a convolved channel); per key channel repeated to every value
# head 32 (the fp32 queries and keys and their L2 norms' inputs, the keys scaled by beta, the chunks' copies for
# their matmuls, the cumulative-decay keys, the decayed queries and keys); per value channel 30 (the fp32 values
# scaled by beta, the triangular solve's input, each chunk's new values, the gated norm's fp32 input, gate and
# product and its 16-bit output, the output projection's input); per value head and chunk position 20 (the decay
# matrix, the two intra-chunk score matrices, the solved system, the masked scores); per value head 38 (beta, the
# decays, the norms' statistics); and per state element 4 a chunk (each chunk's fp32 state, which the next reads).
DELTANET_CHUNK = 64  # transformers' torch_chunk_gated_delta_rule: "chunk_size: int = 64", as its caller leaves it
DELTANET_CONV_BYTES = 4.0
DELTANET_KEY_BYTES = 32.0
DELTANET_VALUE_BYTES = 30.0
DELTANET_HEAD_CHUNK_BYTES = 20.0
DELTANET_HEAD_BYTES = 38.0
DELTANET_STATE_BYTES = 4.0


def _deltanet_widths(spec: ModelSpec) -> tuple[int, int, float, float]:
    """A gated DeltaNet's (value heads, value width, keys repeated to every value head, state elements a chunk)."""
    st = spec.state
    heads, values = st.heads, st.out_proj_inputs
    return heads, values, st.recurrent_state_elements * heads / values, st.recurrent_state_elements / DELTANET_CHUNK


def gated_deltanet_mixer_units(spec: ModelSpec) -> float:
    """A gated DeltaNet mixer's units beside its norm, as its PyTorch path keeps them (DELTANET_*)."""
    h = spec.hidden_size
    heads, values, keys, states = _deltanet_widths(spec)
    kept = 2 * h + DELTANET_CONV_BYTES * spec.state.conv_channels + DELTANET_KEY_BYTES * keys \
        + DELTANET_VALUE_BYTES * values + DELTANET_HEAD_CHUNK_BYTES * heads * DELTANET_CHUNK \
        + DELTANET_HEAD_BYTES * heads + DELTANET_STATE_BYTES * states
    return kept / h


# Under bf16 autocast the delta rule's matmuls run in bf16: each keeps bf16 casts of its fp32 operands where it kept
# the fp32 tensors (6 bytes more per repeated key channel, 6 fewer per head and chunk position, 4 more per state
# element a chunk: the state is cast once for each of the two matmuls that read it). Over fp32 weights the gated
# norm keeps 2 bytes a value channel more; under LoRA its frozen weight frees 2, and the frozen decay (A_log) its
# softplus (4 a head). Fitted to the mixer's change on ten layers of 2-8 value heads, key and value widths of 16-64
# and two hidden sizes (2026-12-07): autocast exact, LoRA within 0.03 units.
def gated_deltanet_recipe_units(spec: ModelSpec, lora: bool, autocast: bool) -> float:
    """What autocast (over fp32 weights, or under LoRA) and LoRA's frozen weights change in a gated DeltaNet mixer."""
    heads, values, keys, states = _deltanet_widths(spec)
    cast = 6 * keys - 6 * heads * DELTANET_CHUNK + 4 * states if autocast else 0.0
    changed = cast - (2 * values + 4 * heads if lora else -2 * values if autocast else 0.0)
    return changed / spec.hidden_size


def _state_mixer(spec: ModelSpec, layer: int) -> str | None:
    """The kind of `layer`'s state mixer where it is the layer's only mixer (mamba, mamba2, ...), else None."""
    return spec.state.kind if spec.mixer(layer) == "state" and spec.state is not None else None


def mamba_mixer_units(spec: ModelSpec) -> float:
    """A Mamba mixer's units beside its norm: its input (the input projection's), its inner width's input to the x
    and output projections, and the PyTorch path's scan (MAMBA_CHANNEL_UNITS, MAMBA_STATE_UNITS)."""
    h, inner = spec.hidden_size, spec.state.out_proj_inputs
    state = spec.state.recurrent_state_elements / inner
    return MLP_BASE_UNITS + 4 * inner / h + inner / h * (MAMBA_CHANNEL_UNITS + MAMBA_STATE_UNITS * state)


# RecurrentGemma's recurrent block (its PyTorch scan, token by token) keeps its input, and per recurrence channel 36
# bytes: the GELU branch's input, the convolution's input, the RG-LRU's 26 (its block-diagonal gates' input, their
# sigmoids, the decays and normalizers, the fp32 scan's per-token gate and state), the gated product's two factors and
# the output projection's input; the heads of its gates do not change it (measured on layers of 256 and 384 channels
# in 4 and 8 heads, 2026-12-07: exact)
RGLRU_CHANNEL_BYTES = 36.0
# Under autocast over fp32 weights its two block-diagonal gates (baddbmm) keep bf16 casts of their input and weights:
# 6 bytes a channel more; under LoRA, frozen, they keep no copy of their input: 2 fewer (measured alike, exact)
RGLRU_AUTOCAST_BYTES = 6.0
RGLRU_FROZEN_GATE_BYTES = 2.0


def rglru_mixer_units(spec: ModelSpec) -> float:
    """An RG-LRU recurrent block's units beside its norm (RGLRU_CHANNEL_BYTES)."""
    return MLP_BASE_UNITS + RGLRU_CHANNEL_BYTES * spec.state.conv_channels / spec.hidden_size


# the state mixers whose own activations are counted (`layer_activation_units`); RWKV's are not
STATE_MIXER_UNITS = {"mamba": mamba_mixer_units, "mamba2": mamba2_mixer_units, "short_conv": short_conv_mixer_units,
                     "gated_deltanet": gated_deltanet_mixer_units, "rglru": rglru_mixer_units}


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
# - the rotary tables are fp32 (the model's dtype; "cos.to(dtype=x.dtype)") and the query's rotation keeps them:
#   2 more bytes per rotary dimension for cos and sin each; none where they are fp32 in a 16-bit model as well (OLMo's
#   tables, DeepSeek-V2's and Llama 4's complex rotation of "xq.float()") or where there are none (Jamba, and Granite
#   4's default "position_embedding_type": None), nor on the full-attention layers of a windowed EXAONE 4 or
#   Cohere 2, which rotate their window layers only (NOPE_FULL_LAYER_TYPES: "if self.sliding_window is not None:
#   query_states, key_states = apply_rotary_pos_emb(...)"). A state mixer's own activations are priced as
#   `layer_activation_units` prices them: its casts beside are its input projections' (and a Mamba mixer's inner copy).
NOPE_FULL_LAYER_TYPES = frozenset({"exaone4", "cohere2"})
FP32_ROTARY_TYPES = frozenset({"olmo", "olmo2", "olmo3", "deepseek_v2", "llama4", "llama4_text", "jamba",
                               "granitemoehybrid"})
# A Llama layer: 4 + 6 + 4 x 128 / 4096 = 10.1 (10.5 at the measured layer's 32 / 256); a Mixtral layer 8.5, Phi-3's
# 4.5, OLMo 2's 6.0, DeepSeek-V3's 6.2, Qwen2-MoE's 14.5 (a flat 10.5, the Llama layer's, had been counted for all).


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
        mixer += 2 if spec.state.kind in ("gated_deltanet", "rglru") else 1
    gated = 2 if spec.mlp_gated and spec.model_type not in FUSED_GATE_UP_TYPES else 1
    m = spec.moe
    if not spec.has_mlp(layer):
        mlp = 0
    elif m is not None and spec.layer_moe[layer]:
        mlp = 1 + (gated if m.shared_intermediate_size else 0) + (1 if m.shared_expert_gate else 0)
    else:
        mlp = gated
    return mixer, mlp


def autocast_units(spec: ModelSpec, layer: int) -> float:
    """What fp32 weights under bf16 autocast add to `layer_activation_units` (AUTOCAST_NORM_UNITS, AUTOCAST_CAST_UNITS,
    FP32_ROTARY_TYPES): the norms that read the fp32 residual, the casts of a shared input, the fp32 rotary tables."""
    h = spec.hidden_size
    mixer, mlp = _readers(spec, layer)
    fp32_norms = spec.model_type in FP32_WEIGHT_NORM_TYPES | UPCAST_LAYERNORM_TYPES | POST_NORM_TYPES \
        or spec.norm == "nonparametric"
    # one norm a block reads the residual (a parallel block's norms read one input, kept once)
    norms = 0 if fp32_norms else 1 if spec.parallel_attention else (spec.mixer(layer) != "none") + spec.has_mlp(layer)
    if spec.parallel_attention and spec.norms_per_layer == 1:  # one norm feeds both blocks (GPT-J): one input
        casts = max(mixer + mlp - 1, 0)
    else:
        casts = max(mixer - 1, 0) + max(mlp - 1, 0)
    units = AUTOCAST_NORM_UNITS * norms + AUTOCAST_CAST_UNITS * casts
    state = _state_mixer(spec, layer)
    if state == "mamba":  # its PyTorch path keeps a 16-bit copy of its inner width more (measured on Mamba, Jamba)
        units += AUTOCAST_CAST_UNITS * spec.state.out_proj_inputs / h
    elif state == "mamba2":
        units += mamba2_recipe_units(spec, lora=False, autocast=True)
    elif state == "gated_deltanet":
        units += gated_deltanet_recipe_units(spec, lora=False, autocast=True)
    elif state == "rglru":
        units += RGLRU_AUTOCAST_BYTES * spec.state.conv_channels / h
    routed = spec.moe is not None and spec.layer_moe[layer] and spec.has_mlp(layer)
    if routed and spec.model_type in FP32_ROUTER_TYPES:
        units -= FP32_ROUTER_UNITS
    if routed and dense_experts(spec.model_type):  # each expert's copy of the fp32 input, weighted by its score
        units += AUTOCAST_NORM_UNITS * spec.moe.num_experts
    nope = spec.model_type in NOPE_FULL_LAYER_TYPES and spec.layer_windows[layer] is None \
        and any(w is not None for w in spec.layer_windows)
    if "attention" in spec.mixer(layer) and spec.model_type not in FP32_ROTARY_TYPES and not spec.learned_positions \
            and not nope:
        rotary = spec.mla.qk_rope_head_dim if spec.mla is not None else spec.head_dim * spec.rotary_fraction
        units += 2 * 2 * rotary / h
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
#   flash kernels do); none on the families where this CPU's SDPA left the projection a copy only it kept
#   (LORA_OUTPUT_COPY_TYPES, measured: Phi-3's and GPT-NeoX's fused projections, StableLM's and GLM-4.5's partial
#   rotary, latent attention; GPT-2's and GPT-J's keep the cast). Each adapter also keeps its rank's output.
# - A frozen norm keeps nothing for its weight: a Llama RMSNorm its 16-bit normalized copy (2 units), one that
#   multiplies its weight in fp32 its fp32 copy (4: FP32_WEIGHT_NORM_TYPES, Cohere's), a LayerNorm nothing it drops
#   (its input serves the input's gradient too).
# - A mixture of experts' router and shared experts stay frozen (the script's MOE_FROZEN): the input only they kept
#   goes (MLP_BASE_UNITS), the shared experts' down projections' inputs, and an fp32 router's copy (FP32_ROUTER_UNITS);
#   the routed experts, merged with their adapters, keep what they kept.
LORA_NORM_UNITS = {"rmsnorm": 2.0, "layernorm": 0.0, "nonparametric": 0.0}
LORA_OUTPUT_COPY_TYPES = frozenset({"phi3", "gpt_neox", "stablelm", "glm4_moe", "deepseek_v2", "deepseek_v3"})
LORA_FP32_NORM_UNITS = 4.0


def lora_units(spec: ModelSpec, layer: int, rank: int, autocast: bool) -> float:
    """What peft's LoRA of `rank` (LORA_NORM_UNITS, and above) changes in `layer`'s count: the adapters' casts of their
    inputs under autocast (an fp32 model's adapters read its fp32 inputs as they are), the frozen norms' and frozen
    layers' tensors gone."""
    h, m = spec.hidden_size, spec.moe
    mixer, mlp = _readers(spec, layer)
    routed = m is not None and spec.layer_moe[layer] and spec.has_mlp(layer)
    frozen_mlp = m is not None  # a mixture of experts' dense MLPs and shared experts take no adapters
    casts = max(mixer - 1, 0) + (0 if frozen_mlp else max(mlp - 1, 0))
    if spec.parallel_attention and spec.norms_per_layer == 1 and not frozen_mlp:  # one input for both blocks
        casts = max(mixer + mlp - 1, 0)
    attention = "attention" in spec.mixer(layer)
    # (a gated attention's output projection reads the gated product, which only it keeps: no cast beside it)
    shared_output = attention and spec.mla is None and spec.model_type not in LORA_OUTPUT_COPY_TYPES \
        and not spec.attn_output_gate
    units = AUTOCAST_CAST_UNITS * (casts + (spec.num_heads * spec.v_head_dim / h if shared_output else 0.0)) \
        if autocast else 0.0
    adapters = (5 if spec.mla is not None and spec.mla.q_lora_rank else 4 if spec.mla is not None
                else 2 if spec.model_type in FUSED_QKV_TYPES else 4) if attention else 0
    if not frozen_mlp and spec.has_mlp(layer):
        adapters += 2 if spec.model_type in FUSED_GATE_UP_TYPES or not spec.mlp_gated else 3
    state = _state_mixer(spec, layer)
    # the projections adapted, the rest of the mixer frozen: Mamba's input projection; the short convolution's input
    # and output ones; gated DeltaNet's two input projections and its output one; RG-LRU's x, y and output ones
    adapters += {"mamba": 1, "mamba2": 1, "short_conv": 2, "gated_deltanet": 3, "rglru": 3}.get(state, 0)
    if state == "mamba":  # the frozen x and output projections' inputs go
        units -= 2 * AUTOCAST_CAST_UNITS * spec.state.out_proj_inputs / h
    elif state == "mamba2":
        units += mamba2_recipe_units(spec, lora=True, autocast=autocast)
    elif state == "gated_deltanet":
        units += gated_deltanet_recipe_units(spec, lora=True, autocast=autocast)
    elif state == "rglru":
        units -= RGLRU_FROZEN_GATE_BYTES * spec.state.conv_channels / h
    units += adapters * 2 * rank / h
    fp32_norm = spec.model_type in FP32_WEIGHT_NORM_TYPES | UPCAST_LAYERNORM_TYPES
    norm = LORA_FP32_NORM_UNITS if fp32_norm else LORA_NORM_UNITS.get(spec.norm, 0.0)
    widths: float = _norms(spec, layer)
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


# Model types transformers has no SDPA attention for (`sdpa_refused`), which the script's default attention therefore
# runs eagerly: the score matrix is kept for the backward, in bytes per score (measured on their layers at two
# sequence lengths, as layer_activation_units): Gemma 2's softcapping tanh's 16-bit output, its fp32 softmax and that
# softmax's 16-bit cast (8); gpt-oss's 16-bit softmax over the scores and its sinks' column (2); a Llama layer run
# eagerly keeps 6 (its fp32 softmax and the 16-bit cast), taken for another such model
EAGER_SCORE_BYTES = {"gemma2": 8.0, "gpt_oss": 2.0}
EAGER_SCORE_BYTES_DEFAULT = 6.0


def packed_attention_units(spec: ModelSpec, layer: int, sequence_length: int) -> float:
    """What attention keeps beyond `layer_activation_units` when the rendered script's packed documents are masked
    apart (templates/deploy/train.py.j2, `packed`): transformers builds a block-diagonal mask from the position ids,
    and with a mask on CUDA its SDPA path repeats grouped keys and values to every query head (sdpa_attention's
    use_gqa_in_sdpa: "CUDA ... require no mask"), which the kernel then keeps; and a masked kernel (memory-efficient
    attention, whose backward takes the bias) keeps a 16-bit bias of a row of the sequence per token. Where the model
    has no SDPA attention, eager attention repeats the keys and values too, and keeps its scores (EAGER_SCORE_BYTES) in
    place of the bias. None for a layer without attention (a state-space mixer takes no mask)."""
    if "attention" not in spec.mixer(layer):
        return 0.0
    h = spec.hidden_size
    expanded = 0.0 if spec.mla is not None else KV_UNITS * (spec.num_heads - spec.num_kv_heads) * spec.head_dim / h
    if sdpa_refused(spec.model_type):
        score_bytes = EAGER_SCORE_BYTES.get(spec.model_type, EAGER_SCORE_BYTES_DEFAULT)
        return expanded + spec.num_heads * sequence_length * score_bytes / h
    return expanded + 2 * sequence_length / h
