"""An engine as a request names it: its name, or its name pinned to a release as pip writes it (`sglang==0.5.6`;
llama.cpp's builds as `llama.cpp==b6500`), checked here where the schema takes it
(`catalog/engine_versions.py` applies a profile's rules for the release)."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

PIN = "=="


def split_engine(engine: str) -> tuple[str, str | None]:
    """An engine's name and the release it is pinned to (`sglang==0.5.6` -> ('sglang', '0.5.6')), None unpinned."""
    name, pin, release = engine.partition(PIN)
    return name.strip(), (release.strip() or None) if pin else None


def release_version(release: str) -> Version:
    """A release as PEP 440 compares it: `v0.11.0` and `0.11.0` alike, a llama.cpp build `b6500` as 6500."""
    text = release.strip()
    text = text[1:] if re.fullmatch(r"[vb]\d.*", text) else text
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(f"'{release}' is not a release number (e.g. 0.11.0, v0.5.6, 1.2.0rc1; b6500 for llama.cpp "
                         "builds)") from None


def pinned_engine(engine: str) -> str:
    """An engine as a request names it, checked: a name, or a name pinned to a release it can read
    (`sglang==v0.5.6` -> `sglang==0.5.6`); the generic `serving` engine has no releases."""
    name, release = split_engine(engine)
    if release is None:
        if PIN in engine:
            raise ValueError(f"'{engine}' pins no release: write the engine's name, or name==release (sglang==0.5.6)")
        return engine
    if name == "serving":
        raise ValueError("the generic 'serving' engine has no releases: pin a named engine (vllm==0.11.0)")
    release_version(release)  # a release it can compare, or ValueError
    return name + PIN + (release[1:] if re.fullmatch(r"v\d.*", release) else release)



def plan_engine(engine: str | None) -> str | None:
    """An engine a plan is asked for (`advise`, `configs`): a name only. A plan is priced at the release its
    deployment configs run (the profile's `deployed_release`, their image's tag), so a pin is refused, saying
    where a release is predicted."""
    if engine is None or PIN not in engine:
        return engine
    raise ValueError(f"'{engine}': a plan is priced at the release its deployment configs run "
                     "(`optiplan catalog engines` lists each engine's), so a plan takes an engine's name "
                     f"only; to predict another release, run `optiplan profile --engine {engine}`")
