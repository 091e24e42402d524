"""nginx in front of the web dyno, behaving like Heroku's router."""

import re
import time

import pytest
import requests
from conftest import APP, record

from tests import dyno_suite


def test_health_answers_200_through_the_router(router_url):
    response = requests.get(f"{router_url}/api/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_router_gives_every_request_an_id(router_url):
    first = requests.get(f"{router_url}/api/health", timeout=10).headers.get("X-Request-Id", "")
    second = requests.get(f"{router_url}/api/health", timeout=10).headers.get("X-Request-Id", "")
    assert len(first) >= 20 and first != second


def test_router_keeps_a_valid_client_request_id(router_url):
    mine = "molecule-request-id-0123456789"
    response = requests.get(f"{router_url}/api/health", headers={"X-Request-Id": mine}, timeout=10)
    assert response.headers.get("X-Request-Id") == mine


def test_router_passes_forwarding_headers_and_request_start(site, hosts):
    conf = hosts[site.group("web")[0]].file(f"/etc/nginx/conf.d/{APP}.conf").content_string
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Request-Id", "X-Request-Start"):
        assert re.search(rf"proxy_set_header {header} \S+;", conf), header


def test_router_logs_heroku_style_lines_to_the_journal(site, hosts, router_url):
    mine = "molecule-log-line-check-0123456789"
    requests.get(f"{router_url}/api/health", headers={"X-Request-Id": mine}, timeout=10)
    time.sleep(1)
    journal = hosts[site.group("web")[0]].check_output("journalctl --no-pager -t router -n 50")
    line = next(line for line in journal.splitlines() if mine in line)
    assert 'at=info method=GET path="/api/health"' in line and "status=200" in line, line


def _web_processes(host):
    """gunicorn's master and workers in the web dyno (pgrep by the Procfile's gunicorn command)."""
    return host.check_output("pgrep -u %s -f 'bin/gunicorn --config' || true", APP).split()


def test_router_answers_503_when_the_dyno_sends_nothing_for_30_s(site, hosts, router_url):
    """Heroku's H12: no first byte within 30 s -> 503. The web processes are frozen (SIGSTOP), so the
    connection is accepted but nothing comes back; they are thawed afterwards and serve again."""
    web = hosts[site.group("web")[0]]
    pids = _web_processes(web)
    assert pids, "no gunicorn process found"
    web.check_output(f"kill -STOP {' '.join(pids)}")
    began = time.monotonic()
    try:
        response = requests.get(f"{router_url}/api/health", timeout=60)
        took = time.monotonic() - began
    finally:
        web.run(f"kill -CONT {' '.join(pids)}")
    record("router 503 after seconds", round(took, 1))
    assert response.status_code == 503
    assert 29.0 <= took <= 33.0, f"503 after {took:.1f} s, Heroku's router waits 30 s"
    dyno_suite.wait_until_serving(router_url, timeout=60)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # a self-signed test certificate
def test_router_serves_https_when_given_a_certificate(site, router_url):
    if not site.hostvars[site.group("web")[0]].get("router_tls_certificate"):
        pytest.skip("this scenario gives the router no certificate")
    https_url = router_url.replace("http://", "https://")
    response = requests.get(f"{https_url}/api/health", timeout=10, verify=False)
    assert response.status_code == 200
    assert response.headers.get("X-Request-Id")
