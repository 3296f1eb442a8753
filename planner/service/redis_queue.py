"""Jobs on Redis for several machines: the job documents in Redis (`RedisStore`, the same state machine as SQLite)
and the hand-off to workers through RQ. RQ because it is the smallest of the well-kept Redis queues that does what
is needed: plain functions enqueued by import path, blocking dequeue shared by any number of `optiplan worker`
processes, no broker besides Redis and no scheduler or result backend to run (Celery needs both configured; arq
wants async job functions; Dramatiq's Redis broker adds middleware we would not use). Which worker runs a job, its
progress, cancellation and retries stay in our store, so RQ only carries job ids, as JSON: RQ's default
serializer is pickle, and a worker unpickling what anyone who reaches Redis wrote would run their code."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Collection
from typing import Any

from .jobs import STORE_OUTAGE_S, Executor, recover
from .paths import Roots
from .store import STATES, TERMINAL, Job, Retention, Store, decode, encode, refuse_writer, writer_conflict

QUEUE = "optiplan"
RUN = "optiplan.planner.service.redis_queue.run_queued"
JOB_TIMEOUT_S = 24 * 3600  # RQ's own timeout, a backstop only: cancel and heartbeats are ours


def safe_url(url: str) -> str:
    """The queue URL as it may be printed: without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    host = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


# a store call that gets no answer this long fails (a half-open connection after a partition): the job's heartbeat
# then fails and its runner is stopped before another worker's retry writes the same output. RQ's own connection
# has none: its blocking dequeue waits longer than any such bound
STORE_TIMEOUT_S = 10


def connect(url: str, timeout_s: float | None = None):
    """A Redis client for `redis://host:port/db`, checked with a ping, or one clear sentence; `timeout_s`: how long a
    call may wait for its answer (keepalive on too)."""
    from redis import Redis
    from redis.exceptions import RedisError

    from ..errors import OptiplanError

    try:
        conn = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30, socket_timeout=timeout_s,
                              socket_keepalive=timeout_s is not None)
        conn.ping()
    except (RedisError, ValueError) as exc:
        raise OptiplanError(f"cannot reach the job queue at {safe_url(url)}: {exc}") from exc
    return conn


class RedisStore(Store):
    """Each job a JSON string at `optiplan:job:<id>`, listed by a sorted set of creation times and indexed by a set
    per state (so /metrics and the workers' reaper read counts and the running jobs, not every job); updates are
    optimistic transactions (WATCH/MULTI), retried when another process wrote the job in between."""

    def __init__(self, conn, prefix: str = "optiplan"):
        self.conn, self.prefix = conn, prefix
        self.index = f"{prefix}:jobs"
        self.ended = f"{prefix}:ended"  # ended jobs by the time they ended: what Retention forgets
        self._index_states()

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _state_key(self, state: str) -> str:
        return f"{self.prefix}:state:{state}"

    def _index_states(self) -> None:
        """Build the per-state sets and the ended jobs' times once for jobs stored before they existed (a marker
        says they are built). One optimistic transaction watching the list and every job it reads: a job that changes
        state, or one inserted, while it reads is written by its own transaction and this one is retried, so no job
        is indexed under a state it has left; two processes building them at once agree (each write is idempotent)."""
        from redis.exceptions import WatchError

        marker = f"{self.prefix}:state-index-2"
        with self.conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(marker, self.index)
                    if pipe.exists(marker):
                        pipe.unwatch()
                        return
                    ids = [i.decode() for i in pipe.zrange(self.index, 0, -1)]
                    keys = [self._key(i) for i in ids]
                    if keys:
                        pipe.watch(*keys)
                    jobs = [decode(raw) for raw in (pipe.mget(keys) if keys else []) if raw]
                    pipe.multi()
                    for job in jobs:
                        pipe.sadd(self._state_key(job.state), job.id)
                        if job.state in TERMINAL:
                            pipe.zadd(self.ended, {job.id: job.finished_at or job.created_at})
                    pipe.set(marker, 1)
                    pipe.execute()
                    return
                except WatchError:
                    continue

    def _add(self, pipe, job: Job) -> None:
        """A new job's document, its place in the list and in its state's set, queued on `pipe`."""
        pipe.set(self._key(job.id), encode(job))
        pipe.zadd(self.index, {job.id: job.created_at})
        pipe.sadd(self._state_key(job.state), job.id)

    def insert(self, job: Job) -> Job:
        with self.conn.pipeline() as pipe:
            self._add(pipe, job)
            pipe.execute()
        return job

    def counts(self) -> dict[str, int]:
        with self.conn.pipeline() as pipe:
            for state in STATES:
                pipe.scard(self._state_key(state))
            return dict(zip(STATES, pipe.execute()))

    def in_state(self, state: str) -> list[Job]:
        ids = [i.decode() for i in self.conn.smembers(self._state_key(state))]
        raws = self.conn.mget([self._key(i) for i in ids]) if ids else []
        return [job for job in (decode(r) for r in raws if r) if job.state == state]

    def insert_writer(self, job: Job) -> Job:
        """The jobs that write or read workdir names are a hash (a key -> job id; the key is the job's id, or its output
        in hashes written before readers were held) watched across the check and the insert: a concurrent insert
        changes it and this transaction is retried, seeing that job."""
        from redis.exceptions import WatchError

        writers = f"{self.prefix}:writers"
        with self.conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(writers)
                    held = {k.decode(): v.decode() for k, v in pipe.hgetall(writers).items()}
                    docs = pipe.mget([self._key(i) for i in held.values()]) if held else []
                    active = [decode(d) for d in docs if d]
                    other = writer_conflict(job, active)
                    if other is not None:
                        pipe.unwatch()
                        refuse_writer(job, other)
                    finished = [o for o, i in held.items() if not any(j.id == i and j.state not in TERMINAL
                                                                      for j in active)]
                    pipe.multi()
                    if finished:
                        pipe.hdel(writers, *finished)
                    if job.output or job.reads:
                        pipe.hset(writers, job.id, job.id)
                    self._add(pipe, job)
                    pipe.execute()
                    return job
                except WatchError:
                    continue

    def forget(self, ended_before: float, limit: int = 1000) -> int:
        ids = [i.decode() for i in self.conn.zrangebyscore(self.ended, "-inf", f"({ended_before}", start=0, num=limit)]
        if not ids:
            return 0
        with self.conn.pipeline() as pipe:
            pipe.delete(*(self._key(i) for i in ids))
            pipe.zrem(self.index, *ids)
            pipe.zrem(self.ended, *ids)
            pipe.hdel(f"{self.prefix}:writers", *ids)
            for state in TERMINAL:
                pipe.srem(self._state_key(state), *ids)
            pipe.execute()
        return len(ids)

    def now(self) -> float:
        """Redis's clock (TIME): workers on machines whose clocks disagree stamp and judge heartbeats alike, so a
        skew past the staleness limit does not have a live job reaped."""
        seconds, micros = self.conn.time()
        return seconds + micros / 1e6

    def get(self, job_id: str) -> Job | None:
        raw = self.conn.get(self._key(job_id))
        return decode(raw) if raw else None

    def list(self, limit: int = 100, offset: int = 0) -> list[Job]:
        ids = self.conn.zrevrange(self.index, offset, offset + limit - 1)
        if not ids:
            return []
        raws = self.conn.mget([self._key(i.decode()) for i in ids])
        return [decode(r) for r in raws if r]

    def update(self, job_id, change):
        from redis.exceptions import WatchError

        key = self._key(job_id)
        with self.conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None
                    job = decode(raw)
                    fields = change(job)
                    if not fields:
                        pipe.unwatch()
                        return job
                    before, job = job.state, job.model_copy(update=fields)
                    pipe.multi()
                    pipe.set(key, encode(job))
                    if job.state != before:
                        pipe.srem(self._state_key(before), job.id)
                        pipe.sadd(self._state_key(job.state), job.id)
                        if job.state in TERMINAL:
                            pipe.zadd(self.ended, {job.id: job.finished_at or self.now()})
                    pipe.execute()
                    return job
                except WatchError:
                    continue


class RedisQueue:
    """The API side: jobs stored in Redis and handed to whichever `optiplan worker` takes them first."""

    def __init__(self, url: str):
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.url = url
        self.conn = connect(url, STORE_TIMEOUT_S)
        self.store = RedisStore(self.conn)
        self.queue = Queue(QUEUE, connection=self.conn, serializer=JSONSerializer)  # enqueues only: never blocks

    def start(self) -> None:
        """Nothing to recover here: the API holds no jobs; workers retry those of workers that died."""

    def submit(self, job_id: str) -> None:
        enqueue(self.queue, job_id, 0)

    def shutdown(self) -> None:
        self.conn.close()


def rq_id(job_id: str, attempt: int) -> str:
    """The RQ job that hands over the attempt after `attempt` of a job: one per attempt, so that whether the hand-over
    was made can be looked up (`requeue_orphans`)."""
    return f"optiplan-{job_id}-{attempt}"


def enqueue(queue, job_id: str, attempt: int) -> None:
    queue.enqueue(RUN, job_id, job_id=rq_id(job_id, attempt), job_timeout=JOB_TIMEOUT_S, result_ttl=600,
                  failure_ttl=7 * 24 * 3600, description=f"optiplan job {job_id}")


def requeue_orphans(store: Store, queue, older_than_s: float) -> list[str]:
    """Hand over again the queued jobs (queued longer than `older_than_s`) whose hand-over was never made: the API
    stored the job and then failed to reach RQ, or a worker queued a retry and died before handing it over. A job
    left so would stay queued and hold its output's name for ever; a duplicate hand-over is harmless (one claim
    wins)."""
    cutoff = store.now() - older_than_s
    orphans = [j for j in store.in_state("queued") if j.created_at < cutoff
               and not _handed_over(queue, rq_id(j.id, j.attempt))]
    for job in orphans:
        enqueue(queue, job.id, job.attempt)
    return [job.id for job in orphans]


def _handed_over(queue, rq_job_id: str) -> bool:
    """Whether RQ still holds the hand-over to run: waiting, scheduled or running. One that failed before the job was
    claimed (the store unreachable for a moment), was stopped or cancelled, or ended with ours still queued is kept
    by RQ for days and must not hold the job queued that long: it is handed over again."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    try:
        status = RQJob.fetch(rq_job_id, connection=queue.connection).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return status is not None and str(getattr(status, "value", status)) in ("queued", "started", "deferred",
                                                                             "scheduled")


EXECUTOR: dict[str, Any] = {}  # set by `work` in the worker process: what `run_queued` runs jobs with


def run_queued(job_id: str) -> str:
    """What RQ calls in the worker: run the job with this worker's folders; returns the state it ended in."""
    job = EXECUTOR["executor"].run(job_id)
    return job.state if job is not None else "taken by another worker"


def reap(store: Store, roots: Roots, queue, stale_after_s: float, running_here: Collection[str] = ()) -> list[Job]:
    """Retry (or fail, when no attempts are left) the running jobs of workers that stopped reporting; never the
    job this worker runs itself (a heartbeat late on a busy machine is not a dead worker)."""
    changed = recover(store, roots, f"its worker stopped reporting for {stale_after_s:g} s (killed or lost)",
                      older_than_s=stale_after_s, retry=True, skip=running_here)
    for job in changed:
        if job.state == "queued":
            enqueue(queue, job.id, job.attempt)
    requeue_orphans(store, queue, stale_after_s)
    return changed


def work(url: str, roots: Roots, name: str | None = None, allow_pickle: bool = False,
         stale_after_s: float = 30.0, burst: bool = False, on_ready=lambda name: None,
         keep_jobs_days: float = 30.0) -> None:
    """`optiplan worker`: take jobs from the Redis queue one at a time, every few seconds retry the jobs of workers
    that died, and every ten minutes forget the jobs that ended `keep_jobs_days` ago."""
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    conn = connect(url)  # RQ's: its blocking dequeue
    store = RedisStore(connect(url, STORE_TIMEOUT_S))
    queue = Queue(QUEUE, connection=conn, serializer=JSONSerializer)
    name = name or f"{socket.gethostname()}-{os.getpid()}"
    # SimpleWorker: no fork per job, since each job already runs in its own process (runner.py)
    # a runner whose heartbeats fail stops before another worker would retry its job
    EXECUTOR["executor"] = executor = Executor(store, roots, name, allow_pickle,
                                               store_outage_s=min(STORE_OUTAGE_S, stale_after_s / 2))
    stop = threading.Event()
    retention = Retention(store, keep_jobs_days)

    def reaper() -> None:
        while not stop.wait(max(0.5, stale_after_s / 3)):
            try:
                reap(store, roots, queue, stale_after_s, running_here=set(executor.running))
                retention()
            except Exception:  # noqa: BLE001  Redis away for a moment: the next round tries again
                time.sleep(1)

    threading.Thread(target=reaper, name="optiplan-reaper", daemon=True).start()
    on_ready(name)
    try:
        SimpleWorker([queue], connection=conn, name=name, serializer=JSONSerializer).work(
            burst=burst, logging_level="WARNING")
    finally:
        stop.set()
