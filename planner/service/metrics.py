"""Prometheus text for `GET /metrics`: requests by route and status, request latency as a histogram, jobs by
state. Kept by hand (a few counters under a lock) rather than with a client library: the format is four lines
of text per series and the service needs nothing else from one."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS_S))
        self.sum_s: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets[route]
            for i, bound in enumerate(BUCKETS_S):
                if seconds <= bound:
                    counts[i] += 1
            self.sum_s[route] += seconds
            self.count[route] += 1

    def render(self, jobs: dict[str, int], cache: dict[str, int]) -> str:
        lines = ["# HELP optiplan_requests_total HTTP requests by method, route and status.",
                 "# TYPE optiplan_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'optiplan_requests_total{{method="{method}",route="{_label(route)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP optiplan_request_seconds Request latency by route.",
                      "# TYPE optiplan_request_seconds histogram"]
            for route in sorted(self.count):
                r = _label(route)
                for bound, n in zip(BUCKETS_S, self.buckets[route]):
                    lines.append(f'optiplan_request_seconds_bucket{{route="{r}",le="{bound:g}"}} {n}')
                lines.append(f'optiplan_request_seconds_bucket{{route="{r}",le="+Inf"}} {self.count[route]}')
                lines.append(f'optiplan_request_seconds_sum{{route="{r}"}} {self.sum_s[route]:.6f}')
                lines.append(f'optiplan_request_seconds_count{{route="{r}"}} {self.count[route]}')
        lines += ["# HELP optiplan_jobs Jobs by state.", "# TYPE optiplan_jobs gauge"]
        lines += [f'optiplan_jobs{{state="{state}"}} {n}' for state, n in sorted(jobs.items())]
        lines += ["# HELP optiplan_advice_cache Advice cache hits, misses and entries.",
                  "# TYPE optiplan_advice_cache gauge"]
        lines += [f'optiplan_advice_cache{{kind="{k}"}} {v}' for k, v in sorted(cache.items())]
        return "\n".join(lines) + "\n"
