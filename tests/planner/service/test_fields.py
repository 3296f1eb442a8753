"""Library messages in the HTTP API's terms: the request fields a message suggests, not the CLI's options."""

from __future__ import annotations

import pytest
from optiplan.planner.service.fields import in_request_terms


@pytest.mark.parametrize("message, route, expected", [
    ("nearest feasible: 4 x mi325x (--hardware mi325x --gpus 4)", "advise",
     'nearest feasible: 4 x mi325x ("hardware": "mi325x", "num_devices": 4)'),
    ("a looser quality budget (--max-quality-loss 2%)", "advise", 'a looser quality budget ("max_quality_loss_pct": 2)'),
    ("or --context 131072", "advise", 'or "max_context": 131072'),
    ("or --context 131072", "profile", 'or "context": 131072'),
    ("`optiplan profile --engine sglang` predicts it", "advise", 'POST /v1/profile with "engine": "sglang" predicts it'),
    ("with --engine trtllm", "configs", 'with "target": "trtllm"'),  # the configs command's --engine
    ("give --tp 2 --pp 4", "profile", 'give "tensor_parallel": 2, "pipeline_parallel": 4'),
    # the web page's routes take its query's names
    ("nearest feasible: 8 x t4 (--gpus 8)", "web", "nearest feasible: 8 x t4 (devices=8)"),
    ("a looser quality budget (--max-quality-loss 2%)", "web", "a looser quality budget (quality=2%)"),
    # ... where another command (the page has no profile) is its API route, not a command of query fields
    ("to predict another release, run `optiplan profile --engine vllm==0.1`", "web",
     'to predict another release, run POST /v1/profile with "engine": "vllm==0.1"'),
    ("`optiplan advise --hardware mi325x --gpus 4`", "web", "hardware=mi325x, devices=4"),
    # a word after an option that is no value of its field stays a word
    ("--at-once sends --concurrency requests together", "profile",
     '"at_once": true sends "concurrency" requests together'),
    ("pass --hardware with the device's name", "profile", "pass \"hardware\" with the device's name"),
    ("a GGUF Q4_K_M file holds int4 weights; --dtype is bf16", "profile",
     'a GGUF Q4_K_M file holds int4 weights; "dtype" is bf16'),
    ("--sampler picks the sampler", "profile", '"sampler" picks the sampler'),
    ("--sampler flashinfer", "profile", '"sampler": "flashinfer"'),
    # an option the request has no field for leaves the message as it was
    ("run `optiplan bench --endpoint URL` from a shell", "advise", "run `optiplan bench --endpoint URL` from a shell"),
    ("give --foo 3", "advise", "give --foo 3"),
    ("--gpus 4", "jobs", "--gpus 4"),
])
def test_messages_name_the_request_fields(message, route, expected):
    assert in_request_terms(message, route) == expected


@pytest.mark.parametrize("command", ["profile", "advise"])
def test_every_cli_option_with_a_request_field_is_translated_to_it(command):
    """Each option of `optiplan profile` and `advise` that sets a field of the request reads as that field."""
    from optiplan.planner.cli.main import main
    from optiplan.planner.schema import AdviseRequest, ProfileRequest

    model = ProfileRequest if command == "profile" else AdviseRequest
    checked = 0
    for param in main.commands[command].params:
        if param.name not in model.model_fields:
            continue
        for flag in (o for o in getattr(param, "opts", []) if o.startswith("--")):
            assert f'"{param.name}": 7' in in_request_terms(f"give {flag} 7", command), (command, flag)
            checked += 1
    assert checked >= (30 if command == "profile" else 6)
