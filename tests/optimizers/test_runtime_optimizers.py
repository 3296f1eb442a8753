"""Attention swap, KV-cache techniques, continuous batching and speculative decoding on the test models."""

from __future__ import annotations

import shutil

import pytest
import torch
from artifact_helpers import roundtrip
from optiplan.optimizers import metrics
from optiplan.optimizers.corpus import DEFAULT_PROMPTS
from optiplan.optimizers.registry import check_supported
from optiplan.optimizers.workspace import NotSupportedHere

PROMPT = "The for statement is used to iterate over"


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("implementation", ["custom", "eager"])
def test_attention_implementations_match_eager_logits(implementation, workspace, base, tmp_path):
    ids = base.encode([PROMPT])
    reference = _logits(base.model, ids)
    check_supported("flash-attention", "cpu").apply(workspace, {"implementation": implementation})
    loaded = roundtrip(workspace, tmp_path)
    expected = {"custom": "optiplan"}.get(implementation, implementation)
    assert loaded.model.config._attn_implementation == expected
    torch.testing.assert_close(_logits(loaded.model, ids), reference, atol=2e-4, rtol=1e-4)
    assert loaded.generate_text(PROMPT, 6) == base.generate_text(PROMPT, 6)


def test_an_attention_the_model_already_runs_is_skipped_not_applied(workspace, target_path, tmp_path):
    """A model loaded with SDPA asked for SDPA (flash-attention's default on CPU) is not changed: the step is recorded
    as skipped with that reason, and no measured change is credited to it (it had read "attention sdpa -> sdpa",
    applied, with whatever two separate samples' noise gave)."""
    from optiplan.optimizers.apply import apply
    from optiplan.optimizers.workspace import AlreadyInPlace

    with pytest.raises(AlreadyInPlace, match="already runs sdpa attention"):
        check_supported("flash-attention", "cpu").apply(workspace, {})
    manifest = apply(target_path, tmp_path / "opt", techniques=["flash-attention"], dtype="fp32", verify=False)
    step = next(r for r in manifest.steps if r.technique == "flash-attention")
    assert step.status == "skipped" and "already runs sdpa" in step.detail and not step.measured


def test_flash_attention_2_is_refused_on_cpu():
    from optiplan.optimizers.attention import resolve

    with pytest.raises(NotSupportedHere, match="CUDA"):
        resolve("flash_attention_2", "cpu")


def _cache_after(loaded, tokens: int):
    from optiplan.optimizers.kv_cache import cache_bytes

    ids = torch.randint(1, loaded.model.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    kwargs = loaded.generate_kwargs()
    out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, min_new_tokens=2,
                                return_dict_in_generate=True, **kwargs)
    return cache_bytes(out.past_key_values)


@pytest.mark.parametrize("technique", ["kv-int4", "kv-int8", "kv-fp8"])
def test_quantized_kv_cache_holds_under_half_the_bytes_at_long_context(technique, workspace, base, tmp_path):
    check_supported(technique, "cpu").apply(workspace, {"residual_length": 16})
    loaded = roundtrip(workspace, tmp_path)
    assert _cache_after(loaded, 600) < 0.5 * _cache_after(base, 600)
    assert metrics.greedy_tokens(loaded, PROMPT, 4) == metrics.greedy_tokens(base, PROMPT, 4)


def test_a_quantized_cache_counts_its_scales_and_zero_points(base):
    """HQQ keeps each layer's keys as (data, {"scale", "zero", ...}): the scales and zero points had been left out
    of the cache's bytes, so an 8-bit cache measured as a quarter of an fp32 one when it holds more."""
    from optiplan.optimizers.kv_cache import cache_bytes

    ids = torch.randint(1, base.model.config.vocab_size, (1, 300), generator=torch.Generator().manual_seed(0))
    out = base.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, min_new_tokens=2,
                              return_dict_in_generate=True, cache_implementation="quantized",
                              cache_config={"backend": "hqq", "nbits": 8, "residual_length": 16})
    cache = out.past_key_values
    data = meta = 0
    for layer in cache.layers:
        for name in ("_quantized_keys", "_quantized_values"):
            tensor, info = getattr(layer, name)
            data += tensor.numel() * tensor.element_size()
            meta += sum(v.numel() * v.element_size() for v in info.values() if isinstance(v, torch.Tensor))
    assert meta > 0.05 * data  # what was left out
    assert cache_bytes(cache) >= data + meta


def test_sink_cache_stays_flat_and_matches_full_attention_before_eviction(workspace, base, tmp_path):
    check_supported("sliding-window-sinks", "cpu").apply(workspace, {"num_sinks": 4, "window": 60})
    loaded = roundtrip(workspace, tmp_path)
    assert _cache_after(loaded, 200) == _cache_after(loaded, 500)  # flat as the context grows
    assert _cache_after(loaded, 500) < 0.2 * _cache_after(base, 500)
    # nothing is evicted while the sequence fits: identical to full attention
    assert metrics.greedy_tokens(loaded, PROMPT, 12) == metrics.greedy_tokens(base, PROMPT, 12)


def test_a_sinks_cache_is_read_past_its_window(workspace, base):
    """A sinks cache of 4 + 512 tokens holds a 384-token context whole: read there (as every cache had been), its step
    could never show a memory gain. The cache is now read 384 tokens past the span it keeps, on both sides alike."""
    from optiplan.optimizers.apply import quick_prompts
    from optiplan.optimizers.effects import CACHE_CONTEXT, cache_tokens, id_prompts, sizes
    from optiplan.optimizers.runtime import LoadedModel

    check_supported("sliding-window-sinks", "cpu").apply(workspace, {"num_sinks": 4, "window": 512})
    after = LoadedModel(workspace.model, workspace.tokenizer, "cpu", workspace.runtime)
    config = workspace.model.config
    assert cache_tokens(config, base) == CACHE_CONTEXT and cache_tokens(config, base, after) == CACHE_CONTEXT + 516
    vocab = config.vocab_size

    def ratio(tokens: int) -> float:
        prompts = id_prompts(vocab, cache_context=tokens)
        return sizes(after, prompts)["cache_bytes"] / sizes(base, prompts)["cache_bytes"]

    assert ratio(CACHE_CONTEXT) == pytest.approx(1.0)  # where it had been read
    assert ratio(cache_tokens(config, base, after)) < 0.6
    assert len(quick_prompts(after)["cache"][0]) == CACHE_CONTEXT + 516  # apply's step check reads it there
    config_limit = type("Config", (), {"max_position_embeddings": 600})()
    assert cache_tokens(config_limit, base, after) == 598  # never past the model's positions


def test_a_second_cache_technique_is_refused_not_silently_replacing_the_first(workspace):
    check_supported("sliding-window-sinks", "cpu").apply(workspace, {"window": 64})
    with pytest.raises(NotSupportedHere, match="already uses a sinks cache"):
        check_supported("kv-int8", "cpu").apply(workspace, {})
    assert workspace.runtime.cache["kind"] == "sinks"


def test_sink_evictions_rotate_kept_keys_without_scaling_them():
    """Moving a kept key back by the evicted positions is a pure rotation: a YaRN model's rotary module carries an
    attention scaling (1.14 at factor 4), which had multiplied each kept key once per eviction (the oldest kept key
    at 2.5x its norm after 40 steps)."""
    from optiplan.optimizers.kv_cache import make_sink_cache
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, max_position_embeddings=256,
                         rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})
    model = LlamaForCausalLM(config)
    assert model.model.rotary_emb.attention_scaling > 1.1  # the case this guards
    layer = make_sink_cache(model, num_sinks=2, window=8).layers[0]
    torch.manual_seed(0)
    norms = []
    for _ in range(40):
        key = torch.randn(1, 2, 1, 16)
        norms.append(key.norm().item())
        layer.update(key, torch.randn(1, 2, 1, 16))
    kept = layer.keys[:, :, 2:]  # the window's 8 keys, the last 8 written
    per_token = kept.permute(2, 0, 1, 3).reshape(8, -1).norm(dim=1)
    assert per_token.tolist() == pytest.approx(norms[-8:], rel=1e-4)


def test_sinks_refuse_a_model_whose_layers_have_windows_of_their_own(workspace):
    workspace.model.config.layer_types = ["sliding_attention", "full_attention"]
    with pytest.raises(NotSupportedHere, match="sliding_attention"):
        check_supported("sliding-window-sinks", "cpu").apply(workspace, {})


def test_sink_positions_stay_inside_the_cache(workspace):
    from optiplan.optimizers.kv_cache import install_position_hook, make_sink_cache

    install_position_hook(workspace.model)
    cache = make_sink_cache(workspace.model, 2, 8)
    seen = []
    handle = workspace.model.model.rotary_emb.register_forward_hook(
        lambda m, args, kwargs, out: seen.append(int(kwargs.get("position_ids", args[-1]).max())), with_kwargs=True)
    try:
        with torch.no_grad():
            for _ in range(30):
                workspace.model(input_ids=torch.tensor([[5]]), cache=cache, use_cache=True)
    finally:
        handle.remove()
    assert cache.get_seq_length() == 10
    assert max(seen) <= 10


def test_speculative_decoding_keeps_greedy_output_and_counts_acceptance(workspace, base, draft_path, tmp_path):
    detail = check_supported("spec-draft", "cpu").apply(workspace, {"draft": str(draft_path),
                                                                     "num_assistant_tokens": 3})
    assert "acceptance" in detail
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.draft is not None and loaded.draft.generation_config.num_assistant_tokens == 3
    assert metrics.greedy_tokens(loaded, PROMPT, 24) == metrics.greedy_tokens(base, PROMPT, 24)
    assert 0 < loaded.runtime.speculative["acceptance_rate"] <= 1
    # the folder serves the draft too: its weights count with the target's
    assert metrics.weights_bytes(loaded) > metrics.weights_bytes(base)


def test_a_reloaded_draft_runs_the_attention_its_target_runs(workspace, draft_path, tmp_path):
    """apply runs the draft with the target's attention (an attention step sets both); the folder's draft had come
    back with sdpa whatever the target ran."""
    workspace.model.set_attn_implementation("eager")
    workspace.runtime.attn_implementation = "eager"
    check_supported("spec-draft", "cpu").apply(workspace, {"draft": str(draft_path), "num_assistant_tokens": 2})
    assert workspace.draft.config._attn_implementation == "eager"
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.draft.config._attn_implementation == "eager"


def test_acceptance_from_counts():
    from optiplan.optimizers.speculative import acceptance

    assert acceptance(48, 48, 4)["acceptance_rate"] == 0.0  # one token per pass: nothing accepted
    assert acceptance(50, 10, 4)["acceptance_rate"] == 1.0  # 5 tokens per pass with 4 drafted: all accepted
    assert acceptance(30, 10, 4)["acceptance_rate"] == pytest.approx(0.5)


def test_missing_draft_is_a_clear_error(workspace, tmp_path):
    opt = check_supported("spec-draft", "cpu")
    with pytest.raises(NotSupportedHere, match="--draft"):
        opt.apply(workspace, {})
    with pytest.raises(NotSupportedHere, match="no config.json"):
        opt.apply(workspace, {"draft": str(tmp_path)})


def test_prompt_lookup_keeps_greedy_output(workspace, base, tmp_path):
    check_supported("spec-ngram", "cpu").apply(workspace, {})
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.model.generation_config.prompt_lookup_num_tokens == 10
    assert metrics.greedy_tokens(loaded, PROMPT, 16) == metrics.greedy_tokens(base, PROMPT, 16)


def test_continuous_batching_serves_every_prompt(workspace, tmp_path):
    detail = check_supported("paged-kv", "cpu").apply(workspace, {"concurrency": 4, "max_tokens": 128})
    assert "blocks of 32 tokens" in detail
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.runtime.continuous_batching["num_blocks"] == 4 * 4 + 1
    assert loaded.generate_many(list(DEFAULT_PROMPTS), max_new_tokens=6) == 6 * len(DEFAULT_PROMPTS)


def test_a_plans_sequences_size_the_paged_cache_under_either_name():
    """Plans name the sequences max_running; plans saved before named them max_num_seqs (vLLM's): both size the cache,
    and neither falls back to the default of 8."""
    from optiplan.planner.plan.techniques import all_techniques

    options = dict(all_techniques()["paged-kv"].apply.options)
    assert {"max_running", "max_num_seqs", "concurrency"} <= set(options)
    from optiplan.optimizers.batching import DEFAULT_CONCURRENCY, continuous_batching

    class Runtime:
        dtype = "fp32"
        continuous_batching = None

    from transformers import LlamaConfig

    class Model:
        config = LlamaConfig(num_key_value_heads=2, num_attention_heads=4, hidden_size=64, num_hidden_layers=2)

    class Ws:
        model, runtime, device = Model(), Runtime(), "cpu"

    for name in ("max_running", "max_num_seqs"):
        ws = Ws()
        continuous_batching(ws, {name: 3, "max_tokens": 64})
        assert ws.runtime.continuous_batching["max_requests_per_batch"] == 3 != DEFAULT_CONCURRENCY, name


@pytest.mark.slow
def test_torch_compile_with_static_cache_keeps_output(workspace, base, tmp_path):
    check_supported("torch-compile", "cpu").apply(workspace, {})
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.model.generation_config.cache_implementation == "static"
    assert metrics.greedy_tokens(loaded, PROMPT, 8) == metrics.greedy_tokens(base, PROMPT, 8)


class _Delivering:
    """A stand-in model that streams tokens in the given batches, 10 ms apart (speculation delivers several at once)."""

    device = "cpu"

    def __init__(self, batches: list[int]):
        self.batches = batches

    def encode(self, prompts):
        return torch.zeros(1, 4, dtype=torch.long)

    def generate(self, ids, streamer=None, **kwargs):
        import time

        streamer.put(ids[0])
        for n in self.batches:
            time.sleep(0.01)
            streamer.put(torch.zeros(1, n, dtype=torch.long) if n > 1 else torch.zeros(1, dtype=torch.long))


def test_time_per_token_counts_the_tokens_that_came_after_the_first():
    """Accepted proposals that arrive with the first token are not decode steps: 24 tokens in three arrivals of 8
    take two arrivals (20 ms) for 16 tokens, not 23."""
    r = metrics.time_generation(_Delivering([8, 8, 8]), "x", 24)
    assert r["tpot_ms"] == pytest.approx(20 / 16, rel=0.3) and r["tokens_per_step"] == 8
    whole = metrics.time_generation(_Delivering([24]), "x", 24)  # everything at once: the whole time per token
    assert whole["tpot_ms"] == pytest.approx(10 / 24, rel=0.5)


def test_a_planned_sink_cache_passes_its_parameters_to_the_optimizer():
    """The plan names the sink cache's parameters as its optimizer declares them (it had said `sink_tokens`, which
    apply drops as an engine option, so the optimizer's own default stood in for the plan's value)."""
    from optiplan.planner.plan.techniques import all_techniques

    technique = all_techniques()["sliding-window-sinks"]
    declared = dict(check_supported("sliding-window-sinks", "cpu").declared.options)
    assert set(technique.parameters(None, None)) <= set(declared)


def test_a_planned_prompt_lookup_runs_with_the_plans_tokens_and_ngram():
    """The plan prices n-gram speculation at 4 tokens a step and 4-grams, named as the engines name them
    (num_speculative_tokens, prompt_lookup_max): apply had dropped both as engine options, and transformers ran its
    own 10 tokens and 2-grams."""
    from optiplan.planner.plan.techniques import all_techniques

    plan_params = all_techniques()["spec-ngram"].parameters(None, None)
    params = check_supported("spec-ngram", "cpu").declared.from_plan(plan_params)
    assert params == {"prompt_lookup_num_tokens": plan_params["num_speculative_tokens"],
                      "max_matching_ngram_size": plan_params["prompt_lookup_max"]}


def test_a_planned_draft_step_drafts_the_plans_tokens():
    """The plan prices a draft model at its num_speculative_tokens a step: apply had dropped it as an engine option and
    tuned its own number, so verify measured another configuration than the one predicted. -t alone still tunes."""
    from types import SimpleNamespace

    from optiplan.planner.plan.techniques import all_techniques

    plan_params = all_techniques()["spec-draft"].parameters(SimpleNamespace(draft=None))
    params = check_supported("spec-draft", "cpu").declared.from_plan(plan_params)
    assert params == {"num_assistant_tokens": plan_params["num_speculative_tokens"]}


def test_quality_is_scored_past_what_a_cache_keeps_whole():
    """A sink cache of 4 + 512 tokens changes nothing before position 516: each window is scored from there on (scoring
    from 0 had diluted its change about fivefold, a review's finding); a cache whose span the model's context does not
    reach beyond is scored whole, which verify's notes say."""
    from types import SimpleNamespace

    from optiplan.optimizers.metrics import EVAL_WINDOW_TOKENS, cache_span, quality_window, scored_from
    from optiplan.planner.schema.optimize import Runtime

    def model(context, cache=None):
        return SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=context)),
                               runtime=Runtime(cache=cache))

    base, sinks = model(2048), model(2048, {"kind": "sinks", "num_sinks": 4, "window": 512})
    # each window scores EVAL_WINDOW_TOKENS next tokens past the span (a window of n tokens scores n - 1)
    assert cache_span(base, sinks) == 516 and quality_window(base, sinks) == 516 + EVAL_WINDOW_TOKENS + 1
    assert scored_from(base, sinks) == 516 and scored_from(base, model(2048)) == 0
    planned = model(2048, {"kind": "sinks", "num_sinks": 4, "window": 4096})  # the planner's window, past the context
    assert quality_window(base, planned) == 2048 and scored_from(base, planned) == 0


def test_a_model_without_sdpa_is_not_swapped_to_it(target_path, tmp_path):
    """transformers has no SDPA attention for Gemma 2 (nor gpt-oss) and runs it eagerly: flash-attention's default on
    CPU, SDPA, had crashed apply with transformers' ValueError. It is refused with the reason, and asked for
    explicitly too; on CUDA the default is flex attention (which takes Gemma 2's softcapping and gpt-oss's sinks).
    Saved and loaded again, the model loads with transformers' own default (it had been asked for SDPA by name)."""
    from optiplan.optimizers.attention import resolve
    from optiplan.optimizers.workspace import Workspace
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target_path)
    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=16, pad_token_id=0, bos_token_id=0,
                          eos_token_id=0)
    model = Gemma2ForCausalLM(config)
    assert model.config._attn_implementation == "eager"
    ws = Workspace(model=model, tokenizer=None, device="cpu", source=None)
    with pytest.raises(NotSupportedHere, match="no SDPA attention for Gemma2ForCausalLM"):
        check_supported("flash-attention", "cpu").apply(ws, {})
    with pytest.raises(NotSupportedHere, match="no SDPA attention"):
        resolve("sdpa", "cpu", model)
    assert model.config._attn_implementation == "eager"
    assert resolve(None, "cuda", model) == "flex_attention"
    from optiplan.optimizers.artifact import load
    from optiplan.planner.measure.runtime import load_model

    model.save_pretrained(tmp_path / "gemma2")
    tokenizer.save_pretrained(tmp_path / "gemma2")
    assert load(tmp_path / "gemma2", "cpu", dtype="fp32").model.config._attn_implementation == "eager"
    assert load_model(str(tmp_path / "gemma2"), "fp32", "cpu")[0].config._attn_implementation == "eager"
    # apply asked for the step by name refuses it with the reason (it had failed on loading the model)
    from optiplan.optimizers.apply import apply

    with pytest.raises(NotSupportedHere, match="no SDPA attention for Gemma2ForCausalLM"):
        apply(tmp_path / "gemma2", tmp_path / "opt", techniques=["flash-attention"], dtype="fp32", verify=False)


def _tiny(kind: str):
    import transformers

    common = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return transformers.AutoModelForCausalLM.from_config({
        "jamba": lambda: transformers.JambaConfig(**common, intermediate_size=96, num_experts=4, num_experts_per_tok=2,
                                                  expert_layer_period=2, expert_layer_offset=1, attn_layer_period=2,
                                                  attn_layer_offset=1, mamba_d_state=8, use_mamba_kernels=False),
        "llama4": lambda: transformers.Llama4TextConfig(**common, head_dim=16, intermediate_size=64,
                                                        intermediate_size_mlp=128, num_local_experts=4,
                                                        num_experts_per_tok=1, interleave_moe_layer_step=2),
        "lfm2": lambda: transformers.Lfm2Config(vocab_size=128, hidden_size=64, intermediate_size=96,
                                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                layer_types=["conv", "full_attention"], block_auto_adjust_ff_dim=False),
        "mistral_window": lambda: transformers.MistralConfig(**common, intermediate_size=128, sliding_window=16),
        "mistral": lambda: transformers.MistralConfig(**common, intermediate_size=128, sliding_window=None),
        "deepseek_v3": lambda: transformers.DeepseekV3Config(
            **{**common, "num_key_value_heads": 4}, intermediate_size=128, moe_intermediate_size=32,
            n_routed_experts=4, num_experts_per_tok=2, q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8,
            qk_rope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1),
    }[kind]())


@pytest.mark.parametrize("kind, technique, params, reason", [
    # found by applying each technique to tiny models of each architecture, where they had failed inside the library
    ("jamba", "paged-kv", {}, "no paged cache for JambaForCausalLM's layers"),
    ("llama4", "paged-kv", {}, "Invalid layer type: chunked_attention"),
    ("jamba", "kv-int8", {}, "full-attention layers only"),
    ("llama4", "kv-int4", {}, "full-attention layers only"),
    ("jamba", "spec-ngram", {}, "not supported with stateful models"),
    ("deepseek_v3", "sliding-window-sinks", {}, "latent attention rotates only a part"),
    # (latent attention caches its compressed latent, 16 values a token here, and the keys' rotary part, 8, which the
    # backends pack in groups of 64: "group_size should be divisble")
    ("deepseek_v3", "kv-int8", {}, "do not divide into groups of 64"),
    ("lfm2", "spec-ngram", {}, "not supported with stateful models"),
    # a window layer of the static cache: its compiled decode step would recompile at every token (below)
    ("mistral_window", "torch-compile", {}, "recompile at every token; MistralForCausalLM has sliding_attention"),
    ("llama4", "torch-compile", {}, "Llama4ForCausalLM has chunked_attention layers"),
])
def test_what_transformers_cannot_run_on_a_model_is_refused_before_it_runs(kind, technique, params, reason):
    from optiplan.optimizers.workspace import Workspace

    ws = Workspace(model=_tiny(kind).eval(), tokenizer=None, device="cpu", source=None)
    with pytest.raises(NotSupportedHere, match=reason):
        check_supported(technique, "cpu").apply(ws, params)


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")),
                    reason="inductor needs a C compiler on CPU")
def test_a_window_layer_of_the_static_cache_recompiles_the_decode_step_at_every_token():
    """Why torch-compile is refused for models with window layers (optimizers.compile.WINDOW_RECOMPILES): in the
    installed transformers a sliding-window model's compiled decode step compiles a graph per token, a full-attention
    model's once. If this fails, transformers has fixed it, and the refusal can go."""
    import torch._dynamo
    from optiplan.optimizers.runtime import LoadedModel
    from optiplan.planner.schema.optimize import Runtime

    def graphs(kind: str) -> int:
        torch._dynamo.reset()
        torch.manual_seed(0)
        compiled = Runtime(compile={"mode": "default", "fullgraph": False, "dynamic": False}, cache={"kind": "static"})
        loaded = LoadedModel(_tiny(kind).eval(), None, "cpu", compiled)
        loaded.generate(torch.tensor([[1, 2, 3, 4, 5]]), max_new_tokens=5, pad_token_id=0)
        return torch._dynamo.utils.counters["stats"]["unique_graphs"]

    assert graphs("mistral") <= 2 and graphs("mistral_window") >= 4
    torch._dynamo.reset()


def test_a_planned_runtime_step_that_fails_on_its_first_run_is_skipped_not_fatal(target_path, tmp_path,
                                                                                  monkeypatch):
    """A runtime setting the planner chose that the library cannot run on the model (torch.compile past torch's
    recompile limit: a process that had compiled other models' decode steps, a shared code object, stopped there on
    a tiny random EXAONE 4) had stopped apply; it is rolled back and skipped with the library's reason, and the model
    is written."""
    from optiplan.optimizers import apply as apply_module
    from optiplan.optimizers.step_spec import StepSpec

    monkeypatch.setattr(apply_module, "steps_from_goal",
                        lambda *a, **k: ([StepSpec("torch-compile", {"mode": "no-such-mode"})], None))
    manifest = apply_module.apply(target_path, tmp_path / "opt", goal="latency", dtype="fp32", verify=False)
    (step,) = manifest.steps
    assert step.technique == "torch-compile" and step.status == "skipped", step
    # (where the machine has no C compiler, inductor's refusal comes first)
    assert "Unrecognized mode=no-such-mode" in step.detail or "C compiler" in step.detail, step.detail
    assert (tmp_path / "opt" / "config.json").is_file()
    # named by the user, the same failure is an error
    with pytest.raises(Exception, match="torch-compile|C compiler"):
        apply_module.apply(target_path, tmp_path / "opt2", techniques=["torch-compile:mode=no-such-mode"],
                           dtype="fp32", verify=False)
