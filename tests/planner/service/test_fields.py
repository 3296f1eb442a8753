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
    ("with --engine trtllm", "configs", 'with "engine": "trtllm"'),
    # a word after an option that is no value of its field stays a word
    ("--at-once sends --concurrency requests together", "profile",
     '"at_once": true sends "concurrency" requests together'),
    ("pass --hardware with the device's name", "profile", "pass \"hardware\" with the device's name"),
    # an option the request has no field for leaves the message as it was
    ("run `optiplan bench --endpoint URL` from a shell", "advise", "run `optiplan bench --endpoint URL` from a shell"),
    ("give --foo 3", "advise", "give --foo 3"),
    ("--gpus 4", "jobs", "--gpus 4"),
])
def test_messages_name_the_request_fields(message, route, expected):
    assert in_request_terms(message, route) == expected
