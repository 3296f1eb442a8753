"""What a decoder layer keeps for its backward, measured against the training model's count: transformers' eager layers
of several architectures (an RMSNorm and a LayerNorm model, gated and plain MLPs, grouped and full key-value heads,
routed experts at several widths and top-k, a shared expert), each a one-layer model in bf16 with SDPA's fused
attention, run forward under autograd's saved-tensor hooks. The tensors it saves, less the parameters, by storage,
over tokens x hidden, are the measured units; `planner/plan/training_activations.py` (layer_activation_units) is the
predicted count, whose constants were fitted to the first group of layers (FITTED); the second (HELD_OUT) was
measured after, and its errors are reported apart. Each line prints both and their ratio.

    python benchmarks/bench_activation_memory.py [--tokens 512] [--blocks]
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import weakref
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from optiplan.planner.catalog.engine_refusals import sdpa_refused  # noqa: E402

HIDDEN = 256
NO_SPECIAL_TOKENS = dict(pad_token_id=0, bos_token_id=0, eos_token_id=0)
LORA_RANK = 8
# (label, transformers config class, its keyword arguments)
FITTED = (
    ("llama, gated MLP at 2 x hidden, 2 KV heads", "LlamaConfig", dict(intermediate_size=2 * HIDDEN)),
    ("llama, gated MLP at 3.5 x hidden, 2 KV heads", "LlamaConfig", dict(intermediate_size=896)),
    ("llama, 1 KV head", "LlamaConfig", dict(intermediate_size=2 * HIDDEN, num_key_value_heads=1)),
    ("llama, 8 KV heads (no grouping)", "LlamaConfig", dict(intermediate_size=2 * HIDDEN, num_key_value_heads=8)),
    ("llama, queries at 2 x hidden", "LlamaConfig", dict(intermediate_size=2 * HIDDEN, head_dim=64)),
    ("starcoder2, LayerNorm, plain MLP at 2 x hidden", "Starcoder2Config", dict(intermediate_size=2 * HIDDEN)),
    ("starcoder2, LayerNorm, plain MLP at 4 x hidden", "Starcoder2Config", dict(intermediate_size=4 * HIDDEN)),
    ("mixtral, top-2 of 8 experts at 3.5 x hidden", "MixtralConfig",
     dict(intermediate_size=896, num_local_experts=8, num_experts_per_tok=2)),
    ("mixtral, top-2 of 8 experts at 1 x hidden", "MixtralConfig",
     dict(intermediate_size=HIDDEN, num_local_experts=8, num_experts_per_tok=2)),
    ("mixtral, top-4 of 8 experts at 1 x hidden", "MixtralConfig",
     dict(intermediate_size=HIDDEN, num_local_experts=8, num_experts_per_tok=4)),
    ("mixtral, top-8 of 16 experts at 0.375 x hidden", "MixtralConfig",
     dict(intermediate_size=96, num_local_experts=16, num_experts_per_tok=8)),
    ("qwen2-moe, top-4 of 8 experts at 0.5 x hidden and a shared expert at 2 x hidden", "Qwen2MoeConfig",
     dict(moe_intermediate_size=HIDDEN // 2, shared_expert_intermediate_size=2 * HIDDEN, num_experts=8,
          num_experts_per_tok=4, intermediate_size=2 * HIDDEN)),
    # the query-key norm term was fitted to these two after they had been measured as held-out layers (0.86 and 0.91)
    ("qwen3, per-head query and key norms, gated MLP at 3 x hidden", "Qwen3Config", dict(intermediate_size=768)),
    ("qwen3-moe, top-8 of 32 experts at 0.375 x hidden", "Qwen3MoeConfig",
     dict(moe_intermediate_size=96, num_experts=32, num_experts_per_tok=8, intermediate_size=768)),
    # the fp32-weight norms and the fused projection's values read from these three after they had been measured as
    # held-out layers (0.895, 0.865 and 0.872): what each keeps, tensor by tensor (training_activations.py)
    ("phi3, fused query-key-value and gate-up projections at 2.5 x hidden, 4 KV heads", "Phi3Config",
     dict(intermediate_size=640, num_key_value_heads=4, **NO_SPECIAL_TOKENS)),
    ("olmo2, whole query and key norms, gated MLP at 2 x hidden", "Olmo2Config",
     dict(intermediate_size=2 * HIDDEN, **NO_SPECIAL_TOKENS)),
    ("gemma3, four norms a layer and per-head query and key norms, GeGLU at 4 x hidden", "Gemma3TextConfig",
     dict(intermediate_size=4 * HIDDEN, **NO_SPECIAL_TOKENS)),
    # read from these three after they had been measured as held-out layers (0.878, 0.795 and 0.840): gpt-oss's
    # clamped SwiGLU experts, GLM-4.5's fp32 router; GLM-4.5's shared expert and dense first layers and EXAONE 4's
    # query-key norms had not been read from their configs
    ("gpt-oss, top-2 of 8 experts at 1 x hidden, eager attention with sinks", "GptOssConfig",
     dict(intermediate_size=HIDDEN, num_local_experts=8, num_experts_per_tok=2, layer_types=["full_attention"],
          **NO_SPECIAL_TOKENS)),
    ("glm4-moe, top-2 of 8 experts at 0.5 x hidden and a shared expert, fp32 router", "Glm4MoeConfig",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN // 2, n_routed_experts=8, num_experts_per_tok=2,
          n_shared_experts=1, first_k_dense_replace=0, n_group=1, topk_group=1, **NO_SPECIAL_TOKENS)),
    ("exaone4, post-norms and per-head query and key norms, gated MLP at 2 x hidden", "Exaone4Config",
     dict(intermediate_size=2 * HIDDEN, layer_types=["full_attention"], **NO_SPECIAL_TOKENS)),
    # the latent attention's norms and its values' view of kv_b_proj read from this one after it had been measured
    # as a held-out layer (0.931)
    ("deepseek-v3, latent attention, top-2 of 8 experts at 0.5 x hidden and a shared expert", "DeepseekV3Config",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN // 2, n_routed_experts=8, num_experts_per_tok=2,
          n_shared_experts=1, first_k_dense_replace=0, q_lora_rank=64, kv_lora_rank=32, qk_rope_head_dim=16,
          qk_nope_head_dim=16, v_head_dim=32, head_dim=16, n_group=1, topk_group=1, **NO_SPECIAL_TOKENS)),
    # read from these four after they had been measured (2026-12-07: 0.78, 0.59, 0.75, 0.58): Cohere's fp32
    # LayerNorm and its one norm feeding both blocks, OLMo's weightless fp32 LayerNorm, GPT-J's written-out GELU
    ("cohere, one fp32 LayerNorm feeding attention and MLP side by side, gated MLP at 2 x hidden", "CohereConfig",
     dict(intermediate_size=2 * HIDDEN, **NO_SPECIAL_TOKENS)),
    ("cohere, per-head query and key LayerNorms", "CohereConfig",
     dict(intermediate_size=2 * HIDDEN, use_qk_norm=True, **NO_SPECIAL_TOKENS)),
    ("olmo, weightless LayerNorm, gated MLP at 2 x hidden", "OlmoConfig",
     dict(intermediate_size=2 * HIDDEN, **NO_SPECIAL_TOKENS)),
    ("gpt-j, one LayerNorm feeding attention and MLP side by side, gelu_new MLP at 4 x hidden", "GPTJConfig",
     dict(n_embd=HIDDEN, n_layer=1, n_head=8, rotary_dim=16, n_positions=1024, **NO_SPECIAL_TOKENS)),
    # transformers runs Llama 4's experts densely, every token through each (its profile's dense_experts_model_types):
    # read from this layer and an 8-expert one, where a token's top-1 had been counted (0.53 of this one)
    ("llama4, top-1 of 4 experts run densely at 1 x hidden, a shared expert, L2 query-key norms", "Llama4TextConfig",
     dict(intermediate_size=HIDDEN, intermediate_size_mlp=2 * HIDDEN, num_local_experts=4, num_experts_per_tok=1,
          interleave_moe_layer_step=1, no_rope_layers=[1], use_qk_norm=True, **NO_SPECIAL_TOKENS)),
    # transformers' Mamba mixer on its PyTorch path (no mamba-ssm kernels), read from these two and from Mamba's at
    # 4 x hidden and at 8 states, where attention's count had been taken (0.05 of a Mamba layer)
    ("mamba, inner width 2 x hidden, 16 states, PyTorch path", "MambaConfig",
     dict(state_size=16, expand=2, **NO_SPECIAL_TOKENS)),
    ("jamba, a Mamba layer at 2 x hidden and a gated MLP, then attention and top-2 of 4 experts", "JambaConfig",
     dict(intermediate_size=2 * HIDDEN, num_experts=4, num_experts_per_tok=2, attn_layer_period=2, attn_layer_offset=1,
          expert_layer_period=2, expert_layer_offset=1, **NO_SPECIAL_TOKENS)),
    # Mamba-2's PyTorch path, its terms read tensor by tensor off this layer's saved tensors (a chunked scan: its
    # per-token figure here carries one chunk's states more than a long sequence's, 0.75 units)
    ("mamba-2, 8 heads of 64, 16 states, chunks of 128, PyTorch path", "Mamba2Config",
     dict(num_heads=8, head_dim=64, expand=2, n_groups=1, state_size=16, chunk_size=128, **NO_SPECIAL_TOKENS)),
    # LFM2's short convolution and Qwen3-Next's gated DeltaNet on their PyTorch paths (no causal-conv1d, no
    # flash-linear-attention), their terms read tensor by tensor off these layers' saved tensors (2026-12-07), where
    # attention of the model's widths had been counted (0.73 and 0.64 of these layers); Qwen3-Next's gated attention,
    # its output gate's term fitted on it and three other widths (0.92 before)
    ("lfm2, short convolution, gated MLP at 2 x hidden", "Lfm2Config",
     dict(intermediate_size=2 * HIDDEN, layer_types=["conv"], **NO_SPECIAL_TOKENS)),
    ("qwen3-next, gated DeltaNet of 4 value heads of 48 on 2 key heads of 32, top-2 of 8 experts and a gated shared "
     "expert", "Qwen3NextConfig",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN // 2, shared_expert_intermediate_size=HIDDEN,
          num_experts=8, num_experts_per_tok=2, layer_types=["linear_attention"], linear_num_key_heads=2,
          linear_num_value_heads=4, linear_key_head_dim=32, linear_value_head_dim=48, **NO_SPECIAL_TOKENS)),
    ("qwen3-next, full attention, top-2 of 8 experts and a gated shared expert", "Qwen3NextConfig",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN // 2, shared_expert_intermediate_size=HIDDEN,
          num_experts=8, num_experts_per_tok=2, layer_types=["full_attention"], **NO_SPECIAL_TOKENS)),
    # GPT-2's residual dropouts (its config's 0.1; attention's own left off: on a CPU it keeps the scores, on CUDA
    # nothing), whose masks had not been counted (0.93 of this layer)
    ("gpt-2, residual dropout 0.1 after attention and the MLP", "GPT2Config",
     dict(n_embd=HIDDEN, n_layer=1, n_head=8, n_positions=1024, attn_pdrop=0.0, resid_pdrop=0.1, embd_pdrop=0.0,
          **NO_SPECIAL_TOKENS)),
    # RecurrentGemma's recurrent block on its token-by-token PyTorch scan, read block by block off this layer and one
    # of 384 channels in 4 heads (where attention of its widths had been counted: 0.47 of this layer)
    ("recurrentgemma, RG-LRU of 256 channels in 8 heads, GeGLU at 1.5 x hidden", "RecurrentGemmaConfig",
     dict(lru_width=HIDDEN, num_key_value_heads=1, intermediate_size=3 * HIDDEN, block_types=["recurrent"],
          **NO_SPECIAL_TOKENS)),
    # Falcon-H1's layer: attention and Mamba-2 side by side off one norm (it had been counted as its attention alone:
    # 0.22 of it), its Mamba-2 without the gated norm by default (mamba_rms_norm: false), whose fp32 µP vector makes
    # its projection fp32 under autocast over fp32 weights; its terms read off these two layers (2026-12-08)
    ("falcon-h1, attention beside Mamba-2 of 8 heads of 64 without the gated norm, 16 states", "FalconH1Config",
     dict(intermediate_size=2 * HIDDEN, mamba_d_ssm=512, mamba_n_heads=8, mamba_d_head=64, mamba_d_state=16,
          mamba_chunk_size=128, mamba_expand=2, head_dim=32, **NO_SPECIAL_TOKENS)),
    ("falcon-h1, attention beside Mamba-2 of 16 heads of 32 with the gated norm, 32 states", "FalconH1Config",
     dict(intermediate_size=2 * HIDDEN, mamba_d_ssm=512, mamba_n_heads=16, mamba_d_head=32, mamba_d_state=32,
          mamba_chunk_size=128, mamba_expand=2, head_dim=32, mamba_rms_norm=True, **NO_SPECIAL_TOKENS)),
    # Zamba2's hybrid layer: its shared transformer block (attention over 2 x hidden) before its Mamba-2 mixer, whose
    # count had left the block's MLP, its wide norm and input, its linear layer and the mixer's norm out (0.81 of it)
    ("zamba2, a shared attention and MLP block before Mamba-2 of 8 heads of 64, 16 states", "Zamba2Config",
     dict(layers_block_type=["hybrid"], mamba_d_state=16, n_mamba_heads=8, chunk_size=128, intermediate_size=2 * HIDDEN,
          num_attention_heads=8, num_key_value_heads=8, **NO_SPECIAL_TOKENS)),
)
# measured after the terms above were set (2026-12-07); gemma2 and gpt-oss without SDPA, eagerly (their scores)
HELD_OUT = (
    ("mistral, gated MLP at 3.5 x hidden, 8 KV heads", "MistralConfig",
     dict(intermediate_size=896, num_key_value_heads=8)),
    ("gpt-neox, fused query-key-value, LayerNorm, parallel residual, plain MLP at 4 x hidden", "GPTNeoXConfig",
     dict(intermediate_size=4 * HIDDEN, num_key_value_heads=8, **NO_SPECIAL_TOKENS)),  # no grouped heads
    ("stablelm, LayerNorm, partial rotary, gated MLP at 2.5 x hidden", "StableLmConfig",
     dict(intermediate_size=640, **NO_SPECIAL_TOKENS)),
    ("olmo3, whole query and key norms, gated MLP at 3 x hidden", "Olmo3Config",
     dict(intermediate_size=3 * HIDDEN, layer_types=["full_attention"], **NO_SPECIAL_TOKENS)),
    ("gemma2, four norms a layer, softcapped eager attention, GeGLU at 3 x hidden", "Gemma2Config",
     dict(intermediate_size=3 * HIDDEN, **NO_SPECIAL_TOKENS)),
    # measured after the gpt-oss, GLM-4.5 and EXAONE 4 terms were set (DeepSeek-V2's after DeepSeek-V3's: first
    # 0.931, its router upcasting to fp32 as V3's does, a rule then keyed to V3's score bias and now to the types)
    ("deepseek-v2, latent attention without query compression, top-2 of 8 experts and two shared experts",
     "DeepseekV2Config",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN // 2, n_routed_experts=8, num_experts_per_tok=2,
          n_shared_experts=2, first_k_dense_replace=0, q_lora_rank=None, kv_lora_rank=32, qk_rope_head_dim=16,
          qk_nope_head_dim=16, v_head_dim=32, head_dim=16, n_group=1, topk_group=1, **NO_SPECIAL_TOKENS)),
    ("phimoe, LayerNorm, top-2 of 8 experts at 1 x hidden", "PhimoeConfig",
     dict(intermediate_size=HIDDEN, num_local_experts=8, num_experts_per_tok=2, **NO_SPECIAL_TOKENS)),
    ("granite, gated MLP at 2 x hidden, residual and logit multipliers", "GraniteConfig",
     dict(intermediate_size=2 * HIDDEN, **NO_SPECIAL_TOKENS)),
    # measured after the terms above were set (2026-12-07, a review's questions): GPT-2's written-out GELU (its
    # dropout off, as the plan prices; its fused projection without rotary then read from it: 1.08 before) and a
    # mixture of experts' frozen dense MLP under LoRA (the second layer, Jamba's dense one). Falcon's layer is not
    # here: its SDPA call passes a mask, with which this CPU's kernel keeps the scores
    ("gpt-2, fused query-key-value, LayerNorm, gelu_new MLP at 4 x hidden", "GPT2Config",
     dict(n_embd=HIDDEN, n_layer=1, n_head=8, n_positions=1024, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
          **NO_SPECIAL_TOKENS)),
    ("jamba, attention and top-2 of 4 experts, then attention and a dense MLP", "JambaConfig",
     dict(intermediate_size=2 * HIDDEN, num_experts=4, num_experts_per_tok=2, attn_layer_period=1, attn_layer_offset=0,
          expert_layer_period=2, expert_layer_offset=0, **NO_SPECIAL_TOKENS)),
    # measured after the Mamba terms were set
    ("mamba, inner width 4 x hidden, 8 states, PyTorch path", "MambaConfig",
     dict(state_size=8, expand=4, **NO_SPECIAL_TOKENS)),
    ("mamba-2, 16 heads of 32, 32 states in 2 groups, chunks of 64, PyTorch path", "Mamba2Config",
     dict(num_heads=16, head_dim=32, expand=2, n_groups=2, state_size=32, chunk_size=64, **NO_SPECIAL_TOKENS)),
    # measured after the dense-experts count was set on the layer above
    ("llama4, top-1 of 16 experts run densely at 1 x hidden, a shared expert", "Llama4TextConfig",
     dict(intermediate_size=HIDDEN, intermediate_size_mlp=2 * HIDDEN, num_local_experts=16, num_experts_per_tok=1,
          interleave_moe_layer_step=1, no_rope_layers=[1], use_qk_norm=False, **NO_SPECIAL_TOKENS)),
    # measured after the short-convolution and DeltaNet terms were set (LFM2's attention layer had been measured for
    # autocast only, its count left as it was)
    ("lfm2, short convolution of 4 tokens, gated MLP at 2.5 x hidden", "Lfm2Config",
     dict(intermediate_size=640, conv_L_cache=4, layer_types=["conv"], block_auto_adjust_ff_dim=False,
          **NO_SPECIAL_TOKENS)),
    ("lfm2, attention, gated MLP at 2 x hidden", "Lfm2Config",
     dict(intermediate_size=2 * HIDDEN, layer_types=["full_attention"], **NO_SPECIAL_TOKENS)),
    ("qwen3-next, gated DeltaNet of 6 value heads of 40 on 3 key heads of 32, top-1 of 4 experts at 1 x hidden",
     "Qwen3NextConfig",
     dict(intermediate_size=2 * HIDDEN, moe_intermediate_size=HIDDEN, shared_expert_intermediate_size=384,
          num_experts=4, num_experts_per_tok=1, layer_types=["linear_attention"], linear_num_key_heads=3,
          linear_num_value_heads=6, linear_key_head_dim=32, linear_value_head_dim=40, **NO_SPECIAL_TOKENS)),
    # measured after the dropout term was set
    ("starcoder2, residual dropout 0.1, LayerNorm, plain MLP at 4 x hidden", "Starcoder2Config",
     dict(intermediate_size=4 * HIDDEN, residual_dropout=0.1, **NO_SPECIAL_TOKENS)),
    # measured after the RG-LRU term was set
    ("recurrentgemma, RG-LRU of 320 channels in 5 heads, GeGLU at 2 x hidden", "RecurrentGemmaConfig",
     dict(lru_width=320, num_attention_heads=5, num_key_value_heads=1, head_dim=64, intermediate_size=4 * HIDDEN,
          block_types=["recurrent"], **NO_SPECIAL_TOKENS)),
    # measured after SDPA's math path under attention dropout was read off GPT-2's and StarCoder 2's layers at their
    # catalog widths (where the fused kernel's count had been taken: 0.60-0.67 of those layers at 128 tokens)
    ("gpt-2, attention dropout 0.1 (SDPA's math path on this CPU)", "GPT2Config",
     dict(n_embd=HIDDEN, n_layer=1, n_head=8, n_positions=1024, attn_pdrop=0.1, resid_pdrop=0.0, embd_pdrop=0.0,
          **NO_SPECIAL_TOKENS)),
    ("granite, attention dropout 0.1, 2 KV heads (SDPA's math path on this CPU)", "GraniteConfig",
     dict(intermediate_size=2 * HIDDEN, attention_dropout=0.1, **NO_SPECIAL_TOKENS)),
    # measured after the concatenated queries' copy was read off Phi-3's, StableLM's, GLM-4.5's and DeepSeek's layers
    # (a review's measurement of it, 2026-12-07: 0.95 of the layer before)
    ("recurrentgemma, attention of 8 heads of 32 on 1 KV head, half rotary, GeGLU at 2 x hidden",
     "RecurrentGemmaConfig",
     dict(num_attention_heads=8, num_key_value_heads=1, head_dim=32, intermediate_size=4 * HIDDEN,
          block_types=["attention"], **NO_SPECIAL_TOKENS)),
    # measured after Falcon-H1's terms were read off the two layers above
    ("falcon-h1, attention beside Mamba-2 of 4 heads of 128 in 2 groups without the gated norm, 8 states",
     "FalconH1Config",
     dict(intermediate_size=3 * HIDDEN, mamba_d_ssm=512, mamba_n_heads=4, mamba_d_head=128, mamba_d_state=8,
          mamba_n_groups=2, mamba_chunk_size=64, mamba_expand=2, head_dim=32, **NO_SPECIAL_TOKENS)),
    # measured after Zamba2's shared block was read off the layer above
    ("zamba2, a shared block of 4 heads of 128 and an MLP at 3 x hidden before Mamba-2 of 16 heads of 32, 32 states",
     "Zamba2Config",
     dict(layers_block_type=["hybrid"], mamba_d_state=32, n_mamba_heads=16, chunk_size=64, intermediate_size=3 * HIDDEN,
          num_attention_heads=4, num_key_value_heads=4, head_dim=128, **NO_SPECIAL_TOKENS)),
    # measured after Granite 4's "position_embedding_type" was read (its rotary tables counted only under "rope")
    ("granite-4, rotary attention, top-2 of 4 experts and a shared MLP", "GraniteMoeHybridConfig",
     dict(intermediate_size=2 * HIDDEN, shared_intermediate_size=2 * HIDDEN, num_local_experts=4, num_experts_per_tok=2,
          layer_types=["attention"], position_embedding_type="rope", **NO_SPECIAL_TOKENS)),
)
# Layers measured for what autocast adds to them only (`autocast_rows`), their bf16 counts not among the ones above
# (Jamba's attention layer with experts and Granite 4's come out within 0.1%: they had been 1% and 3.5% high before
# the attention terms were read at real widths and a shared expert's input was found to be the router's,
# 2026-12-07). Their autocast terms were checked on them after the 22 layers above had set them: Qwen2's, LFM2's two
# and Qwen3-Next's full-attention layer (since moved above) matched as they were; the rotary tables of Jamba (none),
# Granite 4 (none by default) and Llama 4 (a complex rotation in fp32) were then read from their modeling files
AUTOCAST_ONLY = (
    ("qwen2, biases on the query, key and value", "Qwen2Config", dict(intermediate_size=2 * HIDDEN)),
    ("jamba, attention and top-2 of 4 experts", "JambaConfig",
     dict(intermediate_size=2 * HIDDEN, num_experts=4, num_experts_per_tok=2, attn_layer_period=1, attn_layer_offset=0,
          expert_layer_period=1, expert_layer_offset=0, **NO_SPECIAL_TOKENS)),
    ("granite-4, attention, top-2 of 4 experts and a shared MLP", "GraniteMoeHybridConfig",
     dict(intermediate_size=2 * HIDDEN, shared_intermediate_size=2 * HIDDEN, num_local_experts=4, num_experts_per_tok=2,
          layer_types=["attention"], **NO_SPECIAL_TOKENS)),
)


def layer_config(cls_name: str, **overrides):
    """A one-layer config of the class at HIDDEN, 8 query heads of 32 and 2 key-value heads unless overridden."""
    import transformers

    base = dict(vocab_size=128, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=8, num_key_value_heads=2,
                head_dim=32)
    if cls_name in ("GPTJConfig", "GPT2Config"):  # their own names for the widths (n_embd, n_head), set by the caller
        base = dict(vocab_size=128)
    if cls_name == "Starcoder2Config":
        base.update(residual_dropout=0.0, embedding_dropout=0.0, attention_dropout=0.0, eos_token_id=0,
                    bos_token_id=0)
    return getattr(transformers, cls_name)(**{**base, **overrides})


@functools.cache
def rendered_script():
    """The rendered training script (Qwen1.5-MoE's full fine-tune on one MI325X, whose plan has the script register
    its autocast experts) as a module, and its settings: the bench runs the script's own functions."""
    import importlib.util
    import tempfile

    import yaml
    from optiplan.planner.deploy.render import write
    from optiplan.planner.deploy.training import training_files
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    plan = advise(AdviseRequest(model="qwen1.5-moe-a2.7b", hardware="mi325x", workload="fine-tune",
                                without=("lora", "qlora")))
    files = training_files(plan)
    with tempfile.TemporaryDirectory() as folder:
        write(files, Path(folder))
        spec = importlib.util.spec_from_file_location("rendered_train", Path(folder) / "train" / "train.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
    return script, yaml.safe_load(files["train/train.yaml"])


@functools.cache
def autocast_experts() -> str:
    """The experts implementation the rendered training script registers and loads a mixture of experts with for a
    full fine-tune without FSDP, registered here by that script's own function."""
    script, settings = rendered_script()
    return script.register_autocast_experts(settings["experts_implementation"])


def two_layers(cls_name: str, **overrides):
    """The config of `layer_config` with two layers, alike: a layer's LoRA count is read on the second, whose input
    needs a gradient (the first's does not: the embedding is frozen)."""
    if isinstance(overrides.get("layers_block_type"), list):  # Zamba2 derives its hybrid layers' ids from it
        return layer_config(cls_name, **{**overrides, "layers_block_type": overrides["layers_block_type"] * 2,
                                         "num_hidden_layers": 2})
    config = layer_config(cls_name, **overrides)
    for key in ("num_hidden_layers", "n_layer"):
        if hasattr(config, key) and getattr(config, key) == 1:
            setattr(config, key, 2)
    for key in ("layer_types", "no_rope_layers"):
        if isinstance(getattr(config, key, None), list) and len(getattr(config, key)) == 1:
            setattr(config, key, getattr(config, key) * 2)
    return config


def measured_units(config, tokens: int, recipe: str | None = None, blocks: dict[str, float] | None = None,
                   layer_index: int | None = 0) -> float:
    """Bytes per token and hidden unit the config's decoder layer `layer_index` (None: all its decoder layers
    together, a tensor they share once) saves for its backward: the whole model runs (each architecture builds its
    layers' arguments itself), and only what is saved while that layer runs is counted. `blocks`, where given,
    receives the same units by the layer's submodule (two levels deep) that saved each tensor first.
    `recipe`: None, a bf16 model; "lora" or "lora-dropout", peft's LoRA where the rendered script puts it (its
    `adapter_targets`: every linear layer of a dense model; a mixture of experts' mixers and routed experts) on a
    bf16 model under bf16 autocast, as the script runs it (dropout 0, or 0.05);
    "autocast", fp32 weights under bf16 autocast (a full fine-tune without FSDP; a mixture of experts' experts as
    the rendered script runs them there, cast to bf16 for transformers' grouped_mm: `training.autocast_experts`);
    "fp32", an fp32 model without autocast (a full fine-tune without mixed precision)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    autocast = recipe is not None and recipe != "fp32"
    dtype = torch.float32 if recipe in ("autocast", "fp32") else torch.bfloat16
    moe = hasattr(config, "num_experts_per_tok")
    experts = {"experts_implementation": autocast_experts()} if recipe == "autocast" and moe else {}
    # SDPA where transformers has it for the model, else eager attention, as the script's default would run
    attention = "eager" if sdpa_refused(predicted_spec(config).model_type) else "sdpa"
    if "Mamba" in type(config).__name__:
        attention = None  # no attention to implement
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention, **experts).train()
    if recipe in ("lora", "lora-dropout"):
        from peft import LoraConfig, get_peft_model

        targets, parameters = rendered_script()[0].adapter_targets(
            model, {"target_modules": "all-linear", "target_parameters": moe})
        model = get_peft_model(model, LoraConfig(
            r=LORA_RANK, lora_dropout=0.05 if recipe == "lora-dropout" else 0.0, target_modules=targets,
            target_parameters=parameters))
    index = r"\d+" if layer_index is None else str(layer_index)
    layers = [m for name, m in model.named_modules() if re.search(rf"(layers|\bh)\.{index}$", name)]
    # the layer's input counts where the layer keeps it (a LayerNorm does; an eager RMSNorm keeps an fp32 copy)
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    # every tensor saved while the layer runs, by weak reference: what a branch the forward drops (a scan's final
    # state nobody reads) saved is freed with that branch, and its address may be reused by a later tensor, so only
    # what is still alive once the forward returns is counted, each storage once
    saved: list[tuple[weakref.ref, str]] = []
    inside = [False]
    running = ["(the layer)"]  # the submodules running now, innermost last
    for layer in layers:
        layer.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True))
        layer.register_forward_hook(lambda *_: inside.__setitem__(0, False))
        for name, module in layer.named_modules():
            if name and name.count(".") <= 1:
                module.register_forward_pre_hook(lambda _m, _a, name=name: running.append(name) and None)
                module.register_forward_hook(lambda *_: running.pop() and None)

    def pack(t):
        storage = t.untyped_storage()
        if inside[0] and storage.data_ptr() not in skip:
            # a detached alias: an op's saved output handed back as itself would hold its own grad_fn alive through
            # the graph (a cycle the collector cannot see), and a dropped branch's outputs would never die
            t = t.detach()
            saved.append((weakref.ref(t), running[-1]))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        output = model(input_ids=torch.randint(0, config.vocab_size, (1, tokens)), use_cache=False)
    kept: dict[int, tuple[str, int]] = {}
    for ref, block in saved:
        if (t := ref()) is not None:
            kept.setdefault(t.untyped_storage().data_ptr(), (block, t.untyped_storage().nbytes()))
    del output
    unit = tokens * config.hidden_size
    if blocks is not None:
        for block, nbytes in kept.values():
            blocks[block] = blocks.get(block, 0.0) + nbytes / unit
    return sum(nbytes for _, nbytes in kept.values()) / unit


def recipe_rows(tokens: int) -> list[dict]:
    """What each recipe adds to a layer: measured at two token counts, the growth is per token (units) and the rest
    is held whatever the tokens (bytes a layer: autocast's weight casts, peft's merged experts)."""
    rows = []
    for label, cls_name, overrides in (FITTED[0], FITTED[1], FITTED[7]):
        config = layer_config(cls_name, **overrides)
        base = measured_units(config, tokens)
        for recipe in ("lora", "lora-dropout", "autocast"):
            if recipe == "lora-dropout" and "mixtral" in label:
                continue  # peft refuses dropout on expert parameters
            short, long = (measured_units(config, t, recipe) for t in (tokens // 2, tokens))
            per_token = (long * tokens - short * tokens / 2) / (tokens / 2)
            held = (short - per_token) * tokens / 2 * config.hidden_size
            rows.append({"layer": label, "recipe": recipe, "units_added": round(per_token - base, 2),
                         "bytes_held_per_layer": round(held)})
            print(f"  {label:<52} {recipe:<13} +{per_token - base:5.2f} units a token, {held / 1e6:6.2f} MB held")
    return rows


def per_token_units(config, tokens: int, recipe: str | None, layer_index: int = 0) -> tuple[float, dict[str, float]]:
    """What the layer keeps per token (measured at tokens / 2 and tokens: what it holds whatever the tokens, the
    weights' casts, drops out), whole and by submodule."""
    short_blocks: dict[str, float] = {}
    long_blocks: dict[str, float] = {}
    short = measured_units(config, tokens // 2, recipe, short_blocks, layer_index)
    long = measured_units(config, tokens, recipe, long_blocks, layer_index)
    by_block = {b: 2 * long_blocks.get(b, 0.0) - short_blocks.get(b, 0.0) for b in {*short_blocks, *long_blocks}}
    return 2 * long - short, by_block


def change_rows(recipe: str, layers, tokens: int, show_blocks: bool, configure, layer_index: int,
                predict) -> list[dict]:
    """What `recipe` changes in each of `layers` (built by `configure`), measured per token on layer `layer_index`
    against a bf16 layer's, and the plan's count (`predict`, of the layer's spec); with `show_blocks`, the difference
    by submodule, which is what the plan's terms were read from. A layer run eagerly is left out: its scores grow with
    the tokens squared."""
    rows = []
    for label, cls_name, overrides in layers:
        config = configure(cls_name, **overrides)
        if sdpa_refused(predicted_spec(config).model_type):
            continue
        (bf16, bf16_blocks), (changed, changed_blocks) = (per_token_units(config, tokens, r, layer_index)
                                                          for r in (None, recipe))
        measured, predicted = changed - bf16, predict(predicted_spec(config))
        rows.append({"layer": label, "measured_units": round(measured, 3), "predicted_units": round(predicted, 3),
                     "error_of_layer": round((predicted - measured) / changed, 4)})
        print(f"  {label:<84} measured {measured:+6.2f}  predicted {predicted:+6.2f}  "
              f"({(predicted - measured) / changed:+.1%} of the layer's {changed:.1f})")
        if show_blocks:
            for block in sorted({*bf16_blocks, *changed_blocks}):
                added = changed_blocks.get(block, 0.0) - bf16_blocks.get(block, 0.0)
                if abs(added) > 0.01:
                    print(f"      {block:<40} {added:+6.2f}")
    return rows


def autocast_rows(tokens: int, show_blocks: bool = False) -> list[dict]:
    """fp32 weights under bf16 autocast (a full fine-tune without FSDP; a mixture of experts' experts as the rendered
    script runs them there, cast to bf16: `training.autocast_experts`) on each layer, against `autocast_units`."""
    return change_rows("autocast", (*FITTED, *HELD_OUT, *AUTOCAST_ONLY), tokens, show_blocks, layer_config, 0,
                       predicted_autocast_units)


def predicted_autocast_units(spec) -> float:
    """What the training model counts autocast over fp32 weights adding to a one-layer model's layer: the layer's
    terms (`autocast_units`) and its model's rotary tables at fp32 (a one-layer model's are its layer's)."""
    from optiplan.planner.plan.training_activations import autocast_units, rotary_table_units

    return autocast_units(spec, 0) + rotary_table_units(spec, fp32_weights=True) \
        - rotary_table_units(spec, fp32_weights=False)


def fp32_rows(tokens: int, show_blocks: bool = False) -> list[dict]:
    """Each layer in an fp32 model without autocast (a full fine-tune without mixed precision), measured per token in
    bytes a hidden unit, against the training model's count: twice the bf16 count less what a bf16 layer keeps in fp32
    already (`fp32_activations.fixed_units`), the model's rotary tables at fp32."""
    rows = []
    for label, cls_name, overrides in (*FITTED, *HELD_OUT):
        config = layer_config(cls_name, **overrides)
        by_block: dict[str, float] = {}
        measured = measured_units(config, tokens, "fp32", by_block)  # nothing held whatever the tokens: no casts
        predicted = predicted_fp32_bytes(config, tokens)
        rows.append({"layer": label, "measured_bytes": round(measured, 3), "predicted_bytes": round(predicted, 3),
                     "ratio": round(predicted / measured, 4)})
        print(f"  {label:<84} measured {measured:7.2f}  predicted {predicted:7.2f}  ratio {predicted / measured:.3f}")
        if show_blocks:
            for block in sorted(by_block):
                print(f"      {block:<40} {by_block[block]:7.2f}")
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    print(f"  largest error {abs(worst['ratio'] - 1):.1%} over {len(rows)} layers ({worst['layer']})")
    return rows


def predicted_fp32_bytes(config, tokens: int) -> float:
    """The training model's bytes a token and hidden unit for the config's first layer in an fp32 model: twice its
    16-bit units with the dropout masks and the math path at 4 bytes, less `fixed_units`, and its model's rotary tables
    in fp32 (a one-layer model's are its layer's)."""
    from optiplan.planner.plan.fp32_activations import fixed_units
    from optiplan.planner.plan.training_activations import rotary_table_units

    spec = predicted_spec(config)
    return 2 * cpu_layer_units(spec, tokens, act_bytes=4) - fixed_units(spec, 0, tokens) \
        + rotary_table_units(spec, fp32_weights=True)


def lora_rows(tokens: int, show_blocks: bool = False) -> list[dict]:
    """The rendered script's LoRA (a frozen bf16 base, fp32 adapters under bf16 autocast, dropout 0) on the second
    layer of a two-layer model of each layer, against `lora_units`."""
    from optiplan.planner.plan.attention_activations import math_attention_units
    from optiplan.planner.plan.training_activations import lora_units

    # under attention dropout this CPU's math path keeps the output projection's input as the adapter's cast
    return change_rows("lora", (*FITTED, *HELD_OUT), tokens, show_blocks, two_layers, 1,
                       lambda spec: lora_units(spec, 1, LORA_RANK, autocast=True)
                       + math_attention_units(spec, 1, 0, 2, lora_autocast=True) - math_attention_units(spec, 1, 0, 2))


def predicted_spec(config):
    from optiplan.planner.catalog.model_spec import model_spec_from_config

    return model_spec_from_config(config.to_dict(), "bench", "bench")


def predicted_units(config, tokens: int | None = None) -> float:
    """The training model's count for the config's first layer, with the model's rotary tables (a one-layer model's
    are its layer's)."""
    from optiplan.planner.plan.training_activations import rotary_table_units

    spec = predicted_spec(config)
    return cpu_layer_units(spec, tokens) + rotary_table_units(spec, fp32_weights=False)


def cpu_layer_units(spec, tokens: int | None, act_bytes: int = 2) -> float:
    """The training model's units for the spec's first layer as this CPU runs it, its values at `act_bytes`: where the
    model runs eager attention, its scores over `tokens` (and its keys and values repeated to every head:
    `packed_attention_units`); SDPA's math path under attention dropout, or its flash kernel's output copy; and the
    dropout masks."""
    from optiplan.planner.plan.attention_activations import (
        math_attention_units,
        packed_attention_units,
        runs_math_path,
    )
    from optiplan.planner.plan.dropout_activations import dropout_units
    from optiplan.planner.plan.training_activations import layer_activation_units, output_copy_units

    eager = packed_attention_units(spec, 0, tokens) if sdpa_refused(spec.model_type) and tokens else 0.0
    math = math_attention_units(spec, 0, tokens, act_bytes) if runs_math_path(spec, cpu=True) and tokens \
        else output_copy_units(spec, 0, flash_kernel=True)
    return layer_activation_units(spec, 0) + eager + math + dropout_units(spec, 0, False, act_bytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--blocks", action="store_true", help="print autocast's and LoRA's changes by submodule")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {}
    for group, layers in (("fitted", FITTED), ("held_out", HELD_OUT)):
        print(f"{group.replace('_', ' ')}:")
        rows = results[group] = []
        for label, cls_name, overrides in layers:
            config = layer_config(cls_name, **overrides)
            measured, predicted = measured_units(config, args.tokens), predicted_units(config, args.tokens)
            rows.append({"layer": label, "measured_units": round(measured, 3),
                         "predicted_units": round(predicted, 3), "ratio": round(predicted / measured, 4)})
            print(f"  {label:<84} measured {measured:6.2f}  predicted {predicted:6.2f}  ratio "
                  f"{predicted / measured:.3f}")
        worst = max(abs(r["ratio"] - 1) for r in rows)
        print(f"  largest error {worst:.1%} over {len(rows)} layers (bytes per token and hidden unit at 16 bits)")
    print("recipes on a first layer (training.py: recipe_memory; LoRA's first layer keeps less than the others, whose "
          "count is below):")
    results["recipes"] = recipe_rows(args.tokens)
    print("fp32 weights under bf16 autocast, what each layer adds per token (training_activations.py: autocast_units):")
    results["autocast"] = autocast_rows(args.tokens, args.blocks)
    print("an fp32 model without autocast (a full fine-tune without mixed precision), bytes a token and hidden unit "
          "(fp32_activations.py: fixed_units):")
    results["fp32"] = fp32_rows(args.tokens, args.blocks)
    print(f"peft's LoRA (rank {LORA_RANK}) as the script runs it, what each layer's second layer changes per token "
          "(training_activations.py: lora_units):")
    results["lora"] = lora_rows(args.tokens, args.blocks)
    write_results("activation_memory", {"tokens": args.tokens, "hidden": HIDDEN, **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
