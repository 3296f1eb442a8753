"""The library's messages in the HTTP API's own terms: where a message suggests a command-line option ("nearest
feasible: 4 x mi325x (--hardware mi325x --gpus 4)"), a client of the service reads the request field it sets instead
("hardware": "mi325x", "num_devices": 4; on the web page's routes the query's `hardware=mi325x devices=4`), and a
suggested command reads as its route."""

from __future__ import annotations

import re
import typing
from typing import Any

from ... import profiles
from ..catalog.workloads import preset_names
from ..schema.advice import AdviseRequest
from ..schema.core import ProfileRequest
from .requests import ConfigsRequest
from .web import QUERY_FIELDS

# the request each kind of route takes: its model (None: the web page's query) and its fields
MODELS: dict[str, Any] = {"advise": AdviseRequest, "profile": ProfileRequest, "configs": ConfigsRequest, "web": None}
FIELDS = {"advise": set(AdviseRequest.model_fields), "profile": set(ProfileRequest.model_fields),
          "configs": set(ConfigsRequest.model_fields) - {"engine"},
          "web": set(QUERY_FIELDS)}
# options whose field is not their own name in snake case (the CLI's `profile`, `advise` and `configs` options;
# tests/planner/service/test_fields.py walks them)
RENAMED = {
    "advise": {"gpus": "num_devices", "devices": "num_devices", "context": "max_context",
               "max-quality-loss": "max_quality_loss_pct"},
    "profile": {"gpus": "num_devices", "devices": "num_devices", "tp": "tensor_parallel", "pp": "pipeline_parallel",
                "ep": "expert_parallel", "attention-dp": "attention_data_parallel",
                "prefill-chunk": "prefill_chunk_tokens", "prompt": "prompt_tokens", "slo-ttft-ms": "ttft_slo_ms",
                "slo-itl-ms": "itl_slo_ms", "draft": "draft_model"},
    "web": {"gpus": "devices", "max-quality-loss": "quality"},
}
RENAMED["configs"] = RENAMED["advise"] | {"engine": "target"}  # the configs command's --engine is what it writes
COMMAND = re.compile(r"`?optiplan (profile|advise|configs)\b((?: --?[a-z][a-z-]*(?:[ =][^\s`,;)]+)?)*)`?")
OPTION = re.compile(r"--([a-z][a-z-]*)(?:[ =]([^\s`,;)]+))?")
RUN = re.compile(r"--[a-z][a-z-]*(?:[ =][^\s`,;)]+)?(?: --[a-z][a-z-]*(?:[ =][^\s`,;)]+)?)*")
NUMBER = re.compile(r"-?\d+(\.\d+)?%?")


def _choices(route: str, field: str) -> tuple | None:
    """The values a field of the route's request model may take where it names them (a Literal), else None."""
    model = MODELS[route]
    if model is None or field not in model.model_fields:
        return None
    for part in (model.model_fields[field].annotation, *typing.get_args(model.model_fields[field].annotation)):
        if typing.get_origin(part) is typing.Literal:
            return typing.get_args(part)
    return None


def _flag(route: str, field: str) -> bool:
    model = MODELS[route]
    return model is not None and field in model.model_fields and model.model_fields[field].annotation in (bool, "bool")


def _is_value(route: str, field: str, value: str) -> bool:
    """Whether `value` is a value of `field` rather than the sentence's next word ("give --dtype is ..."): a number,
    one of the field's choices, a catalog device, engine, model or workload preset, or a token shaped like a name of
    its own (a digit or one of - _ . / in it: bf16, q4_k_m)."""
    if NUMBER.fullmatch(value):
        return True
    if (choices := _choices(route, field)) is not None:
        return value in choices
    if field in ("hardware", "compare"):
        return value in ("auto", "local") or profiles.resolve_hardware_id(value) is not None
    if field in ("engine", "target"):
        return value.split("==")[0] in (*profiles.engine_names(), "serving", "all", "compose", "kubernetes")
    if field == "model" and profiles.resolve_model_name(value) is not None:
        return True
    if field == "workload" and value in preset_names():
        return True
    return bool(re.search(r"[\d\-_./]", value))


def _option(name: str, value: str | None, route: str) -> tuple[str, bool] | None:
    """One option as its field, and whether its value went with it: `"num_devices": 4`, `"hardware": "mi325x"`,
    `"at_once": true` (`devices=4` on the web page's routes); a word after it that is no value of its field stays
    text after the field's name. None where the request has no such field."""
    field = RENAMED.get(route, {}).get(name, name.replace("-", "_"))
    if field not in FIELDS[route]:
        return None
    query = MODELS[route] is None
    if value is not None and _is_value(route, field, value):
        if query:
            return f"{field}={value}", True
        shown = value.rstrip("%") if NUMBER.fullmatch(value) else f'"{value}"'
        return f'"{field}": {shown}', True
    text = (f"{field}=true" if query else f'"{field}": true') if _flag(route, field) else \
        (field if query else f'"{field}"')
    return text + (f" {value}" if value is not None else ""), value is None


def _options(text: str, route: str) -> str | None:
    """`--hardware mi325x --gpus 4` as `"hardware": "mi325x", "num_devices": 4`, or None where an option has no
    field of the route's request (the message keeps its wording then). Fields follow each other with a comma; one
    whose next word stayed text is followed by a space."""
    out, last_complete = "", False
    for match in OPTION.finditer(text):
        part = _option(match.group(1), match.group(2), route)
        if part is None:
            return None
        out += (", " if last_complete else " " if out else "") + part[0]
        last_complete = part[1]
    return out or None


def in_request_terms(message: str, route: str) -> str:
    """`message` with the command lines and options it suggests written as the route's request fields; `route` is
    the kind of request (advise, profile, configs, or web: the page's query). Options the request has no field for
    stay as written."""
    if route not in FIELDS:
        return message

    def command(match: re.Match) -> str:
        if route == "web" and match.group(1) == "advise":  # the page's own report: its query's fields
            return (_options(match.group(2), "web") if match.group(2) else None) or match.group(0)
        # another command (`optiplan profile --engine vllm==0.11.0`) is its API route, with that route's fields
        fields = _options(match.group(2), match.group(1)) if match.group(2) else ""
        if fields is None:
            return match.group(0)
        return f"POST /v1/{match.group(1)}" + (f" with {fields}" if fields else "")

    def options(match: re.Match) -> str:
        return _options(match.group(0), route) or match.group(0)

    return RUN.sub(options, COMMAND.sub(command, message))
