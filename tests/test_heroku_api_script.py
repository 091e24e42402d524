"""terraform/scripts/heroku-api.sh, the Platform API calls the provider has no resource for (waiting for a
release phase, turning ACM on and off), run with sh and curl against a stand-in for those endpoints on
127.0.0.1. The stand-in answers like the Platform API (version 3 media type, release objects with id, version
and status, errors as {"id", "message"}) and records every request.
"""

import base64
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "terraform" / "scripts" / "heroku-api.sh"
APP_ID = "0b7c5b4e-0f5e-4c4b-9d4e-1a2b3c4d5e6f"
RELEASE_ID = "6f1c3a77-1d0e-4a5b-8c2d-3e4f5a6b7c8d"
API_KEY = "HRKU-test-key-0123456789"


class PlatformAPI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []  # (method, path, headers)
        self.statuses = []  # what successive GETs of the release answer; the last one repeats
        self.version = 7
        self.acm = False
        self.stall = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, code, body):
        data = json.dumps(body, indent=2).encode()  # the API pretty-prints
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        api = self.server
        api.requests.append((self.command, self.path, dict(self.headers)))
        if api.stall:
            time.sleep(30)
            return
        if self.headers.get("Accept") != "application/vnd.heroku+json; version=3":
            return self._answer(400, {"id": "bad_request", "message": "Accept must ask for version=3"})
        auth = self.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"me@example.com:{API_KEY}".encode()).decode()
        if auth not in (f"Bearer {API_KEY}", basic):
            return self._answer(401, {"id": "unauthorized", "message": "Invalid credentials provided."})
        if self.path == f"/apps/{APP_ID}/releases/{RELEASE_ID}" and self.command == "GET":
            status = api.statuses.pop(0) if len(api.statuses) > 1 else api.statuses[0]
            return self._answer(
                200,
                {
                    "app": {"id": APP_ID, "name": "double-boiler-test"},
                    "id": RELEASE_ID,
                    "version": api.version,
                    "status": status,
                    "current": status == "succeeded",
                    "slug": {"id": "1e2d3c4b-0000-4000-8000-000000000000"},
                    "user": {"email": "me@example.com", "id": "9a8b7c6d-0000-4000-8000-000000000000"},
                },
            )
        if self.path == f"/apps/{APP_ID}/acm" and self.command in ("POST", "DELETE"):
            api.acm = self.command == "POST"
            return self._answer(200, {"acm": api.acm, "id": APP_ID, "name": "double-boiler-test"})
        return self._answer(404, {"id": "not_found", "message": "Couldn't find that release."})

    do_GET = do_POST = do_DELETE = _handle


@pytest.fixture
def api():
    server = PlatformAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def script(api_url, *arguments, key=API_KEY, **env):
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "HEROKU_API_URL": api_url,
        "HEROKU_RELEASE_POLL": "1",
        **env,
    }
    if key:
        environment["HEROKU_API_KEY"] = key
    return subprocess.run(
        ["sh", str(SCRIPT), *arguments], capture_output=True, text=True, env=environment, timeout=60, check=False
    )


def test_waits_while_the_release_phase_runs_and_passes_when_it_succeeds(api):
    api.statuses = ["pending", "pending", "succeeded"]
    result = script(api.url, "wait-release", APP_ID, RELEASE_ID)
    assert result.returncode == 0, result.stderr
    assert f"release {RELEASE_ID} (v7) succeeded" in result.stdout
    assert [(method, path) for method, path, _ in api.requests] == [
        ("GET", f"/apps/{APP_ID}/releases/{RELEASE_ID}")
    ] * 3


def test_a_failed_release_phase_fails_with_the_release_id_and_status(api):
    api.statuses = ["pending", "failed"]
    api.version = 12
    result = script(api.url, "wait-release", APP_ID, RELEASE_ID)
    assert result.returncode == 1
    assert f'release {RELEASE_ID} (v12) of app {APP_ID} ended with status "failed"' in result.stderr
    assert "heroku releases:output v12" in result.stderr


def test_a_release_pending_past_the_timeout_fails_naming_it(api):
    api.statuses = ["pending"]
    started = time.monotonic()
    result = script(api.url, "wait-release", APP_ID, RELEASE_ID, HEROKU_RELEASE_TIMEOUT="2")
    assert result.returncode == 1
    assert f"release {RELEASE_ID} (v7) of app {APP_ID} is still pending after 2s" in result.stderr
    assert time.monotonic() - started < 30


def test_api_errors_carry_the_api_s_message(api):
    result = script(api.url, "wait-release", APP_ID, "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 1
    assert "answered HTTP 404: Couldn't find that release." in result.stderr
    wrong_key = script(api.url, "wait-release", APP_ID, RELEASE_ID, key="HRKU-wrong")
    assert "answered HTTP 401: Invalid credentials provided." in wrong_key.stderr


def test_the_key_comes_from_the_netrc_file_without_heroku_api_key(api, tmp_path):
    api.statuses = ["succeeded"]
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login me@example.com\n  password {API_KEY}\n")
    result = script(api.url, "wait-release", APP_ID, RELEASE_ID, key=None, NETRC_PATH=str(netrc))
    assert result.returncode == 0, result.stderr
    assert api.requests[0][2]["Authorization"].startswith("Basic ")


def test_the_key_never_appears_on_a_command_line(api):
    # curl reads it from its standard input: a `ps` during the call shows no key.
    api.stall = True
    process = subprocess.Popen(
        ["sh", str(SCRIPT), "acm-enable", APP_ID],
        env={"PATH": os.environ["PATH"], "HEROKU_API_URL": api.url, "HEROKU_API_KEY": API_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.requests, "the script never called the API"
        command_lines = [path.read_bytes() for path in Path("/proc").glob("[0-9]*/cmdline") if path.exists()]
        assert not [line for line in command_lines if API_KEY.encode() in line]
    finally:
        process.kill()
        process.wait()


def test_acm_is_turned_on_and_off(api):
    on = script(api.url, "acm-enable", APP_ID)
    assert on.returncode == 0, on.stderr
    assert api.acm
    off = script(api.url, "acm-disable", APP_ID)
    assert off.returncode == 0, off.stderr
    assert not api.acm
    assert [(method, path) for method, path, _ in api.requests] == [
        ("POST", f"/apps/{APP_ID}/acm"),
        ("DELETE", f"/apps/{APP_ID}/acm"),
    ]


def test_a_stalled_api_fails_within_the_call_limit(api):
    api.stall = True
    started = time.monotonic()
    result = script(api.url, "acm-enable", APP_ID, HEROKU_API_MAX_TIME="2")
    assert result.returncode == 1
    assert f"POST /apps/{APP_ID}/acm: curl failed" in result.stderr
    assert time.monotonic() - started < 20


def test_a_refused_connection_fails_with_a_message():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    result = script(f"http://127.0.0.1:{port}", "wait-release", APP_ID, RELEASE_ID)
    assert result.returncode == 1
    assert f"GET /apps/{APP_ID}/releases/{RELEASE_ID}: curl failed" in result.stderr


def test_usage_errors_name_the_command(api):
    assert "usage: heroku-api.sh wait-release APP_ID RELEASE_ID" in script(api.url, "wait-release", APP_ID).stderr
    assert "unknown command deploy" in script(api.url, "deploy").stderr
    assert api.requests == []
