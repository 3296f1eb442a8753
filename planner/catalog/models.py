"""Model specs from anything a user has: a catalog name or alias, a `config.json` path, a local model
folder, or a Hugging Face hub id (only `config.json` is fetched, and only when online)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ... import profiles
from ..errors import ModelConfigError, UnknownNameError
from ..schema import ModelSpec
from .model_spec import model_spec_from_config

HUB_TIMEOUT_S = 10


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"{path}: not a config.json (not UTF-8 text: byte {exc.start} is not valid)") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    except RecursionError as exc:
        raise ModelConfigError(f"{path}: not a config.json (nested too deeply)") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}: a config.json must hold a JSON object, not {type(data).__name__}")
    return data


def catalog_entry(name: str) -> dict[str, Any]:
    """The catalog file of a model: {name, aliases, hub_id, published_params_total, config, ...}."""
    resolved = profiles.resolve_model_name(name)
    if resolved is None:
        raise _unknown(name)
    return profiles.load_model(resolved)


def _known(name: str) -> tuple[str | None, dict[str, Any]]:
    """(catalog name, catalog file) of a model, or (None, {}) for one outside the catalog."""
    resolved = profiles.resolve_model_name(name)
    return resolved, profiles.load_model(resolved) if resolved else {}


def instruct_checkpoint(entry: dict[str, Any]) -> str | None:
    """The hub id of a catalog model's instruct (chat-tuned) checkpoint, None where the catalog names none."""
    return (entry.get("instruct") or {}).get("hub_id")


def instruct_note(name: str, workload_name: str) -> str | None:
    """Where a chat workload is served by a catalog model's instruct checkpoint rather than the base model its name
    stands for (a base model has no chat template), which one, to say once beside the plan; else None."""
    resolved, entry = _known(name)
    instruct = instruct_checkpoint(entry)
    if not instruct or instruct == entry.get("hub_id"):
        return None
    return (f"the {workload_name} workload talks through a chat template: it is served by {instruct}, the instruct "
            f"model of {resolved} (whose {entry.get('hub_id')} is the base model); the plan's checkpoints and draft "
            "are the instruct model's (the same architecture: the figures hold for it)")


def mtp_layers(name: str) -> int:
    """The multi-token-prediction modules a catalog model's checkpoint ships: its config's count (DeepSeek), else the
    catalog's (Qwen3-Next's config names none); 0 for a model outside the catalog."""
    entry = _known(name)[1]
    return (entry.get("config") or {}).get("num_nextn_predict_layers", 0) or (entry.get("mtp") or {}).get("layers", 0)


def context_extension_hint(name: str) -> str:
    """Where the catalog records a documented way past a model's context (Qwen3's YaRN: its `context_extension`),
    what it reaches and how to plan for it, to follow a refusal of a longer sequence; '' for any other model."""
    resolved, entry = _known(name)
    extension = entry.get("context_extension")
    if not extension:
        return ""
    rope = extension["rope_scaling"]
    return (f"; {resolved} reaches {extension['max_tokens']:,} tokens with YaRN (factor {rope['factor']:g} over "
            f"{rope['original_max_position_embeddings']:,}, as its publisher documents; static, so it may lower "
            "quality on short prompts): profile or advise a copy of its config.json with \"rope_scaling\": "
            f"{json.dumps(rope)} to plan at that length")


def _unknown(name: str) -> UnknownNameError:
    return UnknownNameError("model", name, profiles.model_names(),
                            "`optiplan catalog models` lists them; a config.json path or a model folder works too")


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def fetch_hub_config(repo_id: str) -> dict[str, Any]:
    """Fetch only `config.json` of a hub model. Offline (HF_HUB_OFFLINE or no network) this raises a
    clear error that names the catalog."""
    import urllib.error  # imported here: urllib.request costs ~40 ms that every offline run would pay
    import urllib.request

    offline_hint = (f"cannot fetch '{repo_id}' from the Hugging Face hub{{why}}; use a catalog model "
                    f"(`optiplan catalog models`), a local config.json or a model folder instead")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise UnknownNameError("model", repo_id, profiles.model_names(), offline_hint.format(why=" (HF_HUB_OFFLINE is set)"))
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/{repo_id}/resolve/main/config.json",
                                     headers={"User-Agent": "optiplan"})
    token = os.environ.get("HF_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=HUB_TIMEOUT_S) as response:
            data = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        why = " (gated: set HF_TOKEN)" if exc.code in (401, 403) else f" (HTTP {exc.code})"
        raise UnknownNameError("model", repo_id, profiles.model_names(), offline_hint.format(why=why)) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise UnknownNameError("model", repo_id, profiles.model_names(), offline_hint.format(why=" (no network)")) from exc
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{repo_id}/config.json from the hub is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(f"{repo_id}/config.json from the hub does not hold a JSON object")
    return data


def resolve_model(name: str) -> ModelSpec:
    """Resolve a model reference to a ModelSpec, in this order: catalog name or alias (hub ids of
    catalog models included, so they work offline), existing file, existing folder, hub id. Answers are cached; a
    config file's is kept only while the file is unchanged (a long-running server reads an edited one again)."""
    stamp = None
    if profiles.resolve_model_name(name) is None:
        path = Path(name).expanduser()
        config = path / "config.json" if path.is_dir() else path
        if config.is_file():
            status = config.stat()
            stamp = (str(config.resolve()), status.st_mtime_ns, status.st_size)
    return _resolve_model(name, stamp)


@lru_cache(maxsize=256)
def _resolve_model(name: str, stamp: tuple | None) -> ModelSpec:
    """resolve_model's answer for `name`, cached by the config file's path, modification time and size (`stamp`)."""
    resolved = profiles.resolve_model_name(name)
    if resolved is not None:
        entry = profiles.load_model(resolved)
        spec = model_spec_from_config(entry["config"], resolved, f"catalog:{resolved}")
        if entry.get("checkpoint_dtype"):
            spec = spec.model_copy(update={"checkpoint_dtype": entry["checkpoint_dtype"]})
        return spec
    path = Path(name).expanduser()
    if path.is_file():
        return model_spec_from_config(read_config_file(path), path.parent.name or path.stem, str(path))
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelConfigError(f"{path}: this folder has no config.json (is it a Hugging Face model folder?)")
        return model_spec_from_config(read_config_file(config), path.resolve().name, str(path))
    if name.endswith(".json") or name.startswith((".", "/", "~")):
        raise ModelConfigError(f"{name}: no such file or folder")
    if _looks_like_hub_id(name):
        return model_spec_from_config(fetch_hub_config(name), name, f"hub:{name}")
    raise _unknown(name)
