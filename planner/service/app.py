"""The FastAPI application: the CLI's requests over HTTP (profile, advise, configs, catalog), jobs for long work,
metrics and health; every error one JSON object `{"error": sentence, "status": code}`, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import warnings
from contextlib import asynccontextmanager
from typing import Annotated, Literal, Union

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser

from ... import __version__
from ..errors import ImpossibleError, OptiplanError, ServiceRefused
from ..schema.advice import AdviseRequest
from ..schema.core import ProfileRequest
from . import calls
from .fields import in_request_terms
from .metrics import Metrics
from .requests import (ApplyJob, BenchJob, CalibrateJob, ConfigsRequest, VerifyJob, job_arguments, job_output,
                       job_reads)
from .security import OPEN_PATHS, BodyLimit, Settings, authorized, cross_site, host_allowed, with_page_headers
from .store import TERMINAL, SqliteStore, new_job

JobRequest = Annotated[Union[ApplyJob, VerifyJob, CalibrateJob, BenchJob], Body(discriminator="kind")]
JSON = "application/json"
LOG = logging.getLogger("optiplan.service")
# the most log lines of each job the list of jobs carries (`GET /v1/jobs?log=N`): a job's own page has its tail whole
LIST_LOG_LINES = 20


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def _validation_message(errors: list[dict]) -> str:
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") in ("model_attributes_type", "dict_type",
                                                                         "model_type"):
        return "the body must be a JSON object (Content-Type: application/json)"
    return f"{where}: {message}" if where else message


# the request model each route takes, whose fields its error messages suggest (`fields.in_request_terms`)
ROUTE_REQUESTS = {"/v1/advise": "advise", "/v1/profile": "profile", "/v1/configs": "configs", "/report": "web",
                  "/configs.zip": "web"}


def _in_request_terms(request: Request, message: str) -> str:
    """A library message as the route's client reads it: the request fields it suggests, not the CLI's options."""
    route = ROUTE_REQUESTS.get(request.url.path)
    return in_request_terms(message, route) if route else message


def internal_error(method: str, path: str, exc: Exception):
    """An unexpected error's answer: the client gets an id to quote, never the exception (it may hold paths, hosts,
    values); the log has the traceback under that id."""
    incident = uuid.uuid4().hex[:12]
    LOG.error("internal error %s on %s %s", incident, method, path, exc_info=exc)
    return error(500, f"internal error (id {incident}); the server's log has the details under that id", id=incident)


class Guard:
    """ASGI middleware: requests addressed to localhost only (without a token), requests that change something
    refused from another site (security.cross_site), the token on every route but /healthz (401 JSON for the API,
    the login page for a browser), and each request counted and timed by its route for /metrics."""

    def __init__(self, app, settings: Settings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": with_page_headers(message.get("headers") or [])}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        # Starlette's parser, as browsers send them: SimpleCookie drops every cookie when one is malformed (another
        # app's on localhost), and the token's with them
        cookies = cookie_parser(headers.get("cookie", ""))
        if not host_allowed(self.settings.token, headers.get("host", "")):
            response = error(403, f"this server has no token and answers only requests addressed to localhost, "
                                  f"not to '{headers.get('host', '')[:100]}'")
            await response(scope, receive, counting_send)
        elif refusal := cross_site(scope["method"], scope["path"], scope.get("scheme", "http"), headers):
            await error(*refusal)(scope, receive, counting_send)
        elif scope["path"] in OPEN_PATHS or authorized(self.settings.token, headers, cookies):
            started_response = [False]

            async def tracking_send(message):
                started_response[0] |= message["type"] == "http.response.start"
                await counting_send(message)

            try:
                await self.app(scope, receive, tracking_send)
            except Exception as exc:  # answered here, so the 500 is counted and carries the page headers too
                if started_response[0]:
                    raise
                await internal_error(scope["method"], scope["path"], exc)(scope, receive, counting_send)
        else:
            wants_page = scope["method"] == "GET" and "text/html" in headers.get("accept", "") \
                and not scope["path"].startswith("/v1/")
            if wants_page:
                target = scope["path"] + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
                from urllib.parse import quote

                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            else:
                response = error(401, "this server needs its token: send 'Authorization: Bearer <token>'")
                response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, counting_send)
        route = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.observe(scope["method"], route, status[0], time.perf_counter() - started)


def make_queue(settings: Settings):
    """The embedded queue (SQLite in the workdir, a pool of runner threads) or Redis through RQ."""
    if settings.queue == "local":
        from .jobs import LocalQueue

        store = SqliteStore(settings.roots.workdir / "jobs.sqlite")
        return LocalQueue(store, settings.roots, settings.workers, settings.allow_pickle, settings.keep_jobs_days)
    from .redis_queue import RedisQueue

    return RedisQueue(settings.queue)


def create_app(settings: Settings) -> FastAPI:
    # FastAPI wraps a body model in Annotated[..., Field(alias=name)], which pydantic 2.12+ warns about when it
    # builds the (deferred) validator on the first request; the alias is FastAPI's own and harmless
    warnings.filterwarnings("ignore", message="The 'alias' attribute with value", category=UserWarning)
    queue = make_queue(settings)
    store, metrics, cache = queue.store, Metrics(), calls.AdviceCache()
    roots = settings.roots

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()
        yield
        queue.shutdown()

    app = FastAPI(title="optiplan", version=__version__, lifespan=lifespan,
                  description="The optiplan CLI over HTTP: the same request models and the same versioned JSON.")
    app.state.settings, app.state.store, app.state.queue, app.state.cache = settings, store, queue, cache
    app.state.advice_threads = threads = calls.advice_threads()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Guard, settings=settings, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return error(422, _in_request_terms(request, _validation_message(list(exc.errors()))))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        messages = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in messages else \
            messages.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, detail)

    @app.exception_handler(ServiceRefused)
    async def refused(request, exc: ServiceRefused):
        return error(exc.status, roots.redact(str(exc)))

    @app.exception_handler(ImpossibleError)
    async def impossible(request, exc: ImpossibleError):
        document = json.loads(exc.document.model_dump_json()) if exc.document is not None else None
        return error(422, roots.redact(_in_request_terms(request, str(exc))), document=roots.redact(document))

    @app.exception_handler(OptiplanError)
    async def bad_input(request, exc: OptiplanError):  # library errors name the files they read: labels instead
        return error(400, roots.redact(_in_request_terms(request, str(exc))))

    @app.exception_handler(ValidationError)
    async def bad_values(request, exc: ValidationError):
        return error(400, roots.redact(_in_request_terms(request, _validation_message(list(exc.errors())))))

    @app.get("/healthz", tags=["service"])
    async def healthz():  # on the event loop: a liveness probe never waits for a thread
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus():
        return PlainTextResponse(metrics.render(store.counts(), cache.stats()),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/v1/profile", tags=["advice"])
    async def profile(request: ProfileRequest):
        """`optiplan profile --json`."""
        document = await calls.off_loop(threads, calls.run_profile, request, roots)
        return Response(roots.redact(document.model_dump_json()), media_type=JSON)

    @app.post("/v1/advise", tags=["advice"])
    async def advise(request: AdviseRequest):
        """`optiplan advise --format json`; a workload nothing meets answers 422 with the document."""
        key = calls.advise_key(request, roots)  # a cached answer is sent from the event loop, without a thread
        body = cache.peek(("body", key)) if key is not None else None
        if body is None:
            body = await calls.off_loop(threads, calls.advice_json, request, roots, cache)
        return Response(body, media_type=JSON)

    @app.post("/v1/configs", tags=["advice"])
    async def configs(request: ConfigsRequest, http: Request):
        """`optiplan configs`: the files as JSON, or a zip with `Accept: application/zip`."""
        result = await calls.off_loop(threads, calls.run_configs, request, roots, cache)
        if "application/zip" in http.headers.get("accept", ""):
            return Response(calls.zip_files(result.files), media_type="application/zip",
                            headers={"Content-Disposition": 'attachment; filename="optiplan-configs.zip"'})
        return {"target": result.target, "files": result.files, "skipped": result.skipped, "notes": result.notes,
                "warnings": result.warnings}

    @app.get("/v1/catalog/{what}", tags=["advice"])
    def catalog(what: Literal["models", "hardware", "workloads", "engines", "techniques"]):
        """`optiplan catalog WHAT --json` (and `optiplan techniques --json`)."""
        return calls.catalog(what)

    @app.get("/v1/models", tags=["advice"])
    def model_folders():
        """The model folders in the server's --models-dir roots, by the names requests use."""
        return {"folders": roots.model_folders()}

    @app.post("/v1/jobs", status_code=202, tags=["jobs"])
    def submit(job: JobRequest):
        """Start apply, verify, calibrate or bench; names are inside the server's folders. 202 with the id."""
        job_arguments(job, roots, settings.allow_pickle)  # refuse a bad job now, not in the worker
        record = new_job(job.kind, job.model_dump(mode="json", exclude_defaults=False), job_output(job, roots),
                         max_attempts=settings.max_attempts, reads=job_reads(job, roots))
        store.insert_writer(record)  # one writer per workdir name, none while it is read: checked and inserted at once
        try:
            queue.submit(record.id)
        except Exception:  # noqa: BLE001  stored but not handed over: Redis workers hand it over (requeue_orphans)
            if settings.queue == "local":
                raise
            LOG.warning("job %s stored but not handed to the workers yet; they take it up themselves", record.id)
        return {"id": record.id, "state": record.state, "url": f"/v1/jobs/{record.id}"}

    @app.get("/v1/jobs", tags=["jobs"])
    def jobs(limit: int = 50, offset: int = 0, log: int = 0):
        """The newest jobs first, without their results: `limit` of them (at most 500) from the `offset`-th on, so
        that older ones can be paged through, each with the last `log` lines of its log (at most LIST_LOG_LINES; none
        by default), so that a page polling the list shows what its jobs last said."""
        limit, log = max(1, min(limit, 500)), max(0, min(log, LIST_LOG_LINES))
        return [j.model_dump(exclude={"result"} | ({"log"} if not log else set())) | (
            {"log": j.log[-log:]} if log else {}) for j in store.list(limit, max(0, offset))]

    def get_job(job_id: str):
        job = store.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise ServiceRefused(f"no job '{job_id[:64]}'", 404)
        return job

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def job(job_id: str):
        """State, progress (step, fraction), the log's tail and the result."""
        return get_job(job_id)

    @app.delete("/v1/jobs/{job_id}", status_code=202, tags=["jobs"])
    def cancel(job_id: str):
        """Cancel: a queued job at once, a running one as soon as its runner sees it (its process is killed); a job
        that has finished is refused (409), as nothing is left to cancel."""
        job = get_job(job_id)
        if job.state in ("queued", "running"):
            # the store decides in one update: cancelled, asked to stop, or ended in between (refused as ended)
            job = store.cancel(job_id) or get_job(job_id)
            if job.state in ("queued", "running", "cancelled"):
                return job
        raise ServiceRefused(f"job '{job_id}' has ended ({job.state}): nothing to cancel", 409)

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    async def events(job_id: str, request: Request):
        """Server-sent events: the job each time it changes, until it ends."""
        await run_in_threadpool(get_job, job_id)

        async def stream():
            last, quiet = None, 0.0
            while not await request.is_disconnected():
                job = await run_in_threadpool(store.get, job_id)
                if job is None:  # forgotten meanwhile (retention): nothing more will come
                    return
                seen = (job.state, job.progress, job.step, len(job.log), job.log[-1:], job.cancel_requested)
                if seen != last:
                    last, quiet = seen, 0.0
                    yield f"event: job\ndata: {job.model_dump_json(exclude={'result'})}\n\n"
                    if job.state in TERMINAL:
                        return
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)
                quiet += 0.5

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    from .web import router

    app.include_router(router)
    return app
