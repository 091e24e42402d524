"""The web side of a job: record it as queued, then send it to the worker through Celery's public API."""

import contextlib
import threading
import time
import uuid

import kombu.exceptions

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
    records.write_queued(jobs)
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


class _Call:
    """One caller's jobs waiting for a send, and how that send went."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.woken = threading.Event()  # sent (or failed), or made the next sender
        self.leads = False  # made the next sender (set under the lock)
        self.sent = False
        self.error = None


# The most jobs one send carries (a single call larger than this still goes, alone): a storm's calls beyond it
# wait for the next send, so one records write (and a Redis timeout) never holds a whole worker's calls.
GROUP_JOBS = 500


class GroupSender:
    """Sends the jobs of concurrent calls together (a group commit): while one call's jobs are being written
    and published, the calls that arrive meanwhile queue theirs, and the next of them sends the queue (up to
    GROUP_JOBS jobs) in one records write and one publish batch, their short jobs sharing messages. A lone
    call sends at once; no call answers before its own jobs are published (or fails with the error their
    send met), so an accepted job is never lost. The page's storm (one job per call, 100 calls in flight)
    cost the worker one message per job, capped near 250 jobs/s by the message's own cost (python -m bench)."""

    def __init__(self, send=_send):
        self._send = send
        self._lock = threading.Lock()
        self._queue = []
        self._sending = False

    def submit(self, jobs):
        call = _Call(jobs)
        with self._lock:
            self._queue.append(call)
            call.leads = not self._sending
            self._sending = True
        if not call.leads:
            try:
                call.woken.wait()
            except BaseException:  # this greenlet was killed or timed out while it waited
                self._abandon(call)
                raise
        if not call.sent:  # first in, or made the next sender by the one before
            self._send_queue()
        elif call.error is not None:
            # A fresh error per caller (the one send's exception raised in many greenlets would share, and
            # grow, one traceback); a broker error, so each caller answers the JSON 503 naming the broker.
            raise kombu.exceptions.OperationalError(f"sending the jobs failed: {call.error}") from call.error

    def _abandon(self, call):
        with self._lock:
            if call.sent:
                return
            if call in self._queue:
                self._queue.remove(call)
            if call.leads:  # it was made the next sender: hand that on, or stand down
                self._hand_over()

    def _hand_over(self):
        """Under the lock: make the first queued call the next sender, or stand down."""
        successor = self._queue[0] if self._queue else None
        self._sending = successor is not None
        if successor is not None:
            successor.leads = True
            successor.woken.set()

    def _take(self):
        """Under the lock: the queued calls of the next send, at most GROUP_JOBS jobs (at least one call)."""
        taken, count = 0, 0
        for call in self._queue:
            if taken and count + len(call.jobs) > GROUP_JOBS:
                break
            taken, count = taken + 1, count + len(call.jobs)
        calls, self._queue = self._queue[:taken], self._queue[taken:]
        return calls

    def _send_queue(self):
        calls, error = [], None
        try:
            # One turn for the calls already under way to queue their jobs too: a send that never waits on a
            # socket (the embedded broker writes files) would otherwise never let another call in.
            time.sleep(0)
            with self._lock:
                calls = self._take()
            self._send([job for call in calls for job in call.jobs])
        except BaseException as problem:
            # An interruption of this greenlet (a timeout, a kill) is its own; the others only learn that
            # their send did not finish.
            error = problem if isinstance(problem, Exception) else RuntimeError("the send was interrupted")
            raise
        finally:
            with self._lock:
                if error is not None:
                    # What failed this send (Redis down or stalled) would fail or stall the next one too: the
                    # calls that queued meanwhile get the same answer now, not a second wait of their own.
                    calls, self._queue = calls + self._queue, []
                for call in calls:
                    call.error, call.sent = error, True
                    call.woken.set()
                self._hand_over()


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
