"""The job state machine, the same on SQLite and on Redis: a job is claimed once, only its current attempt may
report or finish it, cancel stops a queued job at once and asks a running one to stop, an interrupted job is
retried while attempts are left and failed with the reason after, and jobs survive reopening the store."""

from __future__ import annotations

import time

import pytest
from optiplan.planner.service.jobs import recover
from optiplan.planner.service.paths import Roots
from optiplan.planner.service.store import SqliteStore, new_job


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "jobs.sqlite")
        return
    url = request.getfixturevalue("redis_url")
    from optiplan.planner.service.redis_queue import RedisStore, connect

    yield RedisStore(connect(url))


def job(store, output=None, attempts=1):
    return store.insert(new_job("apply", {"kind": "apply", "model": "tiny", "output": output}, output, attempts))


def test_a_job_is_claimed_once_and_only_its_attempt_reports(store):
    j = job(store)
    assert store.get(j.id).state == "queued"
    claimed = store.claim(j.id, "w1")
    assert claimed.state == "running" and claimed.worker == "w1" and claimed.attempt == 1
    assert store.claim(j.id, "w2") is None
    after = store.heartbeat(j.id, 1, ["line one"], progress=0.5, step="halfway")
    assert (after.progress, after.step, after.log[-1]) == (0.5, "halfway", "line one")
    stale = store.heartbeat(j.id, 2, ["from another attempt"])
    assert "from another attempt" not in stale.log
    assert store.finish(j.id, 2, "succeeded").state == "running"  # not its attempt: nothing changes
    done = store.finish(j.id, 1, "succeeded", result={"ok": True})
    assert (done.state, done.result, done.progress) == ("succeeded", {"ok": True}, 1.0)
    assert store.cancel(j.id).state == "succeeded"  # a finished job stays as it ended


def test_the_job_list_pages_through_every_job_newest_first(store):
    """GET /v1/jobs had stopped at its 500 newest: an offset pages through the rest."""
    made = []
    for _ in range(5):
        made.append(job(store).id)
        time.sleep(0.002)  # distinct creation times: the order is theirs
    pages = [store.list(2, offset) for offset in (0, 2, 4)]
    assert [j.id for page in pages for j in page] == made[::-1] == [j.id for j in store.list(5)]
    assert store.list(2, 5) == []


def test_cancel_stops_a_queued_job_and_asks_a_running_one(store):
    queued, running = job(store), job(store)
    assert store.cancel(queued.id).state == "cancelled"
    assert store.claim(queued.id, "w1") is None
    store.claim(running.id, "w1")
    asked = store.cancel(running.id)
    assert asked.state == "running" and asked.cancel_requested


def test_the_log_keeps_its_tail_only(store):
    j = job(store)
    store.claim(j.id, "w1")
    for i in range(5):
        store.heartbeat(j.id, 1, [f"line {i * 100 + k}" for k in range(100)])
    log = store.get(j.id).log
    assert len(log) == 200 and log[-1] == "line 499" and log[0] == "line 300"


def test_an_interrupted_job_is_retried_while_attempts_are_left_then_failed(store, tmp_path):
    roots = Roots.create(tmp_path / "work")
    j = job(store, output="out", attempts=2)
    store.claim(j.id, "w1")
    partial = roots.workdir / f".out.optiplan-tmp-{j.id}-1-abcd1234"  # what attempt 1 left (fsutil's tagged name)
    partial.mkdir()
    (roots.workdir / f".out.optiplan-tmp-{j.id}-2-abcd1234").mkdir()  # not attempt 1's: kept
    (partial / "model.safetensors").write_bytes(b"half")
    assert recover(store, roots, "its worker stopped", older_than_s=60, retry=True) == []  # heartbeat is fresh
    time.sleep(0.05)
    (retried,) = recover(store, roots, "its worker stopped", older_than_s=0.01, retry=True)
    assert retried.state == "queued" and "queued again (attempt 2 of 2)" in " ".join(retried.log)
    assert not partial.exists() and f"removed the partial output {partial.name}" in retried.log
    assert (roots.workdir / f".out.optiplan-tmp-{j.id}-2-abcd1234").is_dir()
    store.claim(j.id, "w2")
    time.sleep(0.05)
    (failed,) = recover(store, roots, "its worker stopped", older_than_s=0.01, retry=True)
    assert failed.state == "failed" and failed.error == "its worker stopped (it ran on w2)"
    assert failed.attempt == 2


def test_jobs_survive_reopening_the_sqlite_store(tmp_path):
    first = SqliteStore(tmp_path / "jobs.sqlite")
    ids = [job(first).id for _ in range(3)]
    first.claim(ids[0], "w1")
    first.close()
    again = SqliteStore(tmp_path / "jobs.sqlite")
    assert [j.id for j in again.list()] == ids[::-1]
    assert again.counts() == {"queued": 2, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}


def writer(store, output):
    return store.insert_writer(new_job("apply", {"kind": "apply", "model": "tiny", "output": output}, output))


def test_one_writer_per_output_nested_outputs_included(store):
    from optiplan.planner.errors import ServiceRefused

    first = writer(store, "a")
    for output in ("a", "a/sub", "a/config.json", "b"):
        if output == "b":
            writer(store, output)  # a sibling is another output
            continue
        with pytest.raises(ServiceRefused, match=f"another job \\({first.id}\\)") as refused:
            writer(store, output)
        assert refused.value.status == 409
    writer(store, "a-b")  # a name that merely starts the same is another output
    with pytest.raises(ServiceRefused):
        writer(store, "b/c")  # inside a running one
    store.cancel(first.id)  # finished: its output is free again
    writer(store, "a/sub")
    assert [j.output for j in store.list()].count("a/sub") == 1


def test_readers_and_writers_of_one_name_wait_for_each_other(store):
    from optiplan.planner.errors import ServiceRefused

    reader = store.insert_writer(new_job("verify", {"kind": "verify"}, None, reads=["a/b"]))
    for output in ("a", "a/b", "a/b/c"):  # around it, it, inside it
        with pytest.raises(ServiceRefused, match=f"another job \\({reader.id}\\) is reading") as refused:
            writer(store, output)
        assert refused.value.status == 409
    store.insert_writer(new_job("verify", {"kind": "verify"}, None, reads=["a/b"]))  # readers share
    out = writer(store, "a/c")  # a sibling of what is read
    with pytest.raises(ServiceRefused, match="is writing 'a/c', which this job reads"):
        store.insert_writer(new_job("bench", {"kind": "bench"}, None, reads=["a/c"]))
    store.cancel(out.id)
    store.insert_writer(new_job("bench", {"kind": "bench"}, None, reads=["a/c"]))


def test_concurrent_writers_of_one_output_insert_one_job(store, tmp_path):
    """Two API processes (two connections) at once: the check and the insert are one step, so one of them wins."""
    import threading

    from optiplan.planner.errors import ServiceRefused

    if isinstance(store, SqliteStore):
        stores = [SqliteStore(tmp_path / "jobs.sqlite") for _ in range(8)]
    else:
        from optiplan.planner.service.redis_queue import RedisStore

        stores = [RedisStore(store.conn.__class__(connection_pool=store.conn.connection_pool)) for _ in range(8)]
    barrier, outcomes = threading.Barrier(8), []

    def submit(s, i):
        barrier.wait()
        try:
            writer(s, "out" if i % 2 else "out/inner")
            outcomes.append("inserted")
        except ServiceRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["inserted"] + ["refused"] * 7
    assert len(store.list()) == 1


def test_a_worker_never_reaps_the_job_it_runs_itself(store, tmp_path):
    """A heartbeat late on a busy machine: the worker running the job leaves it alone; another worker may not."""
    roots = Roots.create(tmp_path / "work")
    j = job(store, output="out", attempts=2)
    store.claim(j.id, "w1")
    time.sleep(0.05)
    assert recover(store, roots, "stale", older_than_s=0.01, retry=True, skip={j.id}) == []
    assert store.get(j.id).state == "running"
    (retried,) = recover(store, roots, "stale", older_than_s=0.01, retry=True)
    assert retried.state == "queued"


def test_counts_and_the_running_jobs_follow_every_change_of_state(store):
    # /metrics and the workers' reaper read the counts and the running jobs (on Redis from a set per state, not by
    # reading every job there is); a Redis store opened over jobs stored before those sets existed builds them
    queued, running, done = job(store), job(store), job(store)
    store.claim(running.id, "w1")
    store.claim(done.id, "w1")
    store.finish(done.id, 1, "succeeded")
    expected = {"queued": 1, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert store.counts() == expected
    assert [j.id for j in store.in_state("running")] == [running.id]
    assert [j.id for j in store.in_state("queued")] == [queued.id]
    if hasattr(store, "conn"):
        from optiplan.planner.service.redis_queue import RedisStore

        store.conn.delete(*[k for k in store.conn.keys(f"{store.prefix}:state*")])
        assert RedisStore(store.conn).counts() == expected


def test_ended_jobs_are_forgotten_after_the_retention_and_only_they(store):
    from optiplan.planner.service.store import Retention

    before = time.time() - 1
    ended = [job(store) for _ in range(3)]
    for j in ended[:2]:
        store.finish(j.id, store.claim(j.id, "w1").attempt, "succeeded")
    store.cancel(ended[2].id)  # cancelled while queued: ended too
    live = [job(store), store.claim(job(store).id, "w1")]
    assert store.forget(before) == 0  # none ended that long ago
    assert store.forget(time.time() + 1, limit=2) == 2 and store.forget(time.time() + 1) == 1
    assert {j.id for j in store.list()} == {j.id for j in live}
    assert store.counts() == {"queued": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert all(store.get(j.id) is None for j in ended)
    store.finish(live[1].id, 1, "failed")
    assert Retention(store, days=0)() == 0  # 0 keeps them for ever
    keep = Retention(store, days=0.05 / 86400, every_s=3600)  # 50 ms
    time.sleep(0.1)
    assert keep() == 1 and store.get(live[1].id) is None
    store.finish(store.claim(live[0].id, "w1").id, 1, "succeeded")
    assert keep() == 0 and store.get(live[0].id) is not None  # once per every_s


def test_indexing_the_states_of_stored_jobs_retries_when_one_changes_meanwhile(redis_url, monkeypatch):
    """A store opened over jobs stored before the state sets existed builds them; a job that changes state while it
    reads them (a worker finishing it) must not stay indexed under the state it left (the build had read the job,
    then written its old state after the worker's own move)."""
    from optiplan.planner.service.redis_queue import RedisStore, connect
    from redis.client import Pipeline

    store = RedisStore(connect(redis_url))
    running = job(store)
    store.claim(running.id, "w1")
    store.conn.delete(*store.conn.keys(f"{store.prefix}:state*"))
    mget, moved = Pipeline.mget, []

    def mget_then_finish(pipe, *args, **kwargs):  # the worker's finish lands between the build's read and write
        docs = mget(pipe, *args, **kwargs)
        if not moved:
            moved.append(store.finish(running.id, 1, "succeeded"))
        return docs

    monkeypatch.setattr(Pipeline, "mget", mget_then_finish)
    reopened = RedisStore(store.conn)
    assert moved and reopened.counts() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert reopened.in_state("running") == [] and store.conn.zscore(store.ended, running.id) is not None
