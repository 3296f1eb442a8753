"""The library calls behind the routes, each the function the CLI command calls, with its request's names confined
to the server's folders. Advice is cached by its request model (bounded), so repeated questions cost a lookup."""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ..schema.advice import Advice, AdviseRequest
from ..schema.core import ProfileRequest
from .paths import Roots
from .requests import ConfigsRequest, confine_advise, confine_profile

if TYPE_CHECKING:
    from ..deploy.bundle import Bundle

CACHE_ENTRIES = 256
# threads computing advice, profiles and configs at once (two computing, the others waiting on a computation of the
# same request): further requests wait in the event loop, never in the server's thread pool, which stays free for
# /healthz, /metrics and the job routes (50 advice requests at once had held a liveness probe 5.5 s)
ADVICE_THREADS = 4


def advice_threads() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(ADVICE_THREADS)


async def off_loop(limiter: anyio.CapacityLimiter, fn, *args) -> Any:
    """fn(*args) in one of the advice threads."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


class AdviceCache:
    """A small LRU of advice by request JSON: bounded memory, thread-safe, and single-flight: requests that miss on
    the same key while it is being computed wait for that computation instead of repeating it."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._pending: dict[tuple[str, str], threading.Event] = {}
        # advice is pure Python: threads computing at once only share the GIL and all finish late; two at a time
        # serve the first misses first (and let a slow `auto` search not hold up everything)
        self._computing = threading.BoundedSemaphore(2)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def peek(self, key: tuple[str, str]):
        """The cached value, or None: never computes (the event loop's fast path)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        return None

    def get(self, key: tuple[str, str], make, leaf: bool = False):
        """The value for `key`, computed by `make` on a miss. `leaf`: make computes advice itself (no nested get),
        so it may wait for one of the two computing slots without holding one (no deadlock)."""
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return self._items[key]
                running = self._pending.get(key)
                if running is None:
                    self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            running.wait()  # then look again: the value, or (the computation failed) compute it here
        try:
            if leaf:
                with self._computing:
                    value = make()
            else:
                value = make()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._items)}


def run_profile(request: ProfileRequest, roots: Roots):
    from ..plan.engine_support import checked_profile

    return checked_profile(confine_profile(request, roots))


def advise_key(request: AdviseRequest, roots: Roots) -> str | None:
    """The cache key of a request: its confined form as JSON; None where the answer may change between calls
    (`local` hardware, whose calibration a job may rewrite; a model folder, whose files may change)."""
    confined = confine_advise(request, roots)
    if confined.hardware.strip().lower() == "local" or confined.model != request.model:
        return None
    return confined.model_dump_json()


def run_advise(request: AdviseRequest, roots: Roots, cache: AdviceCache) -> Advice:
    """The CLI's advise; ImpossibleError (with its document) propagates as it does there."""
    from ..plan.advise import advise

    key = advise_key(request, roots)
    confined = confine_advise(request, roots)
    return advise(confined) if key is None else cache.get(("advice", key), lambda: advise(confined), leaf=True)


def advice_json(request: AdviseRequest, roots: Roots, cache: AdviceCache) -> bytes:
    """The response body of POST /v1/advise, serialized once per distinct request."""
    key = advise_key(request, roots)
    if key is None:  # a model folder: its path on the server becomes its label (models:<name>)
        return roots.redact(run_advise(request, roots, cache).model_dump_json()).encode()
    return cache.get(("body", key), lambda: run_advise(request, roots, cache).model_dump_json().encode())


def advice_html(request: AdviseRequest, roots: Roots, cache: AdviceCache) -> str:
    """The report `advise --format html` writes, the same template and charts."""
    from ..report.advice import render

    advice = run_advise(request, roots, cache)
    return cache.get(("html", advice.model_dump_json()), lambda: roots.redact(render(advice, "html")))


def run_configs(request: ConfigsRequest, roots: Roots, cache: AdviceCache) -> Bundle:
    """The CLI's configs: each engine's plan, rendered (the files by relative path, and the notes, skipped targets and
    warnings the CLI prints), with server paths redacted."""
    from ..deploy.bundle import Bundle, configs

    fields = request.model_dump(exclude={"target", "serving_engine"})

    def advise_for(engine: str | None, device: str, devices: int | None):
        return run_advise(AdviseRequest(**fields | {"engine": engine, "hardware": device, "num_devices": devices}),
                          roots, cache)

    result = configs(request.target, request.serving_engine, request.hardware, request.num_devices, advise_for)
    return Bundle(roots.redact(result.files), *(roots.redact(lines) for lines in
                                                (result.skipped, result.notes, result.warnings)), target=result.target)


def zip_files(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in sorted(files.items()):
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
    return buffer.getvalue()


def catalog(what: str) -> list[dict[str, Any]]:
    """`optiplan catalog WHAT --json` and `optiplan techniques --json`."""
    if what == "techniques":
        from ..plan.graph import describe
        from ..plan.techniques import all_techniques

        return [describe(t) for t in all_techniques().values()]
    from ..report.console import catalog_rows

    return catalog_rows(what)
