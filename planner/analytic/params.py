"""Parameter counts and weight bytes of a ModelSpec, part by part.

The counts follow the modules transformers builds for each architecture (tests compare them with
the model built on the `meta` device). Quantization applies to the matmul weights inside the blocks;
embeddings, the LM head, norms, biases and routers stay at the 16-bit activation dtype, as GPTQ,
AWQ and vLLM's loaders keep them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from ..schema import ModelSpec


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one decoder layer, split by how they are stored and used."""

    attn_linear: int  # q, k, v, o projections (or the MLA projections): matmul weights
    attn_small: int  # their biases, q/k norms, MLA latent norms
    mlp_linear: int  # dense MLP matmul weights (for a dense layer)
    mlp_small: int  # dense MLP biases
    expert_linear: int  # one routed expert's matmul weights
    shared_linear: int  # the always-on shared experts' matmul weights
    router: int  # router weights and biases, shared-expert gate
    norms: int  # the layer's norms
    expert_small: int = 0  # the routed experts' biases, all experts of the layer (gpt-oss)


@dataclass(frozen=True)
class ParamCounts:
    layer: LayerParams
    num_dense_layers: int
    num_moe_layers: int
    embedding: int  # token embedding and learned position table
    lm_head: int  # 0 when tied to the embedding; bias included
    final_norm: int
    num_experts: int = 0
    top_k: int = 0
    vocab_hidden: int = 0  # vocab x hidden: the output projection, tied or not

    # In a hybrid (state-space or linear-attention layers beside attention, layers without an MLP) the layers differ:
    # `layer` then holds per-layer means (attn_linear and attn_small over all layers, mlp_* over the non-MoE
    # layers), so every sum below still comes out exact and a pipeline stage gets its share.

    @property
    def dense_layer_linear(self) -> int:
        return self.layer.attn_linear + self.layer.mlp_linear

    @property
    def moe_layer_linear(self) -> int:
        return self.layer.attn_linear + self.layer.shared_linear + self.num_experts * self.layer.expert_linear

    @property
    def linear(self) -> int:
        """All quantizable matmul weights in the blocks."""
        return round(self.num_dense_layers * self.dense_layer_linear + self.num_moe_layers * self.moe_layer_linear)

    @property
    def small(self) -> int:
        """Norms, biases and routers of all layers, and the final norm: kept at 16 bits."""
        lp = self.layer
        per_layer = lp.attn_small + lp.norms
        return round(self.num_dense_layers * (per_layer + lp.mlp_small)
                     + self.num_moe_layers * (per_layer + lp.router + lp.expert_small) + self.final_norm)

    @property
    def total(self) -> int:
        return self.linear + self.small + self.embedding + self.lm_head

    @property
    def active_linear(self) -> int:
        """Matmul weights one token passes through (top-k experts of each MoE layer)."""
        lp = self.layer
        moe_active = lp.attn_linear + lp.shared_linear + self.top_k * lp.expert_linear
        return round(self.num_dense_layers * self.dense_layer_linear + self.num_moe_layers * moe_active)

    @property
    def active(self) -> int:
        """Parameters one token uses, embeddings and LM head included (the convention of model cards)."""
        return self.active_linear + self.small + self.embedding + self.lm_head


def _norm(spec: ModelSpec, width: int) -> int:
    if spec.norm == "nonparametric":
        return 0
    return width * (2 if spec.norm_bias else 1)


def _attention(spec: ModelSpec) -> tuple[int, int]:
    h, nh, nkv = spec.hidden_size, spec.num_heads, spec.num_kv_heads
    if spec.mla is not None:
        m = spec.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q_linear = h * m.q_lora_rank + m.q_lora_rank * nh * qk
            small = _norm(spec, m.q_lora_rank)
        else:
            q_linear, small = h * nh * qk, 0
        linear = (q_linear + h * (m.kv_lora_rank + m.qk_rope_head_dim)
                  + m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim) + nh * m.v_head_dim * h)
        small += _norm(spec, m.kv_lora_rank)
        if spec.qkv_bias:  # attention_bias: q_a_proj (or q_proj), kv_a_proj_with_mqa, o_proj
            small += (m.q_lora_rank or nh * qk) + m.kv_lora_rank + m.qk_rope_head_dim + h
        return linear, small
    q, kv, v = nh * spec.head_dim, nkv * spec.head_dim, nkv * spec.v_head_dim
    linear = h * (q + kv + v) + nh * spec.v_head_dim * h
    if spec.attn_output_gate:  # q_proj also yields the output gate (Qwen3-Next)
        linear += h * q
    small = (q + kv + v if spec.qkv_bias else 0) + (h if spec.o_bias else 0)
    if spec.qk_norm == "head":
        small += 2 * spec.head_dim
    elif spec.qk_norm == "full":
        small += q + kv
    if spec.attention_sinks:  # one learned logit per head
        small += nh
    return linear, small


def _mlp(spec: ModelSpec, inter: int) -> tuple[int, int]:
    h = spec.hidden_size
    mats = 3 if spec.mlp_gated else 2
    bias = ((2 * inter if spec.mlp_gated else inter) + h) if spec.mlp_bias else 0
    return mats * h * inter, bias


@lru_cache(maxsize=512)
def param_counts(spec: ModelSpec) -> ParamCounts:
    attn_linear, attn_small = _attention(spec)
    mlp_linear, mlp_small = _mlp(spec, spec.intermediate_size)
    expert_linear = shared_linear = router = expert_small = 0
    experts = top_k = 0
    if spec.moe is not None:
        m = spec.moe
        experts, top_k = m.num_experts, m.top_k
        expert_linear, _ = _mlp(spec, m.expert_intermediate_size)
        if m.expert_bias:  # the gated projection's two halves and the down projection's
            gated = 2 if spec.mlp_gated else 1
            expert_small = experts * (gated * m.expert_intermediate_size + spec.hidden_size)
        if m.shared_intermediate_size:
            shared_linear, _ = _mlp(spec, m.shared_intermediate_size)
        router = m.num_experts * spec.hidden_size + (m.num_experts if m.router_bias or m.router_score_bias else 0)
        router += spec.hidden_size if m.shared_expert_gate else 0
    num_moe = sum(spec.layer_moe) if spec.moe is not None else 0
    if spec.layer_mixers or spec.layer_mlps:
        n, num_dense = spec.num_layers, spec.num_layers - num_moe
        state = spec.state
        s_linear, s_small = (state.linear_params, state.small_params) if state else (0, 0)
        a_layers, s_layers = spec.attention_layers, spec.state_layers
        mlp_layers = sum(1 for i in range(n) if spec.has_mlp(i) and not (spec.moe and spec.layer_moe[i]))
        if spec.attention_shared:  # one set of weights for all attention layers, in extra_linear_params
            attn_linear = attn_small = 0
        attn_linear = _mean(a_layers * attn_linear + s_layers * s_linear + spec.extra_linear_params, n)
        attn_small = _mean(a_layers * attn_small + s_layers * s_small + spec.extra_small_params, n)
        mlp_linear, mlp_small = (_mean(mlp_layers * mlp_linear, num_dense), _mean(mlp_layers * mlp_small, num_dense)) \
            if num_dense else (0, 0)
    embedding = spec.vocab_size * spec.hidden_size + spec.learned_positions * spec.hidden_size
    lm_head = 0 if spec.tie_word_embeddings else spec.vocab_size * spec.hidden_size
    if spec.lm_head_bias:
        lm_head += spec.vocab_size
    return ParamCounts(
        layer=LayerParams(attn_linear=attn_linear, attn_small=attn_small, mlp_linear=mlp_linear,
                          mlp_small=mlp_small, expert_linear=expert_linear, shared_linear=shared_linear,
                          router=router, norms=spec.norms_per_layer * _norm(spec, spec.hidden_size),
                          expert_small=expert_small),
        num_dense_layers=spec.num_layers - num_moe, num_moe_layers=num_moe,
        embedding=embedding, lm_head=lm_head, final_norm=_norm(spec, spec.hidden_size),
        num_experts=experts, top_k=top_k, vocab_hidden=spec.vocab_size * spec.hidden_size,
    )


def _mean(total: int, layers: int) -> float:
    """Per-layer mean of a hybrid's parameters: an int when it divides evenly."""
    q, r = divmod(total, layers)
    return q if not r else total / layers


@lru_cache(maxsize=256)
def expert_pick_chances(num_experts: int, top_k: int, skew: float) -> tuple[float, ...]:
    """The chance that each expert is among one token's top_k, where the experts' popularity falls off as a Zipf law
    of exponent `skew` (the i-th most popular drawn in proportion to 1/i^skew; 0: all alike, k/E each). A chance is k
    times the expert's popularity, at most 1 (an expert cannot be picked twice for one token), the excess spread over
    the others in proportion, so the chances always sum to top_k."""
    weights = [(i + 1) ** -skew for i in range(num_experts)]
    total = sum(weights)
    chances = [top_k * w / total for w in weights]
    while (excess := sum(c - 1.0 for c in chances if c > 1.0)) > 1e-12:
        free = sum(c for c in chances if c < 1.0)
        chances = [1.0 if c >= 1.0 else c * (1.0 + excess / free) for c in chances]
    return tuple(chances)


@lru_cache(maxsize=4096)
def expected_experts_touched(num_experts: int, top_k: int, tokens: int, skew: float = 0.0) -> float:
    """Distinct experts a layer reads for `tokens` tokens, each routed to top_k of num_experts: E * (1 - (1 - k/E)^T)
    with every expert alike (`skew` 0), the sum over the experts of 1 - (1 - chance)^T where their popularity is
    skewed (`expert_pick_chances`): a few tokens then share more of their experts, and one token still reads k."""
    if num_experts == 0:
        return 0.0
    tokens = max(tokens, 0)
    if not skew:
        return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)
    return sum(1.0 - (1.0 - c) ** tokens for c in expert_pick_chances(num_experts, top_k, skew))


def busiest_device_experts(num_experts: int, top_k: int, tokens: int, devices: int, skew: float = 0.0) -> float:
    """Distinct experts the busiest of `devices` expert-parallel devices reads for `tokens` tokens, each device
    holding num_experts / devices of them and each token routed to top_k (`expected_experts_touched` at `skew`). A
    device's count is binomial (its experts, each touched with probability p, the share of all experts touched); the
    expected largest of `devices` such counts is their mean plus Blom's normal-order-statistic quantile times their
    spread, at most all its experts. The step waits for the busiest device: DeepSeek-V3 (256 experts, top-8) over 8
    devices at one token reads 1 expert per device on average but 2.4 on the busiest; at 64 tokens 1.15x the mean,
    at 256 tokens all. Real routers are skewed (the reason for DeepSeek's EPLB), so this is the least imbalance to
    expect."""
    if num_experts == 0 or devices <= 1:
        return expected_experts_touched(num_experts, top_k, tokens, skew)
    local = num_experts / devices
    p = expected_experts_touched(num_experts, top_k, tokens, skew) / num_experts
    quantile = NormalDist().inv_cdf((devices - 0.375) / (devices + 0.25))  # Blom (1958)
    return min(local * p + quantile * math.sqrt(local * p * (1 - p)), local)
