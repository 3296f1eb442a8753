"""Load on `optiplan serve`: N advise requests (catalog models), C at a time, against a running server: latency
p50/p95/p99, requests per second, the server's resident memory before and after, errors. Goals (issue 17, on the
2-core CI machine): zero errors, p95 under 1 s, at least 30 requests/s, memory bounded (advice is cached by its
request model, so repeated questions cost a lookup). Starts its own server on a free port unless --url is given
(then memory is not read). Prints the figures and writes benchmarks/results/service.json.

    python benchmarks/bench_service.py [--requests 200] [--concurrency 16] [--distinct 20] [--url http://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import write_results

MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mistral-7b-v0.1", "qwen2.5-7b", "mixtral-8x7b", "gemma-2-9b")
HARDWARE = ("l4", "a100-80gb-sxm", "h100-sxm", "l40s")
WORKLOADS = ("chat", "code-completion", "rag-long-context", "batch-offline")


def requests_to_send(count: int, distinct: int, seed: int) -> list[dict]:
    """`distinct` different advise requests, repeated in a shuffled order to make `count`."""
    import optiplan
    from optiplan import profiles
    from optiplan.planner.errors import ImpossibleError

    rng = random.Random(seed)
    models = [m for m in MODELS if m in profiles.model_names()] or profiles.model_names()[:6]
    pool: list[dict] = []
    while len(pool) < distinct:  # requests that have an answer: a workload nothing meets is a 422 by design
        body = {"model": rng.choice(models), "hardware": rng.choice(HARDWARE), "num_devices": rng.choice([1, 2, 4]),
                "workload": rng.choice(WORKLOADS)}
        try:
            optiplan.advise(**body)
        except ImpossibleError:
            continue
        if body not in pool:
            pool.append(body)
    sent = [pool[i % distinct] for i in range(count)]
    rng.shuffle(sent)
    return sent


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "optiplan.planner.cli.main", "serve", "--port", str(port),
                             "--workdir", str(workdir), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items() if k != "OPTIPLAN_TOKEN"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer /healthz within 60 s")


async def load(url: str, bodies: list[dict], concurrency: int, token: str | None) -> tuple[list[float], list[str]]:
    latencies, errors = [], []
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def one(body: dict) -> None:
            async with gate:
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/advise", json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(one(b) for b in bodies))
    return latencies, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--distinct", type=int, default=20, help="different requests among them")
    parser.add_argument("--url", default=None, help="a running server [default: start one]")
    parser.add_argument("--token", default=os.environ.get("OPTIPLAN_TOKEN"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bodies = requests_to_send(args.requests, args.distinct, args.seed)
    with tempfile.TemporaryDirectory(prefix="optiplan-bench-service-") as tmp:
        proc, url = (None, args.url) if args.url else start_server(Path(tmp) / "work")
        try:
            memory_before = rss_bytes(proc.pid) if proc else None
            start = time.perf_counter()
            latencies, errors = asyncio.run(load(url, bodies, args.concurrency, args.token))
            elapsed = time.perf_counter() - start
            memory_after = rss_bytes(proc.pid) if proc else None
            # the same load again: memory must stay where it is once every distinct request is cached
            again, errors_again = asyncio.run(load(url, bodies, args.concurrency, args.token))
            memory_again = rss_bytes(proc.pid) if proc else None
        finally:
            if proc:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:  # requests still open: do not leave the server behind
                    proc.kill()
                    proc.wait()
    ms = [x * 1000 for x in latencies]
    result = {
        "requests": args.requests, "concurrency": args.concurrency, "distinct_requests": args.distinct,
        "errors": len(errors), "error_samples": errors[:5],
        "latency_ms": {"p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1),
                       "p99": round(percentile(ms, 99), 1), "max": round(max(ms), 1),
                       "mean": round(statistics.fmean(ms), 1)},
        "requests_per_s": round(args.requests / elapsed, 1),
        "second_pass": {"errors": len(errors_again), "p95_ms": round(percentile([x * 1000 for x in again], 95), 1)},
        "server_rss_bytes": {"before": memory_before, "after": memory_after, "after_second_pass": memory_again},
        "cpus": os.cpu_count(),
    }
    lat = result["latency_ms"]
    print(f"{args.requests} advise requests, {args.concurrency} at a time, {args.distinct} distinct, "
          f"{os.cpu_count()} CPUs")
    print(f"  latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}")
    print(f"  throughput: {result['requests_per_s']} requests/s   errors: {len(errors)} "
          f"(second pass: {len(errors_again)}, p95 {result['second_pass']['p95_ms']} ms)")
    if memory_before:
        mib = [round(m / 2**20, 1) if m else None for m in (memory_before, memory_after, memory_again)]
        print(f"  server memory MiB: before {mib[0]}, after {mib[1]}, after a second pass {mib[2]}")
    goals = {"zero errors": not errors and not errors_again, "p95 under 1 s": lat["p95"] < 1000,
             "at least 30 requests/s": result["requests_per_s"] >= 30,
             "memory bounded (second pass within 5%)": not memory_after or memory_again <= memory_after * 1.05}
    result["goals"] = goals
    print("  goals: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in goals.items()))
    write_results("service", result)


if __name__ == "__main__":
    main()
