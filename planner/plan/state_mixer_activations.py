"""What a state mixer (Mamba, Mamba-2, a short convolution, gated DeltaNet, RG-LRU) keeps for its backward as
transformers' PyTorch paths run it (the rendered training script installs none of the fused kernels), in units (bytes
per token and hidden unit), and what the rendered script's recipes (fp32 weights under bf16 autocast, peft's LoRA)
change in it. Each term was read tensor by tensor off tiny layers' saved tensors and checked on whole layers at the
catalog's widths (benchmarks/bench_activation_memory.py); `training_activations` adds the norms and MLPs around it."""

from __future__ import annotations

from ..schema import ModelSpec

INPUT_UNITS = 2.0  # the mixer's 16-bit input, which its input projection keeps


# transformers' Mamba mixer without the mamba-ssm kernels (its PyTorch path, mamba_selective_scan: what the script
# runs, whose packages do not include them; transformers warns "falling back to its reference PyTorch
# implementation") discretizes the whole sequence in fp32 and scans it token by token, keeping for each token and
# inner channel its decay, its input term and its state for every state dimension: 14.0 bytes per channel and state
# dimension, and 20.1 per channel beside (measured on Mamba's and Jamba's mixers at inner widths of 2 and 4 x hidden
# and state sizes of 8 and 16, within 0.1%; benchmarks/bench_activation_memory.py). The fused kernels keep far less
# (not counted: the script does not install them).
MAMBA_CHANNEL_UNITS = 20.1
MAMBA_STATE_UNITS = 14.0


def mamba_mixer_units(spec: ModelSpec) -> float:
    """A Mamba mixer's units beside its norm: its input (the input projection's), its inner width's input to the x
    and output projections, and the PyTorch path's scan (MAMBA_CHANNEL_UNITS, MAMBA_STATE_UNITS)."""
    h, inner = spec.hidden_size, spec.state.out_proj_inputs
    state = spec.state.recurrent_state_elements / inner
    return INPUT_UNITS + 4 * inner / h + inner / h * (MAMBA_CHANNEL_UNITS + MAMBA_STATE_UNITS * state)


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
# Without the gated norm (Falcon-H1's mamba_rms_norm: false, "scan_output * self.act(gate)") its five fp32 tensors
# (20 bytes an inner channel) give way to the gate's SiLU (2) and the fp32 product (4): 28 (read off Falcon-H1's mixer,
# 2026-12-08)
MAMBA2_UNGATED_CHANNEL_BYTES = 28.0
# Falcon-H1 multiplies its input projection by a µP vector kept as a buffer in the weights' dtype ("zxbcdt =
# self.in_proj(input_states) * self.mup_vector"): over fp32 weights under autocast that product is fp32
# (`mamba2_recipe_units`)
MUP_PROJECTION_TYPES = frozenset({"falcon_h1"})
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
    channel = MAMBA2_CHANNEL_BYTES if spec.state.gated_norm else MAMBA2_UNGATED_CHANNEL_BYTES
    kept = 2 * h + 2 * projected + 2 * conv + channel * inner + MAMBA2_HEAD_BYTES * heads \
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
    # without a gated norm (Falcon-H1's) there is no frozen norm's fp32 output to free: 6 bytes an inner channel
    frozen = 10 if spec.state.gated_norm else 6
    changed = -halved - (frozen * inner + 4 * heads if lora else 2 * inner + 2 * heads if autocast else 0.0)
    if autocast and not lora and spec.model_type in MUP_PROJECTION_TYPES:
        # its fp32 µP vector promotes the projection to fp32, which the gate's view keeps whole (4 bytes a projected
        # channel), its dt and its x beside B and C in fp32; the gate's SiLU in fp32, or, into a gated norm, no fp32
        # copy of the gate (Falcon-H1's layers: +21.1 and +10.3 units measured, counted +21.2 and +10.4)
        changed += 4 * projected + 2 * heads + 4 * (conv - inner) + (-4 if spec.state.gated_norm else 2) * inner
    return changed / spec.hidden_size


# LFM2's short convolution without the causal-conv1d kernels (its torch fallback, causal_conv1d_fn: what the script
# runs) keeps its input, and per convolved channel its input projection's B, C and x (6 bytes), their product B·x the
# convolution reads (2), the convolution's output C multiplies (2) and the output projection's input (2): 12, read off
# its layer's saved tensors (2026-12-07, within 0.01 units of the measured mixer)
SHORT_CONV_CHANNEL_BYTES = 12.0


def short_conv_mixer_units(spec: ModelSpec) -> float:
    """A short-convolution mixer's units beside its norm (SHORT_CONV_CHANNEL_BYTES)."""
    return INPUT_UNITS + SHORT_CONV_CHANNEL_BYTES * spec.state.conv_channels / spec.hidden_size


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
    changed = 6 * keys - 6 * heads * DELTANET_CHUNK + 4 * states if autocast else 0.0
    if lora:  # the frozen gated norm's and decay's tensors go
        changed -= 2 * values + 4 * heads
    elif autocast:  # the gated norm over its fp32 weight keeps more
        changed += 2 * values
    return changed / spec.hidden_size


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
    return INPUT_UNITS + RGLRU_CHANNEL_BYTES * spec.state.conv_channels / spec.hidden_size


# An fp32 model's mixers (a full fine-tune without mixed precision: `fp32_activations`) keep their 16-bit tensors at 4
# bytes, their fp32 ones as they were, less the fp32 copies of tensors that are fp32 already, plus views where a bf16
# mixer kept copies. Read tensor by tensor and fitted on tiny layers in fp32 (benchmarks/bench_activation_memory.py,
# 2026-12-08): Mamba's scan 36 bytes a channel and 12 a channel and state (5 layers, within 0.05 units); RG-LRU's 64
# a channel (4 layers, exact); Mamba-2's 40 an inner channel (its gated norm's input copy gone), 20 a head, 12 a head
# and chunk position, 20 a head and state, 8 a channel and state a chunk, and 8 a group and state (its x is a view of
# the convolution's output, which keeps B and C alive) (12 layers, within 1.3 units, the bf16 count's residual); gated
# DeltaNet's keys 48 bytes a repeated key channel, 64 where no value head shares a key head (its queries and keys stay
# views, and its matmuls copy them), its values 36 (12 layers, within 0.2 units). A short convolution's tensors are all
# 16-bit: twice its units.
MAMBA_FP32_CHANNEL_BYTES = 36.0
MAMBA_FP32_STATE_BYTES = 12.0
RGLRU_FP32_CHANNEL_BYTES = 64.0
MAMBA2_FP32 = {"channel": 40.0, "head": 20.0, "head_chunk": 12.0, "head_state": 20.0, "chunk_state": 8.0,
               "group_state": 8.0, "ungated_channel": 32.0}  # without the gated norm (Falcon-H1's): 32 a channel
DELTANET_FP32 = {"repeated_key": 48.0, "key": 64.0, "value": 36.0, "head": 40.0}


def fp32_mixer_units(spec: ModelSpec) -> float:
    """What an fp32 model's state mixer keeps, in bytes per token and hidden unit (MAMBA_FP32_*, MAMBA2_FP32,
    DELTANET_FP32, RGLRU_FP32_CHANNEL_BYTES); twice the 16-bit units for a short convolution."""
    kind, h, st = spec.state.kind, spec.hidden_size, spec.state
    if kind == "mamba":
        inner = st.out_proj_inputs
        return 4 + (MAMBA_FP32_CHANNEL_BYTES * inner + MAMBA_FP32_STATE_BYTES * st.recurrent_state_elements) / h
    if kind == "rglru":
        return 4 + RGLRU_FP32_CHANNEL_BYTES * st.conv_channels / h
    if kind == "mamba2":
        inner, conv, projected, heads, states, chunk = _mamba2_widths(spec)
        f = MAMBA2_FP32
        channel = f["channel"] if st.gated_norm else f["ungated_channel"]
        return (4 * h + 4 * projected + 4 * conv + channel * inner + f["head"] * heads
                + f["head_chunk"] * heads * chunk + f["head_state"] * heads * states
                + f["chunk_state"] * inner * states / chunk + f["group_state"] * (conv - inner) / 2) / h
    if kind == "gated_deltanet":
        heads, values, keys, states = _deltanet_widths(spec)
        f = DELTANET_FP32
        repeated = keys > (st.conv_channels - values) / 2  # value heads share a key head: its keys repeated
        return (4 * h + 2 * DELTANET_CONV_BYTES * st.conv_channels + f["repeated_key" if repeated else "key"] * keys
                + f["value"] * values + DELTANET_HEAD_CHUNK_BYTES * heads * DELTANET_CHUNK + f["head"] * heads
                + DELTANET_STATE_BYTES * states) / h
    return 2 * STATE_MIXER_UNITS[kind](spec)


# the state mixers whose own activations are counted (`layer_activation_units`); RWKV's are not
STATE_MIXER_UNITS = {"mamba": mamba_mixer_units, "mamba2": mamba2_mixer_units, "short_conv": short_conv_mixer_units,
                     "gated_deltanet": gated_deltanet_mixer_units, "rglru": rglru_mixer_units}
# The linear layers that read a state mixer's normalized input (each keeps its own cast of it under autocast): one
# input projection, or gated DeltaNet's two (qkvz, ba) and RG-LRU's two (x, y)
STATE_MIXER_READERS = {"gated_deltanet": 2, "rglru": 2}
# The projections the script's LoRA adapts in a state mixer (`training.lora_params`), the rest frozen: Mamba's and
# Mamba-2's input projection alone, the short convolution's input and output ones, gated DeltaNet's two input
# projections and its output one, RG-LRU's x, y and output ones
STATE_MIXER_ADAPTERS = {"mamba": 1, "mamba2": 1, "short_conv": 2, "gated_deltanet": 3, "rglru": 3}
# Mamba's PyTorch path under autocast over fp32 weights keeps a 16-bit copy of its inner width more (measured on
# Mamba's and Jamba's mixers); under LoRA its frozen x and output projections' inputs go (4 bytes an inner channel)
MAMBA_AUTOCAST_BYTES = 2.0
MAMBA_FROZEN_BYTES = 4.0


def state_mixer_recipe_units(spec: ModelSpec, lora: bool, autocast: bool) -> float:
    """What autocast over fp32 weights (`lora` False) or peft's LoRA (under autocast or not) changes in a layer's state
    mixer beside its casts and adapters, by its kind; none for a short convolution (its change is its adapters')."""
    kind, h = spec.state.kind, spec.hidden_size
    if kind == "mamba":
        return (-MAMBA_FROZEN_BYTES if lora else MAMBA_AUTOCAST_BYTES) * spec.state.out_proj_inputs / h
    if kind == "mamba2":
        return mamba2_recipe_units(spec, lora, autocast)
    if kind == "gated_deltanet":
        return gated_deltanet_recipe_units(spec, lora, autocast)
    if kind == "rglru":
        return (-RGLRU_FROZEN_GATE_BYTES if lora else RGLRU_AUTOCAST_BYTES) * spec.state.conv_channels / h
    return 0.0
