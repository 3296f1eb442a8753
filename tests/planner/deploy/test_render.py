"""Deployment configs: every option exists for the stated engine version, outputs parse, shell
quoting survives, Kubernetes manifests validate, bad input writes nothing."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
import subprocess

import pytest
import yaml
from click.testing import CliRunner
from optiplan.planner.cli.main import main
from optiplan.planner.deploy.prediction import configuration_request, profile_command
from optiplan.planner.deploy.render import (
    ENGINES,
    DeployError,
    engine_config,
    engine_options,
    render,
    render_all,
    write,
)
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest


def plan(model="llama-3.1-70b", hardware="h100-sxm", devices=4, engine="vllm", workload="chat", **kw):
    return advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, workload=workload, engine=engine,
                                **kw))


@pytest.fixture(scope="module")
def h100_plans():
    return {e: plan(engine=e) for e in ("vllm", "sglang", "tgi", "trtllm")}


def test_option_data_is_stated_per_version():
    for engine in ENGINES:
        data = engine_options(engine)
        assert data["engine"] == engine and data["version"] and data["options"]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "tgi", "trtllm"])
def test_every_emitted_option_is_known(engine, h100_plans):
    cfg = engine_config(h100_plans[engine], engine)
    known = engine_options(engine)["options"]
    assert set(cfg.options) <= set(known)
    assert cfg.applied and all(reason for _, reason in cfg.not_applied)


def test_plan_steps_map_to_vllm_options(h100_plans):
    a = h100_plans["vllm"]
    cfg = engine_config(a, "vllm")
    steps = {s.technique for s in a.plan.steps}
    assert cfg.options["tensor-parallel-size"] == a.plan.predicted.tensor_parallel
    assert a.workload.context_needed <= cfg.options["max-model-len"] <= a.plan.predicted.max_context
    assert 1 <= cfg.options["max-num-seqs"] <= a.workload.concurrency
    if "weight-fp8" in steps:  # online fp8, or a published fp8 checkpoint that declares it (then no flag)
        assert cfg.options.get("quantization") == "fp8" or "FP8" in cfg.model
    if "kv-fp8" in steps:
        assert cfg.options["kv-cache-dtype"] == "fp8"
    if "prefix-caching" in steps:
        assert cfg.options["enable-prefix-caching"] is True
    spec = cfg.options.get("speculative-config")
    if spec:  # the current JSON form, not the removed --speculative-model
        assert "num_speculative_tokens" in spec and "speculative-model" not in cfg.options


def test_a_server_serves_requests_past_the_workloads_p95_where_its_cache_allows():
    # vLLM and SGLang page their caches and admit a request without room for its whole length: their limit is the
    # longest sequence the plan's cache holds, with a margin (vLLM refuses to start without room for one), the model's
    # maximum at most; the engines that reserve by length keep the p95 and say longer requests are refused
    a = plan(devices=2)
    for engine, option in (("vllm", "max-model-len"), ("sglang", "context-length")):
        # two H100s' cache holds Llama-3.1-70B's whole context with room: the model's own limit
        assert engine_config(plan(devices=2, engine=engine), engine).options[option] == 131072
        # an A10G's holds some 44K tokens of Llama-3.1-8B in 16 bits: a tenth under it, in whole thousands
        small = plan(model="llama-3.1-8b", hardware="a10g", devices=1, engine=engine, max_quality_loss_pct=0.0,
                     concurrency=16)
        served = engine_config(small, engine).options[option]
        assert small.workload.context_needed < served <= 0.9 * small.plan.predicted.max_context < 131072
        assert served % 1024 == 0
    trtllm = engine_config(plan(devices=2, engine="trtllm"), "trtllm")
    assert trtllm.options["max_seq_len"] == a.workload.context_needed
    tgi = engine_config(plan(devices=2, engine="tgi"), "tgi")
    assert tgi.options["max-total-tokens"] == a.workload.context_needed
    assert any("longer requests are refused" in note for note in tgi.notes)
    # a stated longest sequence is served as stated
    stated = engine_config(plan(devices=2, max_context=8192), "vllm")
    assert stated.options["max-model-len"] == 8192
    assert any("the workload's stated longest sequence" in note for note in stated.notes)
    # a pure state-space model states no longest context and no cache bounds it: the workload's p95, said so (the
    # review's Mamba-Codestral config had served 943,104 tokens, a tenth under a placeholder of 2^20)
    ssm = plan(model="mamba-codestral-7b", hardware="l4", devices=1)
    mamba = engine_config(ssm, "vllm")
    assert mamba.options["max-model-len"] == ssm.workload.context_needed
    assert any("states no longest context" in note for note in mamba.notes)
    assert dict(mamba.applied).get("paged-kv", "").startswith("no attention KV to page")  # a fixed state a sequence
    # a model with attention layers whose table states exactly 2^20 positions (Llama 4 Maverick) keeps a growing
    # cache, which bounds it: on 8 H200 the whole context is served, as vLLM's and SGLang's Llama 4 pages serve it
    # (it had been taken for a state-space model and served at the workload's 4,096)
    maverick = plan(model="llama-4-maverick", hardware="h200-sxm", devices=8)
    assert maverick.model.max_position_embeddings == 1 << 20
    served = engine_config(maverick, "vllm")
    assert served.options["max-model-len"] > maverick.workload.context_needed
    assert not any("states no longest context" in note for note in served.notes)


def test_every_target_renders_parseable_files(tmp_path, h100_plans):
    files, skipped, _ = render_all(h100_plans["vllm"], ["vllm", "sglang", "tgi", "trtllm", "llama.cpp", "compose",
                                                     "kubernetes"])
    assert not skipped or all("llama.cpp" in s for s in skipped)
    for path, text in files.items():
        if path.endswith(".yaml"):
            assert list(yaml.safe_load_all(text))
        if path.endswith(".sh"):
            assert text.startswith("#!/usr/bin/env bash")
            assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert "README.md" in files and "vllm/serve.sh" in files and "kubernetes/deployment.yaml" in files


def test_vllms_config_file_holds_the_arguments_as_its_parser_reads_them():
    """`vllm serve --config` turns each value into one argument with str() (FlexibleArgumentParser.load_config_file:
    "only expecting a flat dictionary of atomic types"), so a mapping must be written as the JSON its option parses
    (a nested mapping became "{'method': 'eagle3', ...}", which --speculative-config's json.loads refuses)."""
    a = plan(model="llama-3.1-8b", devices=1)
    config = yaml.safe_load(render(a, "vllm")["vllm/config.yaml"])
    assert "speculative-config" in config
    for key, value in config.items():
        assert not isinstance(value, (dict, list)), key
    assert json.loads(str(config["speculative-config"]))["num_speculative_tokens"] >= 1


def test_shell_quoting_survives_spaces(tmp_path, catalog_entries):
    folder = tmp_path / "my model folder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(catalog_entries["qwen2.5-7b"]["config"]))
    a = advise(AdviseRequest(model=str(folder), hardware="l4", workload="chat", engine="vllm"))
    script = render(a, "vllm")["vllm/serve.sh"]
    command = script.split("exec ", 1)[1].replace("\\\n", " ").replace('"$@"', "")
    argv = shlex.split(command)
    assert argv[:3] == ["vllm", "serve", str(folder)]


def test_kubernetes_manifests_validate_and_request_the_devices(h100_plans):
    kv = pytest.importorskip("kubernetes_validate")
    text = render(h100_plans["vllm"], "kubernetes")["kubernetes/deployment.yaml"]
    docs = list(yaml.safe_load_all(text))
    assert {d["kind"] for d in docs} >= {"Deployment", "Service"}
    for d in docs:
        kv.validate(d, "1.33", strict=True)
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert any(v["name"] == "dshm" for v in docs[0]["spec"]["template"]["spec"]["volumes"])


def test_multi_node_uses_a_leaderworkerset():
    # lossless: 405B in 16-bit needs both nodes for one copy (tensor parallel 8 x 2 pipeline stages)
    a = plan(model="llama-3.1-405b", devices=16, max_quality_loss_pct=0)
    docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    lws = docs[0]
    assert lws["kind"] == "LeaderWorkerSet" and lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert "--pipeline-parallel-size 2" in leader["args"][0]


def test_compose_reserves_the_gpus(h100_plans):
    doc = yaml.safe_load(render(h100_plans["vllm"], "compose")["compose/docker-compose.yaml"])
    service = next(iter(doc["services"].values()))
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 4
    # a chat workload serves the instruct model, here its published fp8 checkpoint (the plan has fp8 weights)
    assert service["command"][:2] == ["serve", "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8"]
    # vllm/vllm-openai's own entrypoint through 0.17 is `python3 -m vllm.entrypoints.openai.api_server`, which takes no
    # positional model (it would serve its default model): the service names `vllm serve` itself
    assert service["entrypoint"] == ["vllm"]


def test_compose_writes_the_trtllm_options_file_it_mounts(h100_plans):
    """docker compose mounts ./extra-llm-api-options.yaml beside its file: a missing source mounts as an empty
    folder, and trtllm-serve would start without the plan's cache, graph and speculation settings."""
    files = render(h100_plans["trtllm"], "compose")
    compose = files["compose/docker-compose.yaml"]
    assert "./extra-llm-api-options.yaml:/config/extra-llm-api-options.yaml:ro" in compose
    assert yaml.safe_load(files["compose/extra-llm-api-options.yaml"]) == \
        yaml.safe_load(render(h100_plans["trtllm"], "trtllm")["trtllm/extra-llm-api-options.yaml"])


@pytest.mark.parametrize("model, devices, decoding", [("llama-3.1-8b", 1, "Eagle"), ("llama-3.1-70b", 4, "DraftTarget")])
def test_trtllm_speculation_uses_the_decoding_types_its_release_parses(model, devices, decoding):
    """TensorRT-LLM 1.0 and 1.1 (DecodingBaseConfig.from_dict) take DraftTarget and Eagle (EAGLE-3 as
    eagle3_one_model); Draft_Target and Eagle3 are 1.2's spellings, refused there with "Invalid decoding type"."""
    a = plan(model=model, devices=devices, engine="trtllm")
    extra = yaml.safe_load(render(a, "trtllm")["trtllm/extra-llm-api-options.yaml"])
    assert extra["speculative_config"]["decoding_type"] == decoding
    choices = engine_options("trtllm")["extra_config"]["speculative_config"]["decoding_type"]["choices"]
    assert decoding in choices and {"Draft_Target", "Eagle3"}.isdisjoint(choices)
    # 1.0's executor refuses a draft model beside its overlap scheduler (support_overlap_scheduler: MTP and one-model
    # EAGLE-3 only): the config turns it off for DraftTarget, and leaves it on for Eagle
    assert extra.get("disable_overlap_scheduler", False) == (decoding == "DraftTarget")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_rocm_deployments_run_the_engines_amd_build_on_the_driver_devices(engine):
    a = plan(hardware="mi300x", devices=1, engine=engine)
    files = render(a, "compose")
    service = next(iter(yaml.safe_load(files["compose/docker-compose.yaml"])["services"].values()))
    assert "rocm" in service["image"] and "deploy" not in service  # no NVIDIA device reservation
    assert service["devices"] == ["/dev/kfd", "/dev/dri"] and service["group_add"] == ["video"]
    assert service["entrypoint"] == [engine_config(a, engine).command[0]]  # AMD's images do not start the server
    manifest = next(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == service["image"] and "amd.com/gpu" in container["resources"]["limits"]


def test_llama_cpp_containers_start_the_server_where_its_image_keeps_it():
    """llama.cpp's server images keep llama-server in /app, off the image's PATH (its .devops Dockerfiles), and
    Kubernetes runs the container in the image's /app: the GGUF the user produces is named on the weights volume."""
    a = plan(model="gpt-oss-120b", hardware="h100-sxm", devices=1, engine="llama.cpp")  # no published GGUF known
    service = next(iter(yaml.safe_load(render(a, "compose")["compose/docker-compose.yaml"])["services"].values()))
    assert service["entrypoint"] == ["/app/llama-server"] and service["working_dir"] == "/"
    files = render(a, "kubernetes")
    container = next(yaml.safe_load_all(files["kubernetes/deployment.yaml"]))["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/app/llama-server"]
    model = container["args"][container["args"].index("--model") + 1]
    assert model.startswith("/models/local/") and model.endswith(".gguf")
    assert f"as local/{model.removeprefix('/models/local/')}" in files["kubernetes/README.md"]


def test_vllms_readme_names_the_attention_it_runs_on_rocm():
    # on an AMD GPU vLLM V1 runs its Triton attention, not FlashAttention: the README says what the plan says
    readme = render(plan(hardware="mi300x", devices=1, engine="vllm"), "vllm")["README.md"]
    row = next(line for line in readme.splitlines() if line.startswith("| `flash-attention`"))
    assert "Triton" in row and "FlashInfer" not in row


def test_tgis_rocm_image_keeps_prefix_caching_and_prefill_chunking_off():
    """TGI's ROCm image runs paged attention with PREFIX_CACHING=0 and PREFILL_CHUNKING=0, and its server raises on
    prefix caching with paged attention: a plan for TGI on an MI300X has neither step (the reason names the image), and
    its config sets no PREFIX_CACHING; on an H100 both stay TGI's defaults."""
    from optiplan.planner.analytic.profile import profile

    rocm = plan(hardware="mi300x", devices=1, engine="tgi")
    steps = {s.technique for s in rocm.plan.steps}
    assert not {"prefix-caching", "chunked-prefill"} & steps
    why = {r.technique: r.reason for r in rocm.rejected}
    assert "ROCm image" in why["prefix-caching"] and "Dockerfile_amd" in why["prefix-caching"]
    assert "PREFIX_CACHING" not in engine_config(rocm, "tgi").env
    cuda = plan(hardware="h100-sxm", devices=1, engine="tgi")
    assert {"prefix-caching", "chunked-prefill"} <= {s.technique for s in cuda.plan.steps}
    assert engine_config(cuda, "tgi").env["PREFIX_CACHING"] == "1"
    # a plan made for vLLM and rendered for TGI on the MI300X leaves both steps out of TGI's config too
    vllm_plan = plan(hardware="mi300x", devices=1, engine="vllm")
    tgi = engine_config(vllm_plan, "tgi")
    assert "PREFIX_CACHING" not in tgi.env and "prefix-caching" in dict(tgi.not_applied)
    # an AWQ checkpoint runs there only as --quantize gptq (TGI's AWQ GEMM is CUDA-only)
    awq = plan(model="llama-2-7b", hardware="mi300x", devices=1, engine="tgi", max_quality_loss_pct=3.0,
               goal="latency", concurrency=1)
    assert "weight-int4-awq" in [s.technique for s in awq.plan.steps]
    assert engine_config(awq, "tgi").options["quantize"] == "gptq"
    # the request model takes whole prompts there: no chunk, a prefill batch of at most 4,096 tokens
    r = profile(ProfileRequest(model="llama-3.1-8b", hardware="mi300x", engine="tgi", input_tokens=1000,
                               output_tokens=100, concurrency=8))
    assert "in chunks" not in r.requests.scheduling


def test_steps_an_engine_cannot_express_are_listed(h100_plans):
    a = h100_plans["vllm"]
    files, _, _ = render_all(a, ["llama.cpp"])
    cfg = engine_config(a, "llama.cpp")
    assert cfg.not_applied, "a vLLM plan on 4 GPUs has steps llama.cpp cannot express (tensor parallel, fp8)"
    for t, why in cfg.not_applied:
        assert f"`{t}`: {why}" in files["README.md"]
    sglang = h100_plans["sglang"]
    draft = [s for s in sglang.plan.steps if s.technique == "spec-draft"]
    if draft:  # vLLM 0.10 cannot run a separate draft model: listed, not dropped
        assert "spec-draft" in dict(engine_config(sglang, "vllm").not_applied)


def test_an_engine_that_leaves_steps_out_is_predicted_as_configured():
    # a vLLM plan in fp8 over two tensor shards: llama.cpp has neither, so its README predicts its own 16-bit GGUF
    # split in layers, which does not hold 32 sequences of 4,096 tokens on two H100s, and says so
    a = plan(devices=2)
    assert a.plan.predicted.weight_dtype == "fp8" and a.plan.predicted.tensor_parallel == 2
    readme = render(a, "llama.cpp")["README.md"]
    assert "## Predicted for this configuration" in readme
    assert "`optiplan profile llama-3.1-70b -H h100-sxm --gpus 2 --engine llama.cpp==b7079 --dtype bf16" in readme
    assert "**does not fit**" in readme and "the plan's prediction, which assumes the steps" in readme
    # the plan's figures with their error bands as the reports show them; the configuration's, which does not fit,
    # priced as if it did and without bands (nothing validates them)
    planned = next(line for line in readme.splitlines() if line.startswith("- the plan's prediction"))
    served = next(line for line in readme.splitlines() if line.startswith("- requests of"))
    assert planned.count(", p90 ±") == 4 and served.count(", p90 ±") == 0, (planned, served)
    [line] = render_all(a, ["vllm", "llama.cpp"])[2]  # what `configs` prints as a warning
    assert line.startswith("llama.cpp: its configuration does not fit")
    assert "## Predicted for this configuration" not in render(a, "vllm")["README.md"]  # every step applies


def test_a_configuration_is_predicted_per_server():
    # a plan of two data-parallel replicas: vLLM runs each with its own sequences (--max-num-seqs), and llama.cpp,
    # which runs no replicas, one server over both GPUs with one replica's sequences (--parallel)
    a = plan(model="llama-3.1-8b", devices=2, goal="throughput")
    assert a.plan.predicted.data_parallel == 2
    cfg = engine_config(a, "llama.cpp")
    request = configuration_request(a, cfg)
    assert "data-parallel" in dict(cfg.not_applied)
    assert request.num_devices == 2 and request.batch == request.concurrency == cfg.options["parallel"]
    assert request.batch < a.plan.predicted.batch  # not the sequences of both replicas
    assert request.memory_share is None  # llama.cpp sets no memory share
    # a vLLM configuration that leaves a step out is predicted at the memory share it renders
    vllm = dataclasses.replace(engine_config(a, "vllm"), not_applied=[("data-parallel", "one server")])
    assert configuration_request(a, vllm).memory_share == float(vllm.options["gpu-memory-utilization"])


def test_the_profile_command_names_every_split_it_predicts():
    request = ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, attention_data_parallel=8,
                             expert_parallel=8, engine="sglang", dtype="fp8", context=4096, input_tokens=1000,
                             output_tokens=200, concurrency=64, batch=64, memory_share=0.83)
    args = profile_command(request).split()
    options = dict(zip(args[3::2], args[4::2]))  # after `optiplan profile MODEL`
    assert options["--attention-dp"] == "8" and options["--ep"] == "8" and "--tp" not in options
    assert options["--memory-share"] == "0.83"  # the share the configuration sets its engine's memory option to
    out = CliRunner().invoke(main, args[1:])  # the command runs as printed
    assert out.exit_code == 0, out.output


def test_configs_all_renders_an_engines_plan_even_where_it_misses_the_workload(tmp_path):
    # DeepSeek-V3 on 8 MI300X for 32 chat users: llama.cpp's own best plan misses the 100 ms TPOT; its files render
    # that plan and say so, TensorRT-LLM (CUDA only) is skipped without a plan of its own being attempted
    out = CliRunner().invoke(main, ["configs", "deepseek-v3", "-H", "mi300x", "--gpus", "8", "--workload", "chat",
                                    "-e", "all", "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "llama.cpp's own plan misses the workload" in out.output and "its files render it" in out.output
    assert "skipped trtllm" in out.output and "no plan of trtllm" not in out.output


def test_configs_all_writes_nothing_for_an_engine_none_of_whose_plans_fits(tmp_path):
    # Phi-4 on one A10G: TensorRT-LLM's smallest plan needs more memory than the GPU has (it has no int8 or int4 recipe
    # that fits there), so its files would not start; they were written all the same, its README predicting batch 32.
    # It is skipped with the reason; engines whose plan fits but misses the workload still render it
    out = CliRunner().invoke(main, ["configs", "phi-4", "-H", "a10g", "--workload", "chat", "-e", "all",
                                    "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "skipped trtllm: nothing fits" in out.output.replace("\n", " ")
    assert not (tmp_path / "trtllm").exists() and (tmp_path / "vllm" / "serve.sh").exists()
    assert "- trtllm: nothing fits" in (tmp_path / "README.md").read_text()
    # nor does TensorRT-LLM run on a T4 (Turing): its supported hardware starts at Ampere
    t4 = CliRunner().invoke(main, ["advise", "mistral-7b-v0.1", "-H", "t4", "--engine", "trtllm"])
    assert t4.exit_code == 2 and "TensorRT-LLM supports NVIDIA Ampere and newer" in t4.output


def test_a_readme_names_its_launcher_where_it_is_written(tmp_path):
    """One engine: the README sits beside vllm/ and says ./vllm/serve.sh; several: each in its engine's folder, with
    ./serve.sh (it had said ./serve.sh at the top, where there is none)."""
    import re

    for target, folder in (("vllm", tmp_path / "one"), ("all", tmp_path / "all")):
        out = CliRunner().invoke(main, ["configs", "llama-3.1-8b", "-H", "l4", "-e", target, "-o", str(folder)])
        assert out.exit_code == 0, out.output
        for readme in folder.rglob("README.md"):
            for script in re.findall(r"(\./[\w/]*serve\.sh)", readme.read_text()):
                assert (readme.parent / script).is_file(), (readme, script)
    assert "./vllm/serve.sh" in (tmp_path / "one" / "README.md").read_text()


def test_configs_all_writes_no_script_for_an_engine_that_cannot_run_the_model(tmp_path):
    # gpt-oss on an H100: TGI has no gpt-oss support (its profile's refused_model_types), so `all` skips it with that
    # reason instead of rendering a text-generation-launcher script for a model it cannot load
    out = CliRunner().invoke(main, ["configs", "gpt-oss-120b", "-H", "h100-sxm", "-e", "all", "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "skipped tgi: tgi 3.3.4 cannot run gpt_oss models" in out.output and "no plan of tgi" not in out.output
    assert not (tmp_path / "tgi").exists() and (tmp_path / "vllm" / "serve.sh").exists()
    # nor an engine that does not serve a state-space model's type: skipped, not also noted as rendering vLLM's plan
    out = CliRunner().invoke(main, ["configs", "mamba2-2.7b", "-H", "l4", "-e", "all", "-o", str(tmp_path / "ssm")])
    assert out.exit_code == 0, out.output
    assert "skipped sglang: sglang 0.5.4 does not serve mamba2 models" in out.output
    assert "no plan of sglang" not in out.output and not (tmp_path / "ssm" / "sglang").exists()


def test_configs_all_skips_an_engine_that_does_not_run_on_the_gpu(tmp_path):
    # Qwen2.5-7B on a T4: TensorRT-LLM's files used to be written for a plan that needed 25 GB of the 16 GB card, with
    # a warning; TensorRT-LLM does not support Turing at all (its supported hardware starts at Ampere), so `all`
    # skips it with that reason and writes no files for it
    out = CliRunner().invoke(main, ["configs", "qwen2.5-7b", "-H", "t4", "-e", "all", "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "trtllm").exists()
    assert "trtllm: trtllm does not run on t4 (compute capability 7.5: TensorRT-LLM supports NVIDIA Ampere and " \
           "newer)" in (tmp_path / "README.md").read_text()
    assert "does not hold the workload" not in (tmp_path / "vllm" / "README.md").read_text()


def test_the_weights_volume_is_sized_for_the_checkpoint_the_server_downloads(tmp_path):
    # Llama-3.1-8B's plan on an L4 serves NVIDIA's FP8 checkpoint: its volume holds 8 GB of fp8 weights with room to
    # spare (1.2x + 10 GiB: 19 GiB), and says so, not the 16-bit checkpoint's 28 GiB
    out = CliRunner().invoke(main, ["configs", "llama-3.1-8b", "-H", "l4", "-e", "kubernetes", "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    deployment = (tmp_path / "kubernetes" / "deployment.yaml").read_text()
    assert "nvidia/Llama-3.1-8B-Instruct-FP8" in deployment
    assert "(19 GiB: the fp8 checkpoint with room to spare)" in deployment and "storage: 19Gi" in deployment


def test_configs_all_renders_each_engine_from_its_own_plan(tmp_path):
    out = CliRunner().invoke(main, ["configs", "llama-3.1-70b", "-H", "h100-sxm", "--gpus", "2", "--workload", "chat",
                                    "-e", "all", "-o", str(tmp_path)])
    assert out.exit_code == 0, out.output
    readme = (tmp_path / "llamacpp" / "README.md").read_text()
    assert "llama-server" in readme and "Not applied" not in readme  # llama.cpp's own plan: no step it cannot run
    assert "warning" not in out.output


def test_llama_cpp_on_cpu_and_trtllm_refused_there():
    a = advise(AdviseRequest(model="qwen2.5-0.5b", hardware="epyc-9004", workload="chat", engine="llama.cpp"))
    files = render(a, "llama.cpp")
    assert "llama-server" in files["llamacpp/serve.sh"] and "GGUF" in files["README.md"]
    with pytest.raises(DeployError, match="trtllm does not run on epyc-9004"):
        render(a, "trtllm")


def test_cli_writes_all_or_nothing(tmp_path):
    out = tmp_path / "deploy"
    result = CliRunner().invoke(main, ["configs", "llama-3.1-70b", "--hardware", "h100-sxm", "--gpus", "4",
                                       "--workload", "chat", "--engine", "vllm", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "vllm" / "serve.sh").stat().st_mode & 0o111 and (out / "README.md").is_file()
    again = CliRunner().invoke(main, ["configs", "llama-3.1-8b", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    cpu = tmp_path / "cpu"
    bad = CliRunner().invoke(main, ["configs", "qwen2.5-0.5b", "-H", "epyc-9004", "--engine", "trtllm", "-o", str(cpu)])
    assert bad.exit_code == 2 and "does not run on epyc-9004" in bad.output and not cpu.exists()
    unknown = CliRunner().invoke(main, ["configs", "qwen2.5-0.5b", "--engine", "vlm", "-o", str(cpu)])
    assert unknown.exit_code == 2 and "did you mean: vllm" in unknown.output and not cpu.exists()


def test_advise_emits_configs(tmp_path):
    out = tmp_path / "d"
    result = CliRunner().invoke(main, ["advise", "llama-3.1-8b", "-H", "l4", "--format", "json",
                                       "--emit-configs", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "vllm" / "serve.sh").is_file() and (out / "kubernetes" / "deployment.yaml").is_file()


def test_write_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "x"
    with pytest.raises(TypeError):
        write({"a.txt": "ok", "b.txt": None}, out)
    assert not out.exists() and not list(tmp_path.glob(".optiplan-*"))


def test_real_vllm_parser_accepts_the_options(h100_plans):
    pytest.importorskip("vllm", reason="vllm is not installed (CUDA engine); option data is checked above")
    from vllm.entrypoints.openai.cli_args import make_arg_parser
    from vllm.utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    argv = engine_config(h100_plans["vllm"], "vllm").argv()
    parser.parse_args(argv[2:])


def test_sglang_puts_the_prompt_chunks_in_the_decode_steps_where_the_plan_does():
    # an 8B chatting on one H100: no speculation (under which SGLang turns mixing off), the chunks in the decode steps
    # (5% off a request's latency; on an offline load it gains under the 3% a step must, and is left out)
    a = plan(model="llama-3.1-8b", devices=1, engine="sglang", workload="chat")
    cfg = engine_config(a, "sglang")
    assert "mixed-chunk" in [s.technique for s in a.plan.steps]  # SGLang prefills first unless told to mix
    assert cfg.options["enable-mixed-chunk"] is True and "chunked-prefill-size" in cfg.options
    assert ("mixed-chunk", "--enable-mixed-chunk") in cfg.applied
    assert "--enable-mixed-chunk" in cfg.argv()


def test_real_sglang_parser_accepts_the_options(h100_plans):
    pytest.importorskip("sglang", reason="sglang is not installed (CUDA engine); option data is checked above")
    import argparse

    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    parser.parse_args(engine_config(h100_plans["sglang"], "sglang").argv()[3:])


def test_cpu_offload_renders_the_offloaded_weights():
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", workload="batch-offline", engine="vllm",
                             max_quality_loss_pct=0, goal="memory", concurrency=1))
    assert "cpu-offload" in [s.technique for s in a.plan.steps]
    p = a.plan.predicted
    gib = engine_config(a, "vllm").options["cpu-offload-gb"]
    assert gib == -(-p.offload_bytes_per_device // 2**30)
    assert p.weights_per_device_bytes + p.offload_bytes_per_device == pytest.approx(141.1e9, rel=0.01)


def test_nested_engine_values_are_checked(h100_plans):
    from optiplan.planner.deploy.render import check_options

    cfg = engine_config(h100_plans["trtllm"], "trtllm")
    cfg.extra["kv_cache_config"] = {"dtype": "int8"}
    with pytest.raises(DeployError, match="kv_cache_config.dtype int8 is not one of"):
        check_options(cfg)


def test_output_folders_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    result = CliRunner().invoke(main, ["configs", "llama-3.1-8b", "-H", "l4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = tmp_path / "x" / "y" / "advice.json"
    assert CliRunner().invoke(main, ["advise", "llama-3.1-8b", "-H", "l4", "--format", "json", "-o",
                                     str(report)]).exit_code == 0
    assert json.loads(report.read_text())["hardware"]["id"] == "l4"


def test_memory_share_and_sequences_follow_the_plan():
    from optiplan.planner.analytic.memory import RAISED_SHARE
    from optiplan.planner.schema import AdviseRequest

    # the throughput goal fills the share of the device the engine takes by default, not the device: vLLM runs
    # within 0.9 of it and keeps its --gpu-memory-utilization, sized to hold the batch the plan serves
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                             goal="throughput"))
    p = a.plan.predicted
    cfg = engine_config(a, "vllm")
    assert cfg.options["max-num-seqs"] == min(p.batch, p.max_concurrency) > a.workload.concurrency
    assert p.memory_per_device_bytes <= 0.9 * p.device_memory_bytes
    assert cfg.options["gpu-memory-utilization"] == 0.9
    # SGLang's --mem-fraction-static is the one it computes: all of an H100 but 13.125 GiB for one device (its 8,192-token
    # chunk's activations and its CUDA graphs), 2 GiB more where the plan speculates
    sg_plan = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                                   goal="throughput", engine="sglang"))
    speculates = any(s.technique.startswith("spec-") for s in sg_plan.plan.steps)
    memory = p.device_memory_bytes
    reserve = (15.125 if speculates else 13.125) * 2**30
    static = engine_config(sg_plan, "sglang").options["mem-fraction-static"]
    assert static == round((memory - reserve) / memory, 3)
    # ... a share of the memory left once the runtime is up, which holds the plan's weights and cache (to the
    # rendered precision)
    from optiplan.planner.catalog.hardware import resolve_hardware
    h100, sg = resolve_hardware("h100-sxm"), sg_plan.plan.predicted
    room = (static + 0.0005) * (h100.memory_bytes - h100.runtime_overhead_bytes)
    assert sg.weights_per_device_bytes + sg.kv_cache_per_device_bytes <= room
    assert engine_config(a, "trtllm").options["kv_cache_free_gpu_memory_fraction"] == 0.9
    # the workload's own sequences may need more than the default share: the plan raises it (at most to 0.95) and
    # the config says so; 70B in fp8 on one H100 holds 7 chat requests in vLLM's 0.9 of it
    tight = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=1, workload="chat",
                                 concurrency=8))
    q = tight.plan.predicted
    assert 0.9 * q.device_memory_bytes < q.memory_per_device_bytes <= RAISED_SHARE * q.device_memory_bytes
    share = engine_config(tight, "vllm").options["gpu-memory-utilization"]
    assert 0.9 < share <= RAISED_SHARE + 0.02
    # a plan that needs little keeps the engine's default
    small = advise(AdviseRequest(model="llama-3.2-1b", hardware="h100-sxm", num_devices=1, workload="chat"))
    assert engine_config(small, "vllm").options["gpu-memory-utilization"] == 0.9


def test_tgi_int8_is_eetq_not_bitsandbytes():
    from optiplan.planner.schema import AdviseRequest

    # no fp8 on an A100: a memory plan for TGI takes int8 weights, which TGI runs fast with EETQ (bitsandbytes int8
    # is deprecated there and slower than 16-bit)
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", num_devices=1, workload="chat",
                             engine="tgi", goal="memory"))
    assert "weight-int8" in {s.technique for s in a.plan.steps}
    cfg = engine_config(a, "tgi")
    assert cfg.options["quantize"] == "eetq" and "dtype" not in cfg.options


def test_tgi_runs_no_eetq_or_nf4_moe_it_would_run_densely():
    """TGI's MoE layers take fused sparse kernels only from unquantized, FP8 and Marlin weights: with EETQ or nf4 every
    expert runs on every token, which a plan priced on the routed experts would get several times too fast."""
    a = advise(AdviseRequest(model="mixtral-8x7b", hardware="a100-80gb-sxm", num_devices=2, workload="chat",
                             engine="tgi", goal="memory"))
    assert {"weight-int8", "weight-nf4"}.isdisjoint(s.technique for s in a.plan.steps)
    reasons = {r.technique: r.reason for r in a.rejected}
    assert "dense MoE layer, every expert on every token" in reasons["weight-int8"]
    assert "dense MoE layer" in reasons["weight-nf4"]
    assert engine_config(a, "tgi").options.get("quantize") not in ("eetq", "bitsandbytes-nf4")
    # GPTQ and AWQ experts run on the Marlin MoE kernel on CUDA from Ampere on, densely before it and on ROCm
    from optiplan.planner.catalog.engine_refusals import engine_model_technique_refusal
    from optiplan.planner.catalog.hardware import resolve_hardware

    for hw, refused in (("t4", True), ("mi300x", True), ("a100-80gb-sxm", False), ("h100-sxm", False)):
        why = engine_model_technique_refusal("tgi", resolve_hardware(hw), "mixtral", "weight-int4-gptq")
        assert bool(why and "dense MoE layer" in why) == refused, hw
    assert engine_model_technique_refusal("tgi", resolve_hardware("t4"), "llama", "weight-int4-gptq") is None


def test_the_readme_names_the_option_that_caps_the_sequences_or_says_none_does(h100_plans):
    """TGI's configs set --max-concurrent-requests (its admission limit, waiting requests included) and no cap on the
    running batch: its README no longer says the options set the plan's sequences."""
    for engine, option in (("vllm", "--max-num-seqs"), ("sglang", "--max-running-requests"),
                           ("trtllm", "--max_batch_size")):
        readme = render(h100_plans[engine], engine)["README.md"]
        assert f"per server, as {option} sets them" in readme, engine
    readme = render(h100_plans["tgi"], "tgi")["README.md"]
    assert "the load the plan is priced at (tgi runs as many as its cache holds: these options cap none)" in readme
    assert "as the options set them" not in readme


def test_vllm_awq_runs_on_marlin_from_ampere_on():
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="llama-2-7b", hardware="a10g", num_devices=1, workload="chat", engine="vllm",
                             max_quality_loss_pct=3, goal="latency", concurrency=1))  # AWQ: +2.4% on Llama-2-7B
    assert "weight-int4-awq" in {s.technique for s in a.plan.steps}
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.deploy import vllm as vllm_mapper

    # plain `awq` forces the slow kernel; the mapper names Marlin (for a 16-bit model's produced AWQ folder) ...
    assert vllm_mapper.engine_config(a, resolve_hardware("a10g")).options["quantization"] == "awq_marlin"
    # ... and a published AWQ checkpoint gets no flag: vLLM reads it and converts to Marlin itself
    assert "quantization" not in engine_config(a, "vllm").options


def test_multi_node_plans_are_not_rendered_for_single_host_targets():
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat"))
    files, skipped, _ = render_all(a, ["vllm", "compose", "tgi", "llama.cpp", "kubernetes"])
    reasons = " ".join(skipped)
    assert "compose: docker compose runs on one host" in reasons and "render the kubernetes target" in reasons
    assert "tgi: tgi runs on one node" in reasons and "llama.cpp: llama.cpp runs on one node" in reasons
    assert "kubernetes/deployment.yaml" in files and "LeaderWorkerSet" in files["kubernetes/deployment.yaml"]
    assert not any(f.startswith(("compose/", "tgi/", "llamacpp/")) for f in files)
    with pytest.raises(DeployError, match="spans 2 nodes of 8"):
        render(a, "compose")


def test_replicas_that_fit_a_node_are_a_deployment_with_replicas():
    a = plan(model="llama-3.1-405b", devices=16, goal="throughput")
    assert a.plan.predicted.data_parallel == 2
    docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
    deployment = docs[0]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    args = " ".join(container.get("args", []) + container.get("command", []))
    assert "--tensor-parallel-size 8" in args and "data-parallel-size" not in args


def test_sglang_reserves_more_for_speculation():
    """SGLang keeps 2 GiB more beside weights and cache with speculative decoding (6 with a separate draft model) on top
    of its reserve (on one H100: 512 MiB, 1.5 per token of its 8,192-token chunk, 2 per batch of its 256-batch graphs,
    128 for the one device), as the share of the device SGLang computes from them, rounded to three decimals: a plan
    with EAGLE-3 sizes its cache so, and its --mem-fraction-static is the share SGLang would compute."""
    from optiplan.planner.catalog.engine_memory import engine_kv_memory
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.schema import AdviseRequest

    h100 = resolve_hardware("h100-sxm")
    plain, eagle, draft = (engine_kv_memory("sglang", h100, 1, 1, m)[1] for m in (None, "eagle3", "draft"))
    size = h100.memory_bytes
    assert (plain, eagle, draft) == tuple(pytest.approx(size * (1 - round((size - gib * 2**30) / size, 3)))
                                          for gib in (13.125, 15.125, 19.125))
    assert abs(plain - 13.125 * 2**30) <= 0.0005 * size
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                             engine="sglang", goal="throughput"))
    if "spec-eagle3" in [s.technique for s in a.plan.steps]:
        memory = a.plan.predicted.device_memory_bytes
        assert engine_config(a, "sglang").options["mem-fraction-static"] >= round((memory - 15.125 * 2**30) / memory, 3)


def test_a_pruned_plan_says_its_configs_serve_the_unpruned_model():
    """Pruning makes a model no engine option makes: the configs say they serve the unpruned one and what to point
    them at (they had said only that the engine has no option for it)."""
    a = plan(model="llama-3.1-70b", hardware="h100-sxm", devices=1, engine="vllm", max_quality_loss_pct=25.0)
    assert "structured-pruning" in {s.technique for s in a.plan.steps}
    why = dict(engine_config(a, "vllm").not_applied)["structured-pruning"]
    assert "serve the unpruned one" in why and "pruned checkpoint" in why


def test_a_distilled_plan_serves_its_student_without_the_teachers_draft_head():
    """A plan that distils the model into a smaller one of its family predicts the student: every engine's config
    serves the student (its instruct checkpoint in the plan's format, under its own name) and says what it cannot do,
    training the student; EAGLE-3 and MTP, whose heads are the teacher's, are not in such a plan."""
    a = plan(model="llama-3.1-8b", hardware="t4", devices=1, concurrency=8, max_quality_loss_pct=25.0)
    steps = {s.technique: s for s in a.plan.steps}
    assert steps["distillation"].params["student"] == "llama-3.2-3b"
    assert not {"spec-eagle3", "spec-mtp"} & set(steps)
    for engine in ("vllm", "sglang", "tgi"):  # TensorRT-LLM does not run on a T4 (Turing)
        cfg = engine_config(a, engine)
        assert "3.2-3b" in cfg.model.lower() and "8b" not in cfg.model.lower(), (engine, cfg.model)
        assert ("distillation", "serves llama-3.2-3b, the student the plan's figures are for") in cfg.applied
        assert not any(t == "distillation" for t, _ in cfg.not_applied)
        assert any("distils llama-3.1-8b into llama-3.2-3b" in n and "train it on" in n for n in cfg.notes)
    vllm = engine_config(a, "vllm")
    assert vllm.options["served-model-name"] == "llama-3.2-3b"
    # llama.cpp runs its own file type: what it is predicted to do is the student's too
    readme = render(a, "llama.cpp")["README.md"]
    assert "optiplan profile llama-3.1-8b" not in readme
    # the files are named after the model they serve
    k8s = render(a, "kubernetes")["kubernetes/deployment.yaml"]
    assert "name: llama-3-2-3b" in k8s and "llama-3-1-8b" not in k8s
    assert render(a, "vllm")["README.md"].startswith("# llama-3.2-3b on 1 x t4")
    # a student smaller than a quarter of the teacher is not offered: no published figure covers it
    seventy = plan(hardware="l40s", devices=2, max_quality_loss_pct=15.0)
    assert "distillation" not in {s.technique for s in seventy.plan.steps}


def test_configs_renders_a_training_plans_files_and_takes_the_goal_as_advise_does(tmp_path):
    # `configs` for the fine-tune workload rendered a vLLM server with --max-num-seqs 1 for a LoRA plan, its README
    # predicting a TTFT of 0 ms; then it refused; a training job's files are its training script and launch config
    # (`deploy.training`), whatever serving engine is named; --goal is advise's
    for engine in ([], ["-e", "vllm"]):
        folder = tmp_path / f"ft{len(engine)}"
        out = CliRunner().invoke(main, ["configs", "llama-3.2-3b", "-H", "a100-80gb-sxm", "--workload", "fine-tune",
                                        *engine, "-o", str(folder)])
        assert out.exit_code == 0, out.output
        assert sorted(p.name for p in (folder / "train").iterdir()) == ["README.md", "accelerate.yaml", "train.py",
                                                                        "train.yaml"]
        assert not (folder / "vllm").exists() and not (folder / "serve.sh").exists()
        assert ("vllm is a serving target" in out.output) == bool(engine)
    out = CliRunner().invoke(main, ["configs", "llama-3.1-8b", "-H", "h100-sxm", "--goal", "throughput",
                                    "--concurrency", "8", "-e", "vllm", "-o", str(tmp_path / "tp")])
    assert out.exit_code == 0, out.output
    readme = (tmp_path / "tp" / "README.md").read_text()
    assert "(goal throughput)" in readme and "(8 asked;" in readme


def test_a_plan_that_runs_more_sequences_than_asked_says_its_figures_need_a_backlog():
    from optiplan.planner.report.figures import predicted_summary

    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", workload="chat", goal="throughput",
                             concurrency=8))
    assert a.plan.predicted.batch > 8
    assert f"need a backlog of requests that keeps {a.plan.predicted.batch} running" in predicted_summary(a)
    chat = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", workload="chat"))
    assert "backlog" not in predicted_summary(chat)


def test_advise_prints_a_training_plan_and_writes_its_training_files(tmp_path):
    out = CliRunner().invoke(main, ["advise", "llama-3.2-3b", "-H", "a100-80gb-sxm", "--workload", "fine-tune",
                                    "--emit-configs", str(tmp_path / "emit")])
    assert out.exit_code == 0, out.output
    assert "wrote 4 deployment files" in out.output and "a step of" in out.output
    assert (tmp_path / "emit" / "train" / "accelerate.yaml").exists()
    # a fine-tune workload whose goal --goal overrides is still a training job's workload
    out = CliRunner().invoke(main, ["configs", "llama-3.2-3b", "-H", "a100-80gb-sxm", "--workload", "fine-tune",
                                    "--goal", "throughput", "-o", str(tmp_path / "ft")])
    assert out.exit_code == 2 and "is a training job" in out.output


def test_tgi_refuses_more_shards_than_kv_heads_for_a_model_it_serves_through_transformers():
    """TGI splits KV heads over its shards without replicating them: through transformers (Qwen3 MoE, which it has no
    code of its own for) Qwen3-30B-A3B's 4 over 8 shards leave none (a division by zero at start-up); its own Llama
    code refuses a count that does not divide."""
    a = plan(model="qwen3-30b-a3b", hardware="h200-sxm", devices=8, engine="vllm")
    files, skipped, _ = render_all(a, ["vllm", "tgi"])
    assert "vllm/serve.sh" in files and not any(f.startswith("tgi/") for f in files)
    assert any(s.startswith("tgi: ") and "4 KV heads do not divide over --num-shard 8" in s for s in skipped)


def test_tgi_serves_gemma_3_27b_as_the_vision_language_model_its_checkpoint_is():
    """google/gemma-3-27b-it is the multimodal Gemma3ForConditionalGeneration (model_type gemma3): TGI loads it as a
    VlmCausalLM, which refuses PREFIX_CACHING=1 and takes whole prompts, so the plan keeps neither default and the
    config sets no PREFIX_CACHING; Gemma 3 1B is text-only and keeps both."""
    a = advise(AdviseRequest(model="gemma-3-27b", hardware="l40s", num_devices=1, workload="chat", engine="tgi"))
    assert a.model.model_type == "gemma3"
    assert {"prefix-caching", "chunked-prefill"}.isdisjoint(s.technique for s in a.plan.steps)
    assert "support_chunking=False" in {r.technique: r.reason for r in a.rejected}["chunked-prefill"]
    files = render(a, "tgi")
    assert "PREFIX_CACHING" not in files["tgi/serve.sh"] and "chunks prefills" not in files["README.md"]
    small = advise(AdviseRequest(model="gemma-3-1b", hardware="l4", num_devices=1, workload="chat", engine="tgi"))
    assert small.model.model_type == "gemma3_text"
    assert {"prefix-caching", "chunked-prefill"} <= {s.technique for s in small.plan.steps}


def test_a_plan_made_for_another_engine_keeps_no_eagle3_chain_vllm_cannot_draft():
    """SGLang's plan for Llama-3.1-8B on an L4 stores the cache in fp8 and drafts with EAGLE-3; vLLM 0.10.2 serves that
    cache with FlashInfer, over which it drafts no chain: its config leaves EAGLE-3 out and says why."""
    a = plan(model="llama-3.1-8b", hardware="l4", devices=1, engine="sglang")
    assert {"kv-fp8", "spec-eagle3"} <= {s.technique for s in a.plan.steps}
    cfg = engine_config(a, "vllm")
    assert "speculative-config" not in cfg.options and cfg.env["VLLM_ATTENTION_BACKEND"] == "FLASHINFER"
    assert "pin for an fp8 cache" in dict(cfg.not_applied)["spec-eagle3"]


def test_tgis_whole_prompt_budget_is_the_priced_one_unless_its_router_needs_more():
    """Where TGI takes whole prompts (Gemma 3's vision-language model; ROCm) the config sets the launcher's budget the
    plan priced, raised to --max-input-tokens only where its router would refuse less, and says so."""
    def rendered(model, hardware, workload):
        files = render(plan(model=model, hardware=hardware, devices=1, engine="tgi", workload=workload), "tgi")
        argv = shlex.split(files["tgi/serve.sh"].split("text-generation-launcher", 1)[1])
        return dict(itertools.pairwise(argv)), files["README.md"]

    options, readme = rendered("gemma-3-27b", "h100-sxm", "chat")
    assert int(options["--max-batch-prefill-tokens"]) > 4096 and "router refuses" not in readme  # the launcher's own
    options, readme = rendered("llama-3.1-8b", "mi300x", "code-completion")
    assert options["--max-batch-prefill-tokens"] == options["--max-input-tokens"]
    assert "the plan prices prefill batches of up to 4,096 tokens" in readme


def test_containers_keep_their_downloads_in_the_mounted_cache_and_wait_for_them():
    """Each engine's downloads land where its container mounts a cache: llama.cpp's -hf files under LLAMA_CACHE (it
    never reads HF_HOME), the Hub's under HF_HOME (TGI's image sets it to an unmounted /data); compose's health check
    waits out the first download as Kubernetes' startup probe does (30 minutes had been its whole budget)."""
    a = plan(model="llama-3.1-8b", devices=1)
    for engine, cache in (("llama.cpp", "/root/.cache/llama.cpp"), ("tgi", "/root/.cache/huggingface"),
                          ("vllm", "/root/.cache/huggingface")):
        compose = render(a, "compose", serving_engine=engine)["compose/docker-compose.yaml"]
        service = next(iter(yaml.safe_load(compose)["services"].values()))
        variable = "LLAMA_CACHE" if engine == "llama.cpp" else "HF_HOME"
        assert service["environment"][variable] == cache, engine
        assert any(v.endswith(f":{cache}") for v in service["volumes"]), engine
        startup = int(service["healthcheck"]["start_period"].rstrip("s"))
        deployment = next(yaml.safe_load_all(render(a, "kubernetes", serving_engine=engine)[
            "kubernetes/deployment.yaml"]))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert {"name": variable, "value": "/models"} in container["env"], engine
        assert startup <= container["startupProbe"]["failureThreshold"] * 10 < startup + 10, engine


def test_tensorrt_llm_reads_its_speculative_model_from_a_folder_the_readme_downloads():
    """TensorRT-LLM 1.0's PyTorch backend takes a draft model or EAGLE head from a local path only (a Hub id fails the
    launch; NVIDIA/TensorRT-LLM#10099 added downloads after it): a folder under ./models, the download in the README,
    mounted by compose and on the volume in Kubernetes."""
    a = plan(model="llama-3.1-8b", devices=1, engine="trtllm")
    assert any(s.technique.startswith("spec-") for s in a.plan.steps)
    files = render(a, "trtllm")
    spec = yaml.safe_load(files["trtllm/extra-llm-api-options.yaml"])["speculative_config"]
    folder = spec["speculative_model_dir"]
    assert folder.startswith("./models/") and f"--local-dir {folder}`" in files["README.md"]
    compose = render(a, "compose", serving_engine="trtllm")["compose/docker-compose.yaml"]
    service = next(iter(yaml.safe_load(compose)["services"].values()))
    assert "./models:/models:ro" in service["volumes"] and service["working_dir"] == "/"
    k8s = list(yaml.safe_load_all(render(a, "kubernetes", serving_engine="trtllm")["kubernetes/deployment.yaml"]))
    config_map = next(d for d in k8s if d["kind"] == "ConfigMap")
    extra = yaml.safe_load(next(iter(config_map["data"].values())))
    assert extra["speculative_config"]["speculative_model_dir"] == "/models/local/" + folder.removeprefix("./models/")


def test_a_model_folder_renders_for_every_engine(tmp_path, catalog_entries):
    """A model given as a folder (its source its path, no `catalog:` or `hub:`) is read from that path by every
    engine's renderer: TGI, TensorRT-LLM and llama.cpp had read it by its folder's name, or split its source."""
    folder = tmp_path / "plainmodel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(catalog_entries["qwen2.5-7b"]["config"]))
    for engine in ("tgi", "trtllm", "llama.cpp", "vllm"):
        a = advise(AdviseRequest(model=str(folder), hardware="l4", workload="chat", engine=engine))
        files = render(a, engine)
        assert any(str(folder) in text for text in files.values()), engine
    files, skipped, _ = render_all(advise(AdviseRequest(model=str(folder), hardware="l4", workload="chat")),
                                   ["vllm", "tgi", "trtllm", "llama.cpp"])
    assert not skipped and {"tgi/serve.sh", "trtllm/serve.sh"} <= set(files)


def test_trtllm_without_chunked_prefill_admits_a_whole_prompt_in_a_step():
    """Without chunked prefill a prompt is one step's tokens, and TensorRT-LLM refuses a request longer than
    max_num_tokens (8192 where unset): the config raises it to max_seq_len, and leaves the default, the budget the
    plan was priced at, where every sequence fits it (chat: 4,096 tokens)."""
    a = plan(model="llama-3.1-8b", devices=2, engine="trtllm", workload="rag-long-context", without=["chunked-prefill"])
    cfg = engine_config(a, "trtllm")
    assert "enable_chunked_prefill" not in cfg.extra
    assert cfg.options["max_num_tokens"] == cfg.options["max_seq_len"] > 8192
    chunked = engine_config(plan(model="llama-3.1-8b", devices=2, engine="trtllm", workload="rag-long-context"),
                            "trtllm")
    assert chunked.extra["enable_chunked_prefill"]
    assert chunked.options["max_num_tokens"] < chunked.options["max_seq_len"]
    chat = engine_config(plan(model="llama-3.1-8b", devices=2, engine="trtllm", without=["chunked-prefill"]), "trtllm")
    assert "max_num_tokens" not in chat.options and chat.options["max_seq_len"] <= 8192


def test_vllm_config_file_names_the_environment_serve_sh_sets():
    """vLLM's YAML config cannot set environment variables: where serve.sh exports some (the CPU backend's KV cache
    space), the file says to export them too."""
    a = plan(model="llama-3.2-3b", hardware="epyc-9004", devices=1, engine="vllm", concurrency=4)
    files = render(a, "vllm")
    cfg = engine_config(a, "vllm")
    assert cfg.env
    for key, value in cfg.env.items():
        assert f"export {key}={shlex.quote(value)}" in files["vllm/config.yaml"]
        assert key in files["vllm/serve.sh"]


def test_kubernetes_names_are_dns_labels(tmp_path, catalog_entries):
    """A Service's name is a DNS-1035 label: a model folder named `7b-chat` (a digit first) or `Modèle_7B` gets one."""
    for name in ("7b-chat", "Modèle_7B"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(catalog_entries["qwen2.5-7b"]["config"]))
        a = advise(AdviseRequest(model=str(folder), hardware="l4", workload="chat", engine="vllm"))
        docs = list(yaml.safe_load_all(render(a, "kubernetes")["kubernetes/deployment.yaml"]))
        for d in docs:
            label = d["metadata"]["name"]
            assert label[0].isalpha() and label[-1].isalnum() and len(label) <= 63, (name, label)
            assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in label), (name, label)


def test_vllm_refuses_a_gemma_in_float16():
    """vLLM refuses Gemma 2 and 3 in float16 (numerical instability): on a GPU without bfloat16 no vLLM config is
    written for them (it had written --dtype float16, which does not start), and --engine all says why."""
    a = plan(model="gemma-2-9b", hardware="t4", devices=1, engine="vllm", concurrency=4)
    with pytest.raises(DeployError, match="float16"):
        render(a, "vllm")
    files, skipped, _ = render_all(a, ["vllm", "llama.cpp"])
    assert "vLLM refuses to run gemma2 models in float16" in skipped[0] and "llamacpp/serve.sh" in files
    assert "--dtype bfloat16" in render(plan(model="gemma-2-9b", hardware="l4", devices=1, engine="vllm"),
                                        "vllm")["vllm/serve.sh"]
