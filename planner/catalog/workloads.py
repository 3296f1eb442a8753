"""Workloads: presets shipped as data in `profiles/workloads/`, or a user's YAML/JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ... import profiles
from ..errors import OptiplanError, UnknownNameError
from ..schema.workload import Workload

WORKLOADS_DIR = profiles.ROOT / "workloads"
# Presets served through a chat template: their configs serve the instruct model (a base checkpoint has none)


def serves_instruct(workload: Workload) -> bool:
    """Whether the workload talks to the model through a chat template (the instruct checkpoint serves it): its
    `chat` field where it says (every preset does), else yes, as most served traffic is: a workload's name does not
    decide it (a copy of the chat preset renamed served the base model)."""
    return workload.chat if workload.chat is not None else True


def priced_tokens(goal: str) -> str:
    """What a plan's cost per million tokens counts: the tokens a serving plan outputs, or those a training plan
    trains on."""
    return "tokens trained" if goal == "training" else "output tokens"


def preset_names() -> list[str]:
    return sorted(p.stem for p in WORKLOADS_DIR.glob("*.yaml"))


def _validate(data: Any, where: str) -> Workload:
    if not isinstance(data, dict):
        raise OptiplanError(f"{where}: a workload must be a mapping of fields")
    try:
        return Workload(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        field = ".".join(str(p) for p in first["loc"])
        raise OptiplanError(f"{where}: {field + ': ' if field else ''}{message}") from exc


def is_workload_file(name: str) -> bool:
    """Whether `name` names a workload file (the user's own numbers), not a preset."""
    path = Path(name).expanduser()
    return path.suffix in (".yaml", ".yml", ".json") or path.is_file()


def load_workload(name: str) -> Workload:
    """A preset name (`chat`, `rag-long-context`, ...) or a YAML/JSON file."""
    path = Path(name).expanduser()
    if is_workload_file(name):
        if not path.is_file():
            raise OptiplanError(f"{name}: no such workload file")
        try:
            data = profiles.read_json(path) if path.suffix == ".json" else profiles.read_yaml(path)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
            raise OptiplanError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from exc
        return _validate(data, str(path))
    preset = WORKLOADS_DIR / f"{name}.yaml"
    if not preset.is_file():
        raise UnknownNameError("workload", name, preset_names(), "or pass a workload YAML/JSON file")
    return _validate(profiles.read_yaml(preset), f"workload preset {name}")


def with_overrides(workload: Workload, **overrides: Any) -> Workload:
    """The workload with command-line overrides applied (None means: keep the workload's value). A training
    workload's step takes --context as its sequence length (`training_overrides`), unless a serving goal overrides
    its own (then it is served, at the concurrency and context asked for)."""
    if workload.training is not None and (overrides.get("goal") or workload.goal) == "training":
        overrides = training_overrides(workload, **overrides)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return workload
    return _validate({**workload.model_dump(), **changes}, "workload options")


def parse_percent(text: str | float | None) -> float | None:
    """'1%', '1', 0.5, 'lossless' -> percent as a float."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    t = str(text).strip().lower()
    if t in ("lossless", "none", "0"):
        return 0.0
    try:
        value = float(t.rstrip("%"))
    except ValueError as exc:
        raise OptiplanError(f"quality budget '{text}' is not a percentage such as 1% or 'lossless'") from exc
    if not value >= 0:  # NaN too
        raise OptiplanError(f"quality budget '{text}': a loss allowed is 0% (lossless) or more, such as 1%")
    return value


def training_overrides(workload: Workload, concurrency: int | None = None, max_context: int | None = None,
                       **overrides: Any) -> dict[str, Any]:
    """A training workload's command-line overrides as its fields: --context is the sequence length its steps train
    on (its prompt lengths with it); --concurrency is refused, a training step's sequences being its micro-batch and
    global batch, which a workload file sets."""
    if concurrency is not None:
        raise OptiplanError(f"--concurrency sizes a serving workload's batch; the {workload.name} workload trains, and "
                            "its step's sequences are `training.micro_batch` (per device and pass) and "
                            "`training.global_batch` (per optimizer step): set them in a workload file (-w FILE)")
    if max_context is None:
        return overrides
    job = workload.training.model_copy(update={"sequence_length": max_context}).model_dump()
    return {**overrides, "training": job, "prompt_tokens_mean": max_context, "prompt_tokens_p95": max_context}
