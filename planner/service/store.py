"""Where jobs live: one JSON document per job, changed only by atomic read-modify-write (`Store.update`), so the
API, the in-process pool and remote workers agree on each job's state. `SqliteStore` (a file in the workdir) is the
embedded default; `RedisStore` (redis_queue.py) serves several machines. The state machine is here, once."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .paths import CALIBRATION_WRITER

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
LOG_LINES = 200  # the tail a job keeps: enough to see what went wrong, bounded per job


class Job(BaseModel):
    """A job as the API shows it (`GET /v1/jobs/{id}`)."""

    id: str
    kind: str
    request: dict[str, Any] = Field(description="the job's request as the client sent it (names, not paths)")
    state: State = "queued"
    progress: float = Field(0.0, ge=0, le=1, description="fraction done, from the steps the job has passed")
    step: str = "queued"
    log: list[str] = Field([], description=f"the last {LOG_LINES} lines of the job's log")
    result: Any = None
    error: str | None = None
    output: str | None = Field(None, description="the name it writes under the workdir; @calibration for a calibrate "
                                                 "job, which rewrites the machine's calibration file (one at a time)")
    reads: list[str] = Field([], description="the names under the workdir it reads (another job's outputs)")
    worker: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    cancel_requested: bool = False
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None


def new_job(kind: str, request: dict[str, Any], output: str | None, max_attempts: int = 1,
            reads: list[str] = ()) -> Job:
    return Job(id=uuid.uuid4().hex[:16], kind=kind, request=request, output=output, max_attempts=max_attempts,
               reads=list(reads))


def tail(log: list[str], lines: list[str]) -> list[str]:
    return (log + [line[:1000] for line in lines])[-LOG_LINES:]


def outputs_overlap(a: str, b: str) -> bool:
    """Two normalised output names that one write could clash on: the same, or one inside the other."""
    pa, pb = a.split("/"), b.split("/")
    return pa[: len(pb)] == pb or pb[: len(pa)] == pa


def writer_conflict(job: Job, active: list[Job]) -> tuple[Job, str] | None:
    """The unfinished job that `job` would clash with on the workdir, and on which name: one writing `job`'s output
    (or a folder inside it or around it), one reading a name that `job` writes (a forced apply replacing the folder a
    verify is reading), or one writing a name that `job` reads. Readers of one name do not clash."""
    for other in active:
        if other.state in TERMINAL or other.id == job.id:
            continue
        if job.output and other.output and outputs_overlap(other.output, job.output):
            return other, f"is writing {'it' if other.output == job.output else repr(other.output)}"
        if job.output and (name := next((r for r in other.reads if outputs_overlap(r, job.output)), None)):
            return other, f"is reading {'it' if name == job.output else repr(name)}"
        if other.output and (name := next((r for r in job.reads if outputs_overlap(r, other.output)), None)):
            inside = "" if name == other.output else f" ({name!r})"
            return other, f"is writing {other.output!r}, which this job reads{inside}"
    return None


def refuse_writer(job: Job, conflict: tuple[Job, str]) -> None:
    from ..errors import ServiceRefused

    other, what = conflict
    target = f"output '{job.output}'" if job.output else f"{job.kind} of {', '.join(repr(r) for r in job.reads)}"
    if job.output == other.output == CALIBRATION_WRITER:
        target, what = "calibrate", "is calibrating this machine (its one calibration file: one such job at a time)"
    raise ServiceRefused(f"{target}: another job ({other.id}) {what}; one writer per workdir name (and none inside "
                         "another's), and no reader of a name being written", 409)


class Store:
    """The job operations, built on four primitives a backend provides: insert, get, list and an atomic update."""

    def insert(self, job: Job) -> Job:
        raise NotImplementedError

    def insert_writer(self, job: Job) -> Job:
        """Insert `job` unless it clashes with an unfinished job on the workdir (`writer_conflict`: 409): the check
        and the insert are one atomic step, so two requests at once cannot both pass."""
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        raise NotImplementedError

    def list(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """The newest jobs first, from the `offset`-th on (a page of `limit`)."""
        raise NotImplementedError

    def update(self, job_id: str, change: Callable[[Job], dict[str, Any] | None]) -> Job | None:
        """Apply `change` (the job -> the fields to set, or None for no change) atomically; the job after it."""
        raise NotImplementedError

    def now(self) -> float:
        """The clock heartbeats are stamped and judged by: one clock for every process that shares the store (this
        machine's for SQLite; Redis's own for workers on several machines, whose clocks may disagree)."""
        return time.time()

    def forget(self, ended_before: float, limit: int = 1000) -> int:
        """Delete up to `limit` jobs that ended before `ended_before` (their documents, logs and results; never their
        outputs); the number deleted."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(STATES, 0)
        for job in self.list(limit=100_000):
            found[job.state] += 1
        return found

    # ---- the state machine -------------------------------------------------------------------------------------
    def claim(self, job_id: str, worker: str) -> Job | None:
        """queued -> running for this worker, once: returns None when another worker has it or it is finished."""
        now = self.now()
        claimed = []

        def change(job: Job):
            if job.state != "queued":
                return None
            claimed.append(True)
            return {"state": "running", "worker": worker, "attempt": job.attempt + 1, "started_at": now,
                    "heartbeat_at": now, "step": "starting", "progress": 0.0,
                    "log": tail(job.log, [f"attempt {job.attempt + 1} started on {worker}"])}

        job = self.update(job_id, change)
        return job if claimed else None

    def heartbeat(self, job_id: str, attempt: int, lines: list[str] = (), progress: float | None = None,
                  step: str | None = None) -> Job | None:
        """Record that the attempt is alive, with new log lines and progress; the job as it stands (a cancel)."""

        def change(job: Job):
            if job.state != "running" or job.attempt != attempt:
                return None
            fields: dict[str, Any] = {"heartbeat_at": self.now()}
            if lines:
                fields["log"] = tail(job.log, list(lines))
            if progress is not None:
                fields["progress"] = max(job.progress, min(1.0, progress))
            if step is not None:
                fields["step"] = step[:300]
            return fields

        return self.update(job_id, change)

    def finish(self, job_id: str, attempt: int, state: State, result: Any = None, error: str | None = None,
               lines: list[str] = ()) -> Job | None:
        """running -> a terminal state, only for the attempt that runs it."""

        def change(job: Job):
            if job.state != "running" or job.attempt != attempt:
                return None
            return {"state": state, "result": result, "error": error, "finished_at": time.time(),
                    "progress": 1.0 if state == "succeeded" else job.progress, "step": state,
                    "log": tail(job.log, list(lines))}

        return self.update(job_id, change)

    def cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop (its runner kills the process)."""

        def change(job: Job):
            if job.state == "queued":
                return {"state": "cancelled", "step": "cancelled", "finished_at": time.time(),
                        "log": tail(job.log, ["cancelled before it started"])}
            if job.state == "running" and not job.cancel_requested:
                return {"cancel_requested": True, "log": tail(job.log, ["cancel requested"])}
            return None

        return self.update(job_id, change)

    def interrupted(self, job_id: str, reason: str, retry: bool, stale_before: float | None = None) -> Job | None:
        """A running job whose runner is gone (server restart, a worker killed): queued again for another attempt
        when `retry` and attempts are left, else failed with the reason. With `stale_before`, only if its last
        heartbeat is older than that (a runner that just reported is alive)."""

        def change(job: Job):
            if job.state != "running" or (stale_before is not None and (job.heartbeat_at or 0) >= stale_before):
                return None
            if job.cancel_requested:
                return {"state": "cancelled", "step": "cancelled", "finished_at": time.time(),
                        "log": tail(job.log, [reason])}
            if retry and job.attempt < job.max_attempts:
                return {"state": "queued", "step": "queued (retry)", "worker": None, "progress": 0.0,
                        "log": tail(job.log, [f"{reason}; queued again (attempt {job.attempt + 1} of "
                                               f"{job.max_attempts})"])}
            return {"state": "failed", "step": "failed", "error": reason, "finished_at": time.time(),
                    "log": tail(job.log, [reason])}

        return self.update(job_id, change)

    def in_state(self, state: str) -> list[Job]:
        """The jobs in `state` (a backend with an index of them reads only those)."""
        return [j for j in self.list(limit=100_000) if j.state == state]

    def stale(self, older_than_s: float) -> list[Job]:
        """Running jobs whose runner has not reported for `older_than_s` seconds."""
        cutoff = self.now() - older_than_s
        return [j for j in self.in_state("running") if (j.heartbeat_at or 0) < cutoff]


class SqliteStore(Store):
    """Jobs in a SQLite file (WAL: readers never wait for the writer); survives a restart of the server."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created REAL, state TEXT, doc TEXT)")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created)")

    def insert(self, job: Job) -> Job:
        with self._lock:
            self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?)",
                             (job.id, job.created_at, job.state, job.model_dump_json()))
        return job

    def insert_writer(self, job: Job) -> Job:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock across processes: no insert between check and ours
            try:
                rows = self._db.execute("SELECT doc FROM jobs WHERE state IN ('queued', 'running')").fetchall()
                other = writer_conflict(job, [Job.model_validate_json(r[0]) for r in rows])
                if other is None:
                    self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?)",
                                     (job.id, job.created_at, job.state, job.model_dump_json()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if other is not None:
            refuse_writer(job, other)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM jobs ORDER BY created DESC LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
        return [Job.model_validate_json(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return dict.fromkeys(STATES, 0) | dict(rows)

    def update(self, job_id, change):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock across processes, for the read-modify-write
            try:
                row = self._db.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                job = Job.model_validate_json(row[0])
                fields = change(job)
                if fields:
                    job = job.model_copy(update=fields)
                    self._db.execute("UPDATE jobs SET state = ?, doc = ? WHERE id = ?",
                                     (job.state, job.model_dump_json(), job_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return job

    def forget(self, ended_before: float, limit: int = 1000) -> int:
        with self._lock:
            ended = self._db.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') "
                "AND COALESCE(json_extract(doc, '$.finished_at'), created) < ? LIMIT ?)", (ended_before, limit))
            return ended.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Retention:
    """Forgets ended jobs `days` after they ended (0: never), at most once every `every_s` seconds: called by the
    embedded queue after each job and by Redis workers each reaper round, so the job database stays bounded."""

    def __init__(self, store: Store, days: float, every_s: float = 600.0):
        self.store, self.days, self.every_s, self.last = store, days, every_s, float("-inf")

    def __call__(self) -> int:
        now = time.monotonic()
        if self.days <= 0 or now - self.last < self.every_s:
            return 0
        self.last = now
        cutoff, forgotten = self.store.now() - self.days * 86400, 0
        while (n := self.store.forget(cutoff)) > 0:
            forgotten += n
        return forgotten


def encode(job: Job) -> str:
    return job.model_dump_json()


def decode(text: str | bytes) -> Job:
    return Job.model_validate(json.loads(text))
