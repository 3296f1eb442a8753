"""No config.json gives a traceback: configs of the catalog with fields dropped, zeroed, negated, huge, of the
wrong type, null, NaN or infinite either profile to finite JSON with positive sizes or are refused with a
ModelConfigError (one sentence). Random bytes and non-JSON files are refused the same way."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optiplan import profiles
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import OptiplanError
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest

CONFIGS = {name: profiles.load_model(name)["config"] for name in profiles.model_names()}
BAD_VALUES = st.sampled_from([None, 0, -1, -4096, 1e18, 10**18, 2.5, "128", "", [], [1, 2], {}, True,
                              float("nan"), float("inf"), float("-inf")])
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def mutated_mappings(draw, source: dict) -> dict:
    """One entry of `source` (config, hardware or workload fields) with 1-4 fields dropped or set to bad values."""
    name = draw(st.sampled_from(sorted(source)))
    data = json.loads(json.dumps(source[name]))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        key = draw(st.sampled_from(sorted(data)))
        if draw(st.booleans()):
            data.pop(key)
        else:
            data[key] = draw(BAD_VALUES)
    return data


def mutated_configs():
    return mutated_mappings(CONFIGS)


def _finite_and_positive(doc) -> None:
    text = json.dumps(doc, allow_nan=False)  # raises on NaN or infinity anywhere
    assert text
    memory = doc["memory"]
    assert memory["weights_bytes"] > 0 and memory["kv_cache_bytes"] >= 0 and memory["per_device_bytes"] > 0
    assert doc["latency"]["tpot_ms"] > 0 and math.isfinite(doc["latency"]["ttft_ms"])


@SETTINGS
@given(cfg=mutated_configs())
def test_mutated_configs_profile_or_are_refused_in_one_sentence(cfg, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))  # NaN and Infinity are written as JSON allows Python to
    try:
        result = profile(ProfileRequest(model=str(path), hardware="h100-sxm", context=1024))
    except OptiplanError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _finite_and_positive(json.loads(result.model_dump_json()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=mutated_configs())
def test_mutated_configs_advise_or_are_refused(cfg, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    try:
        advice = advise(AdviseRequest(model=str(path), hardware="h100-sxm", workload="chat"))
    except OptiplanError:
        return
    json.dumps(json.loads(advice.model_dump_json()), allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_are_refused_in_one_sentence(data, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(data)
    try:
        resolve_model(str(path))
    except OptiplanError as exc:
        assert str(path) in str(exc)
        return
    raise AssertionError("random bytes read as a model")


def test_nan_and_infinity_name_the_field(tmp_path):
    import pytest
    from optiplan.planner.errors import ModelConfigError

    for value in ("NaN", "Infinity"):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(CONFIGS["llama-3.1-8b"]).replace('"hidden_size": 4096', f'"hidden_size": {value}'))
        with pytest.raises(ModelConfigError, match="hidden_size"):
            resolve_model(str(path))


HARDWARE = {hw_id: profiles.load_hardware(hw_id) for hw_id in profiles.hardware_ids()}


@SETTINGS
@given(data=mutated_mappings(HARDWARE))
def test_mutated_hardware_yaml_profiles_or_is_refused(data, tmp_path):
    import yaml

    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        result = profile(ProfileRequest(model="llama-3.2-1b", hardware=str(path), context=1024, dtype="fp16"))
    except OptiplanError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _finite_and_positive(json.loads(result.model_dump_json()))


WORKLOADS = {p.stem: profiles.read_yaml(p) for p in (profiles.ROOT / "workloads").glob("*.yaml")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_mappings(WORKLOADS))
def test_mutated_workload_yaml_advises_or_is_refused(data, tmp_path):
    import yaml

    path = tmp_path / "workload.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        advice = advise(AdviseRequest(model="llama-3.2-1b", hardware="l4", workload=str(path)))
    except OptiplanError as exc:
        assert str(exc)
        return
    json.dumps(json.loads(advice.model_dump_json()), allow_nan=False)


def test_a_hardware_file_that_is_not_yaml_is_one_sentence(tmp_path):
    import pytest

    path = tmp_path / "device.yaml"
    path.write_bytes(b"\xff\xfe: [unclosed")
    with pytest.raises(OptiplanError, match="not a hardware YAML"):
        profile(ProfileRequest(model="llama-3.2-1b", hardware=str(path)))
