"""Processes the benchmark and the browser test start for themselves: a private redis-server, the packed
dyno (as Heroku starts it: Procfile `web`, i.e. `python -m app.dyno web`), a bare gunicorn.

Each gets a free port, its own temp dir (beat keeps its schedule file there, so two dynos on one machine
never share it) and is stopped by its own pid: nothing here signals a process it did not start.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


LEAKY_CONFIG_VARS = (
    "DYNO",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_DEBUG",
    "DYNO_LAYOUT",
    "DYNO_RAM",
    "WEB_CONCURRENCY",
    "CELERY_WORKER_CONCURRENCY",
    "GUNICORN_CMD_ARGS",
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Redis:
    """A throwaway redis-server on a free port: no persistence, stopped by pid."""

    def __init__(self, binary=None):
        self.binary = binary or shutil.which("redis-server")
        if not self.binary:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def pong():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(pong, 10, "redis-server")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Service:
    """A command started in its own process group (like a dyno's process tree), stopped with SIGTERM."""

    def __init__(self, command, env=None, log_path=None, port=None):
        self.command = command
        self.port = port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="double-boiler-")
        self.env = {**os.environ, "PORT": str(self.port), "TMPDIR": self.tmp, "PYTHONUNBUFFERED": "1"}
        # LocalProcfile names gunicorn and celery by name: the virtualenv's bin must come first, as on Heroku.
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        # A local, non-production dyno answering on 127.0.0.1, whatever the calling environment had set
        # (a test run may have left production-like config vars behind).
        for name in LEAKY_CONFIG_VARS:
            self.env.pop(name, None)
        self.env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        self.env.update(env or {})
        self.log_path = Path(log_path) if log_path else Path(self.tmp) / "service.log"
        self.process = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, ready_path="/api/health", timeout=60):
        self.log = open(self.log_path, "w")  # noqa: SIM115 - held open for the service's lifetime, closed in stop()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}; log: {self.log_path}")
            return http_ok(self.base_url + ready_path)

        wait_for(ready, timeout, " ".join(self.command))
        return self

    @property
    def pid(self):
        return self.process.pid

    def stop(self, timeout=35):
        """SIGTERM, as Heroku sends it; SIGKILL to the group only if it outlives Heroku's window."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Anything the group left behind goes too (it is ours: the group was made for this service).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.process.returncode


def dyno(redis_url=None, env=None, log_path=None):
    """The packed dyno as Heroku runs it: Procfile `web` (the launcher runs all of LocalProcfile)."""
    extra = {"DYNO_LAYOUT": "packed"}
    if redis_url:
        extra["REDIS_URL"] = redis_url
    extra.update(env or {})
    return Service([sys.executable, "-m", "app.dyno", "web"], env=extra, log_path=log_path)


def bare_gunicorn(worker_class, workers, redis_url=None, env=None, log_path=None, extra_args=()):
    """gunicorn alone on the same WSGI app: no launcher, no Celery, none of app/gunicorn.conf.py's tuning."""
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    extra.update(env or {})
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "app.wsgi",
        "--bind",
        "127.0.0.1:{port}",
        "--worker-class",
        worker_class,
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--limit-request-line",
        "8190",
        *extra_args,
    ]
    service = Service(command, env=extra, log_path=log_path)
    service.command = [part.replace("{port}", str(service.port)) for part in command]
    return service


def collectstatic():
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
