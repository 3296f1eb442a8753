"""Device facts: the engine a plan is made for runs on the device (a Mac gets llama.cpp, not vLLM), llama.cpp's
flash attention on Metal and CPU, and a user at the device's limit is first told what works on the same machine."""

from __future__ import annotations

import pytest
from optiplan import profiles
from optiplan.planner.catalog.engine_devices import engine_backends, engine_for_backend
from optiplan.planner.catalog.engines import engine_table
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.served import served_checkpoint_dtype
from optiplan.planner.catalog.workloads import load_workload, with_overrides
from optiplan.planner.errors import ImpossibleError, RequestError
from optiplan.planner.plan.advise import advise, rank_hardware
from optiplan.planner.schema import AdviseRequest


def _advise(**kw):
    return advise(AdviseRequest(**{"num_devices": 1, "workload": "chat", **kw}))


def test_every_engine_names_its_backends_with_a_source():
    for name, entry in engine_table().items():
        assert set(entry["backends"]) <= {"cuda", "rocm", "metal", "cpu", "tpu"} and entry["backends_source"], name
    assert engine_for_backend("vllm", resolve_hardware("m3-max")) == "llama.cpp"
    assert engine_for_backend("vllm", resolve_hardware("h100-sxm")) == "vllm"
    assert engine_for_backend("trtllm", resolve_hardware("t4")) == "vllm"  # TensorRT-LLM starts at Ampere
    assert "metal" not in engine_backends("vllm") and "metal" in engine_backends("llama.cpp")


def test_a_mac_is_planned_for_an_engine_that_runs_on_it():
    a = _advise(model="llama-3.2-3b", hardware="m3-max", concurrency=1)
    assert a.workload.engine == "llama.cpp"
    assert any("does not run on m3-max (metal): planned for llama.cpp" in w for w in a.warnings)
    step = next(s for s in a.plan.steps if s.technique == "flash-attention")  # llama.cpp's Metal kernel
    assert step.params == {"kernel": "llama.cpp --flash-attn on metal"}
    with pytest.raises(RequestError, match="vllm does not run on m3-max .*llama.cpp"):
        _advise(model="llama-3.2-3b", hardware="m3-max", engine="vllm")


def test_flash_attention_still_needs_ampere_in_the_gpu_engines():
    reasons = {r.technique: r.reason for r in _advise(model="llama-3.2-3b", hardware="t4", concurrency=8).rejected}
    assert "FlashAttention-2 needs compute capability 8.0" in reasons["flash-attention"]


def test_at_the_limit_of_a_laptop_the_same_machine_comes_first():
    with pytest.raises(ImpossibleError) as err:
        _advise(model="llama-3.1-70b", hardware="m3-max")
    nearest = err.value.document.nearest_feasible
    assert "on the same 1 x m3-max" in nearest or "--concurrency" in nearest, nearest


def test_past_the_laptop_the_cheapest_machine_by_the_hour_is_named():
    # a 3B code-completion assistant the M3 Max cannot serve within 500 ms to first token: nothing smaller of its
    # family does either, so a machine is named: the one that costs least an hour, not the cheapest token at scale
    with pytest.raises(ImpossibleError) as caught:
        _advise(model="llama-3.2-3b", hardware="m3-max", workload="code-completion")
    nearest = str(caught.value).split("nearest feasible: ")[1]
    options = rank_hardware(resolve_model("llama-3.2-3b"),
                            with_overrides(load_workload("code-completion"), engine="llama.cpp"), engine_asked=True)
    cheapest = min((o for o in options if o[1].price and o[1].price.usd_per_hour),
                   key=lambda o: o[1].price.usd_per_hour * o[2])
    assert nearest.startswith(f"{cheapest[2]} x {cheapest[1].id}") and "an hour" in nearest


def test_an_fp8_cache_is_stored_on_ampere_where_the_engine_dequantizes_it():
    from optiplan.planner.deploy.render import render

    def kv_reason(engine, hardware):
        try:
            a = _advise(model="llama-3.1-8b", hardware=hardware, workload="rag-long-context", engine=engine)
        except ImpossibleError as exc:  # the report of the best plan that fits comes with it
            a = exc.document
        return a, {r.technique: r.reason for r in a.rejected}.get("kv-fp8")

    for engine in ("vllm", "sglang", "tgi", "trtllm"):
        a, reason = kv_reason(engine, "a100-80gb-sxm")
        assert reason is None or "has no fp8" not in reason, (engine, reason)  # no longer "a100 has no fp8"
    a, _ = kv_reason("vllm", "a100-80gb-sxm")
    if "kv-fp8" in [s.technique for s in a.plan.steps]:
        script = render(a, "vllm")["vllm/serve.sh"]
        assert "export VLLM_ATTENTION_BACKEND=FLASHINFER" in script and "--kv-cache-dtype fp8" in script
    assert "from compute capability 8.0; t4 has 7.5" in kv_reason("vllm", "t4")[1]
    assert "a100-80gb-sxm has no fp8" in kv_reason("transformers", "a100-80gb-sxm")[1]


def test_profile_refuses_an_engine_on_a_device_it_does_not_run_on():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    with pytest.raises(RequestError, match=r"gpt-fast does not run on m3-max \(metal\); engines that do: serving, "
                                           r"llama.cpp, transformers"):
        profile(ProfileRequest(model="llama-3.2-1b", hardware="m3-max", engine="gpt-fast"))
    assert profile(ProfileRequest(model="llama-3.2-1b", hardware="m3-max", engine="llama.cpp")).fits


def test_a_plan_runs_its_engines_runtime_and_cache_layout():
    from optiplan.planner.analytic.steps import kv_passes
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.state import baseline_state, to_setup

    base = baseline_state(resolve_model("llama-3.2-3b"), resolve_hardware("m3-max"), 1)
    # llama.cpp on a Mac has no CUDA graphs, yet it is not eager PyTorch: its own runtime, one cache pass per step
    cpp = to_setup(base.with_(engine="llama.cpp"))
    assert cpp.layout == "serving" and kv_passes(cpp) == 1
    eager = to_setup(base.with_(engine="transformers"))
    assert eager.layout == "transformers" and kv_passes(eager) == 3
    # its fixed costs are those fitted to llama.cpp's own runs on Apple GPUs, not eager PyTorch's
    runtimes = profiles.efficiency_table()["runtimes"]
    assert cpp.eff.layer_overhead_s == runtimes["serving"]["apple"]["layer_overhead_s"]
    assert eager.eff.layer_overhead_s == runtimes["transformers"]["default"]["layer_overhead_s"]


@pytest.mark.parametrize("engine, hardware, budget, workload", [
    ("vllm", "h100-sxm", 8192, "chat"),  # vLLM's server default on a GPU of 70 GiB or more that is not an A100
    ("vllm", "l4", 2048, "chat"),
    # not a default there: turned on where prompts outgrow a step (chat's fit one, and it gains nothing), chunking at
    # max_num_tokens
    ("trtllm", "h100-sxm", 8192, "rag-long-context"),
    ("tgi", "h100-sxm", 59_870, "chat"),  # its launcher's: the H100's 900 TFLOP/s over the model's FLOPs per token
    ("tgi", "h100-pcie", 4096, "chat"),  # a card its table lacks: the fallback
])
def test_chunked_prefill_keeps_the_engines_own_step_budget(engine, hardware, budget, workload):
    """A plan's chunked prefill is predicted and configured at the budget the engine takes on the device: vLLM's
    8,192 tokens per step on an H100 is its default, which a plan step set to 2,048 had quietly lowered."""
    a = _advise(model="llama-3.1-8b", hardware=hardware, engine=engine, workload=workload)
    step = next(s for s in a.plan.steps if s.technique == "chunked-prefill")
    assert step.params == {"prefill_chunk_tokens": budget}


def test_a_prompt_within_the_budget_is_not_chunked():
    """TensorRT-LLM batches whole prompts in flight without chunked prefill; turned on, it chunks at 8,192 tokens, so
    a code-completion prompt runs as before: the step gains nothing (in-flight batching and chunked prefill are one
    request model, `analytic.requests`, as `profile` predicts it) and holds a little more memory, so the plan leaves
    it out, saying why (it had been in every TensorRT-LLM plan, always on though not the engine's default)."""
    a = _advise(model="llama-3.1-8b", hardware="h100-sxm", engine="trtllm", workload="code-completion")
    assert "chunked-prefill" not in [s.technique for s in a.plan.steps]
    assert {r.technique: r.reason for r in a.rejected}["chunked-prefill"].startswith("no gain for the latency goal")
    long = _advise(model="llama-3.1-8b", hardware="h100-sxm", engine="trtllm", workload="rag-long-context")
    assert "chunked-prefill" in [s.technique for s in long.plan.steps]  # prompts of 48k tokens: it pays there


def test_a_cpu_plan_for_llama_cpp_quantizes_the_weights():
    """On a CPU llama.cpp multiplies quantized weights with int8 dot products: a Q8_0 file prefills and decodes a
    batch faster than bf16, so the latency plan quantizes (it once named memory bandwidth the bottleneck and found
    no gain in int8 weights, the GEMMs being costed at the bf16 rate)."""
    from optiplan.planner.errors import ImpossibleError

    try:
        a = _advise(model="llama-3.2-3b", hardware="epyc-9004", engine="llama.cpp")
    except ImpossibleError as err:  # TTFT above the chat SLO on this CPU: the document still carries the plan
        a = err.document
    steps = [s.technique for s in a.plan.steps]
    assert {"weight-int8", "weight-int4-gguf", "weight-int4"} & set(steps), steps
    assert a.plan.predicted.ttft_ms < 0.7 * a.baseline.ttft_ms


def test_a_latent_attention_model_names_the_mla_kernels():
    """DeepSeek's latent attention runs the engines' MLA kernels: the step does not say FlashAttention-3."""
    a = _advise(model="deepseek-v2-lite", hardware="h100-sxm", engine="sglang")
    step = next(s for s in a.plan.steps if s.technique == "flash-attention")
    assert "MLA" in step.params["kernel"] and "version" not in step.params


@pytest.mark.parametrize("model, hardware, kernel", [("llama-3.1-8b", "mi300x", "Triton unified attention"),
                                                     ("gpt-oss-20b", "a100-80gb-sxm", "TRITON_ATTN"),
                                                     ("gpt-oss-20b", "h100-sxm", None)])
def test_vllms_attention_step_names_the_kernel_it_runs(model, hardware, kernel):
    """vLLM's V1 engine attends with Triton's unified attention on ROCm and with Triton attention for a model with
    attention sinks before Hopper: the step names that kernel, not a FlashAttention version it does not run."""
    a = _advise(model=model, hardware=hardware, engine="vllm")
    step = next(s for s in a.plan.steps if s.technique == "flash-attention")
    if kernel is None:
        assert step.params == {"version": 3}
    else:
        assert kernel in step.params["kernel"] and "version" not in step.params


def test_a_model_served_in_its_published_fp8_is_not_requantized_to_8_bits():
    """DeepSeek-V3's fp8 checkpoint on 8 MI300X: int8 weights (W8A16 or W8A8) save nothing over it and would
    re-quantize a quantized checkpoint, so neither is planned (it had been, for an assumed kernel speed); on A100s,
    which dequantize the fp8 checkpoint to 16 bits, 8-bit weights halve the weights and stay a candidate."""
    a = _advise(model="deepseek-v3", hardware="mi300x", num_devices=8)
    steps = {s.technique for s in a.plan.steps}
    assert not steps & {"weight-int8", "weight-w8a8-int8", "weight-fp8"}  # fp8: the baseline already
    why = {r.technique: r.reason for r in a.rejected}
    assert "served in its published fp8 checkpoint" in why["weight-int8"] and "weight-w8a8-int8" in why
    spec = resolve_model("deepseek-v3")
    assert served_checkpoint_dtype(spec, resolve_hardware("mi300x")) == "fp8"
    assert served_checkpoint_dtype(spec, resolve_hardware("a100-80gb-sxm")) is None


@pytest.mark.parametrize("hardware, int8_offered", [("mi325x", False), ("h100-sxm", False), ("rtx-4090", True),
                                                    ("a100-80gb-sxm", True)])
def test_w8a8_int8_is_planned_only_where_fp8_cannot_do_as_much(hardware, int8_offered):
    """W8A8 int8 beside W8A8 fp8 at the same tensor-core rate brings nothing but more quality loss: on an MI325X it
    had been planned ahead of fp8 for a kernel share nobody measured (vLLM runs it through Triton's scaled_mm on
    ROCm). A GeForce card multiplies int8 at twice its fp8 rate, and an A100 has no fp8: both keep it."""
    a = _advise(model="llama-3.1-8b", hardware=hardware, engine="vllm")
    why = {r.technique: r.reason for r in a.rejected}
    steps = {s.technique for s in a.plan.steps}
    if int8_offered:  # and the faster there: Llama-3.1-8B's chat plan takes it
        assert "weight-w8a8-int8" in steps and "weight-w8a8-int8" not in why
    else:
        assert "weight-w8a8-int8" not in steps
        assert why["weight-w8a8-int8"].startswith(f"weight-fp8 does what it does on {hardware}")
        assert "same tensor-core rate" in why["weight-w8a8-int8"]


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_a_plans_rate_is_its_mean_requests_and_its_ttft_the_p95_prompts_with_the_servers_latency(engine):
    """The plan's rate comes from the mean request's cycle alone, however far the p95 prompt lies above the mean (its
    TTFT once capped the rate: TGI's prompt-heavy plans lost 9/10 of their throughput), and over HTTP the p95 TTFT
    carries the engine's first-token latency; a client waits it out of its round trip, a throughput job's queue does
    not."""
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.catalog.engines import engine_first_token_latency_s
    from optiplan.planner.plan.predict import serving_figures
    from optiplan.planner.plan.state import baseline_state, to_setup

    spec, h100 = resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm")
    state = baseline_state(spec, h100, 1).with_(engine=engine, paged_kv=True, continuous_batching=True,
                                                chunked_prefill=True, graphs=True)
    s = to_setup(state)
    work = with_overrides(load_workload("chat"), prompt_tokens_mean=1000, prompt_tokens_p95=8000, output_tokens_mean=1,
                          output_tokens_p95=1, engine=engine)
    latency = engine_first_token_latency_s(engine)
    batch = 64
    _, ttft, rate = serving_figures(state, s, work, batch)
    mean = request_figures(s, 1000, 1, batch, True)
    p95 = request_figures(s, 1000, 1, batch, True, own=(8000, 0))  # the p95 prompt under the mean prompts' load
    assert p95["cycle_s"] == mean["cycle_s"] and p95["ttft_s"] >= mean["ttft_s"]
    assert p95["ttft_s"] >= mean["cycle_s"]  # the case: the p95 prompt's first token takes a mean cycle or more
    if s.request_host_s * batch <= mean["cycle_s"] + latency:  # the front end does not bind
        assert rate == pytest.approx(batch / (mean["cycle_s"] + latency))
        assert ttft == pytest.approx(p95["ttft_s"] + latency)
    _, _, job = serving_figures(state, s, with_overrides(work, goal="throughput"), batch)
    assert job >= rate and (latency == 0) == (job == pytest.approx(rate))


@pytest.mark.parametrize("concurrency", [1, 8])
def test_llama_server_batches_continuously_in_a_plan(concurrency):
    """llama-server's slots join and leave the batch at every step (its profile's scheduling): a plan for it serves
    `batch` sequences at about one token each per inter-token latency. It had been priced as a static batch, each slot
    idle till the longest output ended, which at one sequence gave a third of the tokens a second its TPOT allows."""
    a = _advise(model="qwen3-30b-a3b", hardware="rtx-4090", engine="llama.cpp", concurrency=concurrency,
                max_quality_loss_pct=5.0)
    p = a.plan.predicted
    assert a.workload.engine == "llama.cpp" and p.batch == concurrency
    per_token_s = p.tpot_ms / 1e3 + p.ttft_ms / 1e3 / a.workload.output_tokens_mean  # a request's prompt, spread
    assert p.throughput_tokens_per_s == pytest.approx(p.batch / per_token_s, rel=0.25)


def test_tgi_takes_no_weight_format_on_a_model_it_has_no_code_for():
    """TGI serves a model type it has no modeling code for (Qwen3's, in 3.3.7) through transformers'
    implementation, which takes no weight format (gptq, awq, nf4 and eetq raise; fp8 is not read): a TGI plan for
    Qwen3-30B-A3B has none and says why; Mixtral, which TGI has code for, keeps fp8."""
    a = _advise(model="qwen3-30b-a3b", hardware="h100-sxm", engine="tgi")
    assert not any(s.technique.startswith("weight-") for s in a.plan.steps)
    why = {r.technique: r.reason for r in a.rejected}
    assert "no modeling code of its own for qwen3_moe" in why["weight-fp8"]
    mixtral = _advise(model="mixtral-8x7b", hardware="h100-sxm", engine="tgi")
    assert "weight-fp8" in [s.technique for s in mixtral.plan.steps]


def test_flash_attention_3_is_named_on_hopper_only():
    """FlashAttention-3 is Hopper's: on a B200 the plan names the engine's own Blackwell attention (vLLM puts
    FlashInfer first there) instead of 'version=3'."""
    def params(hardware):
        a = _advise(model="llama-3.1-8b", hardware=hardware, engine="vllm")
        return next(s.params for s in a.plan.steps if s.technique == "flash-attention")
    assert params("h100-sxm") == {"version": 3}
    assert "version" not in params("b200") and "Blackwell" in params("b200")["kernel"]


def test_an_fp8_cache_below_ada_names_flashinfer_as_what_runs_the_attention():
    """vLLM's fp8 cache on an A100 pins VLLM_ATTENTION_BACKEND=FLASHINFER: the flash-attention step's row says so,
    not that vLLM picks its FlashAttention backend."""
    # (the memory goal takes the fp8 cache; for throughput it gains under 5% there)
    a = _advise(model="llama-3.1-70b", hardware="a100-80gb-sxm", num_devices=2, workload="batch-offline",
                engine="vllm", goal="memory")
    assert "kv-fp8" in [s.technique for s in a.plan.steps]
    from optiplan.planner.deploy.render import render

    files = render(a, "vllm")
    assert "export VLLM_ATTENTION_BACKEND=FLASHINFER" in files["vllm/serve.sh"]
    assert "| `flash-attention` | VLLM_ATTENTION_BACKEND=FLASHINFER, set for the fp8 cache" in files["README.md"]


def test_an_fp8_cache_off_hopper_and_sm100_pins_flashinfer_on_ada_too():
    """vLLM 0.10's V1 engine takes an fp8 cache on its default backend only on Hopper (FlashAttention 3) and SM100;
    Ada has fp8 tensor cores but runs FlashAttention 2, and the server fell back to its V0 engine (where EAGLE-3 does
    not run): the config pins FlashInfer there, as on an A100, and not on an H100 or a B200. vLLM 0.10.2 drafts no
    EAGLE-3 chain over FlashInfer: the chat plan, which takes EAGLE-3, keeps the cache 16-bit and says why."""
    from optiplan.planner.deploy.render import render

    chat = _advise(model="llama-3.1-8b", hardware="l4", workload="chat", engine="vllm")
    steps = [s.technique for s in chat.plan.steps]
    assert "spec-eagle3" in steps and "kv-fp8" not in steps
    assert "runs FlashInfer, the backend its configs pin for an fp8 cache here" in \
        {r.technique: r.reason for r in chat.rejected}["kv-fp8"]
    try:
        a = _advise(model="llama-3.1-8b", hardware="l4", workload="rag-long-context", engine="vllm")
    except ImpossibleError as exc:  # the report of the best plan that fits comes with it
        a = exc.document
    assert "kv-fp8" in [s.technique for s in a.plan.steps]
    files = render(a, "vllm")
    assert "export VLLM_ATTENTION_BACKEND=FLASHINFER" in files["vllm/serve.sh"]
    assert "compute capability 8.9" in files["README.md"] and "V0 engine" in files["README.md"]
    for hardware in ("h100-sxm", "b200"):
        a = _advise(model="llama-3.1-8b", hardware=hardware, workload="rag-long-context", engine="vllm")
        assert "kv-fp8" in [s.technique for s in a.plan.steps], hardware
        assert "VLLM_ATTENTION_BACKEND" not in render(a, "vllm")["vllm/serve.sh"], hardware


def test_a_plan_for_llama_cpp_on_a_mac_keeps_gpt_oss_in_mxfp4():
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="gpt-oss-20b", hardware="m3-max", engine="llama.cpp", workload="chat", concurrency=1))
    assert a.baseline.weight_dtype == "mxfp4" and a.baseline.weights_per_device_bytes < 14.5e9
    assert any(r.technique == "weight-int8" and "published MXFP4 checkpoint" in r.reason for r in a.rejected)


def test_a_macs_device_memory_is_what_its_gpu_may_use_not_a_runtime_of_a_quarter():
    """macOS lets the GPU use about 75% of unified memory by default. That quarter was booked as the runtime's
    memory, so a Llama-3.1-8B plan on an M2 Ultra read 85 GB a device; the device's memory is now the GPU's share,
    beside the whole unified memory, and the runtime is the runtime's."""
    mac = resolve_hardware("m2-ultra")
    assert mac.unified_memory_bytes == 192 * 2**30 and mac.memory_bytes == 0.75 * mac.unified_memory_bytes
    assert mac.runtime_overhead_bytes <= 2**30
    assert resolve_hardware("h100-sxm").unified_memory_bytes is None
    a = _advise(model="llama-3.1-8b", hardware="m2-ultra", engine="llama.cpp")
    p = a.plan.predicted
    assert p.memory_per_device_bytes < 40e9 and p.device_memory_bytes == mac.memory_bytes


def test_llama_cpp_drafts_only_for_one_sequence_at_a_time():
    """llama-server verifies each slot's draft in a decode of its own (ggml-org/llama.cpp#17017 keeps a server with a
    draft to one slot): a plan for 32 users had drafted with --parallel 32."""
    many = _advise(model="qwen3-30b-a3b", hardware="rtx-4090", engine="llama.cpp", max_quality_loss_pct=5.0)
    assert "spec-draft" not in [s.technique for s in many.plan.steps]
    why = {r.technique: r.reason for r in many.rejected}["spec-draft"]
    assert why.startswith("llama-server drafts for each slot") and "#17017" in why
    one = _advise(model="qwen3-30b-a3b", hardware="rtx-4090", engine="llama.cpp", max_quality_loss_pct=5.0,
                  concurrency=1)
    assert "spec-draft" not in {r.technique for r in one.rejected} or \
        not {r.technique: r.reason for r in one.rejected}["spec-draft"].startswith("llama-server drafts")


def test_an_mla_plan_names_the_kernel_its_device_runs():
    # DeepSeek-V2-Lite on an A10G named "FlashMLA, CUTLASS MLA or FlashInfer MLA by device", none of which runs on
    # SM86: vLLM runs its Triton MLA there
    def kernel(hardware, engine="vllm"):
        a = _advise(model="deepseek-v2-lite", hardware=hardware, workload="chat", engine=engine, concurrency=8)
        return next(s.params["kernel"] for s in a.plan.steps if s.technique == "flash-attention")
    assert "TRITON_MLA" in kernel("a10g") and "compute capability 8.6" in kernel("a10g")
    assert kernel("h100-sxm").startswith("FlashMLA")
    # SGLang's trtllm_mla is its default on SM100 for DeepseekV3ForCausalLM only; SM120 runs neither SM100's kernels
    assert "trtllm_mla" not in kernel("b200", "sglang") and "CUTLASS MLA" in kernel("b200")
    assert "compute capability 12.0" in kernel("rtx-5060-ti")


def test_vllm_pins_flashinfer_for_an_fp8_cache_by_compute_capability():
    from optiplan.planner.catalog.engines import kv_fp8_storage
    from optiplan.planner.catalog.hardware import resolve_hardware

    default = kv_fp8_storage("vllm")["default_backend_compute_capabilities"]
    runs_it = {h: resolve_hardware(h).features.compute_capability in default
               for h in ("a100-80gb-sxm", "l4", "h100-sxm", "b200", "rtx-5060-ti")}
    assert runs_it == {"a100-80gb-sxm": False, "l4": False, "h100-sxm": True, "b200": True, "rtx-5060-ti": False}


def test_tensorrt_llm_plans_only_the_architectures_its_pytorch_backend_has_code_for():
    """The configs run trtllm-serve's PyTorch backend: GPT-J and OLMo 2 have no model code there (the legacy
    TensorRT-engine flow built GPT-J; AutoDeploy serves OLMo 3), so no plan is made; the 2023 C++ runtime the validation
    set's GPT-J runs used is still profiled."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    for model in ("gpt-j-6b", "olmo-2-7b"):
        with pytest.raises(RequestError, match=r"trtllm .*runs .*llama.* models, not (gptj|olmo2) \(source: "
                                               r"NVIDIA/TensorRT-LLM docs/source/models/supported-models.md"):
            _advise(model=model, hardware="h100-sxm", engine="trtllm")
    assert _advise(model="llama-3.1-8b", hardware="h100-sxm", engine="trtllm").plan.steps
    for release in ("0.6.1", "0.9.0"):  # before the PyTorch backend (0.20): its TensorRT-engine flow built GPT-J
        assert profile(ProfileRequest(model="gpt-j-6b", hardware="a100-80gb-sxm", engine=f"trtllm=={release}")).fits


def test_an_awkward_device_count_says_which_fewer_devices_do_better():
    """Llama-3.1-70B's 64 heads do not split over three H100s, so the plan runs three pipeline stages; two of them in
    tensor parallel serve the latency goal better, and the report says so (a reviewer's case). Over two devices, and
    for llama.cpp, which splits layers by default, it says nothing."""
    a = _advise(model="llama-3.1-70b", hardware="h100-sxm", num_devices=3)
    note = next(w for w in a.warnings if "do not split over 3 devices" in w)
    assert "2 of them in tensor parallel do better for the latency goal" in note and "`--gpus 2`" in note
    assert not any("do not split" in w for w in _advise(model="llama-3.1-70b", hardware="h100-sxm",
                                                         num_devices=2).warnings)
    assert not any("do not split" in w for w in _advise(model="llama-3.1-8b", hardware="rtx-4090", num_devices=3,
                                                         engine="llama.cpp").warnings)
