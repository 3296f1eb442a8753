"""Engine profiles (`profiles/engines/`): facts with sources, and what an engine runs by default is in the
baseline, never a plan step that gains."""

from __future__ import annotations

import pytest
from optiplan.planner.catalog.engines import (
    continuous_scheduling,
    engine_defaults,
    engine_runtime,
    engine_table,
)
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.techniques import all_techniques
from optiplan.planner.schema import AdviseRequest

ENGINES = {"vllm", "sglang", "trtllm", "tgi", "llama.cpp", "transformers"}


def test_every_engine_has_a_profile_with_sources():
    table = engine_table()
    assert ENGINES <= set(table)
    for name, entry in table.items():
        assert entry["version"] and entry["runtime"] in ("serving", "compiled", "transformers"), name
        assert entry["scheduling"] in ("continuous", "static") and entry["scheduling_source"], name
        for d in entry.get("defaults") or []:
            assert d["technique"] in all_techniques(), (name, d)
            assert "http" in d["source"] or "/" in d["source"], (name, d)  # a link or a repository path
        for fmt, k in (entry.get("kernels") or {}).items():
            assert k["kernel"] and k["source"], (name, fmt)


def test_scheduling_and_runtime_follow_the_profiles():
    assert continuous_scheduling("vllm") and not continuous_scheduling("transformers")
    assert engine_runtime("vllm") == "serving" and engine_runtime("transformers") == "transformers"
    assert engine_defaults("serving") == {} and engine_defaults("transformers").keys() <= {"flash-attention"}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_defaults_are_in_the_baseline_and_gain_nothing(engine):
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                                  engine=engine))
    defaults = engine_defaults(engine)
    assert defaults, engine
    before = advice.baseline
    for step in advice.plan.steps:
        assert step.engine_default == (step.technique in defaults), step
        if step.technique in defaults:
            assert step.effect_source.startswith(f"on by default in {engine}"), step
            assert step.predicted.tpot_ms == pytest.approx(before.tpot_ms)
            assert step.predicted.throughput_tokens_per_s == pytest.approx(before.throughput_tokens_per_s)
        before = step.predicted
    assert any(s.engine_default for s in advice.plan.steps), engine


def test_reports_mark_the_steps_the_engine_runs_by_default():
    from optiplan.planner.report.advice import render

    advice = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat",
                                  engine="vllm"))
    marked = {s.technique for s in advice.plan.steps if s.engine_default}
    assert "cuda-graphs" in marked and "tensor-parallel" not in marked
    md = render(advice, "md")
    rows = {line.split("`")[1]: line for line in md.splitlines() if line.startswith("| ") and "`" in line}
    for step in advice.plan.steps:
        assert ("(default)" in rows[step.technique]) == step.engine_default, rows[step.technique]
    assert "(default): on by default in vllm: the baseline runs it already" in md
    html = render(advice, "html")
    assert html.count("<small>(default)</small>") == len(marked) and "on by default in vllm" in html
    text = render(advice, "text")
    assert sum("(default)" in line for line in text.splitlines() if line.startswith("│")) == len(marked)


def test_gpt_fast_is_a_compiled_decode_engine_that_is_profiled_not_planned():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_kernel_efficiency, engine_plans, planned_engines
    from optiplan.planner.errors import RequestError
    from optiplan.planner.schema import ProfileRequest

    assert engine_runtime("gpt-fast") == "compiled" and not continuous_scheduling("gpt-fast")
    assert {"cuda-graphs", "torch-compile"} <= engine_defaults("gpt-fast").keys()
    assert engine_kernel_efficiency("gpt-fast", "int4") == "tinygemm"
    assert not engine_plans("gpt-fast") and "gpt-fast" not in planned_engines() and "vllm" in planned_engines()
    with pytest.raises(RequestError, match="gpt-fast is profiled, not planned for: `optiplan profile --engine"):
        advise(AdviseRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="gpt-fast"))

    def run(engine, context, dtype="bf16"):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine=engine, dtype=dtype,
                                      context=context, prompt_tokens=16))

    # setup_caches builds a boolean mask of the whole cache squared, one byte per position pair, and each decode
    # step's math attention holds 64 KiB per cached token (tests/planner/analytic/test_gpt_fast.py), more than the
    # short prompt's prefill; a serving engine (masking inside its kernel, fused decode attention) holds neither
    for context in (8192, 32768):
        assert run("gpt-fast", context).memory.activation_peak_bytes == context**2 + context * 64 * 1024
        assert run("serving", context).memory.activation_peak_bytes < 2e7
    # its int4 is tinygemm's share of the bandwidth, not the generic engine's Marlin: a slower decode step
    assert run("gpt-fast", 4096, "int4").latency.tpot_ms > run("serving", 4096, "int4").latency.tpot_ms


def test_llama_cpp_stores_int4_and_int8_as_its_gguf_files():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_storage
    from optiplan.planner.schema import ProfileRequest

    assert engine_storage("llama.cpp", "int4")["format"] == "Q4_K_M" and engine_storage("vllm", "int4") is None

    def memory(engine, dtype, hardware="rtx-4090", model="llama-3.1-8b", **kw):
        return profile(ProfileRequest(model=model, hardware=hardware, engine=engine, dtype=dtype, **kw)).memory

    # a GGUF file quantizes every weight, embeddings and output head too: the quantize README's Llama-3.1-8B files
    # weigh 4.58 GiB (Q4_K_M) and 7.95 GiB (Q8_0), where a GPTQ-style int4 keeps 16-bit embeddings
    gguf = memory("llama.cpp", "int4")
    assert gguf.weights_bytes / 2**30 == pytest.approx(4.58, rel=0.005)
    assert memory("llama.cpp", "int8").weights_bytes / 2**30 == pytest.approx(7.95, rel=0.005)
    assert memory("serving", "int4").weights_bytes > 1.15 * gguf.weights_bytes
    # an explicit group size asks for that layout, not the engine's file
    assert memory("llama.cpp", "int4", group_size=128).weights_bytes == \
        pytest.approx(memory("serving", "int4").weights_bytes)
    # llama.cpp keeps the token embedding in host memory: a GPU holds the file less its 128k x 4096 Q4_K rows (a
    # Mac's unified memory holds it all)
    def weights_held(m):
        return m.per_device_bytes - m.kv_cache_batch_bytes - m.activation_peak_bytes - m.runtime_overhead_bytes

    embedding = 128256 * 4096 * 4.5 / 8
    assert gguf.weights_bytes - weights_held(gguf) == pytest.approx(embedding, rel=0.01)
    on_mac = memory("llama.cpp", "int4", "m3-max")
    assert weights_held(on_mac) == pytest.approx(on_mac.weights_bytes, rel=1e-6)
    # a head tied to the embedding (Llama-3.2-1B) takes the head's Q6_K, and the GPU holds its copy: the table
    # stays on the host and the duplicate sits on the device, as many bytes as the file has
    tied = memory("llama.cpp", "int4", model="llama-3.2-1b")
    assert tied.weights_bits_per_param == pytest.approx(5.18, abs=0.02)
    assert weights_held(tied) == pytest.approx(tied.weights_bytes, rel=1e-6)


def test_llama_cpp_and_transformers_split_layers_over_several_gpus_by_default():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run(engine, **kw):
        return profile(ProfileRequest(model="llama-3.1-70b", hardware="rtx-4090", num_devices=2, engine=engine,
                                      dtype="int4", context=512, prompt_tokens=1, **kw))

    # llama.cpp's --split-mode layer and transformers' device_map="auto": one stage of consecutive layers per GPU,
    # run one after another, so two GPUs decode no faster than one would read the whole model
    for engine in ("llama.cpp", "transformers"):
        layers = run(engine)
        assert (layers.hardware.tensor_parallel, layers.hardware.pipeline_parallel) == (1, 2)
    served = run("vllm")
    assert (served.hardware.tensor_parallel, served.hardware.pipeline_parallel) == (2, 1)
    # an explicit layout is taken as given
    assert run("llama.cpp", tensor_parallel=2).hardware.tensor_parallel == 2
    # (tensor parallel halves each GPU's bytes, not its mat-vec's fixed time per layer: ggml-mmvq's 60 us)
    assert run("llama.cpp").latency.tpot_ms > 1.5 * run("llama.cpp", tensor_parallel=2).latency.tpot_ms
    # more devices than layers cannot be split so: the error says why and what to give instead
    from optiplan.planner.errors import RequestError

    with pytest.raises(RequestError, match="llama.cpp splits a model's layers .* exceed .* layers; .* --tp and --pp"):
        profile(ProfileRequest(model="qwen2.5-0.5b", hardware="rtx-4090", num_devices=32, engine="llama.cpp"))
    # a plan leaves the devices past one layer each idle, and says so
    idle = advise(AdviseRequest(model="qwen2.5-0.5b", hardware="rtx-4090", num_devices=32, workload="chat",
                                engine="llama.cpp", max_quality_loss_pct=10))
    assert any("uses 24 of the 32 devices" in w for w in idle.warnings)
    # a plan for llama.cpp starts from that split and says so, rather than that tensor parallel (which it has no
    # option for) would be faster
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="rtx-4090", num_devices=2, workload="chat",
                                  engine="llama.cpp"))
    assert advice.baseline.pipeline_parallel == 2
    assert not any("of the 2 devices" in w for w in advice.warnings)
    why = {r.technique: r.reason for r in advice.rejected}
    assert "splits the layers over the devices by default" in why["pipeline-parallel"]
    assert "no option" in why["tensor-parallel"]


def test_llama_cpp_reads_q4_k_m_at_its_own_kernels_share():
    from optiplan import profiles
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run(engine, kernel=None):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="rtx-4090", engine=engine, dtype="int4",
                                      context=512, prompt_tokens=1, weight_kernel=kernel))

    share = profiles.efficiency_table()["weight_kernels"]["ggml-mmvq"]["bandwidth_efficiency"]
    tinygemm = profiles.efficiency_table()["weight_kernels"]["tinygemm"]["bandwidth_efficiency"]
    own, other = run("llama.cpp"), run("llama.cpp", "tinygemm")
    assert "ggml-mmvq" in own.efficiency.source
    assert own.efficiency.bandwidth_efficiency / other.efficiency.bandwidth_efficiency == pytest.approx(
        share / tinygemm)
    assert own.latency.tpot_ms < other.latency.tpot_ms


def test_a_weight_kernels_time_per_layer_is_device_time_in_the_linear_layers(monkeypatch):
    from optiplan import profiles
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run():
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="gpt-fast", dtype="int8",
                                      context=512, prompt_tokens=16))

    entry = profiles.efficiency_table()["weight_kernels"]["torchao-int8"]
    per_layer = entry["layer_device_s"]
    with_cost = run()
    assert with_cost.efficiency.weight_kernel_layer_s == per_layer > 0
    # the runtime's own fixed costs stay apart (a fit of them keeps the kernel's)
    assert with_cost.efficiency.layer_overhead_s == profiles.efficiency_table()["runtimes"]["compiled"]["gpu"][
        "layer_overhead_s"]
    # it is the linear layers' device time, not a fixed cost of the host's: under eager launches (transformers on a
    # GPU, where the step is the longer of the two) it would otherwise hide under the launches
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.steps import decode_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    request = ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="transformers", dtype="int8",
                             weight_kernel="torchao-int8", context=512, prompt_tokens=16)

    def step():
        s = setup_for_request(request, resolve_model(request.model), resolve_hardware(request.hardware))
        return decode_step(s, 1, 512)

    eager = step()
    monkeypatch.setitem(entry, "layer_device_s", 0.0)
    without, eager_without = run(), step()
    # Llama-3.1-8B's 32 layers, each that much longer on the device
    assert with_cost.latency.tpot_ms - without.latency.tpot_ms == pytest.approx(32 * per_layer * 1e3, rel=1e-6)
    assert eager.memory_s - eager_without.memory_s == pytest.approx(32 * per_layer, rel=1e-6)
    assert eager.overhead_s == eager_without.overhead_s and eager.host_overlap


@pytest.mark.parametrize("scheduling", ["static", "continuous"])
def test_turbomind_computes_the_first_token_in_a_decode_step_after_the_prefill(scheduling):
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_decodes_first_token, engine_plans
    from optiplan.planner.schema import ProfileRequest

    def run(engine, concurrency=1):
        return profile(ProfileRequest(model="llama-2-7b", hardware="a100-80gb-sxm", engine=engine, dtype="fp16",
                                      batch=concurrency, context=256, prompt_tokens=128, input_tokens=128,
                                      output_tokens=128, concurrency=concurrency, scheduling=scheduling))

    assert engine_decodes_first_token("lmdeploy") and not engine_decodes_first_token("vllm")
    assert not engine_plans("lmdeploy")  # its 0.1 behaviour changed in 0.1.0a2: profiled, not planned for
    for concurrency in (1, 8):
        turbomind, generic = run("lmdeploy", concurrency), run("serving", concurrency)
        assert turbomind.latency.tpot_ms == pytest.approx(generic.latency.tpot_ms)
        # LMDeploy 0.1's own table: 22 ms to the first token of a 128-token prompt, about twice its 10 ms step; the
        # step reads the prompt's cache, not the whole context's
        step = turbomind.latency.first_token_step_ms
        assert turbomind.latency.ttft_ms == pytest.approx(generic.latency.ttft_ms + step)
        assert 0.8 * generic.latency.tpot_ms < step < generic.latency.tpot_ms
        assert generic.latency.first_token_step_ms == 0.0
        assert turbomind.requests.ttft_ms > generic.requests.ttft_ms + 0.8 * generic.requests.itl_ms


def test_a_llama_cpp_plan_predicts_its_gguf_file():
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="rtx-4090", workload="chat", engine="llama.cpp",
                                  max_quality_loss_pct=10, goal="memory"))
    step = next(s for s in advice.plan.steps if s.technique == "weight-int4")
    # the Q4_K_M file llama.cpp's configs write (4.58 GiB), less the embedding it keeps in host memory
    on_gpu = 4.58 * 2**30 - 128256 * 4096 * 4.5 / 8
    assert step.predicted.weights_per_device_bytes == pytest.approx(on_gpu, rel=0.01)


def test_gpt_fast_runs_its_own_architectures_with_a_static_cache():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.errors import RequestError
    from optiplan.planner.schema import ProfileRequest

    # the refusal names the release the profile describes: the engine's list of architectures grows
    with pytest.raises(RequestError, match=r"gpt-fast \(as profiled: main \(2024\)\) runs llama, mistral, mixtral "
                                           "models, not gemma2"):
        profile(ProfileRequest(model="gemma-2-9b", hardware="a100-80gb-sxm", engine="gpt-fast"))
    with pytest.raises(RequestError, match=r"lmdeploy \(as profiled: <=0.1.0a1 \(TurboMind\)\) runs .* not qwen2"):
        profile(ProfileRequest(model="qwen2.5-7b", hardware="a100-80gb-sxm", engine="lmdeploy"))

    def kv(engine, context=16384):
        r = profile(ProfileRequest(model="mistral-7b-v0.1", hardware="a100-80gb-sxm", engine=engine, context=context,
                                   prompt_tokens=16))
        return r.memory.kv_cache_bytes
    # Mistral-7B's 4096-token window: a paged engine keeps 4096 tokens a layer, gpt-fast's buffers the whole length
    # and attends over all of it
    assert kv("vllm") == pytest.approx(kv("vllm", 4096)) and kv("gpt-fast") == pytest.approx(4 * kv("vllm"))

    def attention(engine):
        return profile(ProfileRequest(model="mistral-7b-v0.1", hardware="a100-80gb-sxm", engine=engine,
                                      context=16384)).compute.decode_attention_flops_per_token
    assert attention("gpt-fast") == pytest.approx(4 * attention("vllm"), rel=1e-6)

    def itl_and_step(engine, context):
        common = dict(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine=engine)
        itl = profile(ProfileRequest(**common, input_tokens=128, output_tokens=4096, concurrency=1)).requests.itl_ms
        return itl, profile(ProfileRequest(**common, context=context)).latency.tpot_ms
    # its decode reads the whole buffer (I + O) at every step, where a growing cache averages I + O/2
    itl, step = itl_and_step("gpt-fast", 128 + 4096)
    assert itl == pytest.approx(step, rel=1e-6)
    itl, step = itl_and_step("serving", 128 + 2048)
    assert itl == pytest.approx(step, rel=1e-6)


def test_only_a_growing_paged_cache_holds_less_than_the_whole_request():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import holds_used_cache
    from optiplan.planner.schema import ProfileRequest

    assert holds_used_cache("vllm", paged=True) and not holds_used_cache("trtllm", paged=True)
    assert not holds_used_cache("vllm", paged=False)

    def run(engine):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine=engine, input_tokens=512,
                                      output_tokens=3584, concurrency="max"))

    def most(engine):
        return run(engine).requests.concurrency
    # TensorRT-LLM's reserving scheduler admits as many requests as its start-up cache holds at their whole 4,096
    # tokens; a static batch (transformers' generate) ends with every sequence at 4,096 tokens too, in the whole device
    # less its batch's prefill (512-token prompts, together), so within 0.9-1.1x of it; vLLM's blocks hold 512 + 1792
    # (+4%) on average, within 0.9 of the device
    assert most("trtllm") == run("trtllm").memory.kv_cache_capacity_tokens // 4096
    assert 0.9 < most("transformers") / most("trtllm") < 1 / 0.9
    assert most("trtllm") < 0.62 * most("vllm")


@pytest.mark.parametrize("hardware, chunk, running", [
    ("h100-sxm", 8192, 1024), ("mi300x", 8192, 1024),  # 70 GiB or more and not an A100: the larger defaults
    ("a100-80gb-sxm", 2048, 256), ("l40s", 2048, 256),  # vLLM keeps the smaller ones on A100s (its PR #17885)
    ("epyc-9004", 2048, 128), ("tpu-v5e", 512, 256)])
def test_vllm_sets_its_step_budget_and_running_cap_by_device(hardware, chunk, running):
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    r = profile(ProfileRequest(model="llama-3.2-1b", hardware=hardware, engine="vllm", dtype="bf16"
                               if hardware != "epyc-9004" else "fp32", input_tokens=128, output_tokens=128,
                               concurrency="max")).requests
    assert f"prefill in chunks of {chunk:,} tokens" in r.scheduling
    # a 1B model's short requests fit by the thousand: the engine's default cap is what runs at once
    assert r.max_concurrency == running and f"at most {running:,} running at once" in r.scheduling


def test_the_vllm_rule_reads_the_device_name_as_vllm_does():
    """vLLM tests its device's name, lowercased: this machine's A100 (`--hardware local`, id 'local') keeps the smaller
    defaults; each data-parallel group schedules its own max_num_seqs; on a CPU both scale with the world size."""
    from optiplan.planner.catalog.engines import engine_max_running, engine_prefill_chunk
    from optiplan.planner.catalog.hardware import resolve_hardware

    a100 = resolve_hardware("a100-80gb-sxm")
    local = a100.model_copy(update={"id": "local", "name": "NVIDIA A100-SXM4-80GB (local, as a100-80gb-sxm)"})
    assert engine_prefill_chunk("vllm", None, local) == 2048 and engine_max_running("vllm", local) == 256
    h100 = resolve_hardware("h100-sxm")
    assert engine_max_running("vllm", h100, devices=8, schedulers=8) == 8 * 1024
    cpu = resolve_hardware("epyc-9004")
    assert engine_max_running("vllm", cpu, devices=2) == 256 and engine_prefill_chunk("vllm", None, cpu, 2) == 4096


def test_sglang_sizes_its_request_pool_from_the_cache():
    """SGLang runs at most its request pool: the cache's tokens per context length x 512, between 2048 and 4096.
    Those past it wait; they are not out of memory."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run(model, concurrency):
        return profile(ProfileRequest(model=model, hardware="h100-sxm", engine="sglang", input_tokens=128,
                                      output_tokens=128, concurrency=concurrency)).requests

    small = run("llama-3.2-1b", 5000)  # 12k sequences' caches fit: 3M tokens / 131k context x 512 > 4096
    assert small.max_concurrency == 4096 and small.fits and small.queue_wait_ms > 0
    assert "at most 4,096 running at once" in small.scheduling
    # an 8B's cache holds about 418k tokens beside SGLang's 13 GiB reserve (and the runtime) on one H100: some 2,090
    # of these requests fit, its pool takes 418k / 131k x 512, below its least, 2,048 of them
    mid = run("llama-3.1-8b", 2080)
    assert 2048 <= mid.max_concurrency < 2080 and mid.fits and mid.queue_wait_ms > 0
    assert not run("llama-3.1-8b", 2150).fits


def test_tgi_refuses_requests_beyond_its_in_flight_limit():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def run(concurrency):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="tgi", input_tokens=512,
                                      output_tokens=256, concurrency=concurrency))

    over, at = run(200), run(128)
    assert any("72 of the 200 are refused" in w for w in over.warnings) and not at.warnings
    # the refused ones do not queue: the figures are those of the 128 served, not of 200 with a wait
    assert over.requests == at.requests and over.requests.queue_wait_ms == 0
    assert run("max").requests.max_concurrency == 128


@pytest.mark.parametrize("hardware, chunk", [("rtx-4090", 2048), ("l40s", 4096), ("a100-40gb", 4096),
                                             ("h100-sxm", 8192), ("h200-sxm", 8192), ("b200", 16384)])
def test_sglang_sets_its_chunk_by_gpu_memory(hardware, chunk):
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    r = profile(ProfileRequest(model="llama-3.2-1b", hardware=hardware, engine="sglang", input_tokens=128,
                               output_tokens=128, concurrency=4)).requests
    assert f"prefill in chunks of {chunk:,} tokens" in r.scheduling


@pytest.mark.parametrize("engine, hardware, users, cap, option", [
    ("tgi", "h100-sxm", 200, 128, "--max-concurrent-requests"), ("vllm", "a100-80gb-sxm", 300, 256, "--max-num-seqs")])
def test_advice_says_where_the_plan_runs_past_the_engines_default_limit(engine, hardware, users, cap, option):
    from optiplan.planner.deploy.render import engine_config
    from optiplan.planner.errors import ImpossibleError

    def run(concurrency):
        try:
            return advise(AdviseRequest(model="llama-3.1-8b", hardware=hardware, engine=engine,
                                        concurrency=concurrency))
        except ImpossibleError as err:  # 300 chat users' prompts wait past the TTFT SLO on one A100: same document
            return err.document

    over, under = run(users), run(cap // 2)
    said = [w for w in over.warnings if "by default" in w]
    assert len(said) == 1 and f"{engine} takes {cap} by default" in said[0] and option in said[0], over.warnings
    assert ("refuses the rest" in said[0]) == (engine == "tgi")
    assert not any("by default" in w for w in under.warnings)
    # what it promises: the configs raise the option to serve every user of the plan
    assert int(engine_config(over, engine).options[option.removeprefix("--")]) >= users


def test_the_default_limit_counts_once_per_data_parallel_attention_rank(tmp_path):
    """vLLM's max_num_seqs holds per data-parallel rank: 2,048 sequences over 16 attention groups are 128 each, under
    its 1,024; a training plan serves nobody."""
    import yaml

    workload = {"name": "reasoning-offline", "description": "short prompts, long outputs", "prompt_tokens_mean": 500,
                "prompt_tokens_p95": 1000, "output_tokens_mean": 4000, "output_tokens_p95": 8000, "concurrency": 1024,
                "goal": "throughput", "max_quality_loss_pct": 2.0}
    path = tmp_path / "reasoning.yaml"
    path.write_text(yaml.safe_dump(workload))
    a = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload=str(path),
                             engine="vllm"))
    assert a.plan.predicted.attention_data_parallel == 16 and a.plan.predicted.batch > 1024
    assert not any("by default" in w for w in a.warnings)
    training = advise(AdviseRequest(model="llama-3.2-1b", hardware="a10g", workload="fine-tune", goal="training"))
    assert not any("by default" in w for w in training.warnings)


def test_llama_cpps_16_bit_mat_vec_is_bound_by_the_sm_count_on_hbm_gpus(monkeypatch):
    """llama.cpp's F16 mat-vec (one block per row, 4 bytes per thread per step) reads at most its GB/s per SM times
    the device's SMs: the bound holds it under its share on an A100 (108 SMs, 2.0 TB/s), not on an RTX 4090 (128 SMs,
    1.0 TB/s), and a device without a unit count keeps the share."""
    from optiplan import profiles
    from optiplan.planner.analytic.efficiency import weight_kernel_unit_share
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.hardware import catalog_hardware
    from optiplan.planner.schema import ProfileRequest

    def run(hardware, engine="llama.cpp"):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware=hardware, engine=engine, dtype="fp16",
                                      context=512, prompt_tokens=1))

    entry = profiles.efficiency_table()["weight_kernels"]["ggml-mmvf"]
    a100, rtx = catalog_hardware("a100-80gb-sxm"), catalog_hardware("rtx-4090")
    bound = weight_kernel_unit_share(a100, "ggml-mmvf")
    assert bound == pytest.approx(entry["unit_bandwidth_gbps"] * 1e9 * 108 / a100.memory_bandwidth_bytes_per_s)
    hbm, gddr = run("a100-80gb-sxm"), run("rtx-4090")
    assert hbm.efficiency.bandwidth_efficiency == pytest.approx(bound) and bound < entry["bandwidth_efficiency"]
    assert "108 compute units bound it" in hbm.efficiency.source
    assert weight_kernel_unit_share(rtx, "ggml-mmvf") > gddr.efficiency.bandwidth_efficiency
    assert "compute units bound" not in gddr.efficiency.source
    # the serving engines' 16-bit GEMMs have no such bound: the A100 reads faster under them
    assert run("a100-80gb-sxm", "vllm").efficiency.bandwidth_efficiency > hbm.efficiency.bandwidth_efficiency
    # the bound is on what the kernel reaches, after the device's measured share scaled the kernel's (H100 PCIe's
    # triad share is 1.1 times the A100's): it binds at the SM count's figure, not at a scaled one
    h100 = catalog_hardware("h100-pcie")
    assert run("h100-pcie").efficiency.bandwidth_efficiency == pytest.approx(weight_kernel_unit_share(h100, "ggml-mmvf"))
    # the kernel takes steps of up to 8 rows (MMVF_MAX_BATCH_SIZE); a larger one runs the GEMMs, at the 16-bit share
    # with neither the bound nor the time per layer, but no faster than the kernel read the weights at 8 rows (the
    # engine keeps the kernel where its GEMM would be slower: analytic/weight_reads.py), so not as fast as vLLM's
    def decode(engine, batch):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine=engine, dtype="fp16",
                                      batch=batch, context=512, prompt_tokens=1)).latency.tpot_ms
    assert hbm.efficiency.weight_kernel_max_rows == entry["max_rows"] == 8
    assert decode("llama.cpp", 8) > 1.1 * decode("vllm", 8)
    assert decode("llama.cpp", 8) <= decode("llama.cpp", 9) < 1.02 * decode("llama.cpp", 8)
    assert decode("llama.cpp", 9) > 1.1 * decode("vllm", 9)
    # a device the catalog gives no unit count, or a kernel without the bound: the share alone
    assert weight_kernel_unit_share(a100.model_copy(update={"compute_units": None}), "ggml-mmvf") is None
    assert weight_kernel_unit_share(a100, "tinygemm") is None
    monkeypatch.delitem(entry, "unit_bandwidth_gbps")
    assert run("a100-80gb-sxm").efficiency.bandwidth_efficiency > 1.3 * hbm.efficiency.bandwidth_efficiency


def test_vllm_reads_fp8_on_mi300x_with_its_skinny_gemv_at_one_row_and_hipblaslt_above():
    """vLLM's per-tensor FP8 layers on MI3xx take wvSplitKQ at one row and torch._scaled_mm (hipBLASLt) above
    (w8a8_utils.py): a batch of 2 reads the weights at the GEMM's share; CUDA devices run CUTLASS, unchanged."""
    from optiplan import profiles
    from optiplan.planner.analytic.efficiency import weight_kernel_refusal
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_kernel_efficiency
    from optiplan.planner.catalog.hardware import catalog_hardware
    from optiplan.planner.schema import ProfileRequest

    def run(hardware, batch, engine="vllm"):
        return profile(ProfileRequest(model="llama-3.1-70b", hardware=hardware, num_devices=8, engine=engine,
                                      dtype="fp8", batch=batch, context=2176, prompt_tokens=128))

    entry = profiles.efficiency_table()["weight_kernels"]["rocm-skinny-fp8"]
    assert engine_kernel_efficiency("vllm", "fp8", "rocm") == "rocm-skinny-fp8"
    assert engine_kernel_efficiency("vllm", "fp8", "cuda") is None
    assert "is a ROCm kernel" in weight_kernel_refusal(catalog_hardware("h100-sxm"), "rocm-skinny-fp8", "fp8")
    one, two = run("mi300x", 1), run("mi300x", 2)
    assert one.efficiency.weight_kernel_max_rows == 1 and "wvSplitKQ" in one.efficiency.source
    assert one.efficiency.gemm_bandwidth_efficiency / one.efficiency.bandwidth_efficiency == pytest.approx(
        entry["gemm_bandwidth_efficiency"] / entry["bandwidth_efficiency"])
    # the weights' read grows by the shares' ratio from one row to two: the step, by most of it
    assert two.latency.tpot_ms > 1.12 * one.latency.tpot_ms  # shares 0.62 and 0.46: 1.35x the read
    generic_one, generic_two = run("mi300x", 1, "serving"), run("mi300x", 2, "serving")
    assert one.latency.tpot_ms == pytest.approx(generic_one.latency.tpot_ms, rel=1e-6)
    assert generic_two.latency.tpot_ms < 1.05 * generic_one.latency.tpot_ms
    h100 = run("h100-sxm", 2)
    assert h100.efficiency.weight_kernel_max_rows is None and "wvSplitKQ" not in h100.efficiency.source
    # only vLLM's profile names it: SGLang on the same device reads at the fp8 share at any step
    assert run("mi300x", 2, "sglang").efficiency.weight_kernel_max_rows is None
    # a prefill's many rows run the GEMM: vLLM's first token comes later than the generic engine's
    assert one.latency.ttft_ms > 1.05 * generic_one.latency.ttft_ms


def test_vllm_and_sglang_compute_at_their_fitted_share_of_the_device_rate():
    """Their profiles' `flop_share` scales the documented compute rate (set on TensorRT-LLM's runs) on GPUs: prefill
    and batched steps take longer, batch-1 decode (bound by the weights' bytes) does not, a CPU keeps its rate."""
    from optiplan.planner.analytic.setup import build_setup
    from optiplan.planner.analytic.steps import decode_step, prefill_step
    from optiplan.planner.catalog.engines import engine_flop_share
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    spec, h100 = resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm")
    assert engine_flop_share("vllm", h100) == engine_flop_share("sglang", h100) == 0.48
    assert engine_flop_share("trtllm", h100) == engine_flop_share(None, h100) == 1.0
    assert engine_flop_share("vllm", resolve_hardware("epyc-9004")) == 1.0
    # CUDA GPUs before Hopper have their own share (the A100's runs), ROCm's gfx devices and Blackwell Hopper's
    for before in ("a100-80gb-sxm", "l40s", "rtx-4090"):
        assert engine_flop_share("vllm", resolve_hardware(before)) == engine_flop_share("sglang", resolve_hardware(before)) \
            == 0.84
    for later in ("h200-sxm", "b200", "mi300x"):
        assert engine_flop_share("vllm", resolve_hardware(later)) == 0.48
    ours = {e: build_setup(spec, h100, weight_dtype="bf16", runtime="serving", engine=e) for e in ("vllm", "trtllm")}
    assert ours["vllm"].eff.flop_efficiency == pytest.approx(0.48 * ours["trtllm"].eff.flop_efficiency)
    assert "flop_share" in ours["vllm"].eff.source
    slow = prefill_step(ours["vllm"], 1, 4096).time_s / prefill_step(ours["trtllm"], 1, 4096).time_s
    assert 1.8 < slow <= 1 / 0.48 + 1e-9
    assert decode_step(ours["vllm"], 1, 1024).time_s == pytest.approx(decode_step(ours["trtllm"], 1, 1024).time_s,
                                                                      rel=0.02)


def test_a_moe_models_experts_run_the_engines_grouped_gemm_at_its_own_share():
    """Before Hopper vLLM's and SGLang's routed experts (Triton fused_moe, Marlin's MoE) reach their own share of the
    device's rate (`moe_flop_share`), well under their dense layers' (GPUStack's Qwen3-235B-A22B on 8 A100s, in bf16
    and weight-only FP8); on Hopper, with no such rule, and for dense models or an engine without the fact, the
    experts compute as the rest."""
    import dataclasses

    from optiplan.planner.analytic.setup import build_setup
    from optiplan.planner.analytic.steps import prefill_step
    from optiplan.planner.catalog.engines import engine_moe_flop_share
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    a100, h100 = resolve_hardware("a100-80gb-sxm"), resolve_hardware("h100-sxm")
    assert engine_moe_flop_share("vllm", a100) == engine_moe_flop_share("sglang", a100) == 0.22
    assert engine_moe_flop_share("vllm", h100) is None and engine_moe_flop_share("trtllm", a100) is None
    moe, dense = resolve_model("qwen3-235b-a22b"), resolve_model("qwen3-32b")

    def setup(spec, hw, engine="vllm", tp=8):
        return build_setup(spec, hw, weight_dtype="bf16", runtime="serving", engine=engine, tp=tp)

    trt, ours = setup(moe, a100, "trtllm"), setup(moe, a100)
    assert ours.expert_flop_efficiency == pytest.approx(0.22 * trt.eff.flop_efficiency)  # of the documented rate
    assert ours.eff.flop_efficiency == pytest.approx(0.84 * trt.eff.flop_efficiency)
    assert setup(moe, h100).expert_flop_efficiency is None and setup(dense, a100, tp=1).expert_flop_efficiency is None
    # a long prefill: the experts' FLOPs (two thirds of the matmuls) at a quarter of the dense rate
    slow = prefill_step(ours, 1, 8192).compute_s / prefill_step(trt, 1, 8192).compute_s
    without = dataclasses.replace(ours, expert_flop_efficiency=None)
    assert slow > 2 * prefill_step(without, 1, 8192).compute_s / prefill_step(trt, 1, 8192).compute_s


def test_on_amd_gpus_sglangs_routed_experts_run_at_their_own_share():
    """SGLang's routed experts on ROCm (its device rule for the backend: the cookbook's DeepSeek-V3.1 on MI300X and
    InferenceX's DeepSeek-R1 on MI325X, whose long prompts prefill far slower than the dense layers' rate gives)
    reach a small share of the device's rate; the rule matches by backend, not by name, so a CUDA GPU keeps its own
    and vLLM, with no ROCm MoE point behind it, keeps the dense layers' share there."""
    from optiplan.planner.analytic.setup import build_setup
    from optiplan.planner.analytic.steps import prefill_step
    from optiplan.planner.catalog.engines import engine_moe_flop_share
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    mi300x, mi325x = resolve_hardware("mi300x"), resolve_hardware("mi325x")
    assert engine_moe_flop_share("sglang", mi300x) == engine_moe_flop_share("sglang", mi325x) == 0.06
    assert engine_moe_flop_share("vllm", mi300x) is None
    assert engine_moe_flop_share("sglang", resolve_hardware("h200-sxm")) is None
    assert engine_moe_flop_share("sglang", resolve_hardware("a100-80gb-sxm")) == 0.22  # the CUDA rule before it
    # by the backend, not the name: an MI300X by another name keeps it, a CUDA GPU named like one does not
    assert engine_moe_flop_share("sglang", mi300x.model_copy(update={"id": "gfx942-box", "name": "Box"})) == 0.06
    lookalike = resolve_hardware("h200-sxm").model_copy(update={"id": "mi300x-like", "name": "AMD MI300X lookalike"})
    assert engine_moe_flop_share("sglang", lookalike) is None
    spec = resolve_model("deepseek-v3")
    ours, vllm = (build_setup(spec, mi300x, weight_dtype="fp8", runtime="serving", engine=e, tp=8)
                  for e in ("sglang", "vllm"))
    assert ours.eff.flop_efficiency == pytest.approx(vllm.eff.flop_efficiency)  # the dense layers alike
    assert ours.expert_flop_efficiency == pytest.approx(0.06 / 0.48 * ours.eff.flop_efficiency)
    # a 4,096-token prompt's compute takes several times longer
    assert prefill_step(ours, 1, 4096).compute_s > 3 * prefill_step(vllm, 1, 4096).compute_s
    # the report shows the experts' share and where it comes from; a GPU without the rule shows none
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def efficiency(hardware):
        return profile(ProfileRequest(model="deepseek-v3", hardware=hardware, num_devices=8, dtype="fp8",
                                      engine="sglang")).model_dump(mode="json")["efficiency"]

    shown = efficiency("mi300x")
    assert shown["expert_flop_efficiency"] == pytest.approx(ours.expert_flop_efficiency)
    assert "moe_flop_share" in shown["source"]
    assert "expert_flop_efficiency" not in efficiency("h200-sxm")
    # factors passed back in are applied as shown (the experts' share with them), and a dense model drops it
    request = ProfileRequest(model="deepseek-v3", hardware="mi300x", num_devices=8, dtype="fp8", engine="sglang",
                             prompt_tokens=4096, context=4200)
    first = profile(request)
    again = profile(request, first.efficiency)
    assert again.throughput.prefill_tokens_per_s == pytest.approx(first.throughput.prefill_tokens_per_s)
    dense = profile(ProfileRequest(model="llama-3.1-8b", hardware="mi300x", dtype="bf16", engine="sglang"),
                    first.efficiency)
    assert dense.efficiency.expert_flop_efficiency is None


def test_vllm_reads_fp8_weights_weight_only_where_the_gpu_has_no_fp8_rate():
    """On an A100 vLLM runs an FP8 checkpoint through FP8 Marlin (W8A16): the weights stay 8-bit in memory and on
    the wire, the matmuls run at the 16-bit rate; an engine without that path is refused with the engines that have
    it, and a GPU with an fp8 rate keeps its W8A8 GEMM."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_weight_only, fp8_weight_only_engines
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.errors import HardwareError
    from optiplan.planner.schema import ProfileRequest

    a100, h100 = resolve_hardware("a100-80gb-sxm"), resolve_hardware("h100-sxm")
    assert engine_weight_only("vllm", "fp8", a100)["efficiency"] == "marlin-fp8"
    assert engine_weight_only("vllm", "fp8", h100) is None and engine_weight_only("vllm", "bf16", a100) is None
    assert fp8_weight_only_engines() == ["tgi", "vllm"]
    # TGI reads fp8 weights with FP8-Marlin below Hopper even on Ada, which has the fp8 rate (it finds Marlin faster);
    # on Hopper its CUTLASS W8A8 GEMM (the profile had priced TGI's fp8 on an L40S as W8A8)
    l40s = resolve_hardware("l40s")
    assert engine_weight_only("tgi", "fp8", l40s)["efficiency"] == "marlin-fp8"
    assert engine_weight_only("vllm", "fp8", l40s) is None and engine_weight_only("tgi", "fp8", h100) is None
    assert "fp8 weights, bf16 compute" in profile(ProfileRequest(
        model="llama-3.1-8b", hardware="l40s", dtype="fp8", engine="tgi", batch=1, context=4096)).efficiency.source

    def run(dtype, engine="vllm", hardware="a100-80gb-sxm"):
        return profile(ProfileRequest(model="qwen3-32b", hardware=hardware, dtype=dtype, engine=engine, batch=1,
                                      context=4096))
    fp8, bf16 = run("fp8"), run("bf16")
    assert "fp8 weights, bf16 compute" in fp8.efficiency.source
    assert "fp8 weights, fp8 compute" in run("fp8", hardware="h100-sxm").efficiency.source
    assert fp8.memory.weights_bytes < 0.55 * bf16.memory.weights_bytes  # 8-bit weights (and their scales)
    assert fp8.latency.tpot_ms < 0.6 * bf16.latency.tpot_ms  # batch-1 decode reads half the bytes
    assert "marlin-fp8" in fp8.efficiency.source
    with pytest.raises(HardwareError, match="weight-only: tgi, vllm"):
        run("fp8", engine="sglang")


def test_vllms_front_end_bounds_the_requests_it_completes_a_second():
    """vLLM's API server spends some 20 ms on each request in turn (`request_host_s`): 1,000 tiny requests at once
    leave at most 1 / that a second however small the model, the difference waiting before its prefill; long requests
    are not bound, SGLang's faster server (6 ms) less, TensorRT-LLM's not at all."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_request_host_s
    from optiplan.planner.schema import ProfileRequest

    host = engine_request_host_s("vllm")
    assert 0.01 < host < 0.03 and 0 < engine_request_host_s("sglang") < host / 3
    assert engine_request_host_s("trtllm") == 0.0

    def run(engine, input_tokens, output_tokens, concurrency):
        return profile(ProfileRequest(model="qwen3-14b", hardware="h100-sxm", engine=engine, input_tokens=input_tokens,
                                      output_tokens=output_tokens, concurrency=concurrency)).requests

    tiny = run("vllm", 128, 4, 1000)
    assert tiny.requests_per_s == pytest.approx(1 / host) and tiny.queue_wait_ms > 0
    assert tiny.request_latency_ms == pytest.approx(1000 * host * 1e3)
    assert f"bound by the engine's front end at {1 / host:,.0f} requests/s" in tiny.scheduling
    assert run("sglang", 128, 4, 1000).requests_per_s > 1 / host
    long = run("vllm", 2000, 200, 64)
    assert long.requests_per_s < 1 / host and long.queue_wait_ms == 0 and "front end" not in long.scheduling


def test_plans_see_vllms_front_end_bound_too():
    """advise prices a plan as profile does: a 1B serving chats on an H100 completes at most 1 / request_host_s
    requests a second per vLLM server (unless the plan starts more API servers: api-server-scale-out), while SGLang's
    (a faster front end in its profile) goes past it."""
    from optiplan.planner.catalog.engines import engine_request_host_s
    from optiplan.planner.catalog.workloads import load_workload

    out, host = load_workload("chat").output_tokens_mean, engine_request_host_s("vllm")

    def plan(engine, without=()):
        return advise(AdviseRequest(model="llama-3.2-1b", hardware="h100-sxm", num_devices=1, workload="chat",
                                    engine=engine, goal="throughput", without=without)).plan.predicted
    assert plan("vllm", ("api-server-scale-out",)).throughput_tokens_per_s == pytest.approx(out / host, rel=0.01)
    scaled = plan("vllm")
    assert scaled.api_servers_per_rank == 4 and scaled.throughput_tokens_per_s <= 4 * out / host
    assert plan("sglang").throughput_tokens_per_s > 1.2 * out / host




def test_the_generic_engine_runs_nvfp4_as_w4a4_where_the_device_has_the_rate():
    """The README defines fp4 as NVFP4, W4A4 on Blackwell: `profile --dtype fp4` without an engine ran it weight-only
    at the 16-bit rate (the same TTFT as bf16), where vLLM and TensorRT-LLM ran it at the fp4 rate."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    def ttft(dtype, engine="serving"):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="b200", dtype=dtype, engine=engine))

    generic = ttft("fp4")
    assert generic.hardware.compute_dtype == "fp4" == ttft("fp4", "vllm").hardware.compute_dtype
    assert generic.latency.ttft_ms < 0.8 * ttft("bf16").latency.ttft_ms
