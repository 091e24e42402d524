"""The packed dyno, started from the Procfile exactly as Heroku starts it, against a real Redis over TLS
(Heroku's Key-Value Store) and again on the embedded defaults. Figures go to artifacts/dyno-figures.json."""

import concurrent.futures
import json
import runpy
import secrets
import select
import signal
import socket
import threading
import time
import uuid

import psutil
import pytest
import requests

from bench.probe import connections_per_worker
from tests import dyno_suite
from tests.local_dyno import REPO, LocalDyno, PostgresServer, RedisServer, build_slug

FIGURES = REPO / "artifacts" / "dyno-figures.json"


def record(name, value):
    FIGURES.parent.mkdir(exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def slug(tmp_path_factory):
    return build_slug(tmp_path_factory.mktemp("slug"))


@pytest.fixture(scope="module")
def redis_tls(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def heroku_config(redis_tls, postgres):
    """Config vars as Heroku sets them: DYNO, a generated secret, add-on URLs (Redis over TLS, Postgres)."""
    return {
        "DYNO": "web.1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis_tls.url,
        "DATABASE_URL": postgres.url,
    }


@pytest.fixture
def dynos(tmp_path):
    started = []

    def make(slug, config_vars, process_type="web"):
        dyno = LocalDyno(slug, config_vars, tmp_path / f"{process_type}-{secrets.token_hex(4)}.log", process_type)
        started.append(dyno)
        return dyno

    yield make
    for dyno in started:
        dyno.close()


@pytest.fixture(scope="module")
def released(slug, heroku_config, tmp_path_factory):
    """The release phase, once: the database schema every Heroku-config dyno of this module uses."""
    dyno = LocalDyno(slug, heroku_config, tmp_path_factory.mktemp("release") / "release.log")
    release = dyno.run_one_off("release")
    assert release.returncode == 0, release.stdout + release.stderr
    return heroku_config


@pytest.fixture
def heroku_dyno(slug, released, dynos):
    dyno = dynos(slug, released)
    dyno.start()
    return dyno


@pytest.fixture
def embedded_dyno(slug, dynos):
    """No config vars at all: SQLite and the folder broker, as on a fresh clone."""
    dyno = dynos(slug, {})
    release = dyno.run_one_off("release")
    assert release.returncode == 0, release.stdout + release.stderr
    dyno.start()
    return dyno


def test_release_phase_is_idempotent(slug, heroku_config, dynos):
    dyno = dynos(slug, heroku_config)
    first = dyno.run_one_off("release")
    second = dyno.run_one_off("release")
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No migrations to apply" in second.stdout


def test_dyno_binds_port_well_inside_heroku_boot_timeout(heroku_dyno):
    assert heroku_dyno.boot_seconds < 60
    time.sleep(3)  # let every process settle before measuring idle memory
    pss, rss = heroku_dyno.memory()
    record("boot_seconds", round(heroku_dyno.boot_seconds, 2))
    record("idle_pss_mb", round(pss, 1))
    record("idle_rss_mb", round(rss, 1))
    processes = len(heroku_dyno.survivors())
    record("processes", processes)
    # web master + 2 workers, the Celery worker (beat is a thread of it), the launcher and its output readers
    assert processes >= 5
    # Beat is a thread of the one Celery worker: no process of its own (a forked beat child would carry the
    # worker's own command line, so the processes are counted, not their names).
    celery = [p for p in map(psutil.Process, heroku_dyno.survivors()) if "celery" in " ".join(p.cmdline())]
    assert len(celery) == 1 and celery[0].children() == [], [" ".join(p.cmdline()) for p in celery]


def test_job_round_trip_over_redis_tls(heroku_dyno):
    jobs = dyno_suite.check_job_round_trip(heroku_dyno)
    assert {job["kind"] for job in jobs.values()} == {"io", "cpu"}


def test_beat_runs_inside_the_packed_dyno(heroku_dyno):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        health = dyno_suite.requests.get(f"{heroku_dyno.base_url}/api/health", timeout=5).json()
        if health["beat_last_tick"]:
            assert time.time() - health["beat_last_tick"] < 30
            return
        time.sleep(0.5)
    pytest.fail("beat's heartbeat never reached the result store")


@pytest.mark.parametrize("idle", [0, 1, 100])
def test_sigterm_with_idle_keepalive_connections_and_inflight_work(heroku_dyno, idle):
    result = dyno_suite.check_stop_with_clients(heroku_dyno, idle=idle)
    record(f"stop_seconds_with_inflight_work_{idle}_idle", round(result["stop_seconds"], 2))
    record(f"idle_connections_closed_after_seconds_{idle}_idle", round(result["idle_closed_after_seconds"], 2))
    assert result["exit_status"] == 0


def test_sigterm_again_and_again_through_the_stop_still_ends_in_a_clean_exit(heroku_dyno):
    """Heroku sends SIGTERM "sometimes more than once". One that reached the launcher while its interpreter
    exited killed it (status -15 in place of 0; once the stop took under a second, one stop in five met the
    harness's second round so): here every process of the dyno gets SIGTERM every 20 ms until it is gone."""
    began = time.monotonic()
    rounds = 0
    while heroku_dyno.process.poll() is None and time.monotonic() - began < dyno_suite.HEROKU_STOP_WINDOW:
        heroku_dyno.signal_all(signal.SIGTERM)
        rounds += 1
        time.sleep(0.02)
    status = heroku_dyno.process.wait(timeout=5)
    record("stop_seconds_with_sigterm_every_20_ms", round(time.monotonic() - began, 2))
    assert status == 0, f"the dyno exited with {status} after {rounds} rounds of SIGTERM; its log:\n{heroku_dyno.log()}"
    assert heroku_dyno.survivors() == []


GUNICORN_CONF = runpy.run_path(str(REPO / "app" / "gunicorn.conf.py"))
IDLE_SWEEP_SECONDS = GUNICORN_CONF["IDLE_SWEEP_SECONDS"]
NEW_CONNECTION_GRACE_SECONDS = GUNICORN_CONF["NEW_CONNECTION_GRACE_SECONDS"]


def test_a_request_sent_just_after_connecting_is_answered_while_the_dyno_stops(heroku_dyno):
    """The router opens one connection per request. A connection accepted just before SIGTERM whose request
    arrives just after it is served, not closed unanswered as an idle one (the router's 502s during restarts
    under load)."""
    host, port = heroku_dyno.base_url.split("//", 1)[1].split(":")
    mark = heroku_dyno.log_mark()
    connection = socket.create_connection((host, int(port)), timeout=10)
    connected = time.monotonic()
    time.sleep(0.5)  # accepted by a gunicorn worker, no request yet
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(heroku_dyno.stop)
        deadline = time.monotonic() + 10
        while not any("Handling signal: term" in line for line in heroku_dyno.log_since(mark)):
            assert time.monotonic() < deadline, "gunicorn never logged the SIGTERM"
            time.sleep(0.02)
        time.sleep(2 * IDLE_SWEEP_SECONDS)  # a stopping worker has swept its idle connections at least once
        sent_after = time.monotonic() - connected
        connection.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        answer = connection.recv(65536)
        connection.close()
        seconds, status = stopping.result(timeout=60)
    heroku_dyno.start()
    # Sent later than this, the connection is idle by design and may be closed: the case would not be tested.
    assert sent_after < NEW_CONNECTION_GRACE_SECONDS, f"the request went {sent_after:.1f} s after connecting"
    assert answer.startswith(b"HTTP/1.1 200"), f"the request got {answer[:200]!r}"
    assert seconds < dyno_suite.STOP_WITHIN and status == 0


def test_every_connection_a_worker_accepted_as_the_dyno_stops_is_answered(heroku_dyno):
    """The router opens one connection per request, so new connections keep coming as the dyno stops. A
    stopping gunicorn worker closes its listener; a connection it had accepted just before was then handled
    with the listener closed: gunicorn's handler asked the closed socket its name (EBADF, "Socket error
    processing request") and dropped the connection unanswered, which the router turned into a 503 (on the
    Molecule hosts, about one restart in ten with the other scenario running beside it). Clients connect as
    fast as they can through 8 stops. A dropped connection looks like one the kernel resets when the listener
    closes, so the dyno's log tells them apart: no socket error; and no connection closes with no answer.
    Without the fix this failed 3 runs of 4 (5 stops each)."""
    host, port = "127.0.0.1", heroku_dyno.port
    request = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    outcomes = {"answered": 0, "refused or reset": 0, "closed unanswered": 0}
    counting = threading.Lock()

    def count(outcome):
        with counting:
            outcomes[outcome] += 1

    def client(until):
        while time.monotonic() < until:
            try:
                with socket.create_connection((host, port), timeout=10) as connection:
                    connection.sendall(request)
                    answer = connection.recv(65536)
            except OSError:  # refused (no listener), reset (never accepted), broken pipe
                count("refused or reset")
                continue
            count("answered" if answer.startswith(b"HTTP/1.1 ") else "closed unanswered")

    mark = heroku_dyno.log_mark()
    for _ in range(8):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            until = time.monotonic() + 1.5
            clients = [pool.submit(client, until) for _ in range(4)]
            time.sleep(0.5)
            seconds, status = heroku_dyno.stop()
            for finished in clients:
                finished.result()
        assert status == 0, heroku_dyno.log()[-3000:]
        heroku_dyno.start()
    errors = [line for line in heroku_dyno.log_since(mark) if "Socket error" in line or "Errno 9" in line]
    record("connections_through_8_stops", outcomes)
    assert outcomes["closed unanswered"] == 0, f"{outcomes}; the dyno logged: {errors}"
    assert errors == [], errors
    assert outcomes["answered"] > 0, outcomes


def test_a_burst_of_new_connections_is_shared_by_the_web_workers(heroku_dyno):
    """wrk, a page of browsers or the router after a restart opens many connections at once. gevent's default
    took up to 100 per wake-up, so the first worker awake took most of a burst, often all of it: one core
    served those connections for as long as they lived, the other idled. Each worker now takes its share of
    what waits in the accept queue. Ten bursts of 50 keep-alive connections, each answered; the workers'
    shares summed over the bursts: 224-244 of 500 for the fewer-held worker in five runs here, 73-136 with
    gevent's default (which this test fails)."""
    port = heroku_dyno.port
    held = {}
    for _ in range(10):
        clients = []
        for _ in range(50):  # connect all first, as fast as Python goes (wrk connects like this)
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            clients.append(client)
        _, writable, _ = select.select([], clients, [], 10)
        assert len(writable) == len(clients), "not every connection was established within 10 s"
        for client in clients:
            client.setblocking(True)
            client.settimeout(10)
            client.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        shares = connections_per_worker(heroku_dyno, port, {client.getsockname()[1] for client in clients})
        assert len(shares) == 2, f"the default dyno runs 2 gunicorn workers, found {shares}"
        for pid, count in shares.items():
            held[pid] = held.get(pid, 0) + count
        for client in clients:
            client.close()
        time.sleep(0.3)  # the workers see the closes before the next burst
    record("burst_connections_per_worker", sorted(held.values()))
    assert sum(held.values()) == 500, held
    assert min(held.values()) >= 160, f"one worker took {max(held.values())} of 500 connections: {held}"


@pytest.mark.parametrize("idle", [0, 1, 100])
@pytest.mark.parametrize("inner", ["worker", "web"])
def test_kill_9_of_inner_process_under_load_crashes_whole_dyno(heroku_dyno, inner, idle):
    took = dyno_suite.check_crash_of_inner_process(heroku_dyno, inner, idle=idle, under_load=True)
    record(f"crash_exit_seconds_{inner}_{idle}_idle", round(took, 2))
    record(f"crash_noticed_seconds_{inner}_{idle}_idle", round(dyno_suite.check_crash_of_inner_process.noticed, 2))


# 20 moments over the first 10 s after spawn: the instant gunicorn forks its workers, and 19 delays spread
# evenly from 0 to 10 s. Four dynos at a time (each stop is seconds of mostly waiting).
BOOT_MOMENTS = [None] + [round(i * 10 / 18, 2) for i in range(19)]


def test_sigterm_at_any_moment_of_boot_stops_within_10_s(slug, released, dynos):
    def one(moment):
        dyno = dynos(slug, released)
        seconds = dyno_suite.check_sigterm_at_a_moment_of_boot(dyno, delay=moment, at_fork=moment is None)
        return moment, seconds, dyno.log()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, BOOT_MOMENTS))
    record("boot_sigterm_stop_seconds", {str(moment or "fork"): round(s, 2) for moment, s, _ in outcomes})


def test_sigkill_of_the_whole_dyno_with_300_jobs_every_job_done_once_after_restart(heroku_dyno):
    result = dyno_suite.check_crash_with_jobs_queued_and_running(heroku_dyno, jobs=300)
    record("sigkill_300_jobs", result)


def test_missing_secret_key_in_production_fails_fast_naming_it(slug, heroku_config, dynos):
    config = {k: v for k, v in heroku_config.items() if k != "DJANGO_SECRET_KEY"}
    result = dynos(slug, config).run_one_off("web")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stdout + result.stderr


def test_split_layout_runs_web_and_worker_in_separate_dynos(slug, heroku_config, dynos):
    config = dict(heroku_config, DYNO_LAYOUT="split")
    web = dynos(slug, dict(config, DYNO="web.1"))
    worker = dynos(slug, dict(config, DYNO="worker.1"), process_type="worker")
    assert web.run_one_off("release").returncode == 0
    web.start()
    worker.launch()
    assert not any("celery" in command for command in web.commands()), web.commands()
    dyno_suite.check_job_round_trip(web, count=5)
    assert any("celery" in command and " --beat" in command for command in worker.commands())


def test_worker_process_type_refuses_to_run_in_packed_layout(slug, heroku_config, dynos):
    result = dynos(slug, dict(heroku_config, DYNO="worker.1"), process_type="worker").run_one_off("worker")
    assert result.returncode != 0
    assert "DYNO_LAYOUT=split" in result.stdout + result.stderr


def test_embedded_defaults_run_jobs_without_any_server(embedded_dyno):
    dyno_suite.check_job_round_trip(embedded_dyno)


def test_embedded_defaults_keep_jobs_across_sigterm(embedded_dyno):
    result = dyno_suite.check_sigterm_lets_inflight_work_finish(embedded_dyno)
    assert result["exit_status"] == 0


# --- real clients against one serving dyno: what an ordinary HTTP client can send ---------------------------


@pytest.fixture(scope="module")
def serving_dyno(slug, released, tmp_path_factory):
    dyno = LocalDyno(slug, released, tmp_path_factory.mktemp("serving") / "web.log")
    dyno.start()
    yield dyno
    dyno.close()


def raw_request(dyno, data):
    """Send raw bytes, return (status, headers+body text) of the answer."""
    with socket.create_connection(("127.0.0.1", dyno.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin1"), body.decode("latin1")


def test_chunked_post_body_is_read_not_replaced_by_defaults(serving_dyno):
    body = json.dumps({"kind": "cpu", "ms": 7, "count": 2}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    status, _, text = raw_request(
        serving_dyno,
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks,
    )
    assert status == 202, text
    jobs = json.loads(text)["jobs"]
    assert [(job["kind"], job["ms"]) for job in jobs] == [("cpu", 7), ("cpu", 7)]


@pytest.mark.parametrize("host_line", [b"Host: evil.example\r\n", b""], ids=["bad-host", "no-host"])
def test_bad_or_missing_host_is_a_400_json_with_one_log_line(serving_dyno, host_line):
    # HTTP/1.0: a request without Host is legal there, and the answer ends with the connection.
    mark = serving_dyno.log_mark()
    status, head, body = raw_request(serving_dyno, b"GET /api/health HTTP/1.0\r\n" + host_line + b"\r\n")
    assert status == 400, body
    assert "application/json" in head and "error" in json.loads(body)
    time.sleep(0.5)
    lines = [line for line in serving_dyno.log_since(mark) if dyno_suite.WEB_LINE.search(line)]
    assert len(lines) == 1 and "Invalid HTTP_HOST" in lines[0], lines


def _task_lines(dyno, mark, wanted, within=10.0):
    """The worker's lines about run_jobs messages since `mark`, once `wanted` of them are there (or `within`
    seconds have passed)."""
    deadline = time.monotonic() + within
    while True:
        lines = [line for line in dyno.log_since(mark) if "app.jobs.tasks.run_jobs[" in line]
        if len(lines) >= wanted or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_the_worker_logs_no_line_per_message_unless_log_each_task_is_set(slug, released, dynos, tmp_path):
    """Celery's received and succeeded lines, one each per message, are off by default: at a storm's rate
    they cost the worker ~10% of its jobs/s. LOG_EACH_TASK=true brings them back. Each dyno has a Redis of
    its own, so its jobs can only have run in its own worker."""
    found = {}
    for setting in ("", "true"):
        redis = RedisServer(tmp_path / f"redis-{setting or 'default'}").start()
        try:
            dyno = dynos(slug, dict(released, REDIS_URL=redis.url, LOG_EACH_TASK=setting))
            dyno.start()
            mark = dyno.log_mark()
            dyno_suite.wait_for_jobs(dyno.base_url, dyno_suite.enqueue(dyno.base_url, "io", 0, 3))
            found[setting] = _task_lines(dyno, mark, wanted=2, within=3.0)
            dyno.close()
        finally:
            redis.stop()
    assert found[""] == []
    loud = found["true"]
    assert any(" received" in line for line in loud) and any(" succeeded in " in line for line in loud), loud


@pytest.mark.parametrize("count", [200, 201, 221, 400])
def test_ids_per_read_limit_is_the_real_one_and_past_it_a_json_4xx(serving_dyno, count):
    ids = dyno_suite.enqueue(serving_dyno.base_url, "io", 0, min(count, 200))
    ids += [str(uuid.uuid4()) for _ in range(count - len(ids))]
    response = requests.get(f"{serving_dyno.base_url}/api/jobs", params={"ids": ",".join(ids)}, timeout=10)
    if count <= 200:
        assert response.status_code == 200
        assert len(response.json()["jobs"]) + len(response.json()["unknown"]) == count
    else:
        assert 400 <= response.status_code < 500
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]


# --- Redis faults: a stalled and a refused Redis, under a light load -------------------------------------


@pytest.fixture(scope="module")
def redis_persistent(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-faults"), persist=True).start()
    yield server
    server.stop()


@pytest.fixture
def fault_dyno(slug, released, redis_persistent, dynos):
    dyno = dynos(slug, dict(released, REDIS_URL=redis_persistent.url))
    dyno.start()
    return dyno


# A refused Redis once killed the Celery worker (kombu 5.7 closing a channel of a dropped connection):
# app/redis_transport.py fixes it, and the dyno must keep running through the fault.
@pytest.mark.parametrize("fault", ["stall", "refuse"])
def test_redis_fault_answers_503_fast_logs_little_and_recovers(fault_dyno, redis_persistent, fault):
    figures = dyno_suite.check_redis_fault(fault_dyno, redis_persistent, fault, seconds=10)
    assert fault_dyno.exit_status(0) is None, "the dyno stopped during the fault:\n" + fault_dyno.log()
    record(f"redis_{fault}_10s", figures)
    # The web side: one line per outage and gunicorn worker, then one per 10 s with a count - not a traceback
    # per request (5,546 lines in 65 s before). The worker's reconnection is Celery's own (one traceback).
    assert figures["web_log_lines"] == figures["web_503_log_lines"] <= 3 * 2, fault_dyno.log()
