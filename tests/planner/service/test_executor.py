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
