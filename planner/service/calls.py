"""The library calls behind the routes, each the function the CLI command calls, with its request's names confined
to the server's folders. Advice is cached by its request model (bounded), so repeated questions cost a lookup."""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from typing import Any

from ..schema.advice import Advice, AdviseRequest
from ..schema.core import ProfileRequest
from .paths import Roots
from .requests import ConfigsRequest, confine_advise, confine_profile

CACHE_ENTRIES = 256


class AdviceCache:
    """A small LRU of Advice (and its HTML) by request JSON: bounded memory, thread-safe."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[str, str], make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
        value = make()  # outside the lock: two first requests may both compute, neither waits on the other
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return value

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._items)}


def run_profile(request: ProfileRequest, roots: Roots):
    from ..analytic.profile import profile

    return profile(confine_profile(request, roots))


def run_advise(request: AdviseRequest, roots: Roots, cache: AdviceCache) -> Advice:
    """The CLI's advise; ImpossibleError (with its document) propagates as it does there."""
    from ..plan.advise import advise

    confined = confine_advise(request, roots)
    if confined.hardware.strip().lower() == "local":  # this machine's calibration may change: not cached
        return advise(confined)
    return cache.get(("json", confined.model_dump_json()), lambda: advise(confined))


def advice_html(request: AdviseRequest, roots: Roots, cache: AdviceCache) -> str:
    """The report `advise --format html` writes, the same template and charts."""
    from ..report.advice import render

    advice = run_advise(request, roots, cache)
    return cache.get(("html", advice.model_dump_json()), lambda: render(advice, "html"))


def run_configs(request: ConfigsRequest, roots: Roots, cache: AdviceCache) -> tuple[dict[str, str], list[str]]:
    """The CLI's configs: a plan for the target engine, rendered; (files by relative path, skipped notes)."""
    from ..deploy.render import ENGINES, TARGETS, render_all
    from ..errors import UnknownNameError

    if request.target not in TARGETS:
        raise UnknownNameError("engine", request.target, TARGETS)
    plan_engine = request.target if request.target in ENGINES else (request.serving_engine or "vllm")
    fields = request.model_dump(exclude={"target", "serving_engine"}) | {"engine": plan_engine}
    advice = run_advise(AdviseRequest(**fields), roots, cache)
    targets = [t for t in TARGETS if t != "all"] if request.target == "all" else [request.target]
    return render_all(advice, targets)


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
