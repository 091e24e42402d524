"""The API's OpenAPI description: in step with the routes and views, and a property-based fuzz run
(schemathesis) against the real dyno finds no server error and no answer outside the description."""

import os
import re
import shutil
import subprocess
import sys

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
django.setup()

from django.test import Client  # noqa: E402
from django.urls import URLPattern, URLResolver, get_resolver  # noqa: E402

from app.jobs import views  # noqa: E402
from app.jobs.openapi import spec  # noqa: E402
from tests.local_dyno import LocalDyno, RedisServer, build_slug  # noqa: E402


def api_routes(patterns=None, prefix=""):
    """{"/api/jobs/{job_id}": view, ...} for every Django route under /api/."""
    routes = {}
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes.update(api_routes(entry.url_patterns, route))
        elif isinstance(entry, URLPattern) and route.startswith("api/"):
            routes["/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)] = entry.callback
    return routes


def test_every_api_route_and_method_is_described_and_nothing_else():
    described = spec()["paths"]
    routes = api_routes()
    assert set(described) == set(routes)
    for path, view in routes.items():
        assert {m.upper() for m in described[path]} == set(view.allowed_methods), path


def test_the_limits_in_the_description_are_the_views_limits():
    paths = spec()["paths"]
    job_spec = spec()["components"]["schemas"]["JobSpec"]["properties"]
    assert job_spec["ms"]["maximum"] == views.MAX_JOB_MS
    assert job_spec["count"]["maximum"] == views.MAX_BATCH
    ids = paths["/api/jobs"]["get"]["parameters"][0]["schema"]
    assert ids["maxItems"] == views.MAX_IDS
    wait = paths["/api/wait"]["get"]["parameters"][0]["schema"]
    assert (wait["maximum"], wait["default"]) == (views.MAX_WAIT_MS, views.DEFAULT_WAIT_MS)


def test_the_dyno_serves_its_description():
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == spec()


# --- the fuzz run ---------------------------------------------------------------------------------------------

# Bounded: examples per operation (a fixed seed, so CI repeats the same run) and a wall-clock limit on the
# whole run (about 20 s on a quiet machine).
FUZZ_EXAMPLES = 40
FUZZ_SECONDS = 300


@pytest.fixture(scope="module")
def fuzz_dyno(tmp_path_factory):
    """A dyno of its own on its own Redis: the fuzz run enqueues thousands of jobs nobody needs to run."""
    redis = RedisServer(tmp_path_factory.mktemp("fuzz-redis")).start()
    slug = build_slug(tmp_path_factory.mktemp("fuzz-slug"))
    config = {"DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "REDIS_URL": redis.url}
    dyno = LocalDyno(slug, config, tmp_path_factory.mktemp("fuzz") / "web.log")
    assert dyno.run_one_off("release").returncode == 0
    dyno.start()
    yield dyno
    dyno.close()
    redis.stop()


def test_fuzzing_the_described_api_finds_no_server_error_and_no_undescribed_answer(fuzz_dyno, tmp_path):
    schemathesis = shutil.which("st", path=os.path.dirname(sys.executable))
    assert schemathesis, "schemathesis is not installed (requirements-dev.txt; make .venv/.dev-deps)"
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    result = subprocess.run(
        [
            schemathesis,
            "run",
            f"{fuzz_dyno.base_url}/api/openapi.json",
            "--checks",
            checks,
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--seed",
            "8",
            "--request-timeout",
            "15",
            # /api/wait answers after up to 60 s by design: its checks are in test_app.py.
            "--exclude-path",
            "/api/wait",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS,
        cwd=tmp_path,  # schemathesis keeps a .schemathesis folder where it runs
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + fuzz_dyno.log()[-3000:]
    assert "Server error" not in fuzz_dyno.log()
