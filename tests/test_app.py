"""The app in-process: settings read from the environment, the concurrency rule, the job API and its errors."""

import contextlib
import json
import os
import subprocess
import sys
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client

from app import celery_app, concurrency
from tests.local_dyno import REPO


@pytest.fixture
def client():
    return Client()


def post_jobs(client, body):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/jobs", data=raw, content_type="application/json")


# --- settings: read in a fresh interpreter, as each dyno process does --------------------------------------


def load_settings(**env):
    """Import app.settings with exactly `env` (plus PATH); returns (returncode, stdout+stderr, values)."""
    code = (
        "import json; from app import settings as s; print(json.dumps({"
        "'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, 'web': s.WEB_CONCURRENCY, "
        "'celery': s.CELERY_WORKER_CONCURRENCY, 'memory': s.DYNO_MEMORY_MB, 'layout': s.DYNO_LAYOUT, "
        "'broker_ssl': str(getattr(s, 'CELERY_BROKER_USE_SSL', None)), "
        "'backend_ssl': str(getattr(s, 'CELERY_REDIS_BACKEND_USE_SSL', None)), "
        "'broker': s.CELERY_BROKER_URL, 'db': s.DATABASES['default']['ENGINE']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
    )
    values = json.loads(result.stdout.splitlines()[-1]) if result.returncode == 0 else None
    return result.returncode, result.stdout + result.stderr, values


@pytest.mark.parametrize(
    "loads",
    ["import runpy; runpy.run_path('app/gunicorn.conf.py')", "import app.celery"],
    ids=["gunicorn master and workers", "celery worker"],
)
def test_the_dynos_processes_exit_without_a_final_garbage_collection(loads):
    """app/process_exit.py: what gunicorn and the Celery worker load freezes the collector as the interpreter
    exits (its last collection cost each process 0.3-0.6 s of every stop). The check is registered first, so
    it runs after every other exit handler and sees the collector as the exit leaves it."""
    code = "import atexit, gc; atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0)); " + loads
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "frozen at exit: True"


PRODUCTION = {
    "DYNO": "web.1",
    "DJANGO_SECRET_KEY": "x" * 50,
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db",
}


def test_local_run_needs_no_config_vars():
    code, output, values = load_settings()
    assert code == 0, output
    assert values["broker"] == "filesystem://"
    assert values["db"].endswith("sqlite3")


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "REDIS_URL", "DATABASE_URL"])
def test_production_fails_fast_naming_the_missing_config_var(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    code, output, _ = load_settings(**env)
    assert code != 0
    assert f"{missing} is not set" in output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DYNO_LAYOUT", "sideways"),
        ("WEB_CONCURRENCY", "two"),
        ("WEB_CONCURRENCY", "0"),
        ("LOG_EACH_TASK", "sometimes"),
    ],
)
def test_bad_config_var_is_an_error_naming_it(name, value):
    code, output, _ = load_settings(**PRODUCTION, **{name: value})
    assert code != 0
    assert name in output and value in output


def test_rediss_url_turns_off_certificate_checks_for_herokus_self_signed_cert():
    code, output, values = load_settings(**dict(PRODUCTION, REDIS_URL="rediss://:pw@example.com:6380/0"))
    assert code == 0, output
    assert "VerifyMode.CERT_NONE" in values["broker_ssl"]
    assert "VerifyMode.CERT_NONE" in values["backend_ssl"]


def test_plain_redis_url_has_no_tls_options():
    code, output, values = load_settings(**PRODUCTION)
    assert code == 0, output
    assert values["broker_ssl"] == "None"


def test_allowed_hosts_come_from_a_comma_list():
    code, output, values = load_settings(**PRODUCTION, DJANGO_ALLOWED_HOSTS=" a.example.com, .herokuapp.com ")
    assert code == 0, output
    assert values["hosts"] == ["a.example.com", ".herokuapp.com"]


def test_celery_ignores_the_web_concurrency_herokus_buildpack_exports():
    code, output, values = load_settings(**PRODUCTION, WEB_CONCURRENCY="7", DYNO_RAM="512")
    assert code == 0, output
    assert values["web"] == 7
    assert values["celery"] == concurrency.celery_workers(512)


def test_explicit_celery_concurrency_wins():
    code, output, values = load_settings(**PRODUCTION, CELERY_WORKER_CONCURRENCY="3")
    assert code == 0, output
    assert values["celery"] == 3


def test_dyno_ram_sets_the_memory_the_defaults_are_sized_for():
    code, output, values = load_settings(**PRODUCTION, DYNO_RAM="1024")
    assert code == 0, output
    assert values["memory"] == 1024
    assert values["web"] == concurrency.web_workers(1024)


# --- the concurrency rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory_mb", "cores", "web", "celery"),
    [
        (512, 2, 2, 2),
        (512, 8, 2, 2),
        (1024, 2, 4, 2),
        (1024, 8, 4, 4),
        (256, 8, 1, 1),
        (100, 1, 1, 1),
        (14336, 8, 17, 8),
    ],
)
def test_concurrency_follows_dyno_memory(monkeypatch, memory_mb, cores, web, celery):
    monkeypatch.setattr(concurrency, "CPU_COUNT", cores)
    assert concurrency.web_workers(memory_mb) == web
    assert concurrency.celery_workers(memory_mb) == celery


def test_cgroup_v2_memory_max_is_read(tmp_path):
    (tmp_path / "system.slice" / "app.service").mkdir(parents=True)
    (tmp_path / "system.slice" / "app.service" / "memory.max").write_text(f"{512 * 2**20}\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/app.service\n")
    assert concurrency._cgroup_limit_bytes(tmp_path, proc) == 512 * 2**20


def test_cgroup_v1_memory_limit_is_read_and_unlimited_ignored(tmp_path):
    (tmp_path / "memory" / "system.slice").mkdir(parents=True)
    limit = tmp_path / "memory" / "system.slice" / "memory.limit_in_bytes"
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/system.slice\n1:name=systemd:/system.slice\n")
    limit.write_text(f"{768 * 2**20}\n")
    assert concurrency._cgroup_limit_bytes(tmp_path, proc) == 768 * 2**20
    limit.write_text("9223372036854771712\n")
    assert concurrency._cgroup_limit_bytes(tmp_path, proc) is None


def test_memory_falls_back_to_herokus_smallest_dyno(monkeypatch):
    monkeypatch.setattr(concurrency, "_cgroup_limit_bytes", lambda: None)
    assert concurrency.dyno_memory_mb({}) == 512
    assert concurrency.dyno_memory_mb({"DYNO_RAM": "2560"}) == 2560


# --- the job API ---------------------------------------------------------------------------------------------


def test_enqueued_jobs_are_queued_until_a_worker_takes_them(client):
    response = post_jobs(client, {"kind": "cpu", "ms": 5, "count": 3})
    assert response.status_code == 202
    jobs = response.json()["jobs"]
    assert len(jobs) == 3 and all(job["state"] == "queued" for job in jobs)
    detail = client.get(f"/api/jobs/{jobs[0]['id']}").json()
    assert detail["state"] == "queued"
    assert detail["kind"] == "cpu" and detail["ms"] == 5
    assert detail["web_worker"].startswith("gunicorn pid")


def test_jobs_run_to_done_and_report_who_ran_them(client):
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        ids = [job["id"] for job in post_jobs(client, {"kind": "io", "ms": 10, "count": 4}).json()["jobs"]]
        ids += [job["id"] for job in post_jobs(client, {"kind": "cpu", "ms": 10}).json()["jobs"]]
        for job_id in ids:
            celery_app.AsyncResult(job_id).get(timeout=20)
    listing = client.get("/api/jobs", {"ids": ",".join(ids)}).json()
    assert listing["unknown"] == []
    states = {job["id"]: job for job in listing["jobs"]}
    assert all(states[i]["state"] == "done" for i in ids)
    cpu = states[ids[-1]]
    assert cpu["result"]["rounds"] > 0
    assert cpu["celery_worker"] and cpu["finished_at"] >= cpu["started_at"]


def test_unknown_job_is_404_json(client):
    response = client.get(f"/api/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "no job with id" in response.json()["error"]


def test_status_listing_separates_unknown_ids(client):
    known = post_jobs(client, {"kind": "io", "ms": 1}).json()["jobs"][0]["id"]
    stranger = str(uuid.uuid4())
    listing = client.get("/api/jobs", {"ids": f"{known},{stranger}"}).json()
    assert [job["id"] for job in listing["jobs"]] == [known]
    assert listing["unknown"] == [stranger]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "must be JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"kind": "gpu"}, "kind must be one of cpu, io"),
        ({"ms": -1}, "ms must be from 0 to 10000, not -1"),
        ({"ms": 10**9}, "ms must be from 0 to 10000"),
        ({"ms": "100"}, "ms must be a whole number"),
        ({"ms": 1.5}, "ms must be a whole number"),
        ({"count": True}, "count must be a whole number"),
        ({"count": 0}, "count must be from 1 to 500, not 0"),
        ({"count": 501}, "count must be from 1 to 500, not 501"),
        ({"kind": "io", "colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_bad_job_spec_is_a_400_naming_the_problem(client, body, message):
    response = post_jobs(client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # deeper than the JSON parser's stack
        b'{"ms": ' + b"7" * 5000 + b"}",  # past Python's 4300-digit int conversion limit
        b"\xff\xfe",  # not UTF-8
    ],
    ids=["deep-nesting", "5000-digit-int", "not-utf8"],
)
def test_hostile_json_is_a_400_not_a_500(client, body):
    response = post_jobs(client, body)
    assert response.status_code == 400
    assert "must be JSON" in response.json()["error"]


def test_empty_body_enqueues_one_default_job(client):
    response = post_jobs(client, b"")
    assert response.status_code == 202
    (job,) = response.json()["jobs"]
    assert (job["kind"], job["ms"]) == ("io", 100)


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "jobs/{id}"), ("post", "jobs/{id}"), ("delete", "jobs/{id}"), ("post", "health"), ("put", "wait")],
)
def test_wrong_method_with_csrf_checks_on_is_a_405_json_not_a_csrf_page(method, path):
    # Django's test client skips CSRF unless asked: a real browser or curl gets Django's checks.
    strict = Client(enforce_csrf_checks=True)
    response = getattr(strict, method)("/api/" + path.format(id=uuid.uuid4()))
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert "is not allowed here" in response.json()["error"]


def test_bad_host_header_is_a_400_json_logged_once_without_traceback(client, caplog):
    response = client.get("/api/health", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "evil.example" in response.json()["error"]
    lines = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert len(lines) == 1
    assert lines[0].exc_info is None and not lines[0].exc_text


def test_oversized_body_is_a_400_not_a_500(client):
    response = post_jobs(client, b'{"kind": "' + b"x" * (3 * 2**20) + b'"}')
    assert response.status_code == 400
    assert "too large" in response.json()["error"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "ids is required"),
        ({"ids": "not-a-uuid"}, "is not a job id"),
        ({"ids": ",".join(str(uuid.uuid4()) for _ in range(201))}, "at most 200 ids per request, not 201"),
    ],
)
def test_bad_status_query_is_a_400_naming_the_problem(client, query, message):
    response = client.get("/api/jobs", query)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_malformed_job_id_is_a_400(client):
    response = client.get("/api/jobs/12345")
    assert response.status_code == 400
    assert "not a job id" in response.json()["error"]


def test_wrong_method_is_a_405_json(client):
    response = client.delete("/api/jobs")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert "DELETE is not allowed" in response.json()["error"]


def test_unknown_path_is_a_404_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "no such page: /api/nothing-here"


@pytest.mark.parametrize(("ms", "status"), [("0", 200), ("-5", 400), ("60001", 400), ("soon", 400)])
def test_wait_view_validates_its_duration(client, ms, status):
    response = client.get("/api/wait", {"ms": ms})
    assert response.status_code == status
    if status == 400:
        assert "ms must be" in response.json()["error"]


def test_health_reports_the_dyno(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["down"] == {}
    assert body["layout"] == "packed"


def test_outage_log_is_one_line_then_rate_limited_with_a_count(caplog, monkeypatch):
    from app.jobs import views

    clock = [100.0]
    monkeypatch.setattr(views.time, "monotonic", lambda: clock[0])
    outages = views.OutageLog(every=10.0)
    for _ in range(50):
        outages.report("redis", ConnectionError("Connection refused"))
    clock[0] += 10.5
    outages.report("redis", ConnectionError("Connection refused"))
    lines = [r.getMessage() for r in caplog.records if r.name == "app.jobs"]
    assert lines == [
        "redis unavailable, answering 503: ConnectionError: Connection refused",
        "redis unavailable, answering 503: ConnectionError: Connection refused (49 more 503s since the last line)",
    ]


def test_health_names_a_database_that_does_not_answer(client, monkeypatch):
    from django.db import connection
    from django.db.utils import OperationalError

    from app.jobs import views

    def refused():
        raise OperationalError('connection to server at "127.0.0.1", port 1 failed: Connection refused')

    monkeypatch.setattr(connection, "cursor", refused)
    monkeypatch.setattr(views, "database_probe", views.DatabaseProbe())  # no answer kept from earlier tests
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert set(body["down"]) == {"database"} and "Connection refused" in body["down"]["database"]


def test_health_asks_the_database_once_a_second_and_shows_an_outage_within_it(client, monkeypatch):
    """A monitor polling /api/health many times a second costs the database one connection a second per web
    process, not one per poll; the database going down, and coming back, shows within that second."""
    from django.db import connection
    from django.db.utils import OperationalError

    from app.jobs import views

    clock = [500.0]
    monkeypatch.setattr(views.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(views, "database_probe", views.DatabaseProbe(every=1.0))
    asked = []
    database_up = [True]
    real_cursor = connection.cursor

    def cursor():  # counts the probes; a refused connection while database_up says no
        asked.append(clock[0])
        if not database_up[0]:
            raise OperationalError("connection refused")
        return real_cursor()

    monkeypatch.setattr(connection, "cursor", cursor)
    assert [client.get("/api/health").status_code for _ in range(30)] == [200] * 30
    assert len(asked) == 1

    database_up[0] = False
    assert client.get("/api/health").status_code == 200  # the answer of a moment ago
    clock[0] += 1.0
    down = client.get("/api/health")
    assert down.status_code == 503 and "database" in down.json()["down"]
    assert len(asked) == 2
    database_up[0] = True
    clock[0] += 0.5
    assert client.get("/api/health").status_code == 503  # the last answer, still under a second old
    clock[0] += 0.5
    assert client.get("/api/health").status_code == 200
    assert len(asked) == 3


def test_health_polls_during_a_slow_database_probe_do_not_open_connections_of_their_own(client, monkeypatch):
    """While one probe waits on a slow connect, the other polls (greenlets of the same web process) answer
    with the last answer instead of each asking the database too."""
    from django.db import connection

    from app.jobs import views

    monkeypatch.setattr(views, "database_probe", views.DatabaseProbe(every=1.0))
    assert client.get("/api/health").status_code == 200
    views.database_probe._asked_at -= 1.0  # the last answer is a second old: the next poll asks again
    asked, during = [], []
    real_cursor = connection.cursor

    def slow_cursor():  # polls that come in while this connect is under way
        asked.append(1)
        during.extend(client.get("/api/health").status_code for _ in range(5))
        return real_cursor()

    monkeypatch.setattr(connection, "cursor", slow_cursor)
    assert client.get("/api/health").status_code == 200
    assert len(asked) == 1, f"{len(asked)} database connections for 6 polls"
    assert during == [200] * 5


def test_a_refused_redis_is_a_json_503_naming_it(client, monkeypatch):
    import redis

    from app.jobs import records

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    monkeypatch.setattr(records, "redis_client", lambda: dead)
    response = client.get("/api/jobs", {"ids": str(uuid.uuid4())})
    assert response.status_code == 503
    assert response.json()["unavailable"] == "redis"
    assert response["Retry-After"] == "5"
    health = client.get("/api/health")
    assert health.status_code == 503 and "redis" in health.json()["down"]
    assert client.get("/").status_code == 200


def test_a_publish_batch_cut_by_redis_is_a_json_503(client, monkeypatch):
    """Redis refusing in the middle of kombu's pipelined publish raises kombu's BatchPublishError, not a
    connection error: the client still gets the JSON 503 naming the broker (it was a 500)."""
    import kombu.exceptions

    from app.jobs import enqueue

    @contextlib.contextmanager
    def cut(producer):
        yield
        raise kombu.exceptions.BatchPublishError("Redis publish batch failed; delivery is uncertain")

    monkeypatch.setattr(enqueue, "_batched", cut)
    response = client.post("/api/jobs", {"kind": "io", "ms": 1}, content_type="application/json")
    assert response.status_code == 503, response.content
    assert response.json()["unavailable"] == "redis"
