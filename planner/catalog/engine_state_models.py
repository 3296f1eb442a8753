"""What an engine does with state-space, linear-attention and hybrid models (its profile's `state_models`): which
model types it serves, the techniques it refuses on them, and the options its configs must carry for them. A model
of any other type (`hybrid_spec.HYBRID_TYPES` lists the state models' types) is none of its concern here: no
refusal, no option."""

from __future__ import annotations

from typing import Any

from ..schema.releases import split_engine
from .engine_refusals import engine_model_refusal
from .engine_versions import release_holds
from .engines import engine_fact, engine_names, engine_profile, engine_release
from .hybrid_spec import HYBRID_TYPES


def _state_models(engine: str, model_type: str) -> dict[str, Any] | None:
    """The engine's facts about state-space, linear-attention and hybrid models where `model_type` is one, or None
    (another type; the generic `serving` engine, which has no facts)."""
    return engine_fact(engine, "state_models") if model_type in HYBRID_TYPES else None


def state_model_refusal(engine: str, model_type: str) -> str | None:
    """Why the engine cannot serve a model with state layers of this `model_type`, naming the engines that can;
    None when it serves it (or for the generic `serving` engine, which has no facts)."""
    facts = _state_models(engine, model_type)
    if facts is None or model_type in facts["model_types"]:
        return None
    base = split_engine(engine)[0]

    def serves(name: str) -> bool:  # at a release its configs run (any backend's), or as its facts stand where none
        releases = set((engine_fact(name, "deployed_release") or {}).values())
        return any(model_type in (_state_models(f"{name}=={r}" if r else name, model_type) or {}).get("model_types", ())
                   for r in releases or {None})
    others = [name for name in engine_names() if name != base and serves(name)]
    where = f"engines that serve it: {', '.join(others)}" if others else "no other engine optiplan knows serves it"
    if model_type in (_state_models(base, model_type) or {}).get("model_types", ()):
        where += f"; a later {base} release does (the source says which)"
    served = ", ".join(facts["model_types"]) or "no state-space or hybrid model"
    named = f"{base} {engine_profile(engine)['version']}"
    return (f"{named} does not serve {model_type} models (it serves {served}; "
            f"source: {facts['source'].split(' — ')[0]}); {where}")


def state_technique_refusal(engine: str, technique: str, model_type: str) -> str | None:
    """Why the engine does not run `technique` on a model with state layers of this `model_type` (its profile's
    `state_models.refuses`, with the source), or None."""
    for rule in (_state_models(engine, model_type) or {}).get("refuses") or []:
        if technique not in rule["techniques"]:
            continue
        if "model_types" in rule and model_type not in rule["model_types"] \
                or not release_holds(engine_release(engine), rule.get("versions")):
            continue
        if model_type in (rule.get("except_model_types") or {}).get(technique, ()):
            continue
        return f"{rule['reason']} (source: {rule['source'].split(' — ')[0]})"
    return None


def state_model_options(engine: str, model_type: str) -> list[dict[str, Any]]:
    """Options the engine's config must carry for this state-model type (option, value, why, source)."""
    return [o for o in (_state_models(engine, model_type) or {}).get("options") or [] if model_type in o["model_types"]]


def recurrent_state_dtype(engine: str | None, model_type: str) -> str | None:
    """The format the engine keeps this state-model type's recurrent state in where its config's options set one
    (`recurrent_state_dtype` beside the option: vLLM's --mamba-ssm-cache-dtype float32 for Nemotron-H), else None:
    the activations'."""
    return next((o["recurrent_state_dtype"] for o in state_model_options(engine, model_type)
                 if "recurrent_state_dtype" in o), None)


def serving_refusal(engine: str, model_type: str) -> str | None:
    """Why the engine cannot serve a model of this type at all: a model type it has no code for or cannot load
    (`engine_refusals.engine_model_refusal`), or state layers it does not serve (`state_model_refusal`); None where
    it can. The one check `profile`, the configs and `configs --engine all` refuse or skip an engine by."""
    return engine_model_refusal(engine, model_type) or state_model_refusal(engine, model_type)
