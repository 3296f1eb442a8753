"""llama-server as it is: at most LLAMA_MAX_SEQ (256) sequences in a context, whatever --parallel asks (a throughput
plan fills no more slots than that, its configs set no more, and `profile` refuses a larger --max-running), and its
quantized caches in ggml's blocks of 32."""

from __future__ import annotations

import re

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.deploy.render import render
from optiplan.planner.errors import ImpossibleError, RequestError
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest


def test_a_throughput_plan_fills_no_more_slots_than_llama_cpp_has():
    # the cache of four H100s holds over a thousand Mixtral sequences of the batch workload: llama-server starts 256
    a = advise(AdviseRequest(model="mixtral-8x7b", hardware="h100-sxm", num_devices=4, engine="llama.cpp",
                             workload="batch-offline", goal="throughput"))
    assert a.plan.predicted.batch == 256 and a.plan.predicted.max_concurrency == 256
    serve = render(a, "llama.cpp")["llamacpp/serve.sh"]
    assert int(re.search(r"--parallel (\d+)", serve).group(1)) == 256


def test_more_sequences_than_llama_cpp_runs_are_not_a_plan():
    # (the engine named at the build its images run)
    with pytest.raises(ImpossibleError, match="llama.cpp==b7079 runs at most 256 sequences at once, workload needs"):
        advise(AdviseRequest(model="llama-3.2-1b", hardware="h100-sxm", num_devices=1, engine="llama.cpp",
                             workload="chat", concurrency=400))


def test_profile_refuses_more_slots_than_llama_cpp_runs():
    with pytest.raises(RequestError, match="at most 256 sequences.*llama-cparams.h"):
        profile(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="llama.cpp", max_running=512))
    ok = profile(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="llama.cpp", max_running=256,
                                input_tokens=128, output_tokens=128, concurrency="max"))
    assert ok.requests.running == 256


def test_a_llama_cpp_integer_cache_is_named_in_ggml_blocks():
    a = advise(AdviseRequest(model="llama-3.2-3b", hardware="m3-max", num_devices=1, engine="llama.cpp",
                             workload="chat"))
    step = next(s for s in a.plan.steps if s.technique in ("kv-int8", "kv-int4"))
    fmt = {"kv-int8": "q8_0", "kv-int4": "q4_0"}[step.technique]
    assert step.params["format"] == fmt and step.params["group_size"] == 32
    assert f"--cache-type-k {fmt}" in render(a, "llama.cpp")["llamacpp/serve.sh"]
