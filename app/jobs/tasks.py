"""The Celery tasks the dyno runs."""

import socket
import time

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings

from app.jobs import heartbeat as beat_heartbeat
from app.jobs import records, runner


@shared_task(name=records.RUN_JOBS_TASK, bind=True, ignore_result=True)
def run_jobs(self, jobs):
    """One or more jobs enqueued together, in one message (enqueue.chunks); each keeps its own record.

    If Redis fails under it (down, stalled), the message goes back to the queue rather than being acked as
    done with its jobs left "running": requeued at once if Redis takes the reject, else redelivered after the
    visibility timeout. The jobs it finished are skipped on the next run."""
    try:
        runner.run_chunk(
            jobs, self.request.hostname or socket.gethostname(), redelivered=may_be_redelivered(self.request)
        )
    except records.BROKER_ERRORS as problem:
        raise Reject(f"the record store failed ({type(problem).__name__}); back to the queue", requeue=True) from None


def may_be_redelivered(request):
    """Whether this message may have been delivered before (and so hold jobs already done). kombu's Redis
    transport marks every message it hands back as redelivered (a lost worker's, after the visibility
    timeout; a rejected one; one left unacknowledged at a shutdown): tests/test_job_records.py checks it. The
    embedded broker marks none where Celery looks, and a task run without a broker (eager) has no delivery
    to go by: both may be."""
    if not settings.REDIS_URL:
        return True
    return (request.delivery_info or {}).get("redelivered", True)


@shared_task(name="app.jobs.tasks.run_job")
def run_job(kind, ms, enqueued_at, web_worker):
    """One job per message and its result by Celery's own backend: the benchmark's naive `.delay()` then
    `.get()` round trip (bench/load.py), and messages queued by releases that sent one job per message."""
    return runner.execute(kind, ms)


@shared_task(name="app.jobs.tasks.heartbeat", ignore_result=True)
def heartbeat():
    beat_heartbeat.record(time.time())
