"""Jobs on the embedded queue against a real `optiplan serve` process: live progress by server-sent events, cancel
stops the job's process, a job running when the server died is failed with the reason after a restart and what it
had half-written removed (a scripted job, tests only, that is mid-write when the server dies), jobs still queued are
taken up again; and (slow) an apply job writes the optimized model."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

APPLY = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "verify": False}
SCRIPTED = {"kind": "apply", "model": "tiny", "techniques": ["test-write", "test-hang"], "verify": False}
TERMINAL = ("succeeded", "failed", "cancelled")


def runners_of(pid: int) -> list[int]:
    """Job runner processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if "optiplan.planner.service.runner" in cmdline and ppid == pid and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a container's init may not reap orphans at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def job_state(http, job_id: str) -> dict:
    return http.get(f"/v1/jobs/{job_id}").json()


def test_progress_streams_as_events_and_cancel_stops_the_process(client, wait_for):
    job_id = client.post("/v1/jobs", json=APPLY | {"output": "tiny-int8"}).json()["id"]
    wait_for(lambda: job_state(client, job_id)["step"] == "apply: loading libraries", 60, "the runner to start")
    assert runners_of(os.getpid()), "the job runs in its own process"
    seen = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            seen.append((event["state"], event["step"], event["cancel_requested"]))
            if len(seen) == 1:
                assert client.delete(f"/v1/jobs/{job_id}").status_code == 202
    assert seen[0][:2] == ("running", "apply: loading libraries")
    assert ("running", "apply: loading libraries", True) in seen  # the cancel request, streamed
    assert seen[-1][0] == "cancelled"  # the stream ends with the job
    job = job_state(client, job_id)
    assert job["state"] == "cancelled" and "cancelled: the job's process was stopped" in job["log"]
    # an ended job has nothing to cancel: said so, not a 202 that changed nothing
    again = client.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 409 and "has ended (cancelled)" in again.text
    wait_for(lambda: not runners_of(os.getpid()), 10, "the runner process to be gone")
    workdir = Path(client.app.state.settings.roots.workdir)
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith(("jobs.sqlite", ".jobs.lock"))) == []
    assert not (Path(tempfile.gettempdir()) / f"optiplan-job-{job_id}-1").exists()  # its temporary files too


def test_a_job_running_when_the_server_died_fails_with_the_reason_and_queued_ones_resume(server_factory, wait_for,
                                                                                           token, monkeypatch):
    monkeypatch.setenv("OPTIPLAN_SERVICE_TEST_JOBS", "1")  # tests only: a scripted apply that writes, then hangs
    server = server_factory(token=token).start()
    with server.http() as http:
        first = http.post("/v1/jobs", json=SCRIPTED | {"output": "first"}).json()["id"]
        second = http.post("/v1/jobs", json=SCRIPTED | {"output": "second"}).json()["id"]
        wait_for(lambda: job_state(http, first)["step"] == "writing (test-hang)", 60, "the first job to write")
        assert job_state(http, second)["state"] == "queued"  # one worker: the second waits
    (partial,) = [p for p in server.workdir.iterdir() if p.name.startswith(f".first.optiplan-tmp-{first}-1-")]
    runners = runners_of(server.proc.pid)
    assert runners, "the job runs in its own process"
    server.kill()  # the server dies, and its job's process with it (PR_SET_PDEATHSIG), as when the machine stops
    wait_for(lambda: not any(alive(pid) for pid in runners), 10, "the job's process to die")
    restarted = server_factory(token=token, workdir=server.workdir)
    restarted.port = server.port  # the same address, as after a restart
    restarted.start()
    with restarted.http() as http:
        failed = job_state(http, first)
        assert failed["state"] == "failed"
        assert failed["error"].startswith("the server stopped while this job ran (it ran on local-")
        assert failed["log"][-1] == f"removed the partial output {partial.name}"
        assert not partial.exists()
        resumed = wait_for(lambda: (j := job_state(http, second))["state"] == "running" and j, 30,
                           "the queued job to be taken up after the restart")
        assert resumed["attempt"] == 1
        http.delete(f"/v1/jobs/{second}")
        wait_for(lambda: job_state(http, second)["state"] in TERMINAL, 30, "the cancel")
        jobs = {j["id"]: j["state"] for j in http.get("/v1/jobs").json()}
        assert jobs == {first: "failed", second: "cancelled"}
    leftovers = [p.name for p in server.workdir.iterdir() if not p.name.startswith(("jobs.sqlite", ".jobs.lock"))]
    assert leftovers == []  # no output folder and no temporary sibling
    assert not (Path(tempfile.gettempdir()) / f"optiplan-job-{first}-1").exists()  # nor the dead runner's temp files


def test_stopping_the_server_fails_its_running_job_at_once_instead_of_waiting(server_factory, wait_for, monkeypatch):
    monkeypatch.setenv("OPTIPLAN_SERVICE_TEST_JOBS", "1")
    server = server_factory().start()
    with server.http() as http:
        job_id = http.post("/v1/jobs", json=SCRIPTED | {"output": "out"}).json()["id"]
        wait_for(lambda: job_state(http, job_id)["step"] == "writing (test-hang)", 60, "the job to write")
    assert any(p.name.startswith(f".out.optiplan-tmp-{job_id}-1-") for p in server.workdir.iterdir())
    # the runner's temporary files are in the attempt's own folder, which goes with it (not in /tmp for good)
    scratch = Path(tempfile.gettempdir()) / f"optiplan-job-{job_id}-1"
    assert list(scratch.glob("scripted-*"))
    runners = runners_of(server.proc.pid)
    # a page watching the job holds its event stream open, which ends only with the job: the stop had waited for it
    import threading

    opened = threading.Event()

    def watch():
        import httpx

        with server.http() as http, http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as events:
            opened.set()
            try:
                for _ in events.iter_lines():
                    pass
            except httpx.HTTPError:  # the stopping server drops the stream: what this test wants
                pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert opened.wait(30)
    server.proc.send_signal(signal.SIGTERM)  # a clean stop (systemd, docker stop): not hours of waiting for jobs
    assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it stopped
    assert not any(alive(pid) for pid in runners)
    restarted = server_factory(workdir=server.workdir).start()
    with restarted.http() as http:
        job = job_state(http, job_id)
    assert job["state"] == "failed" and job["error"] == "the server was stopped while this job ran"
    assert [p.name for p in server.workdir.iterdir() if not p.name.startswith(("jobs.sqlite", ".jobs.lock"))] == []
    assert not scratch.exists()


@pytest.mark.slow
def test_an_apply_job_writes_the_optimized_model(client, wait_for):
    """About a minute on the 2-core CI machine: torch's import, loading, quantizing and the step's quick timing."""
    response = client.post("/v1/jobs", json=APPLY | {"output": "models/tiny-int8"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    job = wait_for(lambda: (j := job_state(client, job_id))["state"] in TERMINAL and j, 600, "the apply job")
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"] == 1.0 and "applying weight-int8" in job["log"]
    assert [s["technique"] for s in job["result"]["steps"]] == ["weight-int8"]
    out = Path(client.app.state.settings.roots.workdir) / "models" / "tiny-int8"
    manifest = json.loads((out / "optiplan.json").read_text())
    assert manifest["steps"] == job["result"]["steps"]
    again = client.post("/v1/jobs", json=APPLY | {"output": "models/tiny-int8"})
    assert again.status_code == 409 and "force: true" in again.json()["error"]


def test_an_event_after_output_left_without_its_lines_end_is_still_read():
    # a progress bar that ends without a newline leaves the runner's next event mid-line: the result is still the
    # result (a succeeded job had been recorded as failed), and the bar's text is still logged
    from optiplan.planner.service.jobs import parse_event
    from optiplan.planner.service.runner import MARK

    before, event = parse_event("  40%|####      | 2/5" + MARK + json.dumps({"event": "result", "value": 1}))
    assert event == {"event": "result", "value": 1} and before == "  40%|####      | 2/5"
    assert parse_event("a plain line") == ("a plain line", None)
    assert parse_event(MARK + "not json") == (MARK + "not json", None)
