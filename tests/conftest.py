"""Test-wide set-up: a real Redis and a throwaway SQLite database for the in-process app tests.

The dyno tests start their own processes with an environment built from scratch (tests/local_dyno.py), so
nothing set here leaks into them.
"""

import os
import tempfile
from pathlib import Path

from tests.local_dyno import RedisServer

_redis = None


def pytest_configure(config):
    global _redis
    workdir = Path(tempfile.mkdtemp(prefix="double-boiler-tests-"))
    _redis = RedisServer(workdir / "redis").start()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "app.settings",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "REDIS_URL": _redis.url,
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        }
    )
    for name in ("DYNO", "DJANGO_SECRET_KEY", "DYNO_LAYOUT", "WEB_CONCURRENCY", "CELERY_WORKER_CONCURRENCY"):
        os.environ.pop(name, None)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pytest_unconfigure(config):
    if _redis is not None:
        _redis.stop()
