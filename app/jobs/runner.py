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
        if ms:  # sleep(0) is no wait, yet costs a trip through the kernel's scheduler
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


# Records of the jobs of one message are written together, in one round trip, before the first job that
# starts this long or longer after the last write (a group commit; a finished job's record waits less than
# twice this): a Redis round trip per job made a message of 50 short jobs cost 51 round trips, a third of
# Celery's own chunks() (python -m bench, "jobs enqueued together"). A job that says it takes this long or
# longer gets its STARTED written before it runs, so it shows as running while it runs; a shorter one may go
# from queued to done in the API without a visible running state.
FLUSH_MS = 50


def run_chunk(jobs, hostname, execute=execute, redelivered=True):
    """Run the jobs of one message in order, each recorded STARTED, then SUCCESS or FAILURE; the records
    written in groups (FLUSH_MS). A message that comes back after a lost worker (`redelivered`) skips the
    jobs already recorded done: nothing counts twice as completed. A job whose record was still unwritten
    when its worker was lost (at most FLUSH_MS of work, or the one job running) runs again: at least once, as
    Celery's acks_late delivery promises. A first delivery has run nothing yet, so it does not look (a Redis
    round trip per message the worker waited on: 7% of its jobs/s, python -m bench's jobs enqueued together)."""
    done_before = records.finished([job["id"] for job in jobs]) if redelivered else set()
    pending, completed = {}, []
    last_write = time.monotonic()

    def write():
        nonlocal pending, completed, last_write
        records.write(pending, completed=completed)
        pending, completed, last_write = {}, [], time.monotonic()

    for job in jobs:
        if job["id"] in done_before:
            continue
        kwargs = records.job_kwargs(job)
        if job["ms"] >= FLUSH_MS or (time.monotonic() - last_write) * 1000 >= FLUSH_MS:
            # Written now, so the job shows as running while it runs (a record not written now would be
            # replaced by the job's outcome before the next write: not built at all).
            pending[job["id"]] = records.meta(
                job["id"], kwargs, states.STARTED, result={"pid": os.getpid(), "hostname": hostname}, worker=hostname
            )
            write()
        outcome = {"worker": hostname}
        try:
            outcome.update(status=states.SUCCESS, result=execute(job["kind"], job["ms"]))
        except Exception as problem:  # noqa: BLE001 - recorded as the job's failure, like Celery would
            outcome.update(
                status=states.FAILURE,
                result={"exc_type": type(problem).__name__, "exc_message": str(problem), "exc_module": None},
            )
        outcome["date_done"] = datetime.now(UTC).isoformat()
        pending[job["id"]] = records.meta(job["id"], kwargs, **outcome)
        completed.append(job["id"])
    write()
