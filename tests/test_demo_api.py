"""GET / and GET /api/dyno without a dyno: Django's test client in this process."""

import os

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
django.setup()

from django.test import Client  # noqa: E402

from app.demo import memory  # noqa: E402


@pytest.fixture
def client():
    return Client()


def test_demo_page_is_served_at_the_root_with_its_controls(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for marker in ('id="storm"', 'id="grid"', 'id="error"', "/static/demo/storm.", ".css", ".js"):
        assert marker in html


def test_demo_dyno_stats_sum_memory_over_the_process_tree_against_the_quota(client):
    body = client.get("/api/dyno").json()
    assert body["memory_quota_mb"] > 0
    mem = body["memory"]
    assert mem["processes"] and mem["pss_mb"] > 0
    assert mem["pss_mb"] <= mem["rss_mb"]
    assert abs(sum(p["pss_mb"] for p in mem["processes"]) - mem["pss_mb"]) < 1


def test_demo_dyno_stats_refuse_other_methods_with_json(client):
    response = client.post("/api/dyno")
    assert response.status_code == 405
    assert "error" in response.json()


def test_demo_memory_labels_the_dyno_processes():
    assert memory._label("python -m app.dyno web") == "launcher"
    assert memory._label("/app/.venv/bin/python3 /app/.venv/bin/celery --app app worker --loglevel INFO") == (
        "celery worker"
    )
    assert memory._label("/app/.venv/bin/python3 /app/.venv/bin/celery --app app beat") == "celery beat"
    assert memory._label("/app/.venv/bin/python3 /app/.venv/bin/gunicorn --config app/gunicorn.conf.py x") == "gunicorn"
    assert memory._label("/bin/sh -c celery --app app beat") == "sh"
