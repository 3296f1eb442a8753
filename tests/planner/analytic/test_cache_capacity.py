"""The tokens a serving engine's KV cache holds as it sizes it at start-up (`memory.kv_cache_capacity_tokens`: vLLM's
"GPU KV cache size", SGLang's "#tokens"), and `profile --memory-share`, the engine's memory option that sizes it."""

from __future__ import annotations

import statistics

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest

GIB = 2**30
# vLLM 0.17+'s fused all-reduce workspace (1.5 GiB, from its code) and what its 0.19 logs measure beside it (0.345 GiB)
FUSED = (1536 + 353) * 2**20


def memory(**kw):
    args = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "engine": "vllm"} | kw
    return profile(ProfileRequest(**args)).memory


def test_vllm_gives_its_cache_its_share_less_weights_runtime_and_profiling_peak():
    m = memory()
    # vLLM runs within 0.9 of the device; its profiling peak there is its sampler's (1,024 rows of logits)
    room = 0.9 * m.device_memory_bytes - m.weights_bytes - m.runtime_overhead_bytes - m.activation_peak_bytes
    assert m.kv_cache_capacity_tokens == pytest.approx(room / m.kv_cache_bytes_per_token, rel=1e-5)
    # llm-d's vLLM logs on one H100 (profiles/engines/vllm.yaml profile_sampler_source): 51.38 GiB of cache
    assert m.kv_cache_capacity_tokens * m.kv_cache_bytes_per_token / GIB == pytest.approx(51.4, abs=0.5)


def test_the_memory_option_moves_the_cache_by_its_share_of_the_device():
    stock, raised = memory(), memory(memory_share=0.95)
    grown = (raised.kv_cache_capacity_tokens - stock.kv_cache_capacity_tokens) * stock.kv_cache_bytes_per_token
    assert grown == pytest.approx(0.05 * stock.device_memory_bytes, rel=1e-3)
    # the requests that fit at once come from the same cache
    at_once = {"input_tokens": 8000, "output_tokens": 1000, "concurrency": "max"}
    assert profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm", memory_share=0.95,
                                  **at_once)).requests.running > \
        profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm", **at_once)).requests.running


def test_tensor_parallel_shards_each_token_so_the_deployment_holds_more():
    one, two = memory(model="llama-3.1-70b", dtype="fp8", num_devices=1), \
        memory(model="llama-3.1-70b", dtype="fp8", num_devices=2)
    assert two.kv_cache_capacity_tokens > 2 * one.kv_cache_capacity_tokens  # half the weights on each, too


def test_sglang_takes_it_as_its_static_fraction():
    stock, set_ = memory(engine="sglang"), memory(engine="sglang", memory_share=0.93)
    # --mem-fraction-static 0.93: weights and cache within 0.93 of what is free once the runtime is up (SGLang's
    # profile_max_num_token), so the runtime comes out of the cache
    room = 0.93 * (set_.device_memory_bytes - set_.runtime_overhead_bytes) - set_.weights_bytes
    assert set_.kv_cache_capacity_tokens == pytest.approx(room / set_.kv_cache_bytes_per_token, rel=1e-5)
    assert set_.kv_cache_capacity_tokens != stock.kv_cache_capacity_tokens


def test_engines_that_size_no_cache_at_start_up_have_none_and_refuse_the_option():
    assert memory(engine="llama.cpp").kv_cache_capacity_tokens is None
    assert memory(engine="transformers").kv_cache_capacity_tokens is None
    with pytest.raises(RequestError, match="--memory-share"):
        memory(engine="llama.cpp", memory_share=0.9)
    with pytest.raises(ValueError):
        ProfileRequest(model="llama-3.1-8b", memory_share=1.5)


def test_the_published_start_up_logs_are_predicted_as_their_runs_were_set_up():
    # benchmarks/published: vLLM's "GPU KV cache size" and SGLang's "#tokens" logs, each at its logged memory share,
    # step budget, parallel layout and release (vLLM's profiling peak per logit fell from 0.17)
    from script_loader import load_script

    published = load_script("benchmarks/published_points.py")
    points = {p["id"]: p for p in published.published_points() if p["category"] == "kv-cache"}
    assert len(points) >= 30
    ratios = {}
    for pid, p in points.items():
        value, why = published.predict(p)
        assert value is not None, (pid, why)
        ratios[pid] = value / p["value"]
    one_gpu = [r for pid, r in ratios.items() if "vllm019" in pid and points[pid]["num_devices"] == 1]
    # the dense ones within 0.7%, the MoE ones (their profiling forward pass, not the sampler, can set the peak) 3.2%
    assert len(one_gpu) >= 12 and all(abs(r - 1) < 0.04 for r in one_gpu), one_gpu
    assert statistics.median(abs(r - 1) for r in one_gpu) < 0.005
    # tensor parallel 2 and 4 with the fused all-reduce's workspace and the collectives' buffers held out: within 2%
    # (Mixtral 1.5%), but for Qwen2.5-72B, whose weights leave 3 GiB a GPU of cache (1.06x)
    tensor_parallel = {pid: r for pid, r in ratios.items() if "vllm019" in pid and points[pid]["tensor_parallel"] > 1}
    assert len(tensor_parallel) == 8
    assert all(abs(r - 1) < 0.02 for pid, r in tensor_parallel.items() if "72b" not in pid), tensor_parallel
    # the same Qwen3-14B run before and after 0.17's smaller profiling peak: both within 1%, 8% apart
    before, after = ratios["llmd-planner-vllm0160-qwen3-14b-h100-kv-cache"], \
        ratios["llmd-planner-vllm0170-qwen3-14b-h100-kv-cache"]
    assert abs(before - 1) < 0.01 and abs(after - 1) < 0.01
    assert points["llmd-planner-vllm0170-qwen3-14b-h100-kv-cache"]["value"] > \
        1.08 * points["llmd-planner-vllm0160-qwen3-14b-h100-kv-cache"]["value"]


def test_vllm_from_0_17_holds_its_fused_all_reduce_workspace_out_of_the_cache(monkeypatch):
    """vLLM 0.17+ fuses each tensor-parallel all-reduce with its RMSNorm (FlashInfer) on Hopper and Blackwell behind
    an NVLink switch, at tensor parallel 2, 4 or 8 without pipeline parallelism: three buffers of the driver's 512 MiB
    multicast granularity a GPU, allocated inside its profiling run (llm-d's 0.19 logs: non-torch memory 2.07 GiB at
    tensor parallel 2, 0.25 at 1, 0.07 at pipeline parallel 2), and the 0.345 GiB beyond it those logs measure."""
    def held(**kw):
        m = memory(model="llama-3.1-8b", **kw)
        return m.runtime_overhead_bytes, m.kv_cache_capacity_tokens, m.kv_cache_bytes_per_token

    base, _, _ = held(engine="vllm==0.19.0")
    fused = {devices: held(engine="vllm==0.19.0", num_devices=devices) for devices in (2, 4, 8)}
    assert {d: held(engine="vllm==0.16.0", num_devices=d)[0] for d in fused} == dict.fromkeys(fused, base)
    monkeypatch.setattr("optiplan.planner.analytic.setup.engine_workspace_bytes", lambda *a: 0.0)
    for devices, (runtime, tokens, per_token) in fused.items():
        assert runtime - base == FUSED
        # each device's cache gives up the workspace: a token's bytes there are its share of the whole
        unfused = held(engine="vllm==0.19.0", num_devices=devices)[1]
        assert (unfused - tokens) * per_token / devices == pytest.approx(FUSED, rel=1e-3)
    monkeypatch.undo()
    # none where the engine does not fuse: one device, pipeline parallel, a PCIe card, before Hopper, six devices
    assert held(engine="vllm==0.19.0", num_devices=1)[0] == base
    assert held(engine="vllm==0.19.0", num_devices=4, pipeline_parallel=2)[0] == base  # tensor parallel 2 x 2 stages
    from optiplan.planner.catalog.engine_memory import engine_workspace_bytes
    from optiplan.planner.catalog.hardware import resolve_hardware
    h100 = resolve_hardware("h100-sxm")
    assert engine_workspace_bytes("vllm==0.19.0", h100, 6) == 0 < engine_workspace_bytes("vllm==0.19.0", h100, 8)
    assert engine_workspace_bytes("vllm==0.19.0", h100, 2, data_parallel=2) == 0
    assert engine_workspace_bytes("vllm==0.19.0", resolve_hardware("b200"), 2) == FUSED
    # a GB200 tray holds four: eight span two hosts, where the engine takes another all-reduce backend
    gb200 = resolve_hardware("gb200")
    assert engine_workspace_bytes("vllm==0.19.0", gb200, 4) == FUSED > engine_workspace_bytes("vllm==0.19.0", gb200, 8)
    for hw in ("h100-pcie", "a100-80gb-sxm"):
        one = memory(hardware=hw, engine="vllm==0.19.0").runtime_overhead_bytes
        assert memory(hardware=hw, engine="vllm==0.19.0", num_devices=2).runtime_overhead_bytes == one
    # nor in the release vLLM's facts describe (0.11) or SGLang
    assert held(engine="vllm", num_devices=2)[0] == base
    assert memory(engine="sglang", num_devices=2).runtime_overhead_bytes == memory(engine="sglang").runtime_overhead_bytes


def test_a_plans_vllm_servers_hold_the_workspace_as_their_configs_run_them():
    """A plan's replicas that share a node run as one vLLM server's data-parallel ranks (--data-parallel-size: no fused
    all-reduce); replicas in nodes of their own are one server each (fused); an eager config (--enforce-eager) fuses
    nothing."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.state import PlanState, to_setup

    def workspace(devices, tp, replicas, graphs=True):
        state = PlanState(spec=resolve_model("llama-3.1-8b"), hw=resolve_hardware("h100-sxm"), devices=devices, tp=tp,
                          pp=1, replicas=replicas, engine="vllm==0.19.0", graphs=graphs)
        return to_setup(state).workspace_bytes / GIB

    assert workspace(2, 2, 1) == FUSED / GIB and workspace(2, 2, 1, graphs=False) == 0
    assert workspace(8, 2, 4) == 0  # four replicas on one node: one server, --data-parallel-size 4
    assert workspace(16, 8, 2) == FUSED / GIB  # a node each: two servers at tensor parallel 8


def test_the_report_shows_the_engines_share_of_the_runtime():
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    assert memory(engine="vllm==0.19.0", num_devices=2).workspace_bytes == FUSED
    assert memory(engine="vllm==0.19.0").workspace_bytes == 0

    def report(devices):
        text = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "-H", "h100-sxm", "--gpus", str(devices),
                                         "--engine", "vllm==0.19.0"], terminal_width=200).output.split()
        return " ".join(text)  # the report wraps at 110 columns wherever its figures end

    assert "all-reduce workspace" in report(2) and "all-reduce workspace" not in report(1)


def test_flashinfers_sampler_peaks_lower_than_pytorchs_and_leaves_the_cache_the_difference():
    """vLLM's start-up profiling samples max_num_seqs rows of logits: PyTorch's sampler sorts them (39 bytes a logit
    before 0.17), FlashInfer's masks and takes a softmax (14: the model-dtype logits, a float32 copy, the masked copy
    and the probabilities). `--sampler flashinfer` (vLLM's official images before 0.12) gives the cache the rest."""
    native, flashinfer = memory(), memory(sampler="flashinfer")
    assert memory(sampler="native").kv_cache_capacity_tokens == native.kv_cache_capacity_tokens  # the default
    rows, vocab = 1024, 128_256  # max_num_seqs on an H100; Llama 3's vocabulary
    assert native.activation_peak_bytes - flashinfer.activation_peak_bytes == pytest.approx((39 - 14) * rows * vocab)
    grown = (flashinfer.kv_cache_capacity_tokens - native.kv_cache_capacity_tokens) * native.kv_cache_bytes_per_token
    assert grown == pytest.approx((39 - 14) * rows * vocab, rel=1e-3)
    # from 0.17 PyTorch's sampler peaks at 15.4 bytes a logit: the choice moves the cache by little
    late = memory(engine="vllm==0.17.0"), memory(engine="vllm==0.17.0", sampler="flashinfer")
    assert late[0].activation_peak_bytes - late[1].activation_peak_bytes == pytest.approx(1.4 * rows * vocab)


def test_the_sampler_is_vllms_option_and_the_logs_say_which_ran():
    with pytest.raises(RequestError, match="--sampler"):
        memory(engine="sglang", sampler="flashinfer")
    with pytest.raises(ValueError):
        ProfileRequest(model="llama-3.1-8b", sampler="torch")
    # dennislee22's vLLM 0.10.1.1 logs say "Using FlashInfer for top-p & top-k sampling.": with it their caches
    # come out within 14% (the 5 GiB pool at a quarter of the device) and 2.5%, where PyTorch's put them 0.68-0.96x
    from script_loader import load_script

    published = load_script("benchmarks/published_points.py")
    logs = [p for p in published.published_points() if p["id"].startswith("dennislee22-")]
    assert len(logs) == 3 and all(p["sampler"] == "flashinfer" for p in logs)
    ratios = [published.predict(p)[0] / p["value"] for p in logs]
    assert all(0.85 < r < 1.03 for r in ratios) and sorted(ratios)[1] > 0.975, ratios
    as_pytorch = [published.predict(p | {"sampler": None})[0] / p["value"] for p in logs]
    assert all(a < r for a, r in zip(as_pytorch, ratios, strict=True))


def test_a_plan_is_priced_with_the_sampler_of_the_image_its_configs_run():
    """vLLM's official images before 0.12 install FlashInfer and sample with it on CUDA; AMD's ROCm image has none,
    and from 0.12 FlashInfer's sampler is opt-in: a plan priced at the image takes its sampler's peak."""
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.state import baseline_state, to_setup

    spec = resolve_model("llama-3.1-8b")

    def priced(hw, engine):
        return to_setup(baseline_state(spec, resolve_hardware(hw), 1).with_(
            engine=engine, paged_kv=True, continuous_batching=True, chunked_prefill=True)).sampler_row_bytes

    assert priced("h100-sxm", "vllm==0.10.2") == 14 * spec.vocab_size
    assert priced("mi300x", "vllm==0.10.1") == 39 * spec.vocab_size
    assert priced("h100-sxm", "vllm==0.12.0") == 39 * spec.vocab_size
    assert priced("h100-sxm", "sglang") == 0


def test_a_free_memory_share_of_a_deficit_is_the_deficit():
    """TensorRT-LLM gives its cache 0.9 of what is free: where nothing is free, the headroom is the whole deficit, and
    what is 'available' no more than the device (it read -108 GB within 36 GB of a 24 GB L4: 0.9 of -120)."""
    p = profile(ProfileRequest(model="llama-3.1-70b", hardware="l4", engine="trtllm", dtype="bf16"))
    m = p.memory
    assert not p.fits and m.headroom_bytes == pytest.approx(m.device_memory_bytes - m.per_device_bytes, rel=1e-6)
    assert m.per_device_bytes + m.headroom_bytes <= m.device_memory_bytes


def test_no_more_requests_run_than_the_start_up_cache_holds():
    """An engine that sizes its cache at start-up (after a profiling run of its whole step budget) runs no more
    reserved requests than that cache holds: TensorRT-LLM on an L4 reported 43,871 tokens, 146 requests of 300, and
    ran 164 (the room one prompt's activations leave)."""
    p = profile(ProfileRequest(model="llama-3.1-8b", hardware="l4", engine="trtllm", input_tokens=200,
                               output_tokens=100, concurrency="max"))
    held = 300  # TensorRT-LLM reserves the whole length (GUARANTEED_NO_EVICT)
    assert p.requests.max_concurrency <= p.memory.kv_cache_capacity_tokens // held
    assert p.requests.max_concurrency == p.requests.running == p.throughput.max_batch


def test_a_batch_beyond_the_cache_an_engine_sizes_at_start_up_does_not_fit():
    # TensorRT-LLM sizes its cache after its profiling run: Phi-3.5-MoE on one H100 leaves it 2,168 tokens, no whole
    # 4,096-token sequence, so one sequence does not fit, whatever headroom the raw memory count shows (a release of
    # the TensorRT-engine flow, which built Phi-3.5-MoE: the PyTorch backend of 0.20 on has no code for it)
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    r = profile(ProfileRequest(model="phi-3.5-moe", hardware="h100-sxm", engine="trtllm==0.19.0"))
    assert r.throughput.max_batch == 0 and not r.fits
    assert any("its start-up profiling run the engine's cache holds 0 sequences" in w for w in r.warnings)


def test_llama_cpp_plans_leave_each_gpu_its_fitters_margin():
    """llama.cpp allocates the --ctx-size a config sets, whole, and takes no share of the GPU of its own: a plan that
    sizes it to the most sequences that fit had filled an H100 to within 5 MB. It leaves the 1 GiB a GPU that
    llama.cpp's own fitter (--fit) keeps free (an A100 40GB, whose cache binds before llama.cpp's 256 sequences;
    an H100 stops at those with room to spare)."""
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    def plan(hardware):
        return advise(AdviseRequest(model="llama-3.1-8b", hardware=hardware, num_devices=1, workload="batch-offline",
                                    engine="llama.cpp", concurrency=64)).plan.predicted

    # (at the most sequences the plan's cache holds: the throughput goal's batch stops where a larger one gains
    # under 3%)
    p = plan("a100-40gb")
    per_sequence = p.kv_cache_per_device_bytes / p.batch
    left = p.device_memory_bytes - p.memory_per_device_bytes - per_sequence * (p.max_concurrency - p.batch)
    assert p.max_concurrency < 256 and GIB <= left < GIB + 2 * per_sequence
    h100 = plan("h100-sxm")
    per_sequence = h100.kv_cache_per_device_bytes / h100.batch
    left = h100.device_memory_bytes - h100.memory_per_device_bytes - per_sequence * (256 - h100.batch)
    assert h100.max_concurrency == 256 and left > 10 * GIB
