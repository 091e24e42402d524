"""The web side of a job: record it as queued, then send it to the worker through Celery's public API."""

import contextlib
import threading
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


def chunks(jobs):
    """The jobs (dicts with "ms") in order, cut into messages of at most CHUNK_JOBS jobs and CHUNK_MS of work
    (a job longer than CHUNK_MS travels alone)."""
    out, current, work = [], [], 0
    for job in jobs:
        if current and (len(current) == CHUNK_JOBS or work + job["ms"] > CHUNK_MS):
            out.append(current)
            current, work = [], 0
        current.append(job)
        work += job["ms"]
    if current:
        out.append(current)
    return out


def _batched(producer):
    """kombu's publish batch: on Redis every LPUSH of the block goes in one pipelined round trip (other
    transports publish one by one)."""
    if hasattr(producer, "batch"):
        return producer.batch(max_size=1000)
    return contextlib.nullcontext()


def _send(jobs):
    """Record the jobs as queued, then publish them in run_jobs messages."""
    # Records first: a fast worker's STARTED/SUCCESS must never be overwritten by our PENDING.
    records.write({job["id"]: records.meta(job["id"], _kwargs(job)) for job in jobs}, publish=False)
    # Every job travels in a run_jobs message, a single one too: the worker's skip of finished jobs is what
    # makes a redelivered message (after a crash) complete each job once. One producer for the whole call;
    # run_jobs ignores its own result, so apply_async subscribes to nothing.
    with celery_app.producer_or_acquire() as producer, _batched(producer):
        for batch in chunks(jobs):
            # kwargsrepr: the message's printable copy of its arguments (worker logs), which Celery otherwise
            # builds with saferepr over every job: a fifth of a 100-job call's CPU (cProfile).
            run_jobs.apply_async(
                kwargs={"jobs": batch},
                kwargsrepr=f"{{'jobs': <{len(batch)} jobs, first {batch[0]['id']}>}}",
                producer=producer,
                add_to_parent=False,
            )


def _kwargs(job):
    return {k: v for k, v in job.items() if k != "id"}


class _Call:
    """One caller's jobs waiting for a send, and how that send went."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.woken = threading.Event()  # sent (or failed), or made the next sender
        self.sent = False
        self.error = None


class GroupSender:
    """Sends the jobs of concurrent calls together (a group commit): while one call's jobs are being written
    and published, the calls that arrive meanwhile queue theirs, and the next of them sends the whole queue in
    one records write and one publish batch, their short jobs sharing messages. A lone call sends at once; no
    call answers before its own jobs are published (or fails with the error their send met), so an accepted
    job is never lost. The page's storm (one job per call, 100 calls in flight) cost the worker one message
    per job, capped near 250 jobs/s by the message's own cost (python -m bench)."""

    def __init__(self, send=_send):
        self._send = send
        self._lock = threading.Lock()
        self._queue = []
        self._sending = False

    def submit(self, jobs):
        call = _Call(jobs)
        with self._lock:
            self._queue.append(call)
            leads = not self._sending
            self._sending = True
        if not leads:
            call.woken.wait()
        if not call.sent:  # first in, or made the next sender by the one before
            self._send_queue()
        elif call.error is not None:
            raise call.error

    def _send_queue(self):
        # One turn for the calls already under way to queue their jobs too: a send that never waits on a
        # socket (the embedded broker writes files) would otherwise never let another call in.
        time.sleep(0)
        with self._lock:
            calls, self._queue = self._queue, []
        error = None
        try:
            self._send([job for call in calls for job in call.jobs])
        except BaseException as problem:
            # Each caller raises it: kombu's or Redis's error becomes their JSON 503. An interruption of this
            # greenlet (a timeout, a kill) is its own; the others only learn their send did not finish.
            error = problem if isinstance(problem, Exception) else RuntimeError("the send was interrupted")
            raise
        finally:
            with self._lock:
                if error is not None:
                    # What failed this send (Redis down or stalled) would fail or stall the next one too: the
                    # calls that queued meanwhile get the same answer now, not a second wait of their own.
                    calls, self._queue = calls + self._queue, []
                successor = self._queue[0] if self._queue else None
                self._sending = successor is not None
            for call in calls:
                call.error, call.sent = error, True
                call.woken.set()
            if successor is not None:  # the first call that queued meanwhile sends the next group
                successor.woken.set()


_sender = GroupSender()


def enqueue(kind, ms, count, web_worker):
    """Record `count` jobs as queued, then publish them; returns their ids in order."""
    enqueued_at = time.time()
    jobs = [
        {"id": str(uuid.uuid4()), "kind": kind, "ms": ms, "enqueued_at": enqueued_at, "web_worker": web_worker}
        for _ in range(count)
    ]
    _sender.submit(jobs)
    return [job["id"] for job in jobs]
