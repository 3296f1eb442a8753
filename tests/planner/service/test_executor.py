"""The executor that runs one job wherever it is taken, tested in-process against a SQLite store: a store that fails
mid-job takes the job's process down with it, and each attempt removes only its own temporary files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from optiplan.planner.service import jobs
from optiplan.planner.service.paths import Roots
from optiplan.planner.service.store import SqliteStore, new_job

APPLY = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "verify": False}


class FailingStore(SqliteStore):
    """A store whose heartbeat fails, as when Redis goes away or SQLite stays locked."""

    def heartbeat(self, *args, **kwargs):
        raise ConnectionError("the store is unreachable")


def test_a_store_failure_mid_job_kills_the_jobs_process(tmp_path, models_dir, monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(jobs.subprocess, "Popen", recording_popen)
    roots = Roots.create(tmp_path / "work", [models_dir])
    store = FailingStore(roots.workdir / "jobs.sqlite")
    job = store.insert(new_job("apply", APPLY | {"output": "out"}, "out"))
    executor = jobs.Executor(store, roots, "w1", store_outage_s=0.0)  # an outage past what a runner waits out
    with pytest.raises(ConnectionError):
        executor.run(job.id)
    assert len(started) == 1
    assert started[0].poll() is not None, "the job's process outlived its failed record"
    assert executor.running == {}


class FlakyStore(SqliteStore):
    """A store whose first heartbeats fail, as during a Redis failover."""

    failures = 1

    def heartbeat(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the store is unreachable for a moment")
        return super().heartbeat(*args, **kwargs)


def test_a_store_away_for_a_moment_does_not_kill_the_job(tmp_path, models_dir, monkeypatch):
    """With a socket timeout on the store, a failover's few seconds had failed the heartbeat and killed the job: the
    runner goes on, its lines kept for the next heartbeat."""
    monkeypatch.setenv("OPTIPLAN_SERVICE_TEST_JOBS", "1")  # a scripted apply: writes its output in a second
    roots = Roots.create(tmp_path / "work", [models_dir])
    store = FlakyStore(roots.workdir / "jobs.sqlite")
    job = store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "techniques": ["test-write"],
                                         "output": "out"}, "out"))
    done = jobs.Executor(store, roots, "w1").run(job.id)
    assert done.state == "succeeded", done.error
    assert "applying test-write" in done.log and store.failures == 0


def test_cleanup_removes_only_this_attempts_temporary_files(tmp_path):
    from optiplan.planner.fsutil import atomic_folder, write_text_atomic
    from optiplan.planner.service.paths import remove_partial

    work = tmp_path / "work"
    work.mkdir()
    (work / ".a-b.optiplan-tmp-J2-1-abcdefgh").mkdir()  # another job's output 'a-b', still being written
    (work / ".a.optiplan-tmp-J2-2-abcdefgh").mkdir()  # the next attempt of the same output
    (work / ".a-0123abcd").write_text("an untagged write of someone else")
    with pytest.raises(RuntimeError):  # this attempt's interrupted writes, tagged by fsutil
        with atomic_folder(work / "a", tag="J2-1") as tmp:
            (tmp / "weights").write_text("half")
            kept = tmp.name
            raise RuntimeError("stop")
    assert not (work / kept).exists()  # fsutil's own cleanup; now leave one behind as a kill would
    (work / kept).mkdir()
    write_text_atomic(work / "a" / "x.json", "{}", tag="J2-1")
    assert remove_partial(work / "a", "J2-1") == [f"removed the partial output {kept}"]
    assert sorted(p.name for p in work.iterdir()) == sorted([".a-b.optiplan-tmp-J2-1-abcdefgh",
                                                             ".a.optiplan-tmp-J2-2-abcdefgh", ".a-0123abcd", "a"])


def test_a_replaced_folder_is_never_half_deleted_and_a_kill_mid_swap_puts_it_back(tmp_path, monkeypatch):
    """A replacement moves the old folder aside whole, renames the new one in, then deletes the old: a kill between
    the two renames leaves the old copy under its tagged name, which the attempt's cleanup puts back (it had been
    deleted in place first, so a kill left a half-deleted model at its real name)."""
    from optiplan.planner import fsutil
    from optiplan.planner.service.paths import remove_partial

    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "weights").write_text("old")
    with fsutil.atomic_folder(work / "model", tag="J3-1") as tmp:
        (tmp / "weights").write_text("new")
    assert (work / "model" / "weights").read_text() == "new" and sorted(os.listdir(work)) == ["model"]

    real_rename = Path.rename

    def interrupted_swap(self, target):  # the old folder is moved aside; renaming the new one in is interrupted
        if self.name.startswith(".model.optiplan-tmp-"):
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted_swap)
    with pytest.raises(KeyboardInterrupt):
        with fsutil.atomic_folder(work / "model", tag="J3-2") as tmp:
            (tmp / "weights").write_text("newer")
    monkeypatch.undo()
    assert (work / "model" / "weights").read_text() == "new" and sorted(os.listdir(work)) == ["model"]
    # what a SIGKILL between the two renames leaves (no handler runs): the old copy aside, the new one beside it
    aside = work / (fsutil.previous_prefix("model", "J3-3") + "abcd1234")
    (work / "model").rename(aside)
    (work / (fsutil.temporary_prefix("model", "J3-3") + "efgh5678")).mkdir()
    assert remove_partial(work / "model", "J3-3") == [
        f"removed the partial output {fsutil.temporary_prefix('model', 'J3-3')}efgh5678",
        "put back model, which the job was replacing"]
    assert (work / "model" / "weights").read_text() == "new"
    # a kill while the old copy was being deleted, the new one in place: the rest of the old copy goes
    (work / (fsutil.previous_prefix("model", "J3-4") + "abcd1234")).mkdir()
    assert remove_partial(work / "model", "J3-4") == [] and sorted(os.listdir(work)) == ["model"]
    assert (work / "model" / "weights").read_text() == "new" and sorted(os.listdir(work)) == ["model"]


def test_an_attempt_taken_over_by_another_worker_leaves_the_new_attempts_files(tmp_path, models_dir):
    roots = Roots.create(tmp_path / "work", [models_dir])
    store = SqliteStore(roots.workdir / "jobs.sqlite")
    job = store.insert(new_job("apply", APPLY | {"output": "out"}, "out", max_attempts=2))
    first = store.claim(job.id, "w1")
    store.interrupted(job.id, "w1 stopped reporting", retry=True)
    second = store.claim(job.id, "w2")
    for attempt in (first, second):
        (roots.workdir / f".out.optiplan-tmp-{jobs.attempt_tag(attempt)}-abcdefgh").mkdir()
    after = jobs.Executor(store, roots, "w1")._record(first, -9, {}, cancelled=False)
    assert (after.state, after.attempt, after.worker) == ("running", 2, "w2")
    assert (roots.workdir / f".out.optiplan-tmp-{job.id}-2-abcdefgh").is_dir()  # the running attempt's, kept
    assert "removed the partial output" not in " ".join(after.log)


@pytest.mark.parametrize("runner, state", [
    # output that is not UTF-8 (a library's binary progress bar): the reader had died on it, and the job stayed
    # "running" for ever, heartbeating, uncancellable
    ("import sys; sys.stdin.read(); sys.stdout.buffer.write(b'\\xff\\xfe\\n'); sys.stdout.flush()", "failed"),
    # a process the runner started outside its group keeps the pipe open after the runner has exited
    ("import subprocess, sys; sys.stdin.read(); "
     "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'], start_new_session=True)", "failed"),
])
def test_a_runner_whose_output_cannot_be_followed_to_its_end_still_ends_its_job(tmp_path, monkeypatch, runner,
                                                                                state):
    import sys
    import time

    real_popen = subprocess.Popen

    def scripted(args, **kwargs):  # the runner's place taken by a script that misbehaves
        return real_popen([sys.executable, "-c", runner], **kwargs)

    monkeypatch.setattr(jobs.subprocess, "Popen", scripted)
    roots = Roots.create(tmp_path / "work", [])
    store = SqliteStore(roots.workdir / "jobs.sqlite")
    job = store.insert(new_job("verify", {"kind": "verify", "baseline": "a", "optimized": "b"}, None))
    started = time.monotonic()
    ended = jobs.Executor(store, roots, "w1").run(job.id)
    assert ended.state == state and "before it finished" in ended.error
    assert time.monotonic() - started < 15 * jobs.HEARTBEAT_S
