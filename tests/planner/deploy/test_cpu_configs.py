"""vLLM on a CPU sizes its cache by VLLM_CPU_KVCACHE_SPACE, not --gpu-memory-utilization: the configs set it for the
longest served sequence or the plan's sequences, and the README counts what that cache holds."""

from __future__ import annotations

import re

from optiplan.planner.analytic.kvcache import kv_cache_bytes
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.deploy.render import render
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def test_vllm_on_a_cpu_gets_a_cache_that_holds_its_longest_sequence():
    a = advise(AdviseRequest(model="llama-3.2-3b", hardware="epyc-9004", num_devices=1, engine="vllm",
                             workload="chat", concurrency=4))
    files = render(a, "vllm")
    serve, readme = files["vllm/serve.sh"], files["README.md"]
    assert "--gpu-memory-utilization" not in serve
    gib = int(re.search(r"export VLLM_CPU_KVCACHE_SPACE=(\d+)", serve).group(1))
    served = int(re.search(r"--max-model-len (\d+)", serve).group(1))
    spec = resolve_model("llama-3.2-3b")
    one_longest = kv_cache_bytes(spec, served, a.plan.predicted.kv_dtype)
    # room for one sequence of --max-model-len (vLLM refuses to start without it), and not the host's whole RAM
    assert one_longest <= gib * 2**30 <= 1.1 * one_longest + 2**30
    holds = int(re.search(r"a server.s KV cache holds (\d+) at the mean context", readme).group(1))
    assert holds == int(gib * 2**30 // kv_cache_bytes(spec, a.workload.mean_context, a.plan.predicted.kv_dtype))
    assert holds < a.plan.predicted.max_concurrency  # what the host's memory would hold, which the server is not given


def test_vllm_on_a_gpu_keeps_its_memory_share():
    a = advise(AdviseRequest(model="llama-3.2-3b", hardware="l4", num_devices=1, engine="vllm", workload="chat"))
    serve = render(a, "vllm")["vllm/serve.sh"]
    assert "--gpu-memory-utilization" in serve and "VLLM_CPU_KVCACHE_SPACE" not in serve
