"""nginx in front of the web dyno, behaving like Heroku's router."""

import re
import subprocess
import time

import pytest
import requests
from conftest import APP, USER, address_of, record

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
    return host.check_output("pgrep -u %s -f 'bin/gunicorn --config' || true", USER).split()


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


def test_router_says_plainly_when_a_request_names_an_unknown_host(router_url):
    response = requests.get(f"{router_url}/api/health", headers={"Host": "unknown.example.org"}, timeout=10)
    assert response.status_code == 421
    assert "does not answer for the host name 'unknown.example.org'" in response.text


def test_router_answers_for_the_hosts_own_name(site, router_url):
    name = site.group("web")[0]
    response = requests.get(f"{router_url}/api/health", headers={"Host": name}, timeout=10)
    assert response.status_code == 200, response.text


def _podman(*args):
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, timeout=120).stdout.strip()


def test_host_rebooted_with_another_address_serves_at_once(site):
    """The host stops (podman gives systemd the dyno's 30 s window, not its default 10 s), comes back with an
    address it never had, and serves on it without a re-converge; then it gets its first address back."""
    if site.layout == "split":
        pytest.skip("split: the hosts' private addresses are configuration (REDIS_URL, the firewall); re-converge")
    name = site.group("web")[0]
    assert int(_podman("inspect", "--format", "{{.Config.StopTimeout}}", name)) >= 35, "podman would cut the window"
    first = address_of(name)
    octets = first.split(".")
    other = ".".join(octets[:3] + [str((int(octets[3]) + 100) % 250 + 2)])
    began = time.monotonic()
    _podman("stop", name)
    stopped = time.monotonic() - began
    _podman("network", "disconnect", "podman", name)
    _podman("network", "connect", "--ip", other, "podman", name)
    _podman("start", name)
    try:
        assert address_of(name) == other
        dyno_suite.wait_until_serving(f"http://{other}", timeout=120)
        response = requests.get(f"http://{other}/", timeout=10)
        assert response.status_code == 200, response.text[:500]
        record("host stop seconds (podman stop)", round(stopped, 1))
        record("serving on a new address after (s)", round(time.monotonic() - began, 1))
    finally:
        _podman("network", "disconnect", "podman", name)
        _podman("network", "connect", "--ip", first, "podman", name)
        dyno_suite.wait_until_serving(f"http://{first}", timeout=120)
