"""The executor that runs one job wherever it is taken, tested in-process against a SQLite store: a store that fails
mid-job takes the job's process down with it, and each attempt removes only its own temporary files."""

from __future__ import annotations

import subprocess

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
    executor = jobs.Executor(store, roots, "w1")
    with pytest.raises(ConnectionError):
        executor.run(job.id)
    assert len(started) == 1
    assert started[0].poll() is not None, "the job's process outlived its failed record"
    assert executor.running == {}


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
    assert sorted(remove_partial(work / "a", "J2-1")) == [kept]
    assert sorted(p.name for p in work.iterdir()) == sorted([".a-b.optiplan-tmp-J2-1-abcdefgh",
                                                             ".a.optiplan-tmp-J2-2-abcdefgh", ".a-0123abcd", "a"])


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
