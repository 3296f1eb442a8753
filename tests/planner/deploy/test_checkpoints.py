"""Configs serve checkpoints that exist: the instruct model for chat workloads, a published checkpoint in the
plan's weight format where the engine loads it, online quantization only where the engine does it, else a folder
and the command that produces it."""

from __future__ import annotations

from optiplan import profiles
from optiplan.planner.catalog.served import CHECKPOINT_FORMATS
from optiplan.planner.deploy.checkpoints import draft_hub_id, serving_checkpoint
from optiplan.planner.deploy.render import engine_config, render
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def _plan(model, workload="chat", hardware="h100-sxm", devices=1, **kw):
    return advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, workload=workload, **kw))


def test_catalog_checkpoints_are_data_with_sources():
    formats = set(CHECKPOINT_FORMATS.values()) | {"gguf"}
    for name in profiles.model_names():
        entry = profiles.load_model(name)
        if "instruct" in entry:
            assert "/" in entry["instruct"]["hub_id"] and entry["instruct"]["source"], name
        for c in entry.get("checkpoints") or []:
            assert c["format"] in formats and "/" in c["hub_id"] and c["source"], (name, c)
            assert set(c["engines"]) <= {"vllm", "sglang", "tgi", "trtllm", "llama.cpp"} and isinstance(c["instruct"], bool)
            assert (c["format"] == "gguf") == (c["engines"] == ["llama.cpp"]) and (c["format"] != "gguf" or c["quants"])


def test_chat_serves_the_instruct_model_and_a_batch_job_the_base():
    chat = _plan("qwen2.5-7b", max_quality_loss_pct=0.0)  # lossless: 16-bit weights
    assert serving_checkpoint(chat, "vllm", "Qwen/Qwen2.5-7B").model == "Qwen/Qwen2.5-7B-Instruct"
    batch = _plan("qwen2.5-7b", workload="batch-offline", max_quality_loss_pct=0.0)
    assert serving_checkpoint(batch, "vllm", "Qwen/Qwen2.5-7B").model == "Qwen/Qwen2.5-7B"
    unknown = serving_checkpoint(_plan("olmo-2-7b", max_quality_loss_pct=0.0), "vllm", "allenai/OLMo-2-1124-7B")
    assert unknown.model == "allenai/OLMo-2-1124-7B" and "no chat template" in unknown.notes[0]


def test_a_quantized_plan_serves_a_published_checkpoint_or_says_how_to_make_one():
    # AWQ costs Llama-2-7B +2.4% perplexity, GPTQ +4.0% (profiles/quality.yaml): a 3% budget takes AWQ for one user
    # (at a few, vLLM's compute-bound prefill favours W8A8's int8 tensor cores)
    a = _plan("llama-2-7b", hardware="a10g", max_quality_loss_pct=3.0, goal="latency", concurrency=1)
    fmt = next(CHECKPOINT_FORMATS[s.technique] for s in a.plan.steps if s.technique in CHECKPOINT_FORMATS)
    assert fmt == "awq", [s.technique for s in a.plan.steps]
    files = render(a, "vllm")
    assert "exec vllm serve TheBloke/Llama-2-7B-Chat-AWQ" in files["vllm/serve.sh"]
    # the checkpoint declares its quantization; a flag that disagreed with it would stop vLLM (it picks Marlin itself)
    assert "--quantization" not in files["vllm/serve.sh"]
    assert "a published awq checkpoint" in files["README.md"]
    trt = serving_checkpoint(a, "trtllm", "meta-llama/Llama-2-7b-hf")  # the AWQ repo is not a Model Optimizer one
    assert trt.model == "./models/llama-2-7b-awq" and "--qformat int4_awq" in trt.notes[-1]
    assert "from meta-llama/Llama-2-7b-chat-hf with" in trt.notes[-1]  # the chat model is the one quantized


def test_a_produced_folder_is_found_in_containers():
    import yaml

    a = _plan("mistral-7b-v0.1", hardware="l40s", max_quality_loss_pct=1.0)  # fp8, which TensorRT-LLM does not do online
    k8s = list(yaml.safe_load_all(render(a, "kubernetes", serving_engine="trtllm")["kubernetes/deployment.yaml"]))
    args = next(d for d in k8s if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "/models/local/mistral-7b-v0.1-fp8" in args  # on the weights volume, not relative to the image
    compose = yaml.safe_load(render(a, "compose", serving_engine="trtllm")["compose/docker-compose.yaml"])
    service = next(iter(compose["services"].values()))
    assert "./models:/models:ro" in service["volumes"] and service["working_dir"] == "/"


def test_online_fp8_needs_the_16_bit_weights_to_fit_while_they_load():
    """vLLM and SGLang load a 16-bit checkpoint whole before they quantize it to fp8. Mixtral on one H100: its 93 GB of
    16-bit weights do not fit 80 GB, so their configs serve a produced fp8 checkpoint (whose config declares it: no
    flag that could disagree); TGI quantizes each weight as it loads it. On two H100s the plan (SGLang's) splits the
    experts over both, 47 GB a device, which SGLang quantizes as it loads: in two whole replicas, within a few percent
    of it, the user would first have to produce the checkpoint (`served.produced_formats` in the search's tie)."""
    a = _plan("mixtral-8x7b", goal="throughput", engine="sglang")
    p = a.plan.predicted
    assert "weight-fp8" in [s.technique for s in a.plan.steps]
    assert (p.tensor_parallel, p.data_parallel, p.pipeline_parallel) == (1, 1, 1)
    for engine in ("sglang", "vllm"):
        served = serving_checkpoint(a, engine, "mistralai/Mixtral-8x7B-v0.1")
        assert served.model == "./models/mixtral-8x7b-fp8" and served.produced == "fp8", engine
        assert any("loads the 16-bit checkpoint whole" in n and "93.4 GB" in n for n in served.notes), engine
    assert "--quantization" not in render(a, "sglang")["sglang/serve.sh"]
    assert serving_checkpoint(a, "tgi", "mistralai/Mixtral-8x7B-v0.1").model == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    two = _plan("mixtral-8x7b", devices=2, goal="throughput", engine="sglang")
    p = two.plan.predicted
    assert "weight-fp8" in [s.technique for s in two.plan.steps] and p.data_parallel == 1
    assert p.attention_data_parallel * p.tensor_parallel == 2
    sglang = serving_checkpoint(two, "sglang", "mistralai/Mixtral-8x7B-v0.1")
    assert sglang.produced is None and "quantizes" in sglang.notes[-1]
    # a model whose 16-bit shard fits quantizes online as before
    small = _plan("olmo-2-7b", hardware="l40s", max_quality_loss_pct=1.0)
    assert serving_checkpoint(small, "vllm", "allenai/OLMo-2-1124-7B").produced is None


def test_nvfp4_is_served_from_a_model_optimizer_checkpoint():
    """vLLM's and SGLang's modelopt_fp4 reads an NVFP4 checkpoint Model Optimizer wrote; neither quantizes a 16-bit
    one as it loads: a plan in fp4 serves such a folder and says how to make it (it had served the 16-bit model with
    --quantization modelopt_fp4, which does not start)."""
    a = _plan("llama-3.1-70b", hardware="b200", goal="throughput", max_quality_loss_pct=5.0)
    assert "weight-fp4" in [s.technique for s in a.plan.steps]
    for engine in ("vllm", "sglang", "trtllm"):
        served = serving_checkpoint(a, engine, "meta-llama/Llama-3.1-70B")
        assert served.model == "./models/llama-3.1-70b-nvfp4", engine
        assert "--qformat nvfp4" in served.notes[-1] and "from meta-llama/Llama-3.1-70B-Instruct" in served.notes[-1]
    # DeepSeek V3's comes from Model Optimizer's own DeepSeek flow (hf_ptq.py does not quantize it), on 8 H200 or 16 H100
    ds = advise(AdviseRequest(model="deepseek-v3", hardware="b200", num_devices=8, workload="chat", engine="vllm",
                              goal="throughput", max_quality_loss_pct=3.0))
    assert "weight-fp4" in [s.technique for s in ds.plan.steps]
    note = serving_checkpoint(ds, "vllm", "deepseek-ai/DeepSeek-V3").notes[-1]
    assert "examples/deepseek/README.md" in note and "quantize_fp8_to_nvfp4.sh" in note and "hf_ptq" not in note


def test_fp8_is_quantized_online_where_the_engine_does_it():
    a = _plan("olmo-2-7b", hardware="l40s", max_quality_loss_pct=1.0)
    assert "weight-fp8" in [s.technique for s in a.plan.steps]
    online = serving_checkpoint(a, "vllm", "allenai/OLMo-2-1124-7B")
    assert online.model == "allenai/OLMo-2-1124-7B" and "quantizes" in online.notes[-1]
    offline = serving_checkpoint(a, "trtllm", "allenai/OLMo-2-1124-7B")
    assert offline.model == "./models/olmo-2-7b-fp8" and "--qformat fp8" in offline.notes[-1]


def test_llama_cpp_downloads_a_published_gguf_or_says_how_to_convert():
    a = _plan("llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", goal="memory", max_quality_loss_pct=5.0,
              concurrency=1)
    quant = {"weight-int4": "Q4_K_M", "weight-int8": "Q8_0"}
    chosen = next(quant[s.technique] for s in a.plan.steps if s.technique in quant)
    script = render(a, "llama.cpp")["llamacpp/serve.sh"]
    assert f"--hf-repo lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF:{chosen}" in script
    assert "\n  --model " not in script
    base = _plan("llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", workload="batch-offline", goal="memory",
                 max_quality_loss_pct=5.0, concurrency=1)
    readme = render(base, "llama.cpp")["README.md"]
    assert "convert_hf_to_gguf.py" in readme and "meta-llama/Llama-3.1-8B>" in readme  # no base GGUF published


def test_llama_cpp_chats_through_the_models_own_template():
    # --jinja (tool calls need it) where requests come through a chat template; a base model's raw completions do not
    chat = _plan("llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", concurrency=1)
    assert "\n  --jinja \\\n" in render(chat, "llama.cpp")["llamacpp/serve.sh"]
    base = _plan("llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", workload="batch-offline", concurrency=1)
    assert "--jinja" not in render(base, "llama.cpp")["llamacpp/serve.sh"]


def test_sglang_serves_a_published_w8a8_int8_checkpoint():
    # RedHatAI's compressed-tensors W8A8 checkpoints load in SGLang as in vLLM: nothing to produce
    a = _plan("llama-3.1-8b", hardware="a100", engine="sglang", goal="latency", concurrency=8)
    assert any(s.technique == "weight-w8a8-int8" for s in a.plan.steps)
    assert serving_checkpoint(a, "sglang", "meta-llama/Llama-3.1-8B").model == \
        "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8"
    for name in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "llama-3.2-3b"):
        formats = {c["hub_id"]: c["engines"] for c in profiles.load_model(name)["checkpoints"]
                   if c["format"] == "w8a8_int8"}
        assert formats and all("sglang" in engines for engines in formats.values()), name


def test_llama_cpps_draft_model_is_downloaded_or_made():
    """A llama.cpp plan that speculates with a draft model names a GGUF llama-server can load: a published one it
    downloads (--hf-repo-draft), else a file and the commands that make it from the draft's instruct checkpoint (the
    config had named a file nobody was told how to make)."""
    # one user: llama-server drafts slot by slot, so a plan drafts only for one sequence at a time
    a = _plan("llama-3.1-8b", hardware="l4", engine="llama.cpp", concurrency=1)
    step = next(s for s in a.plan.steps if s.technique == "spec-draft")
    files = render(a, "llama.cpp")
    # the catalog knows no GGUF of Llama-3.2-1B: a file, made from its instruct checkpoint
    assert step.params["draft_model"] == "llama-3.2-1b"
    assert "--model-draft models/llama-3.2-1b-" in files["llamacpp/serve.sh"]
    # its Q8_0 written by the converter itself (a 16-bit file and llama-quantize only for the types it cannot write)
    assert "the draft model's GGUF: `python convert_hf_to_gguf.py <a local copy of meta-llama/Llama-3.2-1B-Instruct>" \
        " --outtype q8_0 --outfile models/llama-3.2-1b-Q8_0.gguf`" in files["README.md"]
    # named as the pinned build runs them, with what later builds renamed them to
    assert "--draft-max 4" in files["llamacpp/serve.sh"] and "--spec-draft-n-max" in files["README.md"]


def test_a_workload_file_says_whether_it_chats():
    from optiplan.planner.catalog.workloads import load_workload, serves_instruct, with_overrides

    assert serves_instruct(load_workload("chat")) and not serves_instruct(load_workload("batch-offline"))
    custom = with_overrides(load_workload("batch-offline"), name="my-assistant", chat=True)
    assert serves_instruct(custom)
    assert load_workload("chat").model_dump()["chat"] is True  # every preset says it
    unset = load_workload("chat").model_copy(update={"chat": None})
    assert serves_instruct(unset) and "chat" not in unset.model_dump()  # unsaid: instruct, as most served traffic is


def test_a_chat_plans_draft_model_is_the_instruct_one():
    # the draft proposes what the target accepts: a chat-tuned target wants a chat-tuned draft
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="chat",
                             engine="sglang", goal="latency"))
    draft = next(s.params["draft_model"] for s in a.plan.steps if s.technique == "spec-draft")
    script = render(a, "sglang")["sglang/serve.sh"]
    assert draft == "llama-3.2-1b" and "--speculative-draft-model-path meta-llama/Llama-3.2-1B-Instruct" in script
    offline = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8,
                                   workload="batch-offline", engine="sglang"))
    assert draft_hub_id(offline, "llama-3.2-1b") == "meta-llama/Llama-3.2-1B"  # a base model drafts with a base one


def test_the_workloads_chat_field_decides_the_model_not_its_name(tmp_path):
    """A copy of the chat preset under another name still serves the instruct model (its `chat: true` says so; the
    name once decided it, and a 'support-bot' copy lost its EAGLE-3 head), and a completion workload that only an
    instruct checkpoint is published for in the plan's format gets the base model quantized, not the other model."""
    import yaml

    chat = yaml.safe_load((profiles.ROOT / "workloads" / "chat.yaml").read_text())
    path = tmp_path / "support-bot.yaml"
    path.write_text(yaml.safe_dump(chat | {"name": "support-bot"}))
    bot, preset = _plan("llama-3.1-8b", workload=str(path), hardware="l4"), _plan("llama-3.1-8b", hardware="l4")
    assert [s.technique for s in bot.plan.steps] == [s.technique for s in preset.plan.steps]
    assert bot.plan.predicted.tpot_ms == preset.plan.predicted.tpot_ms
    completion = _plan("llama-3.1-8b", workload="code-completion", engine="trtllm")
    served = serving_checkpoint(completion, "trtllm", "meta-llama/Llama-3.1-8B")
    assert served.model == "./models/llama-3.1-8b-fp8" and "from meta-llama/Llama-3.1-8B with" in served.notes[-1]
    assert "Instruct-FP8 is the instruct model" in served.notes[-1]


def test_int8_weight_only_serves_an_int8_checkpoint_or_quantizes_online_where_the_engine_does():
    # a 0.2% budget: int8 weight-only (0.1%), not W8A8 (0.5%) nor fp8 weights (0.3%, FP8 Marlin on an A100); vLLM had
    # been told `--quantization compressed-tensors` over the 16-bit checkpoint, which it refuses to load
    a = _plan("llama-3.1-70b", hardware="a100-80gb-sxm", devices=2, max_quality_loss_pct=0.2, engine="vllm")
    assert "weight-int8" in [s.technique for s in a.plan.steps]
    vllm = serving_checkpoint(a, "vllm", "meta-llama/Llama-3.1-70B")
    assert vllm.model == "./models/llama-3.1-70b-w8a16_int8" and "scheme='W8A16'" in vllm.notes[-1]
    # TensorRT-LLM's PyTorch backend has no int8 recipe: its config leaves the step out and serves the 16-bit model
    trt = engine_config(a, "trtllm")
    assert dict(trt.not_applied)["weight-int8"].startswith("TensorRT-LLM has no option for it: the PyTorch backend")
    assert trt.model == "meta-llama/Llama-3.1-70B-Instruct"
    tgi = serving_checkpoint(a, "tgi", "meta-llama/Llama-3.1-70B")  # EETQ quantizes as it loads
    assert tgi.model == "meta-llama/Llama-3.1-70B-Instruct" and "quantizes" in tgi.notes[-1]
    assert "--quantize eetq" in render(a, "tgi")["tgi/serve.sh"]
    assert "exec vllm serve ./models/llama-3.1-70b-w8a16_int8" in render(a, "vllm")["vllm/serve.sh"]


def test_tensorrt_llm_serves_nvidias_published_fp8_70b():
    """TensorRT-LLM's README told the user to produce an FP8 Llama-3.1-70B with Model Optimizer, which NVIDIA
    publishes (nvidia/Llama-3.1-70B-Instruct-FP8); vLLM keeps the checkpoint it served before."""
    a = _plan("llama-3.1-70b", devices=2)
    assert "weight-fp8" in [s.technique for s in a.plan.steps]
    assert serving_checkpoint(a, "trtllm", "meta-llama/Llama-3.1-70B").model == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert serving_checkpoint(a, "vllm", "meta-llama/Llama-3.1-70B").model == "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8"


def test_the_fp8_step_names_the_scales_of_what_the_engine_serves(tmp_path):
    """The weight-fp8 step said "per-channel weights, dynamic per-token activations" for every engine, while the
    checkpoints served are per-tensor and static (NVIDIA's Model Optimizer, RedHatAI's FP8), per-channel and dynamic
    (RedHatAI's FP8-dynamic) or in 128x128 blocks (Qwen's). It names the served checkpoint and its scales now, or the
    engine's own fp8 quantization where it serves none."""
    for engine, model, hub in (("vllm", "llama-3.1-70b", "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8"),
                               ("trtllm", "llama-3.1-70b", "nvidia/Llama-3.1-70B-Instruct-FP8"),
                               ("sglang", "qwen3-32b", "Qwen/Qwen3-32B-FP8"),
                               ("vllm", "qwen2.5-72b", "RedHatAI/Qwen2.5-72B-Instruct-FP8-dynamic")):
        a = _plan(model, devices=2, engine=engine)
        step = next(s for s in a.plan.steps if s.technique == "weight-fp8")
        assert step.params["checkpoint"] == hub, (engine, model)
        # the config serves the checkpoint the step names
        assert serving_checkpoint(a, engine, a.model.name).model == hub, (engine, model)
    scales = {hub: next(c["scales"] for c in profiles.load_model(m)["checkpoints"] if c["hub_id"] == hub)
              for m, hub in (("llama-3.1-70b", "nvidia/Llama-3.1-70B-Instruct-FP8"),
                             ("qwen3-32b", "Qwen/Qwen3-32B-FP8"),
                             ("qwen2.5-72b", "RedHatAI/Qwen2.5-72B-Instruct-FP8-dynamic"))}
    assert scales["nvidia/Llama-3.1-70B-Instruct-FP8"].startswith("per-tensor weights and activations, both scales static")
    assert scales["Qwen/Qwen3-32B-FP8"].startswith("128x128-block weights")
    assert scales["RedHatAI/Qwen2.5-72B-Instruct-FP8-dynamic"].startswith("per-channel weights")
    # no fp8 checkpoint of Mistral-7B: each engine's own quantization of the 16-bit one, by device where it differs
    workload = tmp_path / "fp8-only.yaml"
    workload.write_text("name: fp8-only\nprompt_tokens_mean: 1024\noutput_tokens_mean: 256\nconcurrency: 8\n"
                        "goal: memory\nmax_quality_loss_pct: 1.0\nallowed_techniques: [weight-fp8]\n")
    for engine, hw, want in (("vllm", "h100-sxm", "per-tensor weights (quantized as the engine loads them)"),
                             ("tgi", "h100-sxm", "per-channel weights (quantized as the engine loads them), activations"),
                             ("tgi", "l40s", "per-channel weights (quantized as the engine loads them), weight-only"),
                             ("transformers", "h100-sxm", "per-channel weights")):
        a = _plan("mistral-7b-v0.1", workload=str(workload), hardware=hw, engine=engine)
        step = next(s for s in a.plan.steps if s.technique == "weight-fp8")
        assert step.params["scales"].startswith(want) and "checkpoint" not in step.params, (engine, hw)
    for name in profiles.model_names():
        for c in profiles.load_model(name).get("checkpoints") or []:
            assert c["format"] != "fp8" or (c["scales"] and c["scales_source"]), (name, c["hub_id"])


def test_tensorrt_llm_serves_the_checkpoints_its_performance_overview_ran():
    """TensorRT-LLM's configs told the user to quantize Qwen3-235B-A22B with Model Optimizer, while NVIDIA publishes
    the FP8 checkpoint its performance overview runs (its "FP8 Models" list); the same list's Llama-3.1-405B and
    Llama-4-Maverick releases, and its "FP4 Models", are in the catalog for TensorRT-LLM too."""
    a = _plan("qwen3-235b-a22b", devices=8, engine="trtllm")
    assert "weight-fp8" in [s.technique for s in a.plan.steps]
    assert serving_checkpoint(a, "trtllm", "Qwen/Qwen3-235B-A22B").model == "nvidia/Qwen3-235B-A22B-FP8"
    fp4 = {c["hub_id"] for m in ("llama-3.1-405b", "qwen3-235b-a22b", "qwen3-30b-a3b")
           for c in profiles.load_model(m)["checkpoints"] if c["format"] == "nvfp4"}
    assert fp4 == {"nvidia/Llama-3.1-405B-Instruct-FP4", "nvidia/Qwen3-235B-A22B-FP4", "nvidia/Qwen3-30B-A3B-FP4"}
    # a chat workload on Mistral-Small-24B serves its instruct release (it served the base model)
    chat = _plan("mistral-small-24b", hardware="mi300x", max_quality_loss_pct=0.0)
    assert serving_checkpoint(chat, "vllm", "mistralai/Mistral-Small-24B-Base-2501").model == \
        "mistralai/Mistral-Small-24B-Instruct-2501"


def test_a_published_checkpoint_wins_a_tie_over_one_the_user_must_produce():
    # Qwen3-235B-A22B on 8 H100 for chat on vLLM: W8A16 int8 and fp8 come within a percent of each other, int8 at
    # 0.1% against 0.3%; int8 would send the user to llm-compressor with a 235B model where Qwen publishes an FP8 one
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.catalog.served import online_peak, produced_formats

    a = _plan("qwen3-235b-a22b", devices=8, engine="vllm")
    steps = [s.technique for s in a.plan.steps]
    assert "weight-fp8" in steps and "weight-int8" not in steps, steps
    assert serving_checkpoint(a, "vllm", "Qwen/Qwen3-235B-A22B").model == "Qwen/Qwen3-235B-A22B-FP8"
    p = a.plan.predicted
    h100 = resolve_hardware("h100-sxm")

    def produced(techniques, model, engine, **layout):
        return produced_formats(techniques, resolve_model(model), h100, engine, True, p.model_copy(update=layout))
    assert produced(("weight-int8",), "qwen3-235b-a22b", "vllm") == ["w8a16_int8"]
    assert produced(("weight-fp8",), "qwen3-235b-a22b", "vllm") == []
    one = {"tensor_parallel": 1, "pipeline_parallel": 1, "expert_parallel": 1, "data_parallel": 1,
           "attention_data_parallel": 1}
    assert produced(("weight-fp8",), "olmo-2-7b", "trtllm", **one) == ["fp8"]  # no online fp8 there
    assert produced(("weight-fp8",), "olmo-2-7b", "vllm", **one) == []  # vLLM quantizes it as it loads
    assert produced(("weight-int8",), "qwen3-235b-a22b", "llama.cpp") == []  # GGUF files, not these
    # vLLM loads the 16-bit checkpoint whole before it quantizes: Llama-2-70B's 138 GB do not load on one H100, so
    # an fp8 plan there needs a checkpoint produced first; over two H100s each holds 69 GB and vLLM quantizes it
    assert produced(("weight-fp8",), "llama-2-70b", "vllm", **one) == ["fp8"]
    assert produced(("weight-fp8",), "llama-2-70b", "vllm", **{**one, "tensor_parallel": 2}) == []
    assert online_peak(resolve_model("llama-2-70b"), h100, "vllm", "fp8", p.model_copy(update=one)).startswith(
        "vllm loads the 16-bit checkpoint whole")


def test_an_llm_compressor_recipe_keeps_a_mixture_of_experts_router_at_16_bits():
    from optiplan.planner.deploy.checkpoints import recipe_ignores

    assert recipe_ignores("llama") == ("lm_head",)
    assert recipe_ignores("qwen3_moe") == ("lm_head", "re:.*mlp.gate$")
    assert "re:.*feed_forward.router$" in recipe_ignores("llama4")
    # Qwen3-30B-A3B on four A10G (W8A16 int8) and an A100 (W8A8 int8) for vLLM: checkpoints made with llm-compressor
    # (its published FP8 checkpoint, which vLLM reads weight-only on Ampere, left out)
    w8a16 = _plan("qwen3-30b-a3b", hardware="a10g", devices=4, engine="vllm", concurrency=1, without=("weight-fp8",))
    notes = " ".join(serving_checkpoint(w8a16, "vllm", "Qwen/Qwen3-30B-A3B").notes)
    assert "scheme='W8A16', ignore=['lm_head', 're:.*mlp.gate$']" in notes
    w8a8 = _plan("qwen3-30b-a3b", hardware="a100-40gb", engine="vllm", without=("weight-fp8",))
    notes = " ".join(serving_checkpoint(w8a8, "vllm", "Qwen/Qwen3-30B-A3B").notes)
    assert "W8A8 recipe, ignoring lm_head and re:.*mlp.gate$" in notes


def test_rocm_servers_get_no_model_optimizer_checkpoint():
    """vLLM's ROCm build reads no TensorRT Model Optimizer checkpoint (quant_method modelopt): on an MI300X the fp8
    plan quantizes the instruct model as it loads it, where an H100 serves NVIDIA's published FP8 checkpoint."""
    rocm = _plan("llama-3.1-8b", hardware="mi300x", goal="latency", engine="vllm")
    assert "weight-fp8" in {s.technique for s in rocm.plan.steps}
    cfg = engine_config(rocm, "vllm")
    assert cfg.model == "meta-llama/Llama-3.1-8B-Instruct" and cfg.options["quantization"] == "fp8"
    fp8 = next(s for s in rocm.plan.steps if s.technique == "weight-fp8")
    assert "checkpoint" not in fp8.params  # priced as the engine's own quantization, not the published scales
    cuda = _plan("llama-3.1-8b", hardware="h100-sxm", goal="latency", engine="vllm")
    assert "weight-fp8" in {s.technique for s in cuda.plan.steps}
    assert engine_config(cuda, "vllm").model == "nvidia/Llama-3.1-8B-Instruct-FP8"
    assert all(c.get("backends", ["cuda"]) == ["cuda"] for c in profiles.load_model("llama-3.1-8b")["checkpoints"]
               if c["hub_id"].startswith("nvidia/"))


def test_ampere_gets_no_model_optimizer_fp8_checkpoint():
    """vLLM reads fp8 weights weight-only on an A100 (FP8 Marlin), but loads a TensorRT Model Optimizer FP8 checkpoint
    from compute capability 8.9 only (ModelOptFp8Config.get_min_capability: 89): the A100's fp8 plan quantizes the
    instruct model as it loads it, scaled as vLLM quantizes, where an H100 serves NVIDIA's published checkpoint. The
    plan had named quanto's per-channel scales for vLLM there, and its configs would have served the checkpoint."""
    a100 = _plan("llama-3.1-8b", hardware="a100-80gb-sxm", engine="vllm", without=("weight-w8a8-int8",))
    fp8 = next(s for s in a100.plan.steps if s.technique == "weight-fp8")
    assert "checkpoint" not in fp8.params and fp8.params["scales"].startswith("per-tensor weights (quantized as")
    cfg = engine_config(a100, "vllm")
    assert cfg.model == "meta-llama/Llama-3.1-8B-Instruct" and cfg.options["quantization"] == "fp8"
    assert all(c["min_compute_capability"] == 8.9 for c in profiles.load_model("llama-3.1-8b")["checkpoints"]
               if c["hub_id"].startswith("nvidia/") and c["format"] == "fp8")


def test_a_q8_0_gguf_is_converted_directly():
    from optiplan.planner.deploy.llamacpp import gguf_commands

    """convert_hf_to_gguf.py writes Q8_0 itself (--outtype q8_0): DeepSeek-V3's README had gone through a 16-bit GGUF
    twice the size on the way (about 1.3 TB) before llama-quantize (a review's finding)."""
    a = _plan("deepseek-v3", hardware="h200", devices=8, engine="llama.cpp", concurrency=8)
    readme = render(a, "llama.cpp")["README.md"]
    assert "--outtype q8_0 --outfile models/deepseek-v3-Q8_0.gguf`" in readme and "-F16.gguf" not in readme
    assert gguf_commands("m", "Q4_K_M", "models/x-Q4_K_M.gguf", "x") == (
        "`python convert_hf_to_gguf.py m --outtype f16 --outfile models/x-F16.gguf`, then `llama-quantize "
        "models/x-F16.gguf models/x-Q4_K_M.gguf Q4_K_M`")
