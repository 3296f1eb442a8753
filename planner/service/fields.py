"""The library's messages in the HTTP API's own terms: where a message suggests a command-line option ("nearest
feasible: 4 x mi325x (--hardware mi325x --gpus 4)"), a client of the service reads the request field it sets instead
("hardware": "mi325x", "num_devices": 4), and a suggested command reads as its route."""

from __future__ import annotations

import re

from ... import profiles
from ..schema.advice import AdviseRequest
from ..schema.core import ProfileRequest

# options whose field is not their own name in snake case, per request model
RENAMED = {
    "advise": {"gpus": "num_devices", "devices": "num_devices", "context": "max_context",
               "max-quality-loss": "max_quality_loss_pct"},
    "profile": {"gpus": "num_devices", "devices": "num_devices"},
}
FIELDS = {"advise": set(AdviseRequest.model_fields), "profile": set(ProfileRequest.model_fields),
          "configs": set(AdviseRequest.model_fields) | {"target"}}
FIELDS_OF_COMMAND = {"configs": "advise"}  # the configs route takes the advise request's fields and its target
COMMAND = re.compile(r"`?optiplan (profile|advise|configs)\b((?: --?[a-z][a-z-]*(?:[ =][^\s`,;)]+)?)*)`?")
OPTION = re.compile(r"--([a-z][a-z-]*)(?:[ =]([^\s`,;)]+))?")


NAMES = {"model", "hardware", "engine", "workload", "goal", "dtype", "kv_dtype", "activations", "target", "scheduling",
         "attention", "gguf_type", "weight_kernel", "sampler"}  # fields whose value is a name


def _names(field: str, value: str) -> bool:
    """Whether `value` can be a name of `field` (the word after an option may be the sentence's next word): a
    device and an engine are checked against the catalog, other names taken as they are."""
    if field == "hardware":
        return value in ("auto", "local") or profiles.resolve_hardware_id(value) is not None
    if field in ("engine", "target"):
        return value.split("==")[0] in (*profiles.engine_names(), "serving", "all", "compose", "kubernetes")
    return True


def _field(name: str, route: str) -> str | None:
    field = RENAMED.get(FIELDS_OF_COMMAND.get(route, route), {}).get(name, name.replace("-", "_"))
    return field if field in FIELDS[route] else None


def _option(name: str, value: str | None, route: str) -> str | None:
    """One option as its field: `"num_devices": 4`, `"hardware": "mi325x"`, `"at_once": true`; a word after it that
    is no value of its field stays text after the field's name. None where the request has no such field."""
    field = _field(name, route)
    if field is None:
        return None
    number = value is not None and re.fullmatch(r"-?\d+(\.\d+)?%?", value)
    if number:
        return f'"{field}": {value.rstrip("%")}'
    if value is not None and field in NAMES and _names(field, value):
        return f'"{field}": "{value}"'
    flag = FIELDS_OF_COMMAND.get(route, route)
    model = AdviseRequest if flag == "advise" else ProfileRequest
    if model.model_fields[field].annotation in (bool, "bool"):
        text = f'"{field}": true'
    else:
        text = f'"{field}"'
    return text + (f" {value}" if value is not None else "")


def _options(text: str, route: str) -> str | None:
    """`--hardware mi325x --gpus 4` as `"hardware": "mi325x", "num_devices": 4`, or None where an option has no
    field of the route's request (the message keeps its wording then). Fields follow each other with a comma; one
    whose next word stayed text is followed by a space."""
    out, last_complete = "", False
    for match in OPTION.finditer(text):
        part = _option(match.group(1), match.group(2), route)
        if part is None:
            return None
        out += (", " if last_complete else " " if out else "") + part
        last_complete = match.group(2) is None or not part.endswith(f" {match.group(2)}")
    return out or None


def in_request_terms(message: str, route: str) -> str:
    """`message` with the command lines and options it suggests written as the route's request fields; `route` is
    the request model's command (advise, profile, configs). Options the request has no field for stay as written."""
    if route not in FIELDS:
        return message

    def command(match: re.Match) -> str:
        fields = _options(match.group(2), match.group(1)) if match.group(2) else ""
        if fields is None:
            return match.group(0)
        return f"POST /v1/{match.group(1)}" + (f" with {fields}" if fields else "")

    def options(match: re.Match) -> str:
        return _options(match.group(0), route) or match.group(0)

    message = COMMAND.sub(command, message)
    # a run of options, each with its value where it has one (not inside a route just written)
    return re.sub(r"--[a-z][a-z-]*(?:[ =][^\s`,;)]+)?(?: --[a-z][a-z-]*(?:[ =][^\s`,;)]+)?)*", options, message)
