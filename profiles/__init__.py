"""Data only: hardware profiles (one YAML per device) and model profiles (one JSON per architecture).

This loader reads the files and nothing more; `optiplan.planner.catalog.hardware` and
`optiplan.planner.catalog.models` turn them into validated specs. Names match exactly
(case-insensitive) against each entry's id and its explicit aliases, never fuzzily.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
HARDWARE_DIR = ROOT / "hardware"
MODELS_DIR = ROOT / "models"
EFFICIENCY_FILE = ROOT / "efficiency.yaml"
# the catalog device a request that names none gets: the CLI's --hardware default and the service's
DEFAULT_HARDWARE = "h100-sxm"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def hardware_ids() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))


def engine_names() -> list[str]:
    """The engines with a profile in engines/ (each file is named after its engine)."""
    return sorted(p.stem for p in (ROOT / "engines").glob("*.yaml"))


def model_names() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def load_hardware(hw_id: str) -> dict[str, Any]:
    return read_yaml(HARDWARE_DIR / f"{hw_id}.yaml")


@lru_cache(maxsize=None)
def load_model(name: str) -> dict[str, Any]:
    return read_json(MODELS_DIR / f"{name}.json")


@lru_cache(maxsize=1)
def hardware_aliases() -> dict[str, str]:
    """alias (lower-case) -> id, for every catalog device."""
    return _alias_index(hardware_ids(), load_hardware, "id")


@lru_cache(maxsize=1)
def model_aliases() -> dict[str, str]:
    """alias or hub id (lower-case) -> catalog name, for every catalog model."""
    return _alias_index(model_names(), load_model, "name")


def _alias_index(ids: list[str], load, key: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for entry_id in ids:
        data = load(entry_id)
        if data.get(key) != entry_id:
            raise ValueError(f"catalog file {entry_id} declares {key} {data.get(key)!r}: they must match")
        names = [entry_id, *data.get("aliases", [])]
        if data.get("hub_id"):
            names.append(data["hub_id"])
        for name in names:
            low = name.lower()
            if index.get(low, entry_id) != entry_id:
                raise ValueError(f"catalog alias '{name}' names both {index[low]} and {entry_id}")
            index[low] = entry_id
    return index


def resolve_hardware_id(name: str) -> str | None:
    low = name.strip().lower()
    if (HARDWARE_DIR / f"{low}.yaml").is_file():
        return low
    return hardware_aliases().get(low)


def resolve_model_name(name: str) -> str | None:
    low = name.strip().lower()
    if "/" not in low and (MODELS_DIR / f"{low}.json").is_file():
        return low
    return model_aliases().get(low)


@lru_cache(maxsize=1)
def efficiency_table() -> dict[str, Any]:
    return read_yaml(EFFICIENCY_FILE)
