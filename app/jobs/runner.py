"""The worker side of a job: run the jobs of one message, each recorded as Celery records a task."""

import os
import socket
import time
from datetime import UTC, datetime

from celery import states

from app.jobs import records


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
        # The pid is read per call: with a prefork pool, children are forked after this module is imported.
        "celery_worker": f"{socket.gethostname()} pid {os.getpid()}",
        "started_at": started_at,
        "finished_at": time.time(),
    }


def run_chunk(jobs, hostname, execute=execute):
    """Run the jobs of one message in order: STARTED, then SUCCESS or FAILURE, each written with the next
    job's STARTED in one round trip. A message that comes back after a lost worker skips the jobs already
    recorded done: nothing runs twice to completion."""
    done_before = records.finished([job["id"] for job in jobs])
    pending, completed = {}, []
    for job in jobs:
        if job["id"] in done_before:
            continue
        kwargs = {k: job[k] for k in ("kind", "ms", "enqueued_at", "web_worker")}
        pending[job["id"]] = records.meta(
            job["id"], kwargs, states.STARTED, result={"pid": os.getpid(), "hostname": hostname}, worker=hostname
        )
        records.write(pending, completed=completed)
        pending, completed = {}, []
        outcome = {"worker": hostname, "date_done": datetime.now(UTC).isoformat()}
        try:
            outcome.update(status=states.SUCCESS, result=execute(job["kind"], job["ms"]))
        except Exception as problem:  # noqa: BLE001 - recorded as the job's failure, like Celery would
            outcome.update(
                status=states.FAILURE,
                result={"exc_type": type(problem).__name__, "exc_message": str(problem), "exc_module": None},
            )
        pending[job["id"]] = records.meta(job["id"], kwargs, **outcome)
        completed.append(job["id"])
    records.write(pending, completed=completed)
