"""Whether the engine a profile names runs what its request asks for: `profile` prices any weight format, cache
format and speculation on any engine (a what-if), while `advise` plans only what the engine has an option for. Where
the engine has none (vLLM's int4 KV cache, TensorRT-LLM's NF4 weights, SGLang's int8 weight-only), the profile says
so and carries no accuracy bands: they were measured on setups the engine runs."""

from __future__ import annotations

from ..analytic import profile as analytic
from ..catalog.engine_refusals import FORMAT_TECHNIQUES
from ..catalog.engines import (
    GENERIC_SERVING,
    engine_defaults,
    engine_plans,
    engine_profile,
    engine_release,
    split_engine,
)
from ..schema import ProfileRequest
from ..schema.profile import Profile
from .techniques import all_techniques, no_option

# the plan technique each speculation of a profile stands for
SPECULATION_TECHNIQUES = {"draft": ("spec-draft",), "eagle3": ("spec-eagle3",), "mtp": ("spec-mtp",),
                          "ngram": ("spec-ngram",)}


def unsupported(engine: str, asked: tuple[str, ...]) -> str | None:
    """Why `engine` runs none of the techniques `asked` (the ones a format or speculation stands for; int4 weights
    are plain, AWQ or GPTQ), or None where it runs one: by an option plans use, one they do not (`unplanned`), or by
    default."""
    techniques, (name, pinned) = all_techniques(), split_engine(engine)
    release = engine if pinned or not engine_release(engine) else f"{name}=={engine_release(engine)}"
    unplanned = engine_profile(release).get("unplanned") or {}
    runs = (t for t in asked if t in techniques and (name in techniques[t].engines or t in engine_defaults(release)
                                                     or t in unplanned))
    if not asked or any(runs):
        return None
    return no_option(name, release, asked[0], asked[0])


def checked_profile(request: ProfileRequest) -> Profile:
    """`optiplan profile`, for the CLI, the Python API and the service alike: the analytic profile, with what its
    engine cannot run said (`with_engine_support`)."""
    return with_engine_support(analytic.profile(request))


def with_engine_support(result: Profile) -> Profile:
    """The profile with a warning for each part of its request its engine does not run, and then no accuracy bands;
    unchanged for the generic serving engine and for engines that are profiled, not planned for (gpt-fast)."""
    r = result.request
    if not engine_plans(r.engine) or split_engine(r.engine)[0] == GENERIC_SERVING:
        return result
    weights = FORMAT_TECHNIQUES["weights"].get(r.dtype or "", ())
    if r.dtype == "int8":  # weight-only, or W8A8 with int8 activations: two techniques, engines apart
        weights = ("weight-w8a8-int8",) if r.activations == "int8" else ("weight-int8",)
    asked = (weights, FORMAT_TECHNIQUES["cache"].get(r.kv_dtype or "", ()),
             SPECULATION_TECHNIQUES.get(r.speculative or "", ()))
    reasons = [why for parts in asked if (why := unsupported(r.engine, parts))]
    if not reasons:
        return result
    notes = [f"{why}: these figures price a setup the engine cannot run (`advise` plans only what it runs), so they "
             "carry no accuracy band" for why in reasons]
    return result.model_copy(update={"warnings": [*result.warnings, *notes], "accuracy": {}})
