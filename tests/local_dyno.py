"""Real processes for the tests: a Redis server (plain or TLS, like Heroku's Key-Value Store), a slug (the
repository as Heroku's build leaves it), and the dyno started from the Procfile exactly as Heroku does."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from app.demo.memory import processes_memory
from app.procfile import process_command
from tests import dyno_suite

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """Debian's redis-server on a free port; with tls=True only a TLS port with a self-signed certificate."""

    def __init__(self, workdir, tls=False, persist=False):
        self.workdir = Path(workdir)
        self.tls = tls
        self.persist = persist  # an append-only file, so stop() and start() keep the queue and the records
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self):
        redis_server = shutil.which("redis-server")
        if not redis_server:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; `make test` does it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        appendonly = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        args = [redis_server, "--save", "", *appendonly, "--dir", str(self.workdir)]
        if self.tls:
            cert, key = self.workdir / "redis.crt", self.workdir / "redis.key"
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
                "--tls-auth-clients",
                "no",
            ]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=10)

    def pause(self):
        """A stalled Redis: it keeps its connections but answers nothing (SIGSTOP)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)


class PostgresServer:
    """A throwaway cluster of Debian's PostgreSQL on a free port, owned by the postgres user (initdb refuses
    root), with a database and password like a Heroku Postgres add-on's."""

    def __init__(self):
        # Its own folder under /tmp: pytest's temp dirs are root-only, and the server runs as postgres.
        self.workdir = Path(tempfile.mkdtemp(prefix="double-boiler-postgres-"))
        self.port = free_port()
        self.password = uuid.uuid4().hex

    @property
    def url(self):
        return f"postgres://app:{self.password}@127.0.0.1:{self.port}/app"

    def _as_postgres(self, *args, **kwargs):
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True, **kwargs
        )

    def start(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; `make test` does it)")
        self.bin = bins[-1]
        shutil.chown(self.workdir, "postgres", "postgres")
        data = self.workdir / "data"
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(data), "-A", "scram-sha-256", "-U", "postgres", f"--pwfile={pwfile}"
        )
        pwfile.unlink()
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.workdir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1",
            "start",
        )
        env = {"PGPASSWORD": self.password, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for sql in (f"CREATE ROLE app LOGIN PASSWORD '{self.password}'", "CREATE DATABASE app OWNER app"):
            subprocess.run(
                [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", sql],
                check=True,
                capture_output=True,
                env=env,
            )
        return self

    def stop(self):
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.workdir, ignore_errors=True)


def build_slug(destination):
    """The repository's tracked files plus collectstatic's output: what Heroku's build leaves in /app."""
    destination = Path(destination)
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for relative in files:
        source = REPO / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=destination,
        check=True,
        capture_output=True,
        env=dyno_environment({}, destination),
    )
    return destination


def dyno_environment(config_vars, slug):
    """The environment of a dyno: the platform's variables plus the app's config vars."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(slug),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(config_vars)
    return env


class LocalDyno:
    """A dyno started from the Procfile as Heroku starts one: `bash -c "<web command>"` with $PORT and the
    config vars in its environment, as the leader of its own session."""

    supervised = False

    def __init__(self, slug, config_vars, log_path, process_type="web"):
        self.slug = Path(slug)
        self.process_type = process_type
        self.port = free_port()
        self.mark = uuid.uuid4().hex  # found in every process's environment, orphans included
        self.config_vars = dict(config_vars)
        self.log_path = Path(log_path)
        self.process = None
        self.boot_seconds = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def environment(self):
        env = dyno_environment(self.config_vars, self.slug)
        env.update({"PORT": str(self.port), "DOUBLE_BOILER_TEST_MARK": self.mark})
        return env

    def run_one_off(self, process_type):
        """A one-off dyno (like the release phase): runs to completion, returns the CompletedProcess."""
        return subprocess.run(
            ["bash", "-c", process_command(process_type, self.slug / "Procfile")],
            cwd=self.slug,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def launch(self):
        """Start the dyno's process type in the background, as the leader of a new session."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", process_command(self.process_type, self.slug / "Procfile")],
                cwd=self.slug,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self):
        began = time.monotonic()
        self.launch()
        try:
            dyno_suite.wait_until_serving(self.base_url, timeout=60)
        except AssertionError:
            raise AssertionError(f"dyno did not boot; its log:\n{self.log()}") from None
        self.boot_seconds = time.monotonic() - began
        return self.boot_seconds

    def log(self):
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path.exists() else ""

    def log_mark(self):
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark):
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace").splitlines()

    def wait_for_gunicorn_fork(self, timeout=60.0):
        """Return the instant gunicorn's master has forked its first worker."""
        deadline = time.monotonic() + timeout
        master = None
        while time.monotonic() < deadline:
            try:
                if master is None:
                    master = self.inner_process("web")
                if master.children():
                    return
            except (AssertionError, psutil.NoSuchProcess):
                master = None
            time.sleep(0.002)
        raise AssertionError(f"gunicorn forked no worker within {timeout:.0f} s; log:\n{self.log()}")

    def kill_all(self):
        """SIGKILL every process of the dyno at once, as a crashed host or Heroku's R15 would."""
        self.signal_all(signal.SIGKILL)
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 5
        while self.survivors() and time.monotonic() < deadline:
            self.signal_all(signal.SIGKILL)
            time.sleep(0.05)

    def survivors(self):
        """Every live process carrying this dyno's mark, wherever it was reparented."""
        alive = []
        for process in psutil.process_iter(["pid"]):
            try:
                if process.environ().get("DOUBLE_BOILER_TEST_MARK") == self.mark and process.status() != "zombie":
                    alive.append(process.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return alive

    def signal_all(self, signum):
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop(self):
        """Heroku's stop: SIGTERM to every process in the dyno at once ("sometimes more than once", says
        Heroku: here a second round after a second), SIGKILL after 30 s."""
        began = time.monotonic()
        self.signal_all(signal.SIGTERM)
        second_round = False
        status = None
        while time.monotonic() - began < dyno_suite.HEROKU_STOP_WINDOW + 5:
            if not second_round and time.monotonic() - began > 1:
                self.signal_all(signal.SIGTERM)
                second_round = True
            if self.process.poll() is not None and not self.survivors():
                status = self.process.returncode
                break
            time.sleep(0.05)
        took = time.monotonic() - began
        for pid in self.survivors():  # what Heroku's SIGKILL would take
            os.kill(pid, signal.SIGKILL)
        return took, status

    def exit_status(self, timeout):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def inner_process(self, name):
        """The parent process of one LocalProcfile entry: gunicorn's master, or the Celery worker's parent."""

        def runs(process):
            if process is None or process.name() in ("sh", "bash", "dash"):
                return False
            command = " ".join(process.cmdline())
            return "gunicorn" in command if name == "web" else ("celery" in command and " worker" in command)

        for pid in self.survivors():
            try:
                process = psutil.Process(pid)
                if runs(process) and not runs(process.parent()):
                    return process
            except psutil.NoSuchProcess:
                continue
        raise AssertionError(f"no {name} process in the dyno")

    def kill(self, name):
        self.inner_process(name).kill()

    def commands(self):
        """The command lines of the dyno's live processes."""
        found = []
        for pid in self.survivors():
            try:
                found.append(" ".join(psutil.Process(pid).cmdline()))
            except psutil.NoSuchProcess:
                continue
        return found

    def memory(self):
        """(sum of PSS, sum of RSS) in MB over every process of the dyno (app/demo/memory.py sums them)."""
        memory = self.memory_detail()
        return memory["pss_mb"], memory["rss_mb"]

    def memory_detail(self):
        """app/demo/memory.py's figures for every process of the dyno: sums and one entry per process."""
        members = []
        for pid in self.survivors():
            with contextlib.suppress(psutil.NoSuchProcess):
                members.append(psutil.Process(pid))
        return processes_memory(members)

    def close(self):
        if self.process and self.process.poll() is None:
            self.stop()
        for pid in self.survivors():
            os.kill(pid, signal.SIGKILL)


class LocalCommand(LocalDyno):
    """Any command started the way LocalDyno starts a dyno (`bash -c`, its own session, the dyno's environment
    with $PORT, the mark on every process), stopped and weighed the same way: the benchmark's peers (bare
    gunicorn, the seed-style honcho stack, a dyno pinned to one core)."""

    def __init__(self, command, slug, config_vars, log_path):
        super().__init__(slug, config_vars, log_path)
        self.command = command

    def launch(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", self.command],
                cwd=self.slug,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
