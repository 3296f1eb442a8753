"""A plan is priced at the release of the image its configs run (`deployed_release` in each engine profile, kept
equal to the image tags of planner/deploy/config.py)."""

from __future__ import annotations

import itertools
import re
import shlex

import pytest
from optiplan.planner.catalog.engines import deployed_engine, engine_fact
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.deploy.config import IMAGES, ROCM_IMAGES
from optiplan.planner.deploy.render import render
from optiplan.planner.plan import techniques
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def tag_release(image: str) -> str | None:
    """The release an image tag names: `v0.5.4`, `3.3.4-rocm`, AMD's `..._vllm_0.10.1_...`, llama.cpp's build
    (`server-cuda-b7079`); None for a rolling tag."""
    match = re.search(r"vllm_(\d+(?:\.\d+)+)", image) or re.search(r":v?(\d+(?:\.\d+)+)", image) or \
        re.search(r"-(b\d+)$", image)
    return match.group(1) if match else None


@pytest.mark.parametrize("backend, images", [("cuda", IMAGES), ("rocm", ROCM_IMAGES)])
def test_each_profiles_deployed_release_is_its_images_tag(backend, images):
    for engine, image in images.items():
        assert (engine_fact(engine, "deployed_release") or {}).get(backend) == tag_release(image), (engine, image)


def test_a_plan_is_priced_at_its_images_release(monkeypatch):
    h100, mi300x = resolve_hardware("h100-sxm"), resolve_hardware("mi300x")
    assert deployed_engine("sglang", h100) == "sglang==0.5.4"
    assert deployed_engine("vllm", mi300x) == "vllm==0.10.1"
    assert deployed_engine("llama.cpp", h100) == "llama.cpp==b7079"  # the build its images are tagged with
    assert deployed_engine("llama.cpp", resolve_hardware("m3-max")) == "llama.cpp"  # no image: the profile as written
    assert deployed_engine("sglang==0.5.10", h100) == "sglang==0.5.10"

    # gpt-oss on SGLang 0.5.4 keeps one whole cache pool (`versions` in profiles/engines/sglang.yaml), so the plan's
    # baseline holds fewer sequences than the split pools of a later release would: a token slot of all 36 layers,
    # against 18 full layers and 18 windowed ones at 0.8 of the full pool's tokens
    def baseline_capacity() -> int:
        request = AdviseRequest(model="gpt-oss-120b", hardware="h100-sxm", num_devices=1, engine="sglang",
                                workload="chat")
        return advise(request).baseline.max_concurrency

    deployed = baseline_capacity()
    monkeypatch.setattr(techniques, "deployed_engine", lambda engine, hw: "sglang==0.5.9")
    assert baseline_capacity() / deployed == pytest.approx(36 / (18 + 18 * 0.8), rel=0.03)


def test_a_plans_refusals_read_the_release_it_is_priced_at(monkeypatch):
    """The techniques' refusals and a missing option's release are those of the release the plan is priced at: vLLM
    before 0.28 turns prefix caching off for a hybrid model, 0.28 keeps it on."""
    def rejected() -> dict[str, str]:
        advice = advise(AdviseRequest(model="nemotron-h-8b", hardware="h100-sxm", num_devices=1, engine="vllm",
                                      workload="chat"))
        return {r.technique: r.reason for r in advice.rejected}

    deployed = rejected()
    assert "before 0.28 turns prefix caching off" in deployed["prefix-caching"]
    assert deployed["kv-int8"] == "vllm 0.10.2 has no option for it"
    monkeypatch.setattr(techniques, "deployed_engine", lambda engine, hw: "vllm==0.28.0")
    later = rejected()
    assert "prefix-caching" not in later and later["kv-int8"] == "vllm 0.28.0 has no option for it"


def test_tgis_config_runs_the_prefill_budget_its_plan_priced():
    """The launcher's computed budget (59,870 tokens for Llama-3.1-8B on an H100 SXM) is what the plan prices and what
    serve.sh sets; on ROCm, where TGI does not chunk, whole prompts up to its 4,096 fallback."""
    def serve(hardware: str) -> str:
        advice = advise(AdviseRequest(model="llama-3.1-8b", hardware=hardware, num_devices=1, engine="tgi",
                                      workload="chat"))
        return render(advice, "tgi")["tgi/serve.sh"]

    assert "--max-batch-prefill-tokens 59870" in serve("h100-sxm")
    assert "--max-batch-prefill-tokens 4096" in serve("mi300x")


def test_tgi_takes_prompts_as_long_as_the_served_sequence_allows():
    """TGI's router refuses a prompt over --max-input-tokens: the config lets one take all but a token of the served
    sequence, as TGI's own default and vLLM's --max-model-len do, and where TGI does not chunk (ROCm) its router
    refuses to start with a prefill budget under that (backends/v3/src/main.rs @v3.3.4)."""
    def options(hardware: str) -> dict[str, str]:
        advice = advise(AdviseRequest(model="llama-3.1-8b", hardware=hardware, num_devices=1, engine="tgi",
                                      workload="chat", max_context=32768))
        argv = shlex.split(render(advice, "tgi")["tgi/serve.sh"].split("text-generation-launcher", 1)[1])
        return {k: v for k, v in itertools.pairwise(argv) if k.startswith("--")}

    cuda, rocm = options("a100-80gb-sxm"), options("mi300x")
    assert cuda["--max-input-tokens"] == "32767" and cuda["--max-total-tokens"] == "32768"
    assert int(cuda["--max-batch-prefill-tokens"]) < 32767  # it chunks: the budget stays the launcher's
    assert rocm["--max-input-tokens"] == "32767" and int(rocm["--max-batch-prefill-tokens"]) >= 32767


@pytest.mark.parametrize("engine, first", [("llama.cpp", "b7186"), ("trtllm", "1.2.0rc0")])
def test_a_model_the_deployed_release_predates_is_refused_with_the_release_that_serves_it(engine, first):
    """Qwen3-Next came to llama.cpp in b7186 and to TensorRT-LLM in 1.2.0rc0; their images (b7079, 1.0.0) cannot load
    it, so neither a plan nor a config is made for them, and the refusal names the engines whose images serve it."""
    from optiplan.planner.errors import RequestError

    with pytest.raises(RequestError) as refusal:
        advise(AdviseRequest(model="qwen3-next-80b-a3b", hardware="h100-sxm", num_devices=4, engine=engine))
    assert "does not serve qwen3_next" in str(refusal.value) and first in str(refusal.value)
    where = str(refusal.value).split("engines that serve it: ")[1]
    assert "vllm" in where and "llama.cpp," not in where and "trtllm," not in where
