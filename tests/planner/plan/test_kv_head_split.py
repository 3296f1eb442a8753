"""A tensor-parallel size the engine can load: TGI divides a model's KV heads over its shards (one head is kept whole),
vLLM and SGLang divide them or replicate them evenly. Plans spread a model only over such sizes, TGI's over servers of
them where it has no pipeline stages, and `profile` refuses the others with the engine's source."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.engine_refusals import kv_heads_refusal
from optiplan.planner.deploy.render import render
from optiplan.planner.errors import RequestError
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest


def _advise(model, hardware, devices, engine, **kw):
    return advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, engine=engine,
                                workload="chat", **kw))


def test_each_engine_splits_kv_heads_by_its_own_rule():
    assert "4 KV heads do not divide evenly over 8 ranks" in kv_heads_refusal("tgi", 4, 8)
    assert kv_heads_refusal("tgi", 8, 4) is None and kv_heads_refusal("tgi", 1, 8) is None  # MQA's head kept whole
    assert kv_heads_refusal("vllm", 4, 8) is None  # two ranks to each head
    assert "10 KV heads neither divide" in kv_heads_refusal("vllm", 10, 4)
    assert "vllm/model_executor/layers/linear.py" in kv_heads_refusal("vllm==0.10.2", 10, 8)
    assert "sglang/srt/layers/linear.py" in kv_heads_refusal("sglang", 3, 4)
    assert kv_heads_refusal("trtllm", 10, 4) is None  # no rule on file: not refused
    assert kv_heads_refusal("vllm", 10, 1) is None


def test_tgi_baseline_runs_the_largest_group_its_kv_heads_divide_as_servers():
    """Qwen3-30B-A3B's 4 KV heads over eight H100s: TGI starts two servers of four shards (the configs render them);
    eight shards would leave a shard without a KV head."""
    a = _advise("qwen3-30b-a3b", "h100-sxm", 8, "tgi", goal="throughput")
    assert (a.baseline.tensor_parallel, a.baseline.data_parallel, a.baseline.pipeline_parallel) == (4, 2, 1)
    p = a.plan.predicted
    assert p.pipeline_parallel == 1 and not 4 % p.tensor_parallel
    assert p.tensor_parallel * p.data_parallel == 8
    files = render(a, "tgi")
    assert f"--num-shard {p.tensor_parallel}" in files["tgi/serve.sh"]
    # Falcon-7B's 71 heads split over no group: four servers of one device, not four pipeline stages TGI cannot run
    f = _advise("falcon-7b", "h100-sxm", 4, "tgi")
    assert (f.baseline.tensor_parallel, f.baseline.data_parallel, f.baseline.pipeline_parallel) == (1, 4, 1)


def test_vllm_plans_no_tensor_parallel_size_its_kv_heads_cannot_take():
    """Phi-4's 10 KV heads neither divide over nor replicate across four ranks: vLLM's baseline over four H100s is
    four pipeline stages, and the plan's groups are sizes the heads split over."""
    a = _advise("phi-4", "h100-sxm", 4, "vllm")
    assert a.baseline.tensor_parallel == 1 and a.baseline.pipeline_parallel == 4
    tp = a.plan.predicted.tensor_parallel
    assert kv_heads_refusal("vllm", 10, tp) is None and not 40 % tp
    assert "tensor-parallel" in {r.technique for r in a.rejected}
    assert "10 KV heads neither divide" in {r.technique: r.reason for r in a.rejected}["tensor-parallel"]


@pytest.mark.parametrize(("model", "engine", "tp"), [("qwen3-30b-a3b", "tgi", 8), ("phi-4", "vllm", 4)])
def test_profile_refuses_a_split_the_engine_cannot_load(model, engine, tp):
    with pytest.raises(RequestError, match="KV heads"):
        profile(ProfileRequest(model=model, hardware="h100-sxm", num_devices=tp, engine=engine))
    # another engine, or one that replicates the heads, profiles it
    profile(ProfileRequest(model=model, hardware="h100-sxm", num_devices=tp, engine="trtllm"))
