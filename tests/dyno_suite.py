"""Heroku's dyno semantics as checks that take their target as input.

The same checks run against the dyno started locally from the Procfile (tests/test_dyno_local.py) and against
the VPS, where systemd runs it (the Molecule verifiers). A target is any object with:

    base_url     where the dyno's web process answers (http://host:port, or nginx in front of it)
    behind_router  optional, True when base_url is a router (nginx) that holds the clients' connections
    supervised   False: a dyno that exits stays down (the local run); True: something restarts it (systemd)
    start()      start the dyno (or wait for it) until base_url answers; returns the seconds it took
    stop()       send SIGTERM to every process of the dyno, as Heroku and systemd do; wait until nothing of it is
                 left; returns (seconds, exit status or None when unknown)
    kill(name)   kill -9 one inner process: "web" (the gunicorn master) or "worker" (the Celery worker's parent)
    survivors()  pids of the dyno's processes still alive (empty once it is gone)
    exit_status(timeout)  wait for the dyno to exit by itself; its status, or None if it is still running

and, for the checks that need them:

    launch()     start the dyno without waiting for it (boot-time stops)
    kill_all()   SIGKILL every process of the dyno at once (a crashed host, an R15)
    log_since(mark)  the dyno's log lines written since `mark` (a value of log_mark()); local target only

Numbers are Heroku's: 30 s from SIGTERM to SIGKILL (Dev Center, "Dyno shutdown behavior"). The bounds below
are what users need, from the project's issues: a stop or a crash is over in 10 s whatever clients hold open,
and a crashed dyno's jobs are all done 90 s after the restart.

Cost: every check boots at least one dyno. The cheap ones (one boot, well under a minute) run on the VPS
too: CHEAP_ON_A_VPS lists them for the Molecule verifier.
"""

import http.client
import re
import threading
import time
from urllib.parse import urlsplit

import requests

HEROKU_STOP_WINDOW = 30.0
CRASH_EXIT_WITHIN = 10.0
STOP_WITHIN = 10.0
NOTICED_WITHIN = 1.0
CRASHED_JOBS_DONE_WITHIN = 90.0
WEB_LINE = re.compile(r"^\S+ web +\| ")  # a line of the launcher's log from gunicorn (honcho's prefix)
CHEAP_ON_A_VPS = ("check_stop_with_clients", "check_crash_of_inner_process", "check_job_round_trip")


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
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
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


def open_idle_connections(base_url, count):
    """`count` keep-alive connections, each with one request answered and left open, as a browser or a
    router holds them."""
    parts = urlsplit(base_url)
    connections = []
    for _ in range(count):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", "/api/health", headers={"Connection": "keep-alive"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close, "the dyno did not keep the connection"
        connections.append(connection)
    return connections


class ClosedWatch:
    """Notes when the server closes each idle connection (its read sees EOF or a reset)."""

    def __init__(self, connections):
        self.closed_at = {}
        self.threads = [threading.Thread(target=self._watch, args=(c,), daemon=True) for c in connections]

    def _watch(self, connection):
        sock = connection.sock
        sock.settimeout(60)
        try:
            data = sock.recv(1)
        except OSError:
            data = b""
        self.closed_at[id(connection)] = (time.monotonic(), data)

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return list(self.closed_at.values())


def check_stop_with_clients(target, idle=0, slow_request_ms=3000, job_ms=2000, jobs=4):
    """SIGTERM to the whole dyno with `idle` keep-alive connections open and a request and jobs in flight:
    the request completes, idle connections are closed at once, the dyno is gone within 10 s, nothing is
    left behind, and after a restart every job is done: none lost."""
    result = check_sigterm_lets_inflight_work_finish(
        target, slow_request_ms=slow_request_ms, job_ms=job_ms, jobs=jobs, idle=idle
    )
    assert result["stop_seconds"] <= STOP_WITHIN, f"the stop took {result['stop_seconds']:.1f} s with {idle} idle"
    return result


def check_sigterm_lets_inflight_work_finish(target, slow_request_ms=4000, job_ms=3000, jobs=6, idle=0):
    """SIGTERM to the whole dyno: the slow request completes, running jobs finish or go back to the queue,
    and the dyno is gone inside Heroku's 30 s. After a restart every job is done: none lost."""
    connections = open_idle_connections(target.base_url, idle)
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
    watch = ClosedWatch([] if getattr(target, "behind_router", False) else connections).start()
    stop_began = time.monotonic()
    seconds, status = target.stop()
    requester.join(timeout=60)
    closed = watch.join(timeout=5)

    assert seconds < HEROKU_STOP_WINDOW, f"the dyno took {seconds:.1f} s to stop (Heroku kills at 30 s)"
    assert target.survivors() == [], f"processes left after the stop: {target.survivors()}"
    assert slow.get("status") == 200, f"the in-flight request did not complete: {slow}"
    if getattr(target, "behind_router", False):
        # The idle connections are the router's (nginx keeps its clients' connections through a restart).
        idle_closed_after = None
        for connection in connections:
            connection.close()
    else:
        assert len(closed) == idle and all(data == b"" for _, data in closed), "an idle connection stayed open"
        idle_closed_after = max((at - stop_began for at, _ in closed), default=0.0)

    target.start()
    finished = wait_for_jobs(target.base_url, ids, timeout=90)
    lost = [i for i in ids if finished[i]["state"] != "done"]
    assert not lost, f"jobs lost across the restart: {lost}"
    return {
        "stop_seconds": seconds,
        "exit_status": status,
        "jobs": len(ids),
        "idle_closed_after_seconds": idle_closed_after,
    }


def check_sigterm_at_a_moment_of_boot(target, delay=None, at_fork=False):
    """SIGTERM to every process `delay` seconds after the dyno was spawned (or the instant gunicorn forks
    its workers): the dyno is gone within 10 s and leaves nothing behind, whatever it was doing."""
    target.launch()
    if at_fork:
        target.wait_for_gunicorn_fork()
    else:
        time.sleep(delay)
    seconds, status = target.stop()
    log = target.log()[-4000:] if hasattr(target, "log") else ""
    moment = "at the fork" if at_fork else f"{delay:.2f} s after spawn"
    assert seconds <= STOP_WITHIN, f"a SIGTERM {moment} took {seconds:.1f} s; log:\n{log}"
    assert target.survivors() == [], f"processes left after the stop: {target.survivors()}"
    return seconds


def _wait_for_any_running(base_url, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(job["state"] == "running" for job in job_states(base_url, ids).values()):
            return
        time.sleep(0.1)
    raise AssertionError("no job started running")


class Load:
    """A light, steady client load: keep-alive sessions asking for `paths` in turn, each answer noted as
    (seconds since start, path, status, seconds taken, body)."""

    def __init__(self, base_url, paths=("/api/wait?ms=20", "/api/health"), clients=4, pause=0.05):
        self.base_url = base_url
        self.paths = paths
        self.clients = clients
        self.pause = pause
        self.answers = []
        self.running = threading.Event()
        self.threads = []

    def _client(self, offset):
        session = requests.Session()
        turn = offset
        while self.running.is_set():
            path = self.paths[turn % len(self.paths)]
            turn += 1
            began = time.monotonic()
            try:
                if path.startswith("POST "):
                    response = session.post(self.base_url + path[5:], json={"kind": "io", "ms": 10}, timeout=15)
                else:
                    response = session.get(self.base_url + path, timeout=15)
                status, body = response.status_code, response.text[:300]
            except requests.RequestException as error:
                status, body = None, repr(error)[:300]
            self.answers.append((began - self.began, path, status, time.monotonic() - began, body))
            time.sleep(self.pause)

    def __enter__(self):
        self.began = time.monotonic()
        self.running.set()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.running.clear()
        for thread in self.threads:
            thread.join(timeout=20)


def check_crash_of_inner_process(target, name, idle=0, under_load=False):
    """kill -9 of one inner process, with `idle` keep-alive connections open and optionally under a client
    load. Unsupervised: the launcher notices within 1 s (its log says so, where the target has a log), the
    whole dyno exits non-zero within 10 s and leaves no process behind, so the platform can restart it.
    Supervised: it comes back and serves again. Returns the seconds until it was down (unsupervised) or
    serving again (supervised)."""
    connections = open_idle_connections(target.base_url, idle)
    load = Load(target.base_url) if under_load else None
    if load:
        load.__enter__()
        time.sleep(1)
    mark = target.log_mark() if hasattr(target, "log_mark") else None
    began = time.monotonic()
    target.kill(name)
    if target.supervised:
        if load:
            load.__exit__()
        wait_until_serving(target.base_url, timeout=60)
        return time.monotonic() - began
    noticed = None
    if mark is not None:
        while noticed is None and time.monotonic() - began < CRASH_EXIT_WITHIN:
            if any(f"| {name} stopped" in line for line in target.log_since(mark)):
                noticed = time.monotonic() - began
            time.sleep(0.02)
    status = target.exit_status(timeout=max(0.0, CRASH_EXIT_WITHIN - (time.monotonic() - began)))
    took = time.monotonic() - began
    if load:
        load.__exit__()
    for connection in connections:
        connection.close()
    if mark is not None:
        assert noticed is not None and noticed <= NOTICED_WITHIN, (
            f"the launcher noticed the death of {name} after {noticed} s (needed: {NOTICED_WITHIN:.0f} s)"
        )
    assert status is not None, f"the dyno was still running {CRASH_EXIT_WITHIN:.0f} s after {name} was killed"
    assert status != 0, f"the dyno exited 0 after {name} was killed: the platform would not see a crash"
    deadline = time.monotonic() + 2
    while target.survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.survivors() == [], f"processes left after the crash: {target.survivors()}"
    check_crash_of_inner_process.noticed = noticed
    return took


def check_crash_with_jobs_queued_and_running(target, jobs=300):
    """SIGKILL of every process of the dyno with `jobs` jobs queued or running, then a restart: every job is
    done within 90 s of the restart, and each ran to completion exactly once (the API's `completions`)."""
    ids = []
    for kind, ms, count in (("io", 100, 100), ("cpu", 20, 100), ("io", 200, 50), ("io", 0, 50)):
        ids += enqueue(target.base_url, kind, ms, count)
    assert len(ids) == jobs
    deadline = time.monotonic() + 30
    while True:  # kill once work is under way: some jobs done, some running, most queued
        states = [job["state"] for job in job_states(target.base_url, ids).values()]
        if "running" in states and states.count("done") >= 5:
            break
        assert time.monotonic() < deadline, f"no job ran within 30 s: {sorted(set(states))}"
        time.sleep(0.05)
    before = {state: states.count(state) for state in set(states)}
    target.kill_all()
    target.start()
    restarted = time.monotonic()
    finished = wait_for_jobs(target.base_url, ids, timeout=CRASHED_JOBS_DONE_WITHIN)
    took = time.monotonic() - restarted
    failed = {i: job["state"] for i, job in finished.items() if job["state"] != "done"}
    assert not failed, f"jobs not done after the crash: {failed}"
    twice = {i: job["completions"] for i, job in finished.items() if job["completions"] != 1}
    assert not twice, f"jobs that did not run to completion exactly once: {twice}"
    return {"before_kill": before, "all_done_after_restart_seconds": took}


def check_redis_fault(target, redis, fault, seconds=10.0, answer_within=5.0, recover_within=5.0):
    """Redis stalled (`fault="stall"`: SIGSTOP) or refused (`"refuse"`: stopped) for `seconds` under a
    light load. While it lasts every request answers within `answer_within` s: the API a JSON 503 naming
    the broker, /api/health a 503 saying redis is down, `/` a 200. Within `recover_within` s of its return
    every request is served again, without a restart; jobs enqueued before the fault are all done after it.
    `redis` is the test's Redis: .pause(), .resume(), .stop(), .start() (its data kept)."""
    before = enqueue(target.base_url, "io", 50, 20)
    paths = ("POST /api/jobs", "/api/jobs?ids=" + ",".join(before[:5]), "/api/health", "/")
    mark = target.log_mark() if hasattr(target, "log_mark") else None
    with Load(target.base_url, paths=paths, clients=4, pause=0.1) as load:
        time.sleep(1)
        fault_began = time.monotonic() - load.began
        (redis.pause if fault == "stall" else redis.stop)()
        time.sleep(seconds)
        (redis.resume if fault == "stall" else redis.start)()
        fault_ended = time.monotonic() - load.began
        time.sleep(recover_within + 3)
    answers = load.answers
    slowest = max(taken for _, _, _, taken, _ in answers)
    during = [a for a in answers if fault_began + 0.5 <= a[0] <= fault_ended - 0.5]
    assert during, "no request was answered while Redis was down"
    assert slowest <= answer_within, f"a request took {slowest:.1f} s: {max(answers, key=lambda a: a[3])}"
    log = "\n".join(target.log_since(mark)[-150:]) if mark is not None else ""
    for at, path, status, _taken, body in answers:
        assert status in (200, 202, 503), f"{path} answered {status} at {at:.1f} s: {body}\n{log}"
        if path == "/":
            assert status == 200, f"/ answered {status} while Redis was down"
        if status == 503:
            assert '"unavailable": "redis"' in body or '"redis":' in body, f"{path}: a 503 not naming redis: {body}"
    assert any(status == 503 for _, path, status, _, _ in during if path == "/api/health"), "health said ok"
    assert any(status == 503 for _, path, status, _, _ in during if path.startswith("POST")), "POSTs went on"
    # Recovery: the first moment after which every answer was a success.
    failures_after = [at for at, _, status, _, _ in answers if at > fault_ended and status not in (200, 202)]
    recovered_after = (max(failures_after) - fault_ended) if failures_after else 0.0
    assert recovered_after <= recover_within, f"still failing {recovered_after:.1f} s after Redis returned"
    # A job the worker held when Redis failed comes back after the visibility timeout (45 s).
    finished = wait_for_jobs(target.base_url, before, timeout=90)
    assert all(job["state"] == "done" for job in finished.values())
    figures = {
        "requests": len(answers),
        "during_fault": len(during),
        "statuses_during_fault": sorted({a[2] for a in during}, key=str),
        "slowest_answer_seconds": round(slowest, 2),
        "recovered_after_seconds": round(recovered_after, 2),
    }
    if mark is not None:
        lines = target.log_since(mark)
        figures["log_lines"] = len(lines)
        figures["log_lines_not_info"] = sum(" INFO " not in line for line in lines)
        figures["web_log_lines"] = sum(bool(WEB_LINE.search(line)) for line in lines)
        figures["web_503_log_lines"] = sum(bool(WEB_LINE.search(line)) and "answering 503" in line for line in lines)
    return figures
