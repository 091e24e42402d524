"""Work the dyno does: a job round trip through nginx, and the scheduled jobs (systemd timers)."""

import json
import uuid

import requests
from conftest import APP, REPO, record

from tests import dyno_suite


def test_job_round_trip_through_the_router(router_url):
    response = requests.post(f"{router_url}/api/jobs", json={"kind": "io", "ms": 100}, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["jobs"][0]["id"]
    finished = dyno_suite.wait_for_jobs(router_url, [job_id], timeout=60)
    assert finished[job_id]["state"] == "done", finished


def test_suite_round_trip_of_cpu_and_io_jobs(router_url):
    jobs = dyno_suite.check_job_round_trip(type("Target", (), {"base_url": router_url})(), count=10)
    record("round trip jobs", len(jobs))


def _cron():
    return json.loads((REPO / "app.json").read_text()).get("cron", [])


def test_a_timer_per_scheduled_job_of_app_json(site, hosts):
    beat = hosts[site.beat_host]
    assert _cron(), "app.json lists no scheduled job"
    for index, job in enumerate(_cron(), start=1):
        timer = beat.service(f"{APP}-job-{index}.timer")
        assert timer.is_enabled and timer.is_running, job
        props = timer.systemd_properties
        service = beat.service(f"{APP}-job-{index}.service").systemd_properties
        assert job["command"] in service["ExecStart"], job
        assert props.get("NextElapseUSecRealtime"), f"{job}: the timer has no next run"


def test_scheduled_job_fired_by_hand_does_its_work(site, hosts):
    """clearsessions (app.json's job) removes an expired session row when its unit is started by hand."""
    index = next(i for i, job in enumerate(_cron(), start=1) if "clearsessions" in job["command"])
    data, beat = hosts[site.data_host], hosts[site.beat_host]
    key = uuid.uuid4().hex
    sql = "runuser -u postgres -- psql -d double_boiler -tAc %s"
    data.check_output(sql, f"INSERT INTO django_session VALUES ('{key}', 'x', now() - interval '1 day')")
    assert data.check_output(sql, f"SELECT count(*) FROM django_session WHERE session_key = '{key}'") == "1"
    started = beat.run(f"systemctl start {APP}-job-{index}.service")
    assert started.rc == 0, started.stderr
    assert data.check_output(sql, f"SELECT count(*) FROM django_session WHERE session_key = '{key}'") == "0"
    result = beat.service(f"{APP}-job-{index}.service").systemd_properties["Result"]
    assert result == "success"
