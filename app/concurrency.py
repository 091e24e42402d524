"""How many processes fit in the dyno: the memory the dyno really has, and the rule that shares it out.

Memory, first found wins: Heroku's DYNO_RAM (MB, exported by the Python buildpack), the cgroup limit of this
process (systemd's MemoryMax on the VPS, a container's limit), else Heroku's smallest dyno (512 MB).

The rule, for the packed layout (one dyno runs gunicorn, the Celery worker and beat), checked against the
benchmark's PSS figures (python -m bench): the fixed part - the launcher, gunicorn's master, the Celery worker
process with beat as a thread of it (--beat-thread, app/celery.py) - is about 90 MB; each gunicorn gevent worker
is a whole Django, about 50 MB idle and 60 MB under a storm. The Celery pool is threads (app/settings.py), so a
Celery slot costs a thread and a Redis connection, not a process. So a 512 MB dyno gets 2 web workers and 2
Celery threads (about 195 MB PSS idle, under 300 MB at the peak of a 10,000-job storm); every further 256 MB
buys one more web worker, and Celery threads follow the cores. In the split layout each dyno runs one side
only, keeps the same counts and has memory to spare. Explicit WEB_CONCURRENCY / CELERY_WORKER_CONCURRENCY win.
"""

import os
from pathlib import Path

DEFAULT_DYNO_MEMORY_MB = 512
# Celery threads of a local run on the embedded broker (no REDIS_URL): `make run`'s default storm (I/O-bound
# jobs of 20 ms) went from 30 jobs/s with 2 threads to the sender's pace with 8 (python -m bench).
EMBEDDED_CELERY_THREADS = 8
# cgroup v1 reports "no limit" as a huge number; anything above 1 TiB means unlimited.
_UNLIMITED_BYTES = 1 << 40
CPU_COUNT = os.cpu_count() or 1


def _cgroup_limit_bytes(root=Path("/sys/fs/cgroup"), proc_self_cgroup=Path("/proc/self/cgroup")):
    """The memory limit of this process's cgroup (v2 memory.max or v1 limit_in_bytes), or None."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        path = path.lstrip("/")
        if controllers == "":  # cgroup v2 unified hierarchy
            candidates = [root / path / "memory.max", root / "unified" / path / "memory.max"]
        elif "memory" in controllers.split(","):
            candidates = [root / "memory" / path / "memory.limit_in_bytes"]
        else:
            continue
        for candidate in candidates:
            try:
                raw = candidate.read_text().strip()
            except OSError:
                continue
            if raw and raw != "max" and int(raw) < _UNLIMITED_BYTES:
                return int(raw)
    return None


def dyno_memory_mb(environ=os.environ):
    raw = environ.get("DYNO_RAM", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    limit = _cgroup_limit_bytes()
    if limit:
        return max(limit // (1024 * 1024), 1)
    return DEFAULT_DYNO_MEMORY_MB


def web_workers(memory_mb):
    """Heroku's buildpack rule, min(2 x cores + 1, RAM / 256): 2 on a 512 MB dyno."""
    return max(1, min(2 * CPU_COUNT + 1, memory_mb // 256))


def celery_workers(memory_mb):
    per_256 = max(memory_mb // 256, 1)
    # CPU-bound jobs gain nothing from more slots than cores; I/O-bound ones would, but each slot holds a
    # Redis connection (Heroku's mini Key-Value Store allows 20): raise CELERY_WORKER_CONCURRENCY for those.
    return max(1, min(CPU_COUNT, per_256))
