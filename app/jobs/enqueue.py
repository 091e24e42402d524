"""The web side of a job: record it as queued, then send it to the worker through Celery's public API."""

import contextlib
import time
import uuid

from app.celery import app as celery_app
from app.jobs import records
from app.jobs.tasks import run_jobs

# A Celery message costs the worker ~3 ms of CPU whatever the job (receive, result writes, ack; py-spy), which
# caps a small dyno near 250 short jobs/s. Jobs enqueued together therefore travel together: up to
# CHUNK_JOBS of them, CHUNK_MS of work at most, per message, so a message stays far inside the shutdown
# window (and the visibility timeout, app/settings.py) and the pool's threads still share the load. Each job
# keeps its own record and its own queued -> running -> done. (Celery's own chunks() would run the jobs of a
# message too, but without a record per job.)
CHUNK_JOBS = 50
CHUNK_MS = 1000


def chunks(jobs, ms):
    size = max(1, min(CHUNK_JOBS, CHUNK_MS // ms if ms else CHUNK_JOBS))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _batched(producer):
    """kombu's publish batch: on Redis every LPUSH of the block goes in one pipelined round trip (other
    transports publish one by one)."""
    if hasattr(producer, "batch"):
        return producer.batch(max_size=1000)
    return contextlib.nullcontext()


def enqueue(kind, ms, count, web_worker):
    """Record `count` jobs as queued, then publish them; returns their ids in order."""
    enqueued_at = time.time()
    jobs = []
    for _ in range(count):
        kwargs = {"kind": kind, "ms": ms, "enqueued_at": enqueued_at, "web_worker": web_worker}
        jobs.append((str(uuid.uuid4()), kwargs))
    # Records first: a fast worker's STARTED/SUCCESS must never be overwritten by our PENDING.
    records.write({job_id: records.meta(job_id, kwargs) for job_id, kwargs in jobs}, publish=False)
    # Every job travels in a run_jobs message, a single one too: the worker's skip of finished jobs is what
    # makes a redelivered message (after a crash) complete each job once. One producer for the whole call;
    # run_jobs ignores its own result, so apply_async subscribes to nothing.
    with celery_app.producer_or_acquire() as producer, _batched(producer):
        for chunk in chunks(jobs, ms):
            batch = [{"id": job_id, **kwargs} for job_id, kwargs in chunk]
            # kwargsrepr: the message's printable copy of its arguments (worker logs), which Celery otherwise
            # builds with saferepr over every job: a fifth of a 100-job call's CPU (cProfile).
            run_jobs.apply_async(
                kwargs={"jobs": batch},
                kwargsrepr=f"{{'jobs': <{len(batch)} jobs, first {batch[0]['id']}>}}",
                producer=producer,
                add_to_parent=False,
            )
    return [job_id for job_id, _ in jobs]
