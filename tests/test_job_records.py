"""Job records as the API and Celery read them: the completion count each record carries, Celery's own key
and result channel, and the embedded store. Needs the tests' Redis (conftest.py); no worker: the worker's
writes are made directly through records.write, as app/jobs/runner.py makes them."""

import json
import threading
import time
import uuid

import pytest
from celery import states

from app.celery import app as celery_app
from app.jobs import records
from app.jobs.embedded import AtomicFilesystemBackend
from app.jobs.runner import run_chunk
from app.jobs.views import fetch

KWARGS = {"kind": "io", "ms": 0, "enqueued_at": 1.0, "web_worker": "gunicorn pid 1"}


def _queued(n=1):
    ids = [str(uuid.uuid4()) for _ in range(n)]
    records.write({job_id: records.meta(job_id, KWARGS) for job_id in ids}, publish=False)
    return ids


def _done(job_id):
    result = {"kind": "io", "ms": 0, "celery_worker": "w pid 2", "started_at": 1.0, "finished_at": 2.0}
    return records.meta(job_id, KWARGS, states.SUCCESS, result=result, worker="w@h")


def _running(job_id):
    return records.meta(job_id, KWARGS, states.STARTED, result={"pid": 2, "hostname": "w@h"}, worker="w@h")


def test_record_keys_are_the_ones_celery_reads():
    job_id = str(uuid.uuid4())
    assert records.key(job_id) == records.backend().get_key_for_task(job_id)


def test_each_completion_counts_once_and_a_later_running_write_keeps_the_count():
    """Two runs that both finish the same job (a redelivery while the first still ran) show as 2, not 1: the
    count comes from Redis's atomic INCR, and a running record written afterwards does not reset it."""
    [job_id] = _queued()
    assert fetch([job_id])[job_id]["completions"] == 0
    records.write({job_id: _done(job_id)}, completed=[job_id])
    assert fetch([job_id])[job_id]["completions"] == 1
    records.write({job_id: _running(job_id)})
    assert (fetch([job_id])[job_id]["state"], fetch([job_id])[job_id]["completions"]) == ("running", 1)
    records.write({job_id: _done(job_id)}, completed=[job_id])
    assert fetch([job_id])[job_id]["completions"] == 2


def test_a_record_from_before_records_carried_their_count_reads_its_counter():
    """Records written by the previous release (24 h of them) keep their count in the counter key alone."""
    job_id = str(uuid.uuid4())
    client = records.redis_client()
    client.set(records.key(job_id), records.backend().encode(_done(job_id)))
    client.set(records.completions_key(job_id), 1)
    job = fetch([job_id])[job_id]
    assert (job["state"], job["completions"], job["celery_worker"]) == ("done", 1, "w pid 2")


def test_queued_records_written_together_are_each_jobs_own():
    """The API writes a call's queued records from one encoding (records.write_queued): each record still
    holds its own id and its own call's arguments, field for field what a record written alone holds, a
    NUL in the arguments included."""
    calls = [KWARGS, {**KWARGS, "ms": 5, "enqueued_at": 2.5}, {**KWARGS, "web_worker": "odd\0host"}]
    jobs = [{"id": str(uuid.uuid4()), **kwargs} for kwargs in calls for _ in range(3)]
    records.write_queued(jobs)
    alone = {str(uuid.uuid4()): job for job in jobs}
    records.write({i: records.meta(i, records.job_kwargs(job)) for i, job in alone.items()}, publish=False)
    client = records.redis_client()
    for other, job in alone.items():
        together = json.loads(client.get(records.key(job["id"])))
        assert together == {**json.loads(client.get(records.key(other))), "task_id": job["id"]}
    found = fetch([job["id"] for job in jobs])
    assert [(found[j["id"]]["state"], found[j["id"]]["ms"], found[j["id"]]["web_worker"]) for j in jobs] == [
        ("queued", j["ms"], j["web_worker"]) for j in jobs
    ]
    assert celery_app.AsyncResult(jobs[0]["id"]).state == states.PENDING


def test_completing_a_job_without_its_record_is_refused():
    [job_id] = _queued()
    with pytest.raises(ValueError, match=job_id):
        records.write({}, completed=[job_id])


def test_a_waiter_subscribed_before_the_job_finishes_gets_its_result():
    """AsyncResult.get() subscribes to the record's channel; the worker's write publishes there."""
    [job_id] = _queued()
    got = []
    waiter = threading.Thread(target=lambda: got.append(celery_app.AsyncResult(job_id).get(timeout=10)))
    waiter.start()
    client, channel = records.redis_client(), records.key(job_id)
    deadline = time.monotonic() + 10
    while client.pubsub_numsub(channel)[0][1] < 1:  # the waiter listens on the record's channel
        assert time.monotonic() < deadline and waiter.is_alive(), f"nobody subscribed to {channel!r}: {got}"
        time.sleep(0.01)
    assert not got
    records.write({job_id: _done(job_id)}, completed=[job_id])
    waiter.join(15)
    assert got and got[0]["celery_worker"] == "w pid 2"


def test_redis_transport_marks_every_message_it_hands_back_as_redelivered():
    """The worker looks for a message's finished jobs only when it may have been delivered before
    (app/jobs/tasks.py, may_be_redelivered): that trusts kombu's Redis transport to mark a message rejected
    back to the queue, one restored after the visibility timeout (a lost worker's) and one left
    unacknowledged at a shutdown, in the delivery_info Celery reads, and to leave a first delivery unmarked."""
    name = f"redelivery-test-{uuid.uuid4().hex}"
    with celery_app.connection_for_read(transport_options={"visibility_timeout": 1}) as connection:
        queue = connection.SimpleQueue(name)
        queue.put({"job": 1})
        first = queue.get(timeout=5)
        assert not first.delivery_info.get("redelivered")
        first.reject(requeue=True)
        rejected = queue.get(timeout=5)
        assert rejected.delivery_info.get("redelivered") is True
        time.sleep(1.5)  # past the visibility timeout, unacknowledged: as if its worker had been lost
        queue.channel.qos.restore_visible(num=10)
        restored = queue.get(timeout=5)
        assert restored.delivery_info.get("redelivered") is True
        queue.close()
    with celery_app.connection_for_read() as connection:  # the one before closed with the message unacked
        queue = connection.SimpleQueue(name)
        after_shutdown = queue.get(timeout=5)
        assert after_shutdown.delivery_info.get("redelivered") is True
        after_shutdown.ack()
        queue.close()


def test_embedded_store_counts_completions_and_skips_finished_jobs_on_redelivery(tmp_path, monkeypatch):
    """`make run`'s store (files, no Redis): the same records, the same counts."""
    store = AtomicFilesystemBackend(app=celery_app, url=f"file://{tmp_path}")
    monkeypatch.setattr(records, "backend", lambda: store)
    monkeypatch.setattr(records, "redis_client", lambda: None)
    monkeypatch.setattr(records, "_key_prefix", lambda: store.get_key_for_task("0")[:-1])
    ids = _queued(3)
    jobs = [{"id": job_id, **KWARGS} for job_id in ids]
    ran = []

    def execute(kind, ms):
        ran.append(kind)
        return {"kind": kind, "ms": ms, "celery_worker": "w pid 2", "started_at": 1.0, "finished_at": 2.0}

    assert {fetch(ids)[i]["state"] for i in ids} == {"queued"}
    run_chunk(jobs[:2], "w@h", execute)
    run_chunk(jobs, "w@h", execute)  # redelivered: the first two are done already
    found = fetch(ids)
    assert len(ran) == 3
    assert [(found[i]["state"], found[i]["completions"]) for i in ids] == [("done", 1)] * 3
    assert celery_app.AsyncResult(ids[0], backend=store).result["celery_worker"] == "w pid 2"
