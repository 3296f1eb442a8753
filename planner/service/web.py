"""The web page: a form for the advice (catalog model or a models-dir folder, hardware or auto, devices, workload,
goal, quality budget, engine), the report at a shareable `/report?...` URL (the very HTML `advise --format html`
writes), two devices side by side, configs to download, and the jobs with live progress. Server-side jinja2
templates (templates/service/) and a little JavaScript, no build step."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import __version__, profiles
from ..errors import ImpossibleError, ServiceRefused
from ..schema.advice import AdviseRequest
from . import calls
from .requests import ConfigsRequest
from .security import COOKIE, authorized

router = APIRouter(include_in_schema=False)
GOALS = ("", "memory", "latency", "throughput", "context", "training", "cost")
ENGINES = ("", "vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp")
TARGETS = ("vllm", "sglang", "tgi", "trtllm", "llama.cpp", "compose", "kubernetes", "all")
FIELDS = ("model", "hardware", "devices", "workload", "goal", "quality", "engine")
# what the report's query takes: the form's fields, a device to compare, and the configs target the form carries
QUERY_FIELDS = frozenset({*FIELDS, "compare", "target"})


def page(name: str, **context: Any) -> str:
    from ..report.advice import template_env

    return template_env().get_template(f"service/{name}.html.j2").render(version=__version__, **context)


def _int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ServiceRefused(f"{what} '{value[:40]}' is not a whole number", 400) from None
    if not 1 <= number <= 100_000:
        raise ServiceRefused(f"{what} {number} is out of range (1 to 100000)", 400)
    return number


def advise_request(query: dict[str, str], hardware: str | None = None) -> dict[str, Any]:
    """The form's fields as AdviseRequest fields, as the CLI's advise builds them from its options."""
    from ..catalog.workloads import parse_percent

    if not query.get("model"):
        raise ServiceRefused("model: choose a model", 400)
    return {"model": query["model"], "hardware": hardware or query.get("hardware") or "auto",
            "num_devices": _int(query.get("devices"), "devices"), "workload": query.get("workload") or None,
            "goal": query.get("goal") or None, "engine": query.get("engine") or None,
            "max_quality_loss_pct": parse_percent(query.get("quality") or None)}


@router.get("/", response_class=HTMLResponse)
def index(request: Request):
    roots, models = request.app.state.settings.roots, calls.catalog("models")
    return page("index", models=[m["name"] for m in models], folders=roots.model_folders(),
                hardware=[h["id"] for h in calls.catalog("hardware")],
                workloads=[w["name"] for w in calls.catalog("workloads")], goals=GOALS, engines=ENGINES,
                targets=TARGETS, techniques=[t["id"] for t in calls.catalog("techniques")])


@router.get("/report", response_class=HTMLResponse)
async def report(request: Request):
    """The advice report; with `compare=<device>`, both devices side by side (each its own shareable report)."""
    return await calls.off_loop(request.app.state.advice_threads, _report, request)


def _report(request: Request):
    # the form's own fields; its configs target rides along (the same form downloads the configs) and is not the report's
    unknown = sorted(set(request.query_params) - QUERY_FIELDS)
    if unknown:
        raise ServiceRefused(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the report "
                             f"takes {', '.join((*FIELDS, 'compare'))}", 400)
    query = {k: v for k, v in request.query_params.items() if k in (*FIELDS, "compare")}
    state = request.app.state
    # side by side, each side is a report of its own: both devices must be known before either frame loads
    for field in ("compare", "hardware") if query.get("compare") else ():
        device = query.get(field)
        if device and device not in ("auto", "local") and profiles.resolve_hardware_id(device) is None:
            raise ServiceRefused(f"{field}: unknown device '{device[:40]}' (a catalog device: "
                                 f"{', '.join(profiles.hardware_ids()[:8])}, ...)", 400)
    if query.get("compare"):
        single = {k: v for k, v in query.items() if k != "compare" and v}
        left = "/report?" + urlencode(single)
        right = "/report?" + urlencode(single | {"hardware": query["compare"]})
        AdviseRequest(**advise_request(query, query["compare"]))  # a bad field fails here, as one JSON error
        return page("compare", left=left, right=right, query=single, other=query["compare"])
    advise = AdviseRequest(**advise_request(query))
    try:
        html = calls.advice_html(advise, state.settings.roots, state.cache)
    except ImpossibleError as exc:
        if exc.document is None:
            raise
        from ..report.advice import render

        # the best plan, its misses in numbers; server paths redacted as in every other answer
        return HTMLResponse(state.settings.roots.redact(render(exc.document, "html")), status_code=422)
    return HTMLResponse(html)


@router.get("/configs.zip")
async def configs_zip(request: Request):
    """The deployment configs of the form's plan as a zip (POST /v1/configs for JSON)."""
    return await calls.off_loop(request.app.state.advice_threads, _configs_zip, request)


def _configs_zip(request: Request):
    query = dict(request.query_params)
    roots, cache = request.app.state.settings.roots, request.app.state.cache
    report = advise_request(query)
    # the form's engine is its report's; the configs are each planned for the engine they are written for
    fields = {k: v for k, v in report.items() if k != "engine"} | {"target": query.get("target") or None}
    fields["workload"] = fields["workload"] or "chat"
    if fields["hardware"] == "auto":
        # the configs follow the device the form's report picked (for the form's engine), not a pick of their own for
        # the engine they render: the two can differ (TGI's plan for a Llama-3.1-8B chat is cheapest on an MI300X where
        # the default engine's is on an MI325X)
        fields["hardware"], fields["num_devices"] = _report_device(AdviseRequest(**report), roots, cache)
    result = calls.run_configs(ConfigsRequest(**fields), roots, cache)
    name = f"optiplan-{result.target}-configs.zip".replace("/", "-")
    return Response(calls.zip_files(result.files), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _report_device(advise: AdviseRequest, roots, cache) -> tuple[str, int]:
    """(device id, count) the report of `advise` shows, its best plan's where no plan meets the goal."""
    try:
        chosen = calls.run_advise(advise, roots, cache).hardware
    except ImpossibleError as exc:
        if exc.document is None:
            raise
        chosen = exc.document.hardware
    return chosen.id, chosen.count


@router.get("/login", response_class=HTMLResponse)
def login_form(next: str = "/"):
    return page("login", next=_local(next), failed=False)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request):
    """The token typed once, kept in an HttpOnly, SameSite=Strict cookie for the page and its requests."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    token, target = form.get("token", ""), _local(form.get("next", "/"))

    if not authorized(request.app.state.settings.token, {"authorization": f"Bearer {token}"}, {}):
        return HTMLResponse(page("login", next=target, failed=True), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def _local(target: str) -> str:
    """Only a path on this server: never send the browser elsewhere after login."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
