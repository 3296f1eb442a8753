"""Jobs that really write, in seconds: with OPTIPLAN_SERVICE_TEST_JOBS=1 (tests only) the runner's apply is a
scripted writer that writes its output the way apply does (a temporary sibling named by the attempt, renamed at the
end), so success, a failure in one line, and a kill or cancel mid-write with a real half-written sibling are seen
through the API, not only a job stopped while it loads its libraries."""

from __future__ import annotations

import os
import signal

import pytest

APPLY = {"kind": "apply", "model": "tiny", "verify": False}
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture()
def scripted(monkeypatch, client):
    monkeypatch.setenv("OPTIPLAN_SERVICE_TEST_JOBS", "1")  # read by the runner processes this server starts
    return client


def finished(client, job_id, wait_for):
    return wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["state"] in TERMINAL and j, 60,
                    f"job {job_id} to end")


def workdir_names(client):
    work = client.app.state.settings.roots.workdir
    return sorted(p.name for p in work.rglob("*") if not p.name.startswith(("jobs.sqlite", ".jobs.lock")))


def test_a_job_that_writes_succeeds_with_its_result_and_full_progress(scripted, wait_for, models_dir):
    job_id = scripted.post("/v1/jobs", json=APPLY | {"techniques": ["test-write", "test-write"],
                                                     "output": "models/out"}).json()["id"]
    job = finished(scripted, job_id, wait_for)
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"] == 1.0 and job["step"] == "succeeded" and "applying test-write" in job["log"]
    assert job["result"] == {"steps": [{"technique": "test-write"}] * 2, "source": "models:tiny",
                             "out": "workdir:models/out"}  # the server's folders by label, never its paths
    assert workdir_names(scripted) == ["models", "optiplan.json", "out", "part-0.bin", "part-1.bin"]


def test_a_job_that_fails_says_why_in_one_line_and_leaves_nothing(scripted, wait_for):
    job_id = scripted.post("/v1/jobs", json=APPLY | {"techniques": ["test-write", "test-fail"],
                                                     "output": "out"}).json()["id"]
    job = finished(scripted, job_id, wait_for)
    assert job["state"] == "failed"
    assert job["error"] == "test-fail: the scripted step failed after writing part 1"
    assert job["log"][-1] == f"error: {job['error']}"
    assert workdir_names(scripted) == []


@pytest.mark.parametrize("how", ["kill", "cancel"])
def test_a_job_stopped_mid_write_leaves_its_half_written_sibling_removed(how, scripted, wait_for):
    job_id = scripted.post("/v1/jobs", json=APPLY | {"techniques": ["test-write", "test-hang"],
                                                     "output": "out"}).json()["id"]
    wait_for(lambda: scripted.get(f"/v1/jobs/{job_id}").json()["step"] == "writing (test-hang)", 60,
             "the job to be mid-write")
    work = scripted.app.state.settings.roots.workdir
    (partial,) = [p for p in work.iterdir() if p.name.startswith(f".out.optiplan-tmp-{job_id}-1-")]
    assert sorted(p.name for p in partial.iterdir()) == ["part-0.bin", "part-1.bin"]  # really half-written
    if how == "kill":  # the job's process dies on its own (out of memory, a segfault)
        os.killpg(scripted.app.state.queue.executor.running[job_id].pid, signal.SIGKILL)
    else:
        assert scripted.delete(f"/v1/jobs/{job_id}").status_code == 202
    job = finished(scripted, job_id, wait_for)
    assert job["state"] == ("failed" if how == "kill" else "cancelled")
    if how == "kill":
        assert job["error"] == "the job's process ended with signal SIGKILL before it finished"
    assert f"removed the partial output {partial.name}" in job["log"]
    assert not partial.exists() and workdir_names(scripted) == []
