"""The packed dyno, started from the Procfile exactly as Heroku starts it, against a real Redis over TLS
(Heroku's Key-Value Store) and again on the embedded defaults. Figures go to artifacts/dyno-figures.json."""

import json
import secrets
import time

import pytest

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
        dyno = LocalDyno(slug, config_vars, tmp_path / f"{process_type}-{len(started)}.log", process_type)
        started.append(dyno)
        return dyno

    yield make
    for dyno in started:
        dyno.close()


@pytest.fixture
def heroku_dyno(slug, heroku_config, dynos):
    dyno = dynos(slug, heroku_config)
    release = dyno.run_one_off("release")
    assert release.returncode == 0, release.stdout + release.stderr
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
    # web master + 2 workers, the Celery worker + its beat child, the launcher and its output readers
    assert processes >= 6


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


def test_sigterm_lets_running_jobs_and_slow_request_finish(heroku_dyno):
    result = dyno_suite.check_sigterm_lets_inflight_work_finish(heroku_dyno)
    record("stop_seconds_with_inflight_work", round(result["stop_seconds"], 2))
    assert result["exit_status"] == 0


@pytest.mark.parametrize("inner", ["worker", "web"])
def test_kill_9_of_inner_process_crashes_whole_dyno(heroku_dyno, inner):
    took = dyno_suite.check_crash_of_inner_process(heroku_dyno, inner)
    record(f"crash_exit_seconds_{inner}", round(took, 2))


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
