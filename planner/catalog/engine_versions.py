"""Engine releases: a profile's facts describe the releases its `version` names, and its `versions` rules state what
other releases do differently, each with its source. An engine is named on its own (`sglang`: the profile's facts as
written) or pinned to a release as pip writes it (`sglang==0.5.6`): then the first rule whose `range` (a PEP 440
specifier set, `<0.5.8` or `>=0.5.8,<0.5.10`) holds the release, for each fact it sets, replaces the profile's.
A mapping a rule sets updates the profile's one level deep (`kv_memory: {speculative_mib: 4096}` keeps the rest of
its `kv_memory`); any other value, a list (`device_defaults` too) included, replaces the profile's. llama.cpp's builds
(`b6500`) compare by number."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..schema.releases import release_version

# the keys of a `versions` rule that say which releases it covers and why, not facts it sets
RULE_KEYS = ("range", "source", "note")


def rule_range(rule: dict[str, Any]) -> SpecifierSet:
    try:
        return SpecifierSet(rule["range"])
    except (KeyError, InvalidSpecifier):
        raise ValueError(f"an engine profile's `versions` rule needs a `range` such as '<0.5.8', not "
                         f"{rule.get('range')!r}") from None


def pinned_profile(profile: dict[str, Any], release: str) -> Mapping[str, Any]:
    """`profile` as the release runs: each fact from the first of its `versions` rules whose range holds the release
    and sets it, the profile's own otherwise (read through to it, so a change to the profile shows); `version`
    becomes the release, `version_rules` the ranges applied."""
    version = release_version(release)
    own: dict[str, Any] = {"version": release, "release": release, "version_rules": []}
    for rule in profile.get("versions") or []:
        if not rule_range(rule).contains(version, prereleases=True):
            continue
        own.update({k: {**profile[k], **v} if isinstance(v, dict) and isinstance(profile.get(k), dict) else v
                    for k, v in rule.items() if k not in RULE_KEYS and k not in own})
        own["version_rules"].append(rule["range"])
    return PinnedProfile(own, profile)


class PinnedProfile(dict):
    """A release's own facts over its profile's: a fact its rules set, else the profile's, read through (so a change
    to the profile shows, as a test's monkeypatch of it does). Lists only its own keys."""

    def __init__(self, own: dict[str, Any], profile: Mapping[str, Any]):
        super().__init__(own)
        self.profile = profile

    def __missing__(self, key: str) -> Any:
        return self.profile[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.profile

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key, self.profile.get(key, default))


def release_holds(release: str | None, spec: str | None) -> bool:
    """Whether a rule for the releases `spec` names (a `versions` condition of a device rule or a refusal; None:
    every release) holds for `release` (an engine's pinned release, else its profile's `release`: the one its facts
    as written describe; None: unknown, where only unconditioned rules hold)."""
    if spec is None:
        return True
    return release is not None and SpecifierSet(spec).contains(release_version(release), prereleases=True)


def profile_range(profile: Mapping[str, Any]) -> str | None:
    """The releases a profile's `version` names as a specifier set (`>=0.5`; llama.cpp's `>=b6500` as `>=6500`), or
    None where it names none that parses (`main (2024)`)."""
    spec = re.sub(r"([<>=!~]=?)\s*[vb](?=\d)", r"\1", str(profile.get("version", "")).split(" (")[0])
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    return spec or None


def _rule_ranges(profile: Mapping[str, Any]) -> list[str]:
    ranges = [r["range"] for r in profile.get("versions") or []]
    ranges += [r["when"]["versions"] for r in profile.get("device_defaults") or [] if "versions" in r["when"]]
    return ranges + [r["versions"] for r in (profile.get("state_models") or {}).get("refuses") or [] if "versions" in r]


def _builds(profile: Mapping[str, Any]) -> bool:
    return str(profile.get("version", "")).lstrip("<>=!~ ").startswith("b")


def release_ranges(profile: Mapping[str, Any]) -> list[str]:
    """Every range of releases a profile's rules name, in order: its `versions` rules', its device rules' and its
    state-model refusals' `versions` conditions (llama.cpp's written as builds, `<b6709`)."""
    named = [re.sub(r"([<>=!~]=?)(?=\d)", r"\1b", r) if _builds(profile) else r for r in _rule_ranges(profile)]
    return list(dict.fromkeys(named))


def release_boundaries(profile: Mapping[str, Any]) -> list[str]:
    """The releases at which a profile's facts change, oldest first: every bound its rules' ranges name, once
    (sglang's `<0.5.4`, `>=0.5.4,<0.5.7` and `>=0.5.7,<0.5.8`: 0.5.4, 0.5.7, 0.5.8)."""
    bounds = {spec.version for r in _rule_ranges(profile) for spec in SpecifierSet(r)}
    return [("b" if _builds(profile) else "") + v for v in sorted(bounds, key=release_version)]
