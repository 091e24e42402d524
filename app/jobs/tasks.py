"""The jobs the dyno runs: a CPU-bound or an I/O-bound piece of work of a given length."""

import os
import socket
import time

from celery import shared_task

from app.jobs import store


def _burn_cpu(ms):
    """Spin on arithmetic for `ms` milliseconds; returns how many rounds it managed."""
    deadline = time.perf_counter() + ms / 1000
    rounds = 0
    while time.perf_counter() < deadline:
        sum(i * i for i in range(200))
        rounds += 1
    return rounds


def execute(kind, ms):
    started_at = time.time()
    if kind == "cpu":
        rounds = _burn_cpu(ms)
    else:
        time.sleep(ms / 1000)
        rounds = 0
    return {
        "kind": kind,
        "ms": ms,
        "rounds": rounds,
        # The pid is read per call: prefork children are forked after this module is imported.
        "celery_worker": f"{socket.gethostname()} pid {os.getpid()}",
        "started_at": started_at,
        "finished_at": time.time(),
    }


@shared_task(name=store.RUN_JOB_TASK)
def run_job(kind, ms, enqueued_at, web_worker):
    return execute(kind, ms)


@shared_task(name=store.RUN_JOBS_TASK, bind=True, ignore_result=True)
def run_jobs(self, jobs):
    """Several jobs enqueued together, in one message (store.chunks); each keeps its own record."""
    store.run_chunk(jobs, execute, self.request.hostname or socket.gethostname())


@shared_task(name="app.jobs.tasks.heartbeat", ignore_result=True)
def heartbeat():
    store.record_heartbeat(time.time())
