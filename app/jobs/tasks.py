"""The Celery tasks the dyno runs."""

import socket
import time

from celery import shared_task

from app.jobs import heartbeat as beat_heartbeat
from app.jobs import records, runner


@shared_task(name=records.RUN_JOBS_TASK, bind=True, ignore_result=True)
def run_jobs(self, jobs):
    """One or more jobs enqueued together, in one message (enqueue.chunks); each keeps its own record."""
    runner.run_chunk(jobs, self.request.hostname or socket.gethostname())


@shared_task(name="app.jobs.tasks.run_job")
def run_job(kind, ms, enqueued_at, web_worker):
    """One job per message, as releases before run_jobs sent them: kept so their queued messages still run."""
    return runner.execute(kind, ms)


@shared_task(name="app.jobs.tasks.heartbeat", ignore_result=True)
def heartbeat():
    beat_heartbeat.record(time.time())
