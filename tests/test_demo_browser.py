"""The job storm page in a real browser: Debian's headless Chromium, driven by Playwright, against a packed
dyno this module starts itself (Procfile `web` on a free port, with a redis-server of its own when Debian's
is installed, else the embedded broker).

Without Chromium (or Playwright) the tests skip, saying why, except in CI (CI=true), where that fails.
Screenshots land in ./artifacts/ for a person to look at.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.local_dyno import REPO, LocalDyno, RedisServer

ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STORM_JOBS = 500


def _missing(reason):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test must run: `make browser-deps`)")
    pytest.skip(reason)


def _chromium():
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if not executable:
        _missing("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dyno(tmp_path_factory):
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=REPO, check=True, stdout=subprocess.DEVNULL
    )
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start() if shutil.which("redis-server") else None
    ARTIFACTS.mkdir(exist_ok=True)
    config_vars = {"DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "DYNO_LAYOUT": "packed"}
    if redis:
        config_vars["REDIS_URL"] = redis.url
    service = LocalDyno(REPO, config_vars, ARTIFACTS / "demo-browser-dyno.log")
    try:
        service.start()
        yield service
    finally:
        service.close()
        if redis:
            redis.stop()


@pytest.fixture
def page(browser, dyno):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(dyno.base_url + "/")
    yield page
    context.close()


def _count(page, element_id):
    return int(page.inner_text(f"#{element_id}").replace(",", ""))


def _start_storm(page, jobs, inflight=50, per=1, kind="io", ms=10):
    page.fill("#jobs", str(jobs))
    page.fill("#inflight", str(inflight))
    page.fill("#per", str(per))
    page.select_option("#kind", kind)
    page.fill("#ms", str(ms))
    page.click("#start")


def test_storm_of_500_jobs_runs_every_job_to_done_in_the_browser(page, dyno):
    _start_storm(page, STORM_JOBS)
    page.wait_for_function("document.body.dataset.status === 'finished'", timeout=180_000)
    page.wait_for_timeout(1200)  # one more memory poll, so the screenshot shows the dyno after the storm
    page.screenshot(path=str(ARTIFACTS / "demo-storm-500.png"), full_page=True)

    assert page.errors == []
    assert _count(page, "c-sent") == STORM_JOBS
    assert _count(page, "c-done") == STORM_JOBS
    assert _count(page, "c-failed") == 0
    assert _count(page, "c-queued") == 0
    assert _count(page, "c-running") == 0
    assert _count(page, "c-errors") == 0
    assert page.is_hidden("#error")
    p50, p99 = (float(page.get_attribute("#c-lat", f"data-p{p}")) for p in (50, 99))
    assert 0 < p50 <= p99
    # Both sides of the dyno are named: the gunicorn workers that enqueued, the Celery processes that ran.
    web = page.inner_text("#who-web")
    celery = page.inner_text("#who-celery")
    assert "gunicorn pid" in web
    assert "pid" in celery
    assert sum(int(line.split()[-1].replace(",", "")) for line in celery.splitlines()) == STORM_JOBS
    assert float(page.inner_text("#mem-pss")) > 0


@pytest.mark.parametrize(
    "jobs, field, value, message",
    [
        (20, "ms", "-5", "ms must be from 0 to 10000, not -5"),
        (20, "ms", "soon", "ms must be a whole number"),
        (600, "per", "501", "count must be from 1 to 500, not 501"),
        (20, "per", "-1", "count must be from 1 to 500, not -1"),
    ],
)
def test_bad_input_shows_the_apis_400_and_the_dyno_keeps_serving(page, dyno, jobs, field, value, message):
    _start_storm(page, jobs, **{field: value})
    page.wait_for_function("document.body.dataset.status === 'error'", timeout=30_000)
    shown = page.inner_text("#error")
    assert "400" in shown and message in shown
    page.screenshot(path=str(ARTIFACTS / f"demo-bad-{field}.png"))
    with urllib.request.urlopen(dyno.base_url + "/api/health", timeout=5) as response:
        assert json.load(response)["status"] == "ok"


def test_a_storm_larger_than_the_page_allows_is_refused_in_the_page(page):
    _start_storm(page, 10_001)
    page.wait_for_function("document.body.dataset.status === 'error'", timeout=10_000)
    assert "jobs must be a whole number from 10 to 10,000" in page.inner_text("#error")
