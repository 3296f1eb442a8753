"""The training step model: step time, tokens/s and MFU, QLoRA's dequantization cost, the techniques a training
step has, and its error against published fine-tuning runs (the fitted constants reproduce the published
figures; the held-out ones stay within the band reports show)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optiplan import profiles
from optiplan.planner.analytic.params import param_counts
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import OptiplanError
from optiplan.planner.plan.advise import ImpossibleError, advise
from optiplan.planner.plan.state import PlanState
from optiplan.planner.plan.training import COMPILE_SPEEDUP, lora_params, training_prediction
from optiplan.planner.report.advice import render
from optiplan.planner.schema import AdviseRequest
from script_loader import load_script


def _advice(model="llama-3.1-8b", hardware="h100-sxm", devices=1, **kw):
    return advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, workload="fine-tune", **kw))


def _measured_tokens(label: str) -> int:
    """The tokens a bench layer is measured at: fewer where its PyTorch path scans token by token (Mamba, RG-LRU)."""
    return 64 if label.startswith(("mamba,", "recurrentgemma")) else 256


def _bench():
    return load_script("benchmarks/bench_training_published.py")


def test_qlora_is_slower_than_lora_and_smaller():
    a = _advice()
    steps = {s.technique: s.predicted for s in a.plan.steps}
    alternatives = [alt for alt in a.alternatives if "qlora" in alt.techniques and "lora" not in alt.techniques]
    assert "lora" in steps and alternatives
    qlora = alternatives[0].predicted
    assert qlora.memory_per_device_bytes < a.plan.predicted.memory_per_device_bytes
    assert qlora.training_step_s > a.plan.predicted.training_step_s  # dequantization in every forward and backward
    # the blocks' linear layers in double-quantized NF4 (4.127 bits), the embedding, head and norms cast to fp32 by
    # peft (8B: 6.98B + 1.05B), and the adapters' fp32 weights: not all 8.03B parameters at 4 bits (4 GB)
    counts = param_counts(resolve_model("llama-3.1-8b"))
    frozen = counts.linear * 4.127 / 8 + (counts.total - counts.linear) * 4
    assert frozen / 1e9 == pytest.approx(7.8, abs=0.2)
    assert qlora.weights_per_device_bytes > frozen
    assert qlora.weights_per_device_bytes < frozen + 0.5e9  # the adapters: tens of millions of parameters


def test_step_time_tokens_and_mfu_are_consistent():
    p = _advice().plan.predicted
    job_tokens = 64 * 4096  # the fine-tune preset: global batch 64 of 4,096 tokens
    assert p.throughput_tokens_per_s == pytest.approx(job_tokens / p.training_step_s)
    assert 0.2 < p.training_mfu < 0.6  # published fine-tuning and pre-training runs reach 30-60%


def test_compiled_training_uses_the_measured_speedup():
    a = _advice()
    steps = [s.technique for s in a.plan.steps]
    assert "compiled-training" in steps and steps.index("compiled-training") > steps.index("mixed-precision")
    step = next(s for s in a.plan.steps if s.technique == "compiled-training")
    assert "torchtitan" in step.effect_source and step.params == {"speedup": round(COMPILE_SPEEDUP, 2)}
    # the measured speedup of a whole step: its products and its streaming kernels (the Trainer's per-layer cost
    # apart), not the products' time alone
    from optiplan.planner.schema.workload import Training, Workload

    workload = Workload(goal="training", training=Training(sequence_length=4096, global_batch=8))
    state = _state("llama-3.1-8b", training=("mixed-precision", "lora", "activation-checkpointing"))
    eager = training_prediction(state, workload).training_step_s
    compiled = training_prediction(state.with_(training=state.training | {"compiled-training"}), workload)
    assert eager / compiled.training_step_s == pytest.approx(COMPILE_SPEEDUP, rel=0.02)


def test_inference_techniques_say_what_a_training_step_does_instead():
    reasons = {r.technique: r.reason for r in _advice().rejected}
    assert "SDPA" in reasons["flash-attention"]
    assert "fsdp" in reasons["tensor-parallel"] and "Megatron" in reasons["tensor-parallel"]
    assert "compiled-training" in reasons["torch-compile"]
    assert "KV cache" in reasons["kv-int8"]


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_reports_show_step_time_and_mfu_not_ttft(fmt):
    text = render(_advice(), fmt)
    assert "step s" in text and "MFU" in text and "TTFT" not in text and "TPOT" not in text
    assert "a step of 64 x 4096 tokens takes" in text


def test_published_fine_tuning_runs_within_the_band():
    bench = _bench()
    points = bench.load_points()
    table = {k: v for k, v in bench.profiles.efficiency_table()["training"].items() if k != "source"}
    ratios = {(p["split"], p["method"]): [] for p in points}
    for p in points:
        ratios[(p["split"], p["method"])].append(bench.predict(p, table) / p["seconds_per_iteration"])
    for (split, method), values in ratios.items():
        if method == "full":  # the 1.8B's full-parameter runs: below
            continue
        errors = sorted(abs(r - 1) for r in values)
        median = errors[len(errors) // 2]
        # held out: the 1.8B's and the 14B's runs, 12-15% before the streaming kernels' traffic was priced
        assert median < 0.1, (split, method, median)


def test_a_small_models_full_fine_tune_outruns_its_lora_at_long_sequences_as_published():
    """The Qwen README's 1.8B on one A100: its full-parameter runs took 2.8 and 5.6 s an iteration at 4,096 and 8,192
    tokens where its LoRA runs took 3.3 and 6.8 (the adapters' casts, products and dropout move more bytes than the
    weight gradients cost). Held out, in no fit: priced within 5% there, and in the same order. Its short runs' 2.1 s
    floor (0.34-0.71x) is not modelled."""
    bench = _bench()
    points = {(p["method"], p["sequence_length"]): p for p in bench.load_points() if p["model"] == "qwen-1.8b"}
    for tokens in (4096, 8192):
        full, lora = points[("full", tokens)], points[("lora", tokens)]
        assert full["seconds_per_iteration"] < lora["seconds_per_iteration"]
        predicted = bench.predict(full, {k: v for k, v in bench.profiles.efficiency_table()["training"].items()
                                         if k != "source"})
        assert predicted == pytest.approx(full["seconds_per_iteration"], rel=0.05)
        assert predicted < bench.predict(lora, {k: v for k, v in bench.profiles.efficiency_table()["training"].items()
                                                if k != "source"})


def test_the_band_is_shown_only_where_the_step_model_was_validated():
    assert "training_step_s" in _advice(hardware="a100-80gb-sxm").accuracy  # one A100, as the published runs
    assert _advice(hardware="h100-sxm").accuracy == {}


def test_a_training_plan_is_priced_per_million_tokens_trained():
    # `--hardware auto` for a fine-tune ranked every device as unpriced ("none of them priced", a GB200 first): a
    # training prediction carried no cost. It is the devices' catalog price over the tokens trained
    from optiplan.planner.report.figures import cost_and_loss

    a = advise(AdviseRequest(model="llama-3.2-3b", hardware="a100-80gb-sxm", workload="fine-tune"))
    p = a.plan.predicted
    expected = a.hardware.usd_per_hour * a.hardware.count / (p.throughput_tokens_per_s * 3600) * 1e6
    assert p.cost_per_million_tokens_usd == pytest.approx(expected)
    assert "per million tokens trained" in cost_and_loss(a)


def test_a_training_workload_takes_context_as_its_sequence_length_and_refuses_concurrency():
    # the review found --context and --concurrency ignored for the fine-tune preset (and --context 1024 refused
    # against its serving p95): the step trains on the sequence length asked for, and --concurrency says where a
    # training step's sequences are set
    short, preset = _advice(max_context=1024), _advice()
    assert short.workload.training.sequence_length == 1024 and preset.workload.training.sequence_length == 4096
    assert short.plan.predicted.activation_bytes < preset.plan.predicted.activation_bytes
    with pytest.raises(OptiplanError, match="training.micro_batch"):
        _advice(concurrency=8)
    # a serving goal in its place serves the workload's sequences, at the concurrency asked for
    assert _advice(goal="latency", concurrency=8).workload.concurrency == 8


def test_lora_adapters_are_counted_on_the_projections_each_layer_has():
    # a pure state-space model has no q/k/v/o and no MLP: adapters on its mixers' input projections, since peft
    # refuses its output projection for Mamba-2 (Mamba-Codestral at rank 16: 23.2M; 35.8M had counted out_proj, 54.5M
    # had been counted as if it attended), a Transformer's on its attention and MLP projections as before
    def adapters(model):
        spec = resolve_model(model)
        return lora_params(PlanState(spec=spec, hw=resolve_hardware("h100-sxm"), devices=1, weight_dtype="bf16"), 16)

    codestral = resolve_model("mamba-codestral-7b")
    h = codestral.hidden_size
    d = codestral.state.out_proj_inputs
    assert adapters("mamba-codestral-7b") == 16 * codestral.num_layers * (
        2 * h + codestral.state.linear_params // h - (d + h))
    assert adapters("mamba-codestral-7b") / 1e6 == pytest.approx(23.2, abs=0.1)
    attention, mlp = (4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096), 3 * (4096 + 14336)
    assert adapters("llama-3.1-8b") == 16 * 32 * (attention + mlp)


def test_a_full_fine_tune_that_does_not_fit_says_what_the_model_leaves_out(tmp_path):
    # mixed precision keeps fp32 master weights and gradients (10 bytes a parameter with an 8-bit optimizer): one H100
    # does not hold Llama-3.1-8B's; torchtune's single-device recipe (bf16 weights, the optimizer step in the backward)
    # does, and the message says it is not modelled rather than leaving a second GPU as the only way
    workload = tmp_path / "full-ft.yaml"
    preset = (Path(profiles.__file__).parent / "workloads" / "fine-tune.yaml").read_text()
    workload.write_text(preset.replace("name: fine-tune", "name: full-ft") + "denied_techniques: [lora, qlora]\n")
    with pytest.raises(ImpossibleError, match="not modelled"):
        advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", workload=str(workload)))
    # a plan with adapters that does not fit says nothing of full fine-tunes
    with pytest.raises(ImpossibleError) as err:
        advise(AdviseRequest(model="llama-3.1-405b", hardware="l4", workload="fine-tune"))
    assert "full fine-tune" not in str(err.value)


def _state(model, hardware="h100-sxm", devices=1, training=("mixed-precision", "lora")):
    return PlanState(spec=resolve_model(model), hw=resolve_hardware(hardware), devices=devices, weight_dtype="bf16",
                     training=frozenset(training))


def test_lora_adapts_every_expert_of_a_mixture_of_experts():
    """Each routed expert's projections get adapters (peft's target_parameters: transformers 5 holds experts as 3-D
    parameters all-linear skips, and the plan names them), a gated expert's fused gate and up projections one, the
    router none: Qwen3-30B-A3B at rank 16 has 642.5M adapter parameters (32.2M had been counted, one dense-width MLP
    a layer; then 843.8M, gate and up apart), Mixtral 223.3M. The rendered script's count on tiny models of each
    layout is checked in tests/planner/deploy/test_training_files.py."""
    qwen = resolve_model("qwen3-30b-a3b")
    h, m = qwen.hidden_size, qwen.moe
    attention = (h + 32 * 128) + 2 * (h + 4 * 128) + (32 * 128 + h)
    experts = m.num_experts * ((h + 2 * m.expert_intermediate_size) + (m.expert_intermediate_size + h))
    assert lora_params(_state("qwen3-30b-a3b"), 16) == 16 * qwen.num_layers * (attention + experts)
    assert lora_params(_state("qwen3-30b-a3b"), 16) / 1e6 == pytest.approx(642.5, abs=0.1)
    assert lora_params(_state("mixtral-8x7b"), 16) / 1e6 == pytest.approx(223.3, abs=0.1)
    lora = next(s for s in _advice(model="qwen3-30b-a3b").plan.steps if s.technique == "lora")
    assert lora.params["target_parameters"] == "experts.gate_up_proj, experts.down_proj"
    assert "target_parameters" not in next(s for s in _advice().plan.steps if s.technique == "lora").params


def test_a_mixture_of_experts_step_carries_no_band_and_says_why():
    a = _advice(model="qwen3-30b-a3b", hardware="a100-80gb-sxm")
    assert a.accuracy == {} and any("validated on dense models only" in w for w in a.warnings)


def test_a_state_space_step_says_its_time_is_priced_as_fused_kernels_would_run():
    """The script runs transformers' unfused PyTorch path for Mamba-2's mixer (no mamba-ssm): its activations are
    counted as that path keeps them, its step time as fused kernels would run, and the advice says so rather than
    show a band."""
    a = _advice(model="mamba2-2.7b", hardware="a100-80gb-sxm")
    assert a.accuracy == {} and any("priced as fused kernels would run: optimistic" in w for w in a.warnings)
    # nor does it compile the step: torch.compile's gain is measured on a dense Transformer only
    assert "compiled-training" not in [s.technique for s in a.plan.steps]
    assert "dense Transformer" in {r.technique: r.reason for r in a.rejected}["compiled-training"]


def test_a_token_by_token_scan_says_its_backward_grows_with_the_square_of_the_sequence():
    """Mamba's and RG-LRU's PyTorch scans loop over the tokens, and their backward materialises each token's slice
    gradient at the whole sequence's size (benchmarks/bench_scan_backward.py): the advice says the step time leaves
    that out, and for Mamba's layers which kernels would avoid it; Mamba-2's chunked scan and a Transformer say
    nothing of it."""
    from optiplan.planner.plan.training import token_scan_caveat

    a = _advice(model="recurrentgemma-2b", hardware="h100-sxm")
    assert any("square of the sequence length" in w for w in a.warnings)
    assert "mamba-ssm" in token_scan_caveat(resolve_model("jamba-1.5-mini"))
    assert "mamba-ssm" not in token_scan_caveat(resolve_model("recurrentgemma-2b"))
    assert token_scan_caveat(resolve_model("mamba2-2.7b")) is None
    assert token_scan_caveat(resolve_model("llama-3.1-8b")) is None


def test_a_job_at_the_models_whole_context_is_not_refused():
    """A fine-tune's context is its sequence length: the preset's one output token is no part of it (4,096 tokens on
    a 4K model had been refused as 4,097)."""
    a = _advice(model="phi-3-mini-4k", max_context=4096)
    assert a.workload.training.sequence_length == 4096 and not any("clipped" in w for w in a.warnings)


def test_fsdp_gathers_the_weights_every_micro_step_behind_the_compute():
    """FSDP all-gathers the weights before each micro-step's forward and backward: 8 PCIe L40S at 8 micro-steps a
    step gather a full fine-tune's bf16 weights 16 times; the gathers hide behind the compute as far as it lasts."""
    from optiplan.planner.schema.workload import Training, Workload

    def step(devices, global_batch, hardware="l40s"):
        workload = Workload(goal="training", training=Training(sequence_length=4096, global_batch=global_batch))
        state = _state("llama-3.1-8b", hardware, devices, ("mixed-precision", "fsdp", "optimizer-8bit"))
        return training_prediction(state, workload).training_step_s

    spec, hw = resolve_model("llama-3.1-8b"), resolve_hardware("l40s")
    link = hw.interconnect.bandwidth_gbps / 2 * 1e9 * 0.8  # ALLREDUCE_EFFICIENCY
    gathers = 8 * 2 * 7 / 8 * param_counts(spec).total * 2 / link  # 8 micro-steps, two gathers each
    assert step(8, 64) >= gathers  # the gathers take longer than the compute on PCIe: they set the step
    h100 = resolve_hardware("h100-sxm").interconnect.bandwidth_gbps / 2 * 1e9 * 0.8
    assert step(8, 64, "h100-sxm") > 4 * gathers * link / h100  # NVLink's gathers are a fraction of a compute-set step


def test_micro_batches_are_bounded_by_the_global_batch():
    from optiplan.planner.schema.workload import Training, Workload

    with pytest.raises(ValueError, match="micro_batch 128 is larger than global_batch 64"):
        Training(micro_batch=128, global_batch=64)
    # 8 devices at micro-batch 16 with 64 sequences a step: each holds 8 at once, not 16
    workload = Workload(goal="training", training=Training(global_batch=64, micro_batch=16))
    p = training_prediction(_state("llama-3.1-8b", devices=8, training=("mixed-precision", "lora", "fsdp")), workload)
    assert p.batch == 8


def test_a_training_plans_memory_carries_the_band_of_its_adapters_published_peaks():
    """The Qwen README's LoRA memory peaks are matched within a few percent, its Q-LoRA ones less well: each plan
    shows its own method's band, and a full fine-tune's memory (no published point here) none."""
    from optiplan.planner.analytic.accuracy import training_accuracy_bands

    a100 = resolve_hardware("a100-80gb-sxm")
    lora, qlora = (training_accuracy_bands(a100, 1, "dense", m)["memory_bytes"] for m in ("lora", "qlora"))
    assert lora.median_pct < 5 < qlora.median_pct and lora.category == "training-memory-lora"
    assert "memory_bytes" not in training_accuracy_bands(a100, 1, "dense", None)
    bench = _bench()
    for p in (q for q in bench.load_points() if q["method"] == "lora"):
        ratio = bench.prediction(p).memory_per_device_bytes / 1e9 / p["memory_gb"]
        assert 0.8 < ratio < 1.1, (p["model"], p["sequence_length"], ratio)
    assert "memory_bytes" in _advice(hardware="a100-80gb-sxm").accuracy


def test_without_leaves_techniques_out_a_full_fine_tune_included():
    """A fine-tune plans adapters by default; --without lora --without qlora asks for a full fine-tune (it had taken a
    workload file's denied_techniques), which FSDP shards over 8 H100s."""
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    full = _advice(devices=8, without=("lora", "qlora"))
    steps = [s.technique for s in full.plan.steps]
    assert "lora" not in steps and "qlora" not in steps and full.plan.predicted.gradient_bytes > 1e9
    assert full.workload.denied_techniques[-2:] == ("lora", "qlora")
    out = CliRunner().invoke(main, ["advise", "llama-3.1-8b", "--gpus", "8", "--workload", "fine-tune", "--without",
                                    "lora", "--without", "qlora", "--format", "json"])
    assert out.exit_code == 0 and '"lora"' not in out.output.split('"steps"')[1].split('"rejected"')[0]
    bad = CliRunner().invoke(main, ["advise", "llama-3.1-8b", "--without", "nope"])
    assert bad.exit_code == 2 and "unknown technique 'nope'" in bad.output


def test_a_training_workload_file_that_nothing_fits_is_an_answer_not_a_concurrency_error(tmp_path):
    """A training file without `concurrency` (16 by default) had its nearest-feasible search halve the concurrency,
    which a training workload refuses: exit 2 with a false --concurrency error instead of the infeasible report."""
    workload = tmp_path / "ft.yaml"
    workload.write_text("name: ft\ngoal: training\ntraining: {sequence_length: 4096, global_batch: 64}\n"
                        "denied_techniques: [lora, qlora]\n")
    with pytest.raises(ImpossibleError) as err:
        advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", workload=str(workload)))
    assert "--concurrency" not in str(err.value)


@pytest.mark.parametrize("label", ["llama, gated MLP at 3.5 x hidden, 2 KV heads",
                                   "starcoder2, LayerNorm, plain MLP at 4 x hidden",
                                   "mixtral, top-2 of 8 experts at 3.5 x hidden",
                                   "mistral, gated MLP at 3.5 x hidden, 8 KV heads",
                                   "olmo2, whole query and key norms, gated MLP at 2 x hidden",
                                   "gemma2, four norms a layer, softcapped eager attention, GeGLU at 3 x hidden",
                                   "cohere, per-head query and key LayerNorms",
                                   "olmo, weightless LayerNorm, gated MLP at 2 x hidden",
                                   "gpt-j, one LayerNorm feeding attention and MLP side by side, gelu_new MLP at 4 x "
                                   "hidden",
                                   "llama4, top-1 of 16 experts run densely at 1 x hidden, a shared expert",
                                   "mamba, inner width 4 x hidden, 8 states, PyTorch path",
                                   "mamba-2, 16 heads of 32, 32 states in 2 groups, chunks of 64, PyTorch path",
                                   "lfm2, short convolution of 4 tokens, gated MLP at 2.5 x hidden",
                                   "qwen3-next, gated DeltaNet of 6 value heads of 40 on 3 key heads of 32, "
                                   "top-1 of 4 experts at 1 x hidden",
                                   "qwen3-next, full attention, top-2 of 8 experts and a gated shared expert",
                                   "recurrentgemma, RG-LRU of 320 channels in 5 heads, GeGLU at 2 x hidden",
                                   "starcoder2, residual dropout 0.1, LayerNorm, plain MLP at 4 x hidden",
                                   "phi3, fused query-key-value and gate-up projections at 2.5 x hidden, 4 KV heads",
                                   "stablelm, LayerNorm, partial rotary, gated MLP at 2.5 x hidden",
                                   "deepseek-v2, latent attention without query compression, top-2 of 8 experts and "
                                   "two shared experts",
                                   "granite-4, attention, top-2 of 4 experts and a shared MLP",
                                   "gpt-2, attention dropout 0.1 (SDPA's math path on this CPU)",
                                   "recurrentgemma, attention of 8 heads of 32 on 1 KV head, half rotary, GeGLU at 2 "
                                   "x hidden"])
def test_a_layers_activations_are_what_transformers_keeps_for_its_backward(label):
    """The training model's activations per layer against what transformers' eager layer saves for its backward
    (autograd's saved-tensor hooks, bf16, this CPU): a gated MLP keeps four intermediates, an eager RMSNorm an fp32
    copy (one that multiplies its weight in fp32, OLMo-2's, two), a mixture of experts its MLP for each of a token's
    top-k experts, and Gemma 2, which transformers runs without SDPA, its eager attention's scores. Korthikanti et
    al.'s flat 34 (a GPT layer's) had been counted for every layer: 0.68 of a Llama layer's 49.7, 0.39 of a Mixtral
    layer's 86.1; OLMo-2's layer had been counted 0.865 of what it keeps, Gemma 2's 0.43 at 256 tokens; Cohere's
    (fp32 LayerNorms) 0.59, OLMo's (a weightless fp32 LayerNorm) 0.75, GPT-J's (a GELU written out) 0.58; Llama 4's,
    whose experts transformers runs densely (every token through all 16), had been counted with its top-1: 0.20; a
    Mamba layer, whose PyTorch path keeps its scan's fp32 decays and states per token, had been priced as attention:
    0.05; a Mamba-2 layer, whose chunked scan keeps fp32 score matrices per chunk, 0.04; LFM2's short convolution
    0.73 and Qwen3-Next's gated DeltaNet, whose chunked delta rule keeps fp32 queries, keys, decays and states, 0.64;
    Qwen3-Next's gated attention (its output gate uncounted) 0.92; RecurrentGemma's RG-LRU block 0.47; a StarCoder 2
    layer with its config's residual dropout (masks uncounted) 0.88; Phi-3's and StableLM's, whose concatenated
    queries make the output projection copy the attention's output, 0.96 and 0.94; Granite 4's, its shared MLP
    counted with an input of its own, 1.028."""
    pytest.importorskip("torch")
    bench = load_script("benchmarks/bench_activation_memory.py")
    _, cls_name, overrides = next(row for row in (*bench.FITTED, *bench.HELD_OUT, *bench.AUTOCAST_ONLY)
                                  if row[0] == label)
    config = bench.layer_config(cls_name, **overrides)
    tokens = _measured_tokens(label)
    assert bench.predicted_units(config, tokens) == pytest.approx(bench.measured_units(config, tokens), rel=0.01)


def test_a_mixture_of_experts_step_counts_its_layers_activations():
    """Mixtral's LoRA step without checkpointing keeps each layer's 85.1 bytes per token and hidden unit (85.19
    measured on one layer of its widths with the tables; a dense layer of its widths 49.2, as a Llama-3.1-8B layer
    measures), the model's rotary tables once (4 bytes a head dimension), 5 more for the packed documents' mask (its
    keys and values repeated to its 32 query heads, a 4,096-position bias row) and what LoRA changes (`lora_units`:
    0.03 on its layers, the frozen norms' and router's tensors gone, the adapters' casts kept); and, since peft merges
    each layer's experts with their adapters into a new tensor in every forward, which the matmul keeps, every layer's
    expert weights once more (90 GB in bf16), and one layer's merged gradient in the backward. It had been priced at
    27 GB: the plan now checkpoints."""
    from optiplan.planner.plan.attention_activations import packed_attention_units
    from optiplan.planner.plan.training_activations import (
        layer_activation_units,
        lora_units,
        rotary_table_units,
    )
    from optiplan.planner.schema.workload import Training, Workload

    spec = resolve_model("mixtral-8x7b")
    lora = lora_units(spec, 1, Training().lora_rank, autocast=True)
    assert lora == pytest.approx(-4 + 4 + 2 - 2 + 4 * 2 * 16 / 4096)
    assert layer_activation_units(spec, 0) == pytest.approx(85.06, abs=0.01)
    llama = resolve_model("llama-3.1-8b")
    assert layer_activation_units(llama, 0) + rotary_table_units(llama, False) == pytest.approx(49.16, abs=0.01)
    assert packed_attention_units(spec, 0, 4096) == pytest.approx(4 * 24 * 128 / 4096 + 2)
    workload = Workload(goal="training", training=Training(sequence_length=4096, global_batch=8))
    p = training_prediction(_state("mixtral-8x7b", "h100-sxm", 8, ("mixed-precision", "fsdp", "lora")), workload)
    logits = 4096 * spec.vocab_size * 12
    stack = 2 * 8 * 3 * 4096 * 14336  # a layer's experts in bf16
    assert p.activation_bytes - logits - 33 * stack == pytest.approx(
        4096 * spec.hidden_size * (spec.num_layers * (layer_activation_units(spec, 0) + 5 + lora) + 4 * 128 / 4096),
        rel=1e-9)
    assert 32 * stack > 90e9
    assert "activation-checkpointing" in {s.technique for s in _advice(model="mixtral-8x7b", devices=2).plan.steps}


def test_qloras_quantization_constants_stay_whole_under_fsdp():
    """bitsandbytes keeps a 4-bit weight's quantization constants as module state, which FSDP does not shard: over 8
    devices each holds all of them (0.127 bits a linear-layer parameter) beside its eighth of the 4-bit weights."""
    from optiplan.planner.plan.training import NF4_BYTES_PER_PARAM
    from optiplan.planner.schema.workload import Training, Workload

    workload = Workload(goal="training", training=Training(sequence_length=4096, global_batch=8))
    linear = param_counts(resolve_model("llama-3.1-70b")).linear
    weights = {n: training_prediction(_state("llama-3.1-70b", "h100-sxm", n, ("mixed-precision", "qlora", "fsdp")),
                                      workload).weights_per_device_bytes for n in (1, 8)}
    constants = linear * (NF4_BYTES_PER_PARAM - 0.5)
    assert weights[8] == pytest.approx(weights[1] / 8 + constants * 7 / 8, rel=1e-6)


def test_the_recipes_additions_are_what_transformers_keeps():
    """The rendered script's recipes, measured on a tiny Llama layer as the plan's constants were: fp32 weights under
    bf16 autocast (a full fine-tune without FSDP) add 10.5 bytes per token and hidden unit on this one-layer model
    (`autocast_units`' 10 on the layer, and its rotary tables at fp32: 0.5, once a model) and hold a bf16 cast of the
    layer's weights; a dropout of 0.05 on LoRA's adapters' inputs would add about 20 on its first layer, which is why
    the script sets none."""
    pytest.importorskip("peft")
    from optiplan.planner.plan.training_activations import autocast_units

    bench = load_script("benchmarks/bench_activation_memory.py")
    rows = {(r["recipe"]): r for r in bench.recipe_rows(256) if r["layer"].startswith("llama, gated MLP at 3.5")}
    _, cls_name, overrides = next(row for row in bench.FITTED if row[0].startswith("llama, gated MLP at 3.5"))
    spec = bench.predicted_spec(bench.layer_config(cls_name, **overrides))
    assert autocast_units(spec, 0) == 10.0
    assert rows["autocast"]["units_added"] == pytest.approx(bench.predicted_autocast_units(spec), abs=0.1) == 10.5
    layer_params = 256 * 256 * 2 + 2 * 256 * 64 + 3 * 256 * 896
    assert rows["autocast"]["bytes_held_per_layer"] == pytest.approx(2 * layer_params, rel=0.02)
    assert rows["lora-dropout"]["units_added"] > 20


@pytest.mark.parametrize("label", [
    "phi3, fused query-key-value and gate-up projections at 2.5 x hidden, 4 KV heads",
    "olmo2, whole query and key norms, gated MLP at 2 x hidden",
    "qwen2-moe, top-4 of 8 experts at 0.5 x hidden and a shared expert at 2 x hidden",
    "deepseek-v3, latent attention, top-2 of 8 experts at 0.5 x hidden and a shared expert",
    "gpt-neox, fused query-key-value, LayerNorm, parallel residual, plain MLP at 4 x hidden",
    "lfm2, short convolution, gated MLP at 2 x hidden",
    "mamba-2, 16 heads of 32, 32 states in 2 groups, chunks of 64, PyTorch path",
    "qwen3-next, gated DeltaNet of 6 value heads of 40 on 3 key heads of 32, top-1 of 4 experts at 1 x hidden",
    "recurrentgemma, RG-LRU of 320 channels in 5 heads, GeGLU at 2 x hidden"])
def test_what_autocast_adds_to_a_layer_is_counted_block_by_block(label):
    """fp32 weights under bf16 autocast (a full fine-tune without FSDP) add to a layer what its blocks make of it: the
    norms that read the fp32 residual keep it at 4 bytes, every linear layer beyond the first that reads one input
    keeps its own bf16 cast, and the rotary tables are fp32. A flat 10.5 (a Llama layer's) had been counted for every
    layer: Phi-3's fused projections add 4.5, OLMo-2's post-norms 6.0, Qwen2-MoE's shared expert and its gate 14.5,
    GPT-NeoX's 2.2; Qwen3-Next's gated DeltaNet keeps bf16 casts where its delta rule's matmuls kept fp32 tensors
    (7.25 on this layer, where the generic terms' 4.0 left its mixer's change out)."""
    pytest.importorskip("torch")
    bench = load_script("benchmarks/bench_activation_memory.py")
    _, cls_name, overrides = next(row for row in (*bench.FITTED, *bench.HELD_OUT, *bench.AUTOCAST_ONLY)
                                  if row[0] == label)
    config = bench.layer_config(cls_name, **overrides)
    tokens = _measured_tokens(label)
    (bf16, _), (mixed, _) = (bench.per_token_units(config, tokens, recipe) for recipe in (None, "autocast"))
    assert bench.predicted_autocast_units(bench.predicted_spec(config)) == pytest.approx(mixed - bf16, abs=0.15)


@pytest.mark.parametrize("label", [
    "llama, gated MLP at 2 x hidden, 2 KV heads",
    "gemma3, four norms a layer and per-head query and key norms, GeGLU at 4 x hidden",
    "phi3, fused query-key-value and gate-up projections at 2.5 x hidden, 4 KV heads",
    "deepseek-v3, latent attention, top-2 of 8 experts at 0.5 x hidden and a shared expert",
    "olmo, weightless LayerNorm, gated MLP at 2 x hidden",
    "exaone4, post-norms and per-head query and key norms, gated MLP at 2 x hidden",
    "mamba, inner width 2 x hidden, 16 states, PyTorch path",
    "mamba-2, 16 heads of 32, 32 states in 2 groups, chunks of 64, PyTorch path",
    "lfm2, short convolution, gated MLP at 2 x hidden",
    "qwen3-next, gated DeltaNet of 6 value heads of 40 on 3 key heads of 32, top-1 of 4 experts at 1 x hidden",
    "qwen3-next, full attention, top-2 of 8 experts and a gated shared expert",
    "recurrentgemma, RG-LRU of 320 channels in 5 heads, GeGLU at 2 x hidden"])
def test_what_lora_changes_in_a_layer_is_counted_block_by_block(label):
    """peft's LoRA as the rendered script runs it (its own adapter targets; fp32 adapters under bf16 autocast) frees
    what the frozen weights needed for their gradients (the norms' normalized copies, the inputs only frozen linear
    layers kept, a mixture of experts' router and shared experts') and keeps each adapter's bf16 cast of its input.
    A flat 0.42 had been counted for every layer: a Llama layer keeps 4.4 more, Gemma 3's 12.6 less, DeepSeek-V3's
    9.6 less, OLMo's 8.4 more (the second layer of two: the first's input needs no gradient); Qwen3-Next's gated
    DeltaNet 15.4 less (its frozen decay and gated norm, its delta rule's bf16 casts), its gated attention no cast
    beside its output projection, which reads the gated product only it keeps."""
    pytest.importorskip("peft")
    from optiplan.planner.plan.training_activations import lora_units

    bench = load_script("benchmarks/bench_activation_memory.py")
    _, cls_name, overrides = next(row for row in (*bench.FITTED, *bench.HELD_OUT) if row[0] == label)
    config = bench.two_layers(cls_name, **overrides)
    tokens = _measured_tokens(label)
    (bf16, _), (lora, _) = (bench.per_token_units(config, tokens, recipe, 1) for recipe in (None, "lora"))
    predicted = lora_units(bench.predicted_spec(config), 1, bench.LORA_RANK, autocast=True)
    assert predicted == pytest.approx(lora - bf16, abs=0.2)


def test_each_block_of_a_layer_brings_its_own_norm():
    """A layer counts the norms of the blocks it has: Nemotron-H's MLP-only layers their MLP's (no attention block),
    Mamba-2's and Nemotron-H's mixer layers their mixer's (no MLP block). The count had subtracted one norm for such
    models and charged every layer an attention block and an MLP block: an MLP-only layer 38.6 where it keeps 31, a
    Mamba-2 layer a phantom MLP. Under autocast only the norms that read the residual change, one a block."""
    from optiplan.planner.plan.state_mixer_activations import mamba2_mixer_units, mamba2_recipe_units
    from optiplan.planner.plan.training_activations import (
        AUTOCAST_NORM_UNITS,
        FP32_WEIGHT_NORM_UNITS,
        MLP_BASE_UNITS,
        NORM_UNITS,
        autocast_units,
        layer_activation_units,
    )

    nemotron = resolve_model("nemotron-h-8b")
    mlp_only = next(i for i in range(nemotron.num_layers) if nemotron.mixer(i) == "none")
    width = 4 * nemotron.intermediate_size / nemotron.hidden_size  # a plain (squared ReLU) MLP
    assert layer_activation_units(nemotron, mlp_only) == pytest.approx(FP32_WEIGHT_NORM_UNITS + MLP_BASE_UNITS + width)
    mamba2 = resolve_model("mamba2-2.7b")
    assert not mamba2.has_mlp(0) and layer_activation_units(mamba2, 0) == pytest.approx(
        NORM_UNITS["rmsnorm"] + mamba2_mixer_units(mamba2))  # 289.1: 290.2 measured on a whole layer of its widths
    assert autocast_units(mamba2, 0) == pytest.approx(
        AUTOCAST_NORM_UNITS + mamba2_recipe_units(mamba2, lora=False, autocast=True))


def test_state_mixers_are_counted_at_the_catalog_models_widths():
    """LFM2's short convolution, Qwen3-Next's gated DeltaNet and RecurrentGemma's RG-LRU are counted as their PyTorch
    paths keep them, where attention of the models' widths had been counted. Whole layers at the catalog's widths,
    measured (bench_activation_memory.py's per-token count, 2026-12-07): LFM2-1.2B's convolution layer 60.0 units,
    where 61.1 had been counted (close at these widths by chance: 0.73 of a tiny layer); Qwen3-Next-80B's DeltaNet
    layer with its 512 experts (top 10) 261.8 at 256 tokens, where 113.8 had been counted; RecurrentGemma-2B's
    recurrent layer 80.0 at 128 tokens, where 49.0 had been counted."""
    from optiplan.planner.plan.state_mixer_activations import (
        gated_deltanet_mixer_units,
        short_conv_mixer_units,
    )
    from optiplan.planner.plan.training_activations import layer_activation_units

    lfm2, qwen = resolve_model("lfm2-1.2b"), resolve_model("qwen3-next-80b-a3b")
    conv = next(i for i in range(lfm2.num_layers) if lfm2.mixer(i) == "state")
    linear = next(i for i in range(qwen.num_layers) if qwen.mixer(i) == "state")
    assert short_conv_mixer_units(lfm2) == pytest.approx(14.0)  # its input, then 12 bytes a convolved channel
    assert layer_activation_units(lfm2, conv) == pytest.approx(60.0, abs=0.05)
    assert gated_deltanet_mixer_units(qwen) == pytest.approx(178.6, abs=0.05)
    assert layer_activation_units(qwen, linear) == pytest.approx(261.8, rel=0.005)
    griffin = resolve_model("recurrentgemma-2b")
    recurrent = next(i for i in range(griffin.num_layers) if griffin.mixer(i) == "state")
    assert layer_activation_units(griffin, recurrent) == pytest.approx(80.0, abs=0.05)


def test_residual_dropout_masks_are_counted_as_the_device_keeps_them():
    """GPT-2's and StarCoder 2's configs set a residual dropout of 0.1, which the script leaves on: each block's
    dropout keeps its mask, a bool on CUDA (torch.native_dropout: 1 byte an element), the input's dtype on a CPU (2
    at 16 bits, as measured); a model without dropout keeps none, Falcon's and StableLM's layers one."""
    from optiplan.planner.catalog.model_spec import model_spec_from_config
    from optiplan.planner.plan.dropout_activations import dropout_units

    gpt2, starcoder, llama = (resolve_model(m) for m in ("gpt2", "starcoder2-7b", "llama-3.1-8b"))
    assert gpt2.residual_dropout == starcoder.residual_dropout == 0.1 and llama.residual_dropout == 0
    assert dropout_units(gpt2, 0, fused_dropout=True) == 2.0 and dropout_units(starcoder, 0, False) == 4.0
    assert dropout_units(llama, 0, True) == 0.0
    # a bool mask is a byte whatever the activations: in units of fp32 values, half as many
    assert dropout_units(gpt2, 0, True, act_bytes=4) == 1.0 and dropout_units(gpt2, 0, False, act_bytes=4) == 4.0
    stablelm = resolve_model("stablelm-2-1.6b").model_copy(update={"residual_dropout": 0.1})
    assert dropout_units(stablelm, 0, True) == 1.0  # its MLP's dropout alone
    config = json.loads((Path(profiles.__file__).parent / "models" / "falcon-7b.json").read_text())["config"]
    falcon = model_spec_from_config({**config, "hidden_dropout": 0.1}, "falcon-7b", "test")
    assert falcon.parallel_attention and dropout_units(falcon, 0, True) == 1.0
    # the plan counts them: GPT-2's LoRA step on an H100 keeps 2 units a layer more than the same model without
    from optiplan.planner.schema.workload import Training, Workload

    workload = Workload(goal="training", training=Training(sequence_length=1024, global_batch=8, micro_batch=8))
    job = workload.training
    state = _state("gpt2")
    kept = training_prediction(state, workload).activation_bytes
    without = training_prediction(state.with_(spec=gpt2.model_copy(update={"residual_dropout": 0.0})), workload)
    tokens = min(job.micro_batch, job.global_batch) * job.sequence_length
    assert kept - without.activation_bytes == pytest.approx(2 * gpt2.num_layers * tokens * gpt2.hidden_size, rel=1e-6)


def test_llama_4s_l2_query_key_norm_is_counted_on_its_rotary_layers():
    """Scout normalises its queries and keys with a weightless L2 norm (use_qk_norm) on its rotary layers, which keeps
    an fp32 copy (5.2 units measured on a tiny layer, where none had been counted); Maverick sets no such norm. It
    has no weights: the parameter counts stay transformers'."""
    from optiplan.planner.plan.training_activations import L2_QK_NORM_UNITS, layer_activation_units

    scout, maverick = resolve_model("llama-4-scout"), resolve_model("llama-4-maverick")
    assert (scout.qk_norm, maverick.qk_norm) == ("l2", "none")
    rotary = next(i for i, c in enumerate(scout.layer_chunks) if c is not None)
    nope = next(i for i, c in enumerate(scout.layer_chunks) if c is None)
    widths = (scout.num_heads + scout.num_kv_heads) * scout.head_dim / scout.hidden_size
    assert layer_activation_units(scout, rotary) - layer_activation_units(scout, nope) == pytest.approx(
        L2_QK_NORM_UNITS * widths)


def test_a_mixture_of_experts_full_fine_tune_keeps_what_the_plan_counts():
    """A full fine-tune without FSDP keeps fp32 weights under bf16 autocast, where transformers' default grouped_mm
    experts are not autocast-enabled and run in fp32: 72.5 more bytes per token and hidden unit on a Mixtral layer (at
    the fp32 rate). The script runs them cast to bf16, whose layer keeps what the plan counts (measured here through
    the rendered script's own function), and the plan prices no torch.compile on a mixture of experts, whose gain is
    a dense model's. Qwen1.5-MoE on one MI325X is such a plan."""
    pytest.importorskip("torch")
    from optiplan.planner.plan.training_activations import autocast_units

    bench = load_script("benchmarks/bench_activation_memory.py")
    _, cls_name, overrides = next(row for row in bench.FITTED if row[0].startswith("mixtral, top-2 of 8 experts at 3.5"))
    config = bench.layer_config(cls_name, **overrides)
    short, long = (bench.measured_units(config, t, "autocast") for t in (128, 256))
    predicted = bench.predicted_units(config) + autocast_units(bench.predicted_spec(config), 0)
    assert predicted == pytest.approx(2 * long - short, rel=0.01)

    a = _advice(model="qwen1.5-moe-a2.7b", hardware="mi325x", without=("lora", "qlora"))
    steps = {s.technique for s in a.plan.steps}
    assert "mixed-precision" in steps and "fsdp" not in steps and "compiled-training" not in steps
    assert "dense model" in next(r.reason for r in a.rejected if r.technique == "compiled-training")
    assert "compiled-training" not in {s.technique for s in _advice(model="mixtral-8x7b", devices=2).plan.steps}


def test_a_model_transformers_runs_without_sdpa_is_priced_with_eager_attention(monkeypatch):
    """Gemma 2 and gpt-oss have no SDPA attention in transformers (the transformers profile's sdpa_refused_models), so
    transformers runs them eagerly: their baseline under the transformers engine materialises the scores (a serving
    engine's does not), and a training step keeps them (Gemma-2-9B's LoRA plan on one H100 had planned 77.7 GB without
    checkpointing; it checkpoints now)."""
    from optiplan.planner.catalog.engine_refusals import sdpa_refused
    from optiplan.planner.plan.attention_activations import packed_attention_units
    from optiplan.planner.plan.state import baseline_state, to_setup

    spec, hw = resolve_model("gemma-2-9b"), resolve_hardware("h100-sxm")
    assert sdpa_refused("gemma2") and sdpa_refused("gpt_oss") and not sdpa_refused("llama")
    assert to_setup(baseline_state(spec, hw, 1, "transformers")).eager_attention
    assert not to_setup(baseline_state(spec, hw, 1, "vllm")).eager_attention
    assert not to_setup(baseline_state(resolve_model("llama-3.1-8b"), hw, 1, "transformers")).eager_attention
    assert packed_attention_units(spec, 0, 4096) > 100  # the scores: 16 heads x 4,096 x 8 bytes over 3,584
    steps = {s.technique for s in _advice(model="gemma-2-9b").plan.steps}
    assert "activation-checkpointing" in steps
    # its step computes the whole score matrix at eager's share of the rate; MFU counts the causal half alone
    from optiplan.planner.plan import training
    from optiplan.planner.schema.workload import Training, Workload

    workload = Workload(goal="training", training=Training(sequence_length=4096, global_batch=8))
    state = _state("gemma-2-9b", training=("mixed-precision", "lora", "activation-checkpointing"))
    eager = training_prediction(state, workload)
    monkeypatch.setattr(training, "sdpa_refused", lambda _: False)
    fused = training_prediction(state, workload)
    assert eager.training_step_s > 1.05 * fused.training_step_s
    assert eager.training_mfu * eager.training_step_s == pytest.approx(fused.training_mfu * fused.training_step_s,
                                                                        rel=1e-3)
