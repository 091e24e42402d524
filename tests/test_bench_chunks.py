"""Jobs enqueued together travel in one Celery message (the end-to-end speed-up the benchmark measures):
the chunk sizes, and a redelivered chunk that skips what already finished. Needs the tests' Redis
(conftest.py); no worker: run_chunk is called directly."""

import time
import uuid

from celery import states

from app.jobs import records
from app.jobs.enqueue import chunks
from app.jobs.runner import FLUSH_MS, run_chunk
from app.jobs.views import fetch


def test_bench_chunks_hold_at_most_50_jobs_and_one_second_of_work():
    def jobs(*ms):
        return [{"id": str(k), "ms": m} for k, m in enumerate(ms)]

    assert [len(c) for c in chunks(jobs(*[0] * 120))] == [50, 50, 20]
    assert [len(c) for c in chunks(jobs(*[300] * 10))] == [3, 3, 3, 1]
    assert [len(c) for c in chunks(jobs(5000, 5000, 5000))] == [1, 1, 1]
    # Calls sent together mix their jobs: order kept, each message inside both limits.
    assert [[j["ms"] for j in c] for c in chunks(jobs(600, 300, 200, 0, 5000, 10))] == [
        [600, 300],
        [200, 0],
        [5000],
        [10],
    ]
    assert chunks([]) == []


def _jobs(n):
    kwargs = {"kind": "io", "ms": 0, "enqueued_at": time.time(), "web_worker": "gunicorn pid 1"}
    jobs = [{"id": str(uuid.uuid4()), **kwargs} for _ in range(n)]
    records.write({j["id"]: records.meta(j["id"], kwargs) for j in jobs}, publish=False)
    return jobs


def test_bench_a_redelivered_chunk_skips_jobs_that_already_finished():
    jobs = _jobs(4)
    ran = []

    def execute(kind, ms):
        ran.append(kind)
        return {"kind": kind, "ms": ms, "celery_worker": "w pid 2", "started_at": 1.0, "finished_at": 2.0}

    run_chunk(jobs[:2], "worker@test", execute)  # the first delivery got through two jobs
    run_chunk(jobs, "worker@test", execute)  # then the worker was lost and the message came back
    assert len(ran) == 4
    found = fetch([j["id"] for j in jobs])
    assert all(found[j["id"]]["state"] == "done" for j in jobs)
    assert all(found[j["id"]]["web_worker"] == "gunicorn pid 1" for j in jobs)
    assert all(found[j["id"]]["completions"] == 1 for j in jobs)


def test_bench_a_failing_job_in_a_chunk_is_failed_and_the_rest_still_run():
    jobs = _jobs(3)

    def execute(kind, ms):
        if not execute.calls:
            execute.calls.append(1)
            raise ValueError("boom")
        return {"kind": kind, "ms": ms, "celery_worker": "w pid 2", "started_at": 1.0, "finished_at": 2.0}

    execute.calls = []
    run_chunk(jobs, "worker@test", execute)
    found = fetch([j["id"] for j in jobs])
    assert found[jobs[0]["id"]]["state"] == "failed"
    assert "boom" in found[jobs[0]["id"]]["error"]
    assert [found[j["id"]]["state"] for j in jobs[1:]] == ["done", "done"]
    assert states.FAILURE in states.READY_STATES


def test_bench_short_jobs_of_a_message_share_their_record_writes(monkeypatch):
    """A Redis round trip per job capped jobs enqueued together at a third of Celery's chunks(): the records
    of short jobs are written in groups. Every job still ends done, counted once."""
    jobs = _jobs(50)
    writes = []
    real_write = records.write
    monkeypatch.setattr(records, "write", lambda *a, **kw: writes.append(1) or real_write(*a, **kw))
    run_chunk(jobs, "worker@test", lambda kind, ms: {"kind": kind, "ms": ms, "started_at": 1.0, "finished_at": 1.0})
    assert len(writes) <= 5, f"{len(writes)} record writes for 50 short jobs"
    found = fetch([j["id"] for j in jobs])
    assert all(found[j["id"]]["state"] == "done" and found[j["id"]]["completions"] == 1 for j in jobs)


def test_bench_a_long_job_shows_as_running_while_it_runs():
    jobs = _jobs(2)
    for job in jobs:
        job["ms"] = FLUSH_MS
    seen = []

    def execute(kind, ms):
        seen.append({job_id: record["state"] for job_id, record in fetch([j["id"] for j in jobs]).items()})
        return {"kind": kind, "ms": ms, "started_at": 1.0, "finished_at": 1.0}

    run_chunk(jobs, "worker@test", execute)
    first, second = (j["id"] for j in jobs)
    assert seen == [{first: "running", second: "queued"}, {first: "done", second: "running"}]
