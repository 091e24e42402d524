"""The servers the benchmark compares, each started by the project's one test harness (tests/local_dyno.py):

- the packed dyno, exactly as Heroku starts it (Procfile `web`: the launcher runs all of LocalProcfile);
- the seed-style stack, the seed's own way of packing: honcho on a plain Procfile, stock gunicorn with
  gevent, the Celery worker with beat inside it (`-B`), no launcher;
- bare gunicorn (gevent, then sync) on the same WSGI app: the web tier's ceiling and its floor;
- the split layout (Procfile `web` and `worker` with DYNO_LAYOUT=split), each pinned to its own core.

Every command comes from the Procfiles through app/procfile.py; only the stock gunicorn line is the
benchmark's own (it is what the dyno is measured against, so it must not share the dyno's tuning).
"""

import shlex
import sys
from pathlib import Path

from app.procfile import LOCAL_PROCFILE, process_command
from tests.local_dyno import REPO, LocalCommand, LocalDyno

VENV_BIN = Path(sys.executable).parent


def config_vars(redis_url, **extra):
    """A local (non-production) app answering on 127.0.0.1, with the Redis broker of the run."""
    found = {"DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    if redis_url:
        found["REDIS_URL"] = redis_url
    found.update({k: str(v) for k, v in extra.items()})
    return found


def stock_gunicorn(worker_class):
    """gunicorn as its docs start it: the WSGI app, $PORT, a worker class; WEB_CONCURRENCY (which gunicorn
    reads itself) sets the workers, as Heroku's buildpack does. No config file, no tuning of ours."""
    return (
        f"gunicorn app.wsgi --bind 0.0.0.0:$PORT --worker-class {worker_class} --log-level warning "
        "--limit-request-line 8190 --no-control-socket"
    )


def worker_with_beat():
    """LocalProcfile's Celery worker with beat inside it, as the seed ran it: at the default priority (the
    dyno lowers its worker's with `nice`), with Celery's own `-B` (a forked beat child) in place of the dyno's
    beat thread (`--beat-thread`, app/celery.py)."""
    words = shlex.split(process_command("worker", LOCAL_PROCFILE))
    if words[0] == "nice":
        words = words[3:] if words[1] == "-n" else words[1:]
    words = [word for word in words if word not in ("--beat-thread", "--beat", "-B")]
    return shlex.join(words) + " -B"


def packed_dyno(redis_url, log_path, **extra):
    dyno = LocalDyno(REPO, config_vars(redis_url, DYNO_LAYOUT="packed", **extra), log_path)
    dyno.label = "packed dyno"
    return dyno


def seed_stack(redis_url, workers, folder, log_path):
    procfile = Path(folder) / "Procfile.seed"
    procfile.write_text(f"web: {stock_gunicorn('gevent')}\nworker: {worker_with_beat()}\n")
    command = f"honcho --no-colour start -f {shlex.quote(str(procfile))} -d {shlex.quote(str(REPO))} -p $PORT"
    stack = LocalCommand(command, REPO, config_vars(redis_url, WEB_CONCURRENCY=workers), log_path)
    stack.label = "seed-style"
    return stack


def bare_gunicorn(worker_class, redis_url, workers, log_path):
    server = LocalCommand(stock_gunicorn(worker_class), REPO, config_vars(redis_url, WEB_CONCURRENCY=workers), log_path)
    server.label = f"bare {worker_class}"
    return server


def split_pinned(redis_url, folder):
    """The split layout's two dynos, web on core 0 and the worker on core 1 (taskset)."""
    dynos = []
    for core, process_type in enumerate(("web", "worker")):
        command = f"taskset -c {core} {process_command(process_type)}"
        dyno = LocalCommand(
            command, REPO, config_vars(redis_url, DYNO_LAYOUT="split"), Path(folder) / f"split-{process_type}.log"
        )
        dyno.label = f"split {process_type}"
        dynos.append(dyno)
    return dynos
