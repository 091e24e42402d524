"""Heroku's dyno semantics as checks that take their target as input.

The same checks run against the dyno started locally from the Procfile (tests/test_dyno_local.py) and against
the VPS, where systemd runs it (the Molecule verifiers). A target is any object with:

    base_url     where the dyno's web process answers (http://host:port, or nginx in front of it)
    supervised   False: a dyno that exits stays down (the local run); True: something restarts it (systemd)
    start()      start the dyno (or wait for it) until base_url answers; returns the seconds it took
    stop()       send SIGTERM to every process of the dyno, as Heroku and systemd do; wait until nothing of it is
                 left; returns (seconds, exit status or None when unknown)
    kill(name)   kill -9 one inner process: "web" (the gunicorn master) or "worker" (the Celery worker's parent)
    survivors()  pids of the dyno's processes still alive (empty once it is gone)
    exit_status(timeout)  wait for the dyno to exit by itself; its status, or None if it is still running

Numbers are Heroku's (../shared/reference/heroku-runtime.md): 30 s from SIGTERM to SIGKILL.
"""

import threading
import time

import requests

HEROKU_STOP_WINDOW = 30.0
CRASH_EXIT_WITHIN = 10.0


def wait_until_serving(base_url, timeout=60.0):
    """Poll /api/health until it answers 200; returns the seconds it took."""
    began = time.monotonic()
    last_error = None
    while time.monotonic() - began < timeout:
        try:
            if requests.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                return time.monotonic() - began
        except requests.RequestException as error:
            last_error = error
        time.sleep(0.1)
    raise AssertionError(f"{base_url} did not answer within {timeout:.0f} s (last error: {last_error})")


def enqueue(base_url, kind="io", ms=100, count=1):
    response = requests.post(f"{base_url}/api/jobs", json={"kind": kind, "ms": ms, "count": count}, timeout=10)
    assert response.status_code == 202, response.text
    return [job["id"] for job in response.json()["jobs"]]


def job_states(base_url, ids):
    """{id: job} for every id the dyno knows; unknown ids are missing."""
    found = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        response = requests.get(f"{base_url}/api/jobs", params={"ids": ",".join(chunk)}, timeout=10)
        assert response.status_code == 200, response.text
        found.update({job["id"]: job for job in response.json()["jobs"]})
    return found


def wait_for_jobs(base_url, ids, timeout=60.0):
    """Poll until every job is done or failed; returns the final records."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = job_states(base_url, ids)
        if len(jobs) == len(ids) and all(job["state"] in ("done", "failed") for job in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            pending = {
                i: jobs.get(i, {}).get("state", "unknown") for i in ids if jobs.get(i, {}).get("state") != "done"
            }
            raise AssertionError(f"jobs not finished after {timeout:.0f} s: {pending}")
        time.sleep(0.2)


def check_job_round_trip(target, count=20):
    """Jobs enqueued over HTTP run on the dyno's Celery worker and come back over HTTP."""
    ids = enqueue(target.base_url, "io", 50, count) + enqueue(target.base_url, "cpu", 20, count)
    jobs = wait_for_jobs(target.base_url, ids)
    assert all(job["state"] == "done" for job in jobs.values()), jobs
    assert all(job["celery_worker"] and job["web_worker"] for job in jobs.values())
    assert all(job["finished_at"] >= job["started_at"] >= job["enqueued_at"] - 1 for job in jobs.values())
    return jobs


def check_sigterm_lets_inflight_work_finish(target, slow_request_ms=4000, job_ms=3000, jobs=6):
    """SIGTERM to the whole dyno: the slow request completes, running jobs finish or go back to the queue,
    and the dyno is gone inside Heroku's 30 s. After a restart every job is done: none lost."""
    wait_for_fresh_beat_tick(target.base_url)
    ids = enqueue(target.base_url, "io", job_ms, jobs)
    slow = {}

    def slow_request():
        try:
            response = requests.get(f"{target.base_url}/api/wait", params={"ms": slow_request_ms}, timeout=40)
            slow["status"] = response.status_code
            slow["body"] = response.json()
        except requests.RequestException as error:
            slow["error"] = repr(error)

    requester = threading.Thread(target=slow_request)
    requester.start()
    _wait_for_any_running(target.base_url, ids)
    time.sleep(0.3)  # let the slow request reach gunicorn
    seconds, status = target.stop()
    requester.join(timeout=60)

    assert seconds < HEROKU_STOP_WINDOW, f"the dyno took {seconds:.1f} s to stop (Heroku kills at 30 s)"
    assert target.survivors() == [], f"processes left after the stop: {target.survivors()}"
    assert slow.get("status") == 200, f"the in-flight request did not complete: {slow}"

    target.start()
    finished = wait_for_jobs(target.base_url, ids, timeout=90)
    lost = [i for i in ids if finished[i]["state"] != "done"]
    assert not lost, f"jobs lost across the restart: {lost}"
    return {"stop_seconds": seconds, "exit_status": status, "jobs": len(ids)}


def wait_for_fresh_beat_tick(base_url, timeout=30.0):
    """Wait until beat has ticked since this call: the whole dyno is up, not just its web process.

    Celery beat can hang if SIGTERM lands while it is still building its scheduler (its signal handler
    re-enters that construction); the launcher's SIGKILL at 28 s still ends the dyno inside Heroku's window,
    but the checks here are about a dyno that has finished booting.
    """
    began = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick = requests.get(f"{base_url}/api/health", timeout=5).json().get("beat_last_tick")
        if tick and tick >= began:
            return tick
        time.sleep(0.25)
    raise AssertionError(f"beat did not tick within {timeout:.0f} s")


def _wait_for_any_running(base_url, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(job["state"] == "running" for job in job_states(base_url, ids).values()):
            return
        time.sleep(0.1)
    raise AssertionError("no job started running")


def check_crash_of_inner_process(target, name):
    """kill -9 of one inner process. Unsupervised: the whole dyno exits non-zero within 10 s and leaves no
    process behind, so the platform can restart it. Supervised: it comes back and serves again.
    Returns the seconds until it was down (unsupervised) or serving again (supervised)."""
    began = time.monotonic()
    target.kill(name)
    if target.supervised:
        wait_until_serving(target.base_url, timeout=60)
        return time.monotonic() - began
    status = target.exit_status(timeout=CRASH_EXIT_WITHIN)
    took = time.monotonic() - began
    assert status is not None, f"the dyno was still running {CRASH_EXIT_WITHIN:.0f} s after {name} was killed"
    assert status != 0, f"the dyno exited 0 after {name} was killed: the platform would not see a crash"
    deadline = time.monotonic() + 2
    while target.survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.survivors() == [], f"processes left after the crash: {target.survivors()}"
    return took
