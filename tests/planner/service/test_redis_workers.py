"""The Redis queue (RQ) against a real redis-server: two `optiplan worker` processes share the jobs an API process
enqueues; a worker killed mid-job (its whole process group, as when its machine dies) leaves the job queued again
by the surviving worker and run there, nothing half-written, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

APPLY = {"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "verify": False}
TERMINAL = ("succeeded", "failed", "cancelled")
STALE_S = 10  # a heartbeat late by seconds on a busy 2-core machine is not a dead worker
SCRIPTED = {"kind": "apply", "model": "tiny", "techniques": ["test-write", "test-hang"], "verify": False}


def start_worker(url: str, name: str, workdir, models_dir, log_dir, scripted: bool) -> subprocess.Popen:
    log = open(log_dir / f"worker-{name}.log", "ab")
    env = {**os.environ, "OPTIPLAN_SERVICE_TEST_JOBS": "1"} if scripted else None  # tests only: see runner.py
    return subprocess.Popen([sys.executable, "-m", "optiplan.planner.cli.main", "worker", "--queue", url,
                             "--workdir", str(workdir), "--models-dir", str(models_dir), "--name", name,
                             "--stale-after", str(STALE_S)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)


@pytest.mark.parametrize("ending", ["cancel", pytest.param("complete", marks=pytest.mark.slow)])
def test_two_workers_share_jobs_and_a_killed_workers_job_is_retried(ending, redis_url, make_client, models_dir,
                                                                    tmp_path, wait_for, kill_group, monkeypatch):
    from optiplan.planner.service.redis_queue import connect
    from rq import Worker

    client = make_client(queue=redis_url, max_attempts=2)
    workdir = client.app.state.settings.roots.workdir
    # cancel: scripted jobs (tests only) that are mid-write, a real half-written sibling, when the worker dies;
    # complete: the real apply, to its end
    scripted = ending == "cancel"
    if scripted:  # the server that takes the jobs checks their techniques: test-* are the scripted apply's
        monkeypatch.setenv("OPTIPLAN_SERVICE_TEST_JOBS", "1")
    workers = {name: start_worker(redis_url, name, workdir, models_dir, tmp_path, scripted) for name in ("A", "B")}
    try:
        conn = connect(redis_url)
        wait_for(lambda: len(Worker.all(connection=conn)) == 2, 60, "two workers to register")
        body = SCRIPTED if scripted else APPLY
        ids = [client.post("/v1/jobs", json=body | {"output": f"out-{i}"}).json()["id"] for i in range(2)]

        def state(job_id):
            return client.get(f"/v1/jobs/{job_id}").json()

        running = wait_for(lambda: all(state(i)["state"] == "running" for i in ids) and [state(i) for i in ids],
                           60, "both jobs to run")
        assert {j["worker"] for j in running} == {"A", "B"}  # one each: the workers share the queue
        victim, survivor = running[0], running[1]
        partial = None
        if scripted:
            wait_for(lambda: state(victim["id"])["step"] == "writing (test-hang)", 60, "the victim to be mid-write")
            (partial,) = [p for p in workdir.iterdir()
                          if p.name.startswith(f".{victim['output']}.optiplan-tmp-{victim['id']}-1-")]
            assert (partial / "part-0.bin").is_file()  # really half-written when its machine dies
        kill_group(workers[victim["worker"]])  # its machine dies: the worker and the job's process

        # its second attempt: queued, or already taken where the survivor's own job has ended (the real apply, on a
        # tiny model, may end before the victim's heartbeat goes stale; the job is then queued for a moment only)
        retried = wait_for(lambda: ((j := state(victim["id"]))["state"] == "queued" or j["attempt"] == 2) and j, 60,
                           "the surviving worker to queue the job again")
        assert f"its worker stopped reporting for {STALE_S} s (killed or lost) (it ran on {victim['worker']})" \
            in " ".join(retried["log"])
        assert "queued again (attempt 2 of 2)" in " ".join(retried["log"])
        if partial is not None:  # what the dead attempt left is removed by the worker that retried it, just after it
            # queues the job again (`jobs.reap`: the state first, then the removal and its note)
            wait_for(lambda: f"removed the partial output {partial.name}" in state(victim["id"])["log"], 60,
                     "the partial output's removal")
            assert not partial.exists()
        client.delete(f"/v1/jobs/{survivor['id']}")  # free the survivor sooner than its own job would
        again = wait_for(lambda: (j := state(victim["id"]))["state"] != "queued" and j, 60,
                         "the survivor to take the retried job")
        assert (again["worker"], again["attempt"]) == (survivor["worker"], 2)
        if ending == "cancel":
            wait_for(lambda: state(victim["id"])["step"] == "writing (test-hang)", 60, "attempt 2 to be mid-write")
            client.delete(f"/v1/jobs/{victim['id']}")
        final = wait_for(lambda: (j := state(victim["id"]))["state"] in TERMINAL and j, 600, "the retried job")
        states = {j["id"]: j["state"] for j in client.get("/v1/jobs").json()}
        # nothing lost; the survivor's own real apply may have ended before it was cancelled
        assert states[victim["id"]] == ("cancelled" if ending == "cancel" else "succeeded")
        assert states[survivor["id"]] in (("cancelled",) if scripted else ("cancelled", "succeeded"))
        assert set(states) == {victim["id"], survivor["id"]}
        if ending == "complete":
            assert (workdir / victim["output"] / "optiplan.json").is_file()
            assert final["result"]["steps"][0]["technique"] == "weight-int8"
        hidden = [p.name for p in workdir.iterdir() if p.name.startswith(".")]
        assert hidden == []  # nothing half-written
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                kill_group(proc)


def test_the_queue_carries_json_not_pickle(redis_url):
    """A worker never unpickles what is in Redis: the queue and the worker use RQ's JSON serializer."""
    import json
    import zlib

    from optiplan.planner.service.redis_queue import QUEUE, RUN, RedisQueue
    from redis import Redis

    queue = RedisQueue(redis_url)
    queue.submit("0123456789abcdef")
    conn = Redis.from_url(redis_url)
    (rq_id,) = conn.lrange(f"rq:queue:{QUEUE}", 0, -1)
    data = conn.hget(f"rq:job:{rq_id.decode()}", "data")
    try:
        data = zlib.decompress(data)
    except zlib.error:
        pass
    assert json.loads(data) == [RUN, None, ["0123456789abcdef"], {}]
    queue.shutdown()


def test_heartbeats_keep_redis_time_and_a_job_never_handed_over_is_handed_over(redis_url, monkeypatch, tmp_path):
    # workers on several machines stamp and judge heartbeats by Redis's clock: one whose own clock runs an hour
    # ahead does not make a live job look stale to the others
    from optiplan.planner.service import store as store_module
    from optiplan.planner.service.redis_queue import QUEUE, RedisQueue, requeue_orphans, rq_id
    from optiplan.planner.service.store import new_job
    from redis import Redis

    queue = RedisQueue(redis_url)
    store = queue.store
    real = time.time()
    monkeypatch.setattr(store_module.time, "time", lambda: real + 3600)
    job = store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "output": "o"}, "o", 1))
    store.claim(job.id, "w1")
    beat = store.heartbeat(job.id, 1, ["alive"]).heartbeat_at
    assert abs(beat - real) < 60 and store.stale(30) == []
    monkeypatch.undo()
    # a job the API stored but could not hand to RQ (Redis away for a moment) is handed over once, by the reaper
    orphan = store.insert(new_job("verify", {"kind": "verify"}, None, 1).model_copy(
        update={"created_at": time.time() - 120}))
    conn = Redis.from_url(redis_url)
    assert requeue_orphans(store, queue.queue, 30) == [orphan.id]
    assert conn.lrange(f"rq:queue:{QUEUE}", 0, -1) == [rq_id(orphan.id, 0).encode()]
    assert requeue_orphans(store, queue.queue, 30) == []  # handed over: not again
    # a hand-over that failed before the job was claimed (RQ keeps it, failed, for a week) is handed over again
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    handed = RQJob.fetch(rq_id(orphan.id, 0), connection=conn)
    handed.set_status(JobStatus.FAILED)
    assert requeue_orphans(store, queue.queue, 30) == [orphan.id]
    assert RQJob.fetch(rq_id(orphan.id, 0), connection=conn).get_status() == JobStatus.QUEUED
    queue.shutdown()


def test_the_stores_connection_gives_up_on_a_silent_redis(monkeypatch):
    """A half-open connection had left the job's heartbeat waiting forever (no socket timeout), so its runner was never
    stopped while another worker retried the job; RQ's own connection keeps its blocking dequeue unbounded."""
    pytest.importorskip("redis")
    from optiplan.planner.service import redis_queue
    from redis import Redis

    made = []

    class Connection:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def ping(self):
            return True

    monkeypatch.setattr(Redis, "from_url", staticmethod(lambda url, **kwargs: Connection(**kwargs)))
    redis_queue.connect("redis://localhost:6379/0", redis_queue.STORE_TIMEOUT_S)
    redis_queue.connect("redis://localhost:6379/0")
    assert made[0]["socket_timeout"] == redis_queue.STORE_TIMEOUT_S and made[0]["socket_keepalive"]
    assert made[1]["socket_timeout"] is None
