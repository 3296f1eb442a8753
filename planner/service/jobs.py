"""Running a job wherever it is taken (the in-process pool or a Redis worker): claim it, start its runner process,
pass its log and progress to the store with a heartbeat, kill it on cancel, record the result. A job that outlives
its runner (the server or the worker died) is found by its stale heartbeat and retried or failed, and what its
interrupted write left in the workdir is removed."""

from __future__ import annotations

import getpass
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from .paths import Roots, remove_partial
from .runner import MARK
from .store import Job, Retention, Store, tail

LOG = logging.getLogger("optiplan.service")

HEARTBEAT_S = 1.0
# heartbeats the monitor waits, after the runner has exited, for its pipe to close before it stops reading
EXITED_QUIET_BEATS = 3
# how long a running job's heartbeats may fail (the store away) before its runner is stopped: half the 30 s after
# which Redis workers retry a job whose heartbeat stopped (a worker with another --stale-after sets half of it)
STORE_OUTAGE_S = 15.0


@dataclass(frozen=True)
class Executor:
    """What a process that runs jobs needs: the store, its folders, its flags and its name."""

    store: Store
    roots: Roots
    worker: str
    allow_pickle: bool = False
    running: dict = field(default_factory=dict)  # job id -> its runner process, while it runs here
    store_outage_s: float = STORE_OUTAGE_S

    def run(self, job_id: str) -> Job | None:
        """Run one queued job to its end here; None when another worker has it or it is no longer queued."""
        job = self.store.claim(job_id, self.worker)
        if job is None:
            return None
        spec = {"request": job.request, "workdir": str(self.roots.workdir),
                "models": [str(m) for m in self.roots.models], "allow_pickle": self.allow_pickle,
                "parent": os.getpid(), "tag": attempt_tag(job)}
        # the attempt's own temporary folder (TMPDIR) in the machine's, removed when it ends however it ends: a killed
        # runner cleans up nothing, and calibrate's random-weight models had stayed in /tmp after every cancel.
        # torch's compile cache stays where it was (it is kept between jobs on purpose)
        scratch = scratch_folder(self.roots, job)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(scratch)}
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache()))
        try:
            scratch.mkdir(exist_ok=True)
            proc = subprocess.Popen([sys.executable, "-m", "optiplan.planner.service.runner"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    encoding="utf-8", errors="replace", bufsize=1, start_new_session=True,
                                    env=env)
            proc.stdin.write(json.dumps(spec))
            proc.stdin.close()
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            return self.store.finish(job_id, job.attempt, "failed", error=f"cannot start the job: {exc}")
        self.running[job_id] = proc
        try:
            return self._monitor(job, proc)
        except BaseException:  # the store failed (Redis away, SQLite locked): the process must not outlive the
            _kill(proc)        # record, or it could still rename its output into place while a retry writes it
            proc.wait()
            raise
        finally:
            self.running.pop(job_id, None)
            shutil.rmtree(scratch, ignore_errors=True)

    def stop_all(self, reason: str) -> None:
        """Fail the jobs running here with `reason` and kill their processes (the server is stopping); each
        monitor then records nothing more and removes the partial output."""
        procs = list(self.running.items())
        for job_id, proc in procs:
            self.store.interrupted(job_id, reason, retry=False)
            _kill(proc)
        for job_id, proc in procs:  # gone before the server exits, not merely signalled
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # the monitor threads may not get to their cleanup before the process exits: remove the partial output
            # here (only this attempt's tagged files)
            job = self.store.get(job_id)
            if job is not None:
                if job.output:
                    remove_partial(self.roots.workdir / job.output, attempt_tag(job))
                shutil.rmtree(scratch_folder(self.roots, job), ignore_errors=True)

    def _monitor(self, job: Job, proc: subprocess.Popen) -> Job | None:
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read, args=(proc.stdout, lines), daemon=True)
        reader.start()
        outcome: dict = {}
        cancelled = False
        idle_since_exit = 0  # heartbeats with no output since the process ended
        unsent: list[str] = []  # lines a failed heartbeat could not record
        beat_at = time.monotonic()
        while True:
            pending, progress, step, done = [], None, None, False
            deadline = time.monotonic() + HEARTBEAT_S
            while time.monotonic() < deadline:
                try:
                    item = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    continue
                if item is None:
                    done = True
                    break
                before, event = parse_event(item)
                if event is None:
                    pending.append(item)
                    continue
                if before.strip():  # output a library left without its line's end, ahead of the event
                    pending.append(before)
                if event["event"] == "log":
                    pending.append(str(event.get("line", "")))
                elif event["event"] == "progress":
                    progress, step = float(event.get("fraction", 0)), str(event.get("step", ""))
                elif event["event"] in ("result", "error"):
                    outcome = event
            try:
                current = self.store.heartbeat(job.id, job.attempt, self.roots.redact(unsent + pending), progress,
                                               self.roots.redact(step))
                unsent, beat_at = [], time.monotonic()
            except Exception:  # noqa: BLE001  the store away for a moment (a Redis failover): the lines wait
                if time.monotonic() - beat_at > self.store_outage_s:
                    raise  # near the time after which another worker retries the job: this runner must stop first
                unsent += pending
                if not done:
                    continue
            if done:
                break
            # the process is gone and its pipe quiet, yet the pipe is not closed: a process it started outside its
            # group holds it open. Waiting for the end of its output would keep the job running for ever
            heard = pending or progress is not None
            idle_since_exit = idle_since_exit + 1 if proc.poll() is not None and not heard else 0
            if idle_since_exit >= EXITED_QUIET_BEATS:
                break
            mine = current is not None and current.state == "running" and current.attempt == job.attempt
            if not mine or current.cancel_requested:  # cancelled, or taken over after a stale heartbeat
                cancelled = mine
                _kill(proc)
        code = proc.wait()
        return self._record(job, code, outcome, cancelled, self.roots.redact(unsent))

    def _record(self, job: Job, code: int, outcome: dict, cancelled: bool, unsent: Collection[str] = ()
                ) -> Job | None:
        # what clients see names the server's folders by label; the lines no heartbeat recorded come first
        outcome, notes = self.roots.redact(outcome), list(unsent)
        current = self.store.get(job.id)
        still_mine = current is not None and current.attempt == job.attempt
        if code != 0 and job.output and still_mine:  # an interrupted write leaves this attempt's temporary sibling
            notes += remove_partial(self.roots.workdir / job.output, attempt_tag(job))
        if cancelled:
            return self.store.finish(job.id, job.attempt, "cancelled", error="cancelled",
                                     lines=notes + ["cancelled: the job's process was stopped"])
        if code == 0 and outcome.get("event") == "result":
            return self.store.finish(job.id, job.attempt, "succeeded", result=outcome.get("result"), lines=notes)
        error = outcome.get("message") if outcome.get("event") == "error" else \
            f"the job's process ended with {_exit_reason(code)} before it finished"
        if not still_mine:
            return current  # another worker runs it now
        return self.store.finish(job.id, job.attempt, "failed", error=error, lines=notes + [f"error: {error}"])


def scratch_folder(roots: Roots, job: Job) -> Path:
    """The attempt's temporary folder (its TMPDIR), in the machine's own (an administrator's TMPDIR, a local disk),
    named by the attempt: the machine that recovers a job (the embedded queue's) removes what its dead runner left."""
    return Path(tempfile.gettempdir()) / f"optiplan-job-{attempt_tag(job)}"


def inductor_cache() -> Path:
    """Where torch keeps its compiled kernels by default (`torch._inductor` uses the temporary folder and the user's
    name), so that a job's own TMPDIR does not hide the cache earlier jobs filled."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): torch falls back alike
        user = str(os.getuid())
    return Path(tempfile.gettempdir()) / f"torchinductor_{re.sub(r'[^A-Za-z0-9_-]', '_', user)}"


def attempt_tag(job: Job) -> str:
    """What this attempt's temporary files are named by (fsutil's tag): its job id and attempt number."""
    return f"{job.id}-{job.attempt}"


def _read(stream, lines: queue.Queue) -> None:
    """Hand the runner's lines to the monitor, then None: always, even where reading fails, so that the monitor
    stops waiting for more."""
    try:
        for line in stream:
            lines.put(line.rstrip("\n"))
    finally:
        lines.put(None)


def parse_event(line: str) -> tuple[str, dict | None]:
    """(the line's text before the runner's event, the event or None): the event's mark may follow output a library
    wrote without ending its line (a progress bar), and is found anywhere in the line."""
    at = line.find(MARK)
    if at < 0:
        return line, None
    try:
        event = json.loads(line[at + len(MARK):])
    except json.JSONDecodeError:
        return line, None
    return (line[:at], event) if isinstance(event, dict) and "event" in event else (line, None)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and whatever it started (verify's memory processes)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def recover(store: Store, roots: Roots, reason: str, older_than_s: float = 0.0, retry: bool = False,
            skip: Collection[str] = ()) -> list[Job]:
    """Running jobs without a live runner (no heartbeat for `older_than_s`): retried or failed with `reason`, and
    their partial output removed. The embedded queue calls it at start-up (every running job was this server's);
    Redis workers call it periodically for jobs of workers that died. Returns the jobs it changed."""
    found = []
    cutoff = store.now() - older_than_s
    for job in store.stale(older_than_s):
        if job.id in skip:  # running here: its own monitor reports it (late, on a busy machine), and kills it
            continue
        after = store.interrupted(job.id, f"{reason} (it ran on {job.worker})", retry=retry, stale_before=cutoff)
        if after is None or after.state == "running":
            continue
        done = remove_partial(roots.workdir / job.output, attempt_tag(job)) if job.output else []
        shutil.rmtree(scratch_folder(roots, job), ignore_errors=True)  # its runner died with its temporary files
        notes = done or ["nothing half-written was left"]
        found.append(store.update(job.id, lambda j: {"log": tail(j.log, notes)}))
    return found


class LocalQueue:
    """The embedded queue: jobs in SQLite in the workdir, run by a pool of threads in the server process (each
    watching one runner process). At start-up, jobs left running by a previous server are failed with the reason
    and jobs still queued are taken up again."""

    def __init__(self, store: Store, roots: Roots, workers: int = 1, allow_pickle: bool = False,
                 keep_jobs_days: float = 30.0):
        from concurrent.futures import ThreadPoolExecutor

        self._lock = hold_workdir(roots)  # before anything is recovered: start-up fails every running job
        self.store = store
        self.retention = Retention(store, keep_jobs_days)
        self.executor = Executor(store, roots, f"local-{os.getpid()}", allow_pickle)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="optiplan-job")

    def start(self) -> None:
        recover(self.store, self.executor.roots, "the server stopped while this job ran", retry=False)
        self._forget()
        for job in reversed(self.store.in_state("queued")):  # oldest first
            self.submit(job.id)

    def submit(self, job_id: str) -> None:
        self.pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            self.executor.run(job_id)
        except Exception as exc:  # noqa: BLE001  a store error must not kill the pool thread silently
            from ..errors import error_line

            job = self.store.get(job_id)
            if job is not None and job.state == "running":
                self.store.finish(job_id, job.attempt, "failed", error=self.executor.roots.redact(error_line(exc)[0]))
        finally:
            self._forget()

    def _forget(self) -> None:
        try:
            self.retention()
        except Exception:  # noqa: BLE001  the database busy for a moment: a later call forgets them
            LOG.warning("could not forget old jobs this time", exc_info=True)

    def shutdown(self) -> None:
        """Stop without waiting for running jobs (they could take hours): they are failed with the reason, and
        queued jobs stay queued for the next start."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.executor.stop_all("the server was stopped while this job ran")
        self._lock.close()  # the workdir is free for the next server


def hold_workdir(roots: Roots):
    """The embedded queue's claim on its workdir, held while the server runs (a non-blocking flock on
    workdir/.jobs.lock, released by the kernel when the process dies): a second server on the same workdir would
    take every running job for one a dead server left, fail it and kill nothing but its own record, so it is refused
    in one sentence instead. (With Redis, API processes hold no jobs and share a queue; this is not taken.)"""
    import fcntl

    from ..errors import OptiplanError

    handle = open(roots.workdir / ".jobs.lock", "a+")  # noqa: SIM115  held open for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OptiplanError(f"another optiplan serve is already running on the workdir {roots.workdir} (it holds "
                            f"{roots.workdir / '.jobs.lock'}); stop it, give this one another --workdir, or share "
                            "jobs between servers with --queue redis://...") from None
    return handle
