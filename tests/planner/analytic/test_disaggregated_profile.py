"""`optiplan profile --prefill-instances P`: the devices as instances of --tp x --pp devices, P of them prefilling
and the rest decoding, priced with the plan search's model (`analytic.disaggregation.rates`): decode steps without
prompt chunks, each prompt's cache sent across, the prefill instances a bound of their own."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.disaggregation import kv_transfer_s
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.cli.main import main
from optiplan.planner.errors import OptiplanError
from optiplan.planner.schema import ProfileRequest

LOAD = {"input_tokens": 4000, "output_tokens": 300, "concurrency": 16}


def _profile(devices=1, **kw):
    return profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang", num_devices=devices,
                                  **LOAD | kw))


def test_decode_steps_carry_no_prompts_and_the_cache_crosses_over():
    together, apart = _profile(1).requests, _profile(4, tensor_parallel=1, prefill_instances=2).requests
    # long prompts ride in a colocated server's steps; a decode instance's steps are plain (8 sequences each)
    assert apart.itl_ms < together.itl_ms * 0.6
    plain = _profile(1, batch=8, context=4150).latency.tpot_ms
    assert apart.itl_ms == pytest.approx(plain, rel=0.01)
    s = setup_for_request(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang", context=4300),
                          resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"))
    lone = _profile(1, concurrency=1).requests.ttft_ms
    assert apart.ttft_ms > lone + kv_transfer_s(s, 4000) * 1e3 * 0.9  # a prefill, and its cache sent across
    assert "2 prefill and 2 decode instances of 1 device each" in apart.scheduling


def test_one_prefill_instance_bounds_the_rate():
    """One instance prefilling 4,000-token prompts for three decoding: the requests queue for it."""
    one, two = (_profile(4, tensor_parallel=1, prefill_instances=p, concurrency=64).requests for p in (1, 2))
    assert one.requests_per_s < two.requests_per_s
    assert one.queue_wait_ms > two.queue_wait_ms
    assert one.max_concurrency == 3 * two.max_concurrency / 2  # three decode instances hold more


def test_concurrency_max_fills_the_decode_instances():
    q = _profile(4, tensor_parallel=2, prefill_instances=1, concurrency="max").requests
    assert q.concurrency == q.max_concurrency and q.fits


@pytest.mark.parametrize(("kw", "message"), [
    ({"num_devices": 2, "tensor_parallel": 2, "prefill_instances": 1}, "leaves no decode instance"),
    ({"num_devices": 3, "tensor_parallel": 2, "prefill_instances": 1}, "leaves no decode instance"),
    ({"num_devices": 4, "tensor_parallel": 1, "prefill_instances": 2, "num_requests": 40}, "steady state"),
    ({"num_devices": 4, "tensor_parallel": 1, "prefill_instances": 2, "input_tokens": None, "output_tokens": None,
      "concurrency": None}, "request-level figures"),
])
def test_refused_where_it_cannot_be_priced(kw, message):
    with pytest.raises(OptiplanError, match=message):
        profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang", **LOAD | kw))


def test_the_cli_takes_it():
    args = ["profile", "llama-3.1-8b", "-H", "h100-sxm", "--engine", "sglang", "--gpus", "4", "--tp", "1",
            "--prefill-instances", "2", "--input-tokens", "4000", "--output-tokens", "300", "--concurrency", "16"]
    text = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "prefill/decode disaggregated" in text
