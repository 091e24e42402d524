"""Calls that enqueue at the same time send their jobs together (app/jobs/enqueue.py's GroupSender): fewer
Celery messages for the page's storm of one-job calls, and still no call answered before its jobs are
published, no job lost or sent twice, and a failed send reported to every call it carried."""

import base64
import functools
import json
import subprocess
import sys
import threading
import time

import pytest
from django.test import Client

from app.jobs import enqueue, records
from tests.local_dyno import REPO


def wait_until(condition, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class GatedSend:
    """A send that holds its first call until released, and keeps every batch it was given."""

    def __init__(self, real=None, fail_on=None):
        self.real, self.fail_on = real, fail_on
        self.batches, self.first_started, self.release = [], threading.Event(), threading.Event()

    def __call__(self, jobs):
        if not self.batches:
            self.first_started.set()
            self.release.wait(10)
        self.batches.append([job["id"] for job in jobs])
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            raise ConnectionError("Redis went away mid-send")
        if self.real is not None:
            self.real(jobs)


def first_holds_the_send(sender, gate, callers):
    """Run each caller in a thread: the first holds the send while the others queue behind it, then go."""
    threads = [threading.Thread(target=caller) for caller in callers]
    threads[0].start()
    assert gate.first_started.wait(10)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(sender._queue) == len(callers) - 1, "the other calls to queue behind the first")
    gate.release.set()
    for thread in threads:
        thread.join(10)


def run_calls(sender, gate, calls):
    """One call (a list of job dicts) per thread, the first holding the send; what each caller saw."""
    outcome = {}

    def call(index, jobs):
        try:
            sender.submit(jobs)
            outcome[index] = ("sent", len(gate.batches))
        except Exception as problem:  # noqa: BLE001 - what each caller saw is the outcome
            outcome[index] = ("error", f"{type(problem).__name__}: {problem}")

    first_holds_the_send(sender, gate, [functools.partial(call, i, jobs) for i, jobs in enumerate(calls)])
    return outcome


def jobs_of(n, ms=0):
    return [{"id": f"{n}-{k}-{time.monotonic_ns()}", "ms": ms} for k in range(n)]


def test_calls_that_arrive_during_a_send_go_together_in_the_next():
    gate = GatedSend()
    sender = enqueue.GroupSender(gate)
    calls = [jobs_of(1) for _ in range(20)]
    outcome = run_calls(sender, gate, calls)
    assert gate.batches[0] == [calls[0][0]["id"]], "a lone call is sent at once, alone"
    assert gate.batches[1] == [job["id"] for jobs in calls[1:] for job in jobs], "the rest in one send, in order"
    # No call came back before the send carrying its jobs had finished.
    assert outcome == {0: ("sent", 1), **{i: ("sent", 2) for i in range(1, 20)}}
    # The sender stands down and the next lone call goes at once.
    sender.submit(later := jobs_of(1))
    assert gate.batches[2] == [later[0]["id"]]


def test_a_failed_send_fails_every_call_it_carried_and_the_next_send_still_runs():
    gate = GatedSend(fail_on=2)
    sender = enqueue.GroupSender(gate)
    outcome = run_calls(sender, gate, [jobs_of(1) for _ in range(5)])
    assert outcome[0] == ("sent", 1)
    # Each caller gets an error of its own, a broker error (the API's JSON 503), saying what failed.
    # The call that sent the group raises what the send raised; the others each get an error of their own, a
    # broker error (the API's JSON 503), saying what failed.
    failed = ("error", "OperationalError: sending the jobs failed: Redis went away mid-send")
    assert [outcome[i] for i in range(1, 5)] == [("error", "ConnectionError: Redis went away mid-send")] + [failed] * 3
    sender.submit(jobs_of(2))
    assert len(gate.batches) == 3 and len(gate.batches[2]) == 2


def test_calls_queued_behind_a_failed_send_fail_with_it_at_once():
    """A stalled Redis holds the send for its socket timeout; the calls that queued behind it answer with the
    same error when it ends (a JSON 503), not after a second timeout of their own."""
    gate = GatedSend(fail_on=1)
    sender = enqueue.GroupSender(gate)
    outcome = run_calls(sender, gate, [jobs_of(1) for _ in range(4)])
    failed = ("error", "OperationalError: sending the jobs failed: Redis went away mid-send")
    assert outcome == {0: ("error", "ConnectionError: Redis went away mid-send"), 1: failed, 2: failed, 3: failed}
    assert len(gate.batches) == 1, "one send was tried, for the first call"
    sender.submit(jobs_of(1))
    assert len(gate.batches) == 2


def test_a_send_carries_at_most_group_jobs_and_the_rest_go_next():
    gate = GatedSend()
    sender = enqueue.GroupSender(gate)
    run_calls(sender, gate, [jobs_of(1)] + [jobs_of(enqueue.GROUP_JOBS // 2) for _ in range(4)] + [jobs_of(1)])
    half = enqueue.GROUP_JOBS // 2
    assert [len(batch) for batch in gate.batches] == [1, 2 * half, 2 * half, 1]


KILLED_WAITER = """
from gevent import monkey; monkey.patch_all()
import django; django.setup()
import gevent
from app.jobs import enqueue

release = gevent.event.Event()
sent = []
def send(jobs):
    if not sent:
        release.wait()
    sent.append(len(jobs))
sender = enqueue.GroupSender(send)
first = gevent.spawn(sender.submit, [{"id": "a", "ms": 0}])
gevent.sleep(0.05)
waiting = [gevent.spawn(sender.submit, [{"id": n, "ms": 0}]) for n in "bcd"]
gevent.sleep(0.05)
WHICH.kill()  # a request killed (a timeout, a client gone) while its call waited
release.set()
gevent.joinall([first, *waiting], timeout=5)
later = gevent.spawn(sender.submit, [{"id": "e", "ms": 0}])
later.join(timeout=5)
print("later call:", "sent" if later.successful() else "stuck", sent)
"""


@pytest.mark.parametrize("which", ["waiting[0]", "waiting[1]"])
def test_a_call_killed_while_it_waits_does_not_hold_up_the_calls_after_it(which):
    """In a gevent worker a request can be killed while its call waits for a send (the first queued call is
    the next sender); the calls queued with it and those that come later are still sent."""
    script = KILLED_WAITER.replace("WHICH", which)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "later call: sent [1, 2, 1]", result.stdout + result.stderr


@pytest.fixture
def queue():
    """Every job id in the Celery messages on the tests' Redis queue, message by message."""
    client = records.redis_client()

    def messages():
        out = []
        for raw in client.lrange("celery", 0, -1):
            message = json.loads(raw)
            body = json.loads(base64.b64decode(message["body"]))
            out.append([job["id"] for job in body[1]["jobs"]])
        return out

    return messages


def test_concurrent_api_calls_share_messages_and_every_job_is_queued_once(queue, monkeypatch):
    gate = GatedSend(real=enqueue._send)
    sender = enqueue.GroupSender(gate)
    monkeypatch.setattr(enqueue, "_sender", sender)
    before = {job_id for message in queue() for job_id in message}
    answers = {}

    def post(index):
        response = Client().post("/api/jobs", {"kind": "io", "ms": 10}, content_type="application/json")
        answers[index] = (response.status_code, [job["id"] for job in response.json()["jobs"]])

    first_holds_the_send(sender, gate, [functools.partial(post, i) for i in range(30)])

    assert sorted(status for status, _ in answers.values()) == [202] * 30
    ids = [job_id for _, call_ids in answers.values() for job_id in call_ids]
    messages = [m for m in queue() if not set(m) & before]
    queued = [job_id for message in messages for job_id in message]
    assert sorted(queued) == sorted(ids), "every accepted job is in exactly one message"
    assert len(messages) == 2, f"30 one-job calls, two sends of 1 and 29 jobs: {[len(m) for m in messages]}"
    assert all(record["status"] == "PENDING" for record, _ in records.read(ids).values())
