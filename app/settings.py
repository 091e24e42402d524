"""Django settings for Double Boiler: every value comes from the environment (Heroku config vars, or the
VPS's env file), with embedded defaults so a fresh clone runs locally with Python alone.

This is the one module that reads config vars; gunicorn's config, the Celery app and the dyno launcher take
their values from here. Each config var is described in app.json.
https://docs.djangoproject.com/en/5.2/topics/settings/
"""

import os
import ssl
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from app import concurrency

BASE_DIR = Path(__file__).resolve().parent.parent

# Where the embedded defaults keep their data (SQLite, broker and result folders): local runs only.
LOCAL_DATA_DIR = BASE_DIR / ".local"


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, minimum=1):
    """An optional positive integer config var; None when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


# ---------------------------------------------------------------------------------------------------------
# Where we run
# ---------------------------------------------------------------------------------------------------------
# Heroku sets DYNO (web.1, worker.1, release.42, scheduler.7) in every dyno, and the VPS units set it the same
# way: its presence means production, where the embedded defaults would silently lose data.
DYNO = os.environ.get("DYNO", "")
PRODUCTION = bool(DYNO)

# packed: the web dyno runs everything in LocalProcfile; split: web and worker dynos (see app/dyno.py).
DYNO_LAYOUT = os.environ.get("DYNO_LAYOUT", "").strip() or "packed"
if DYNO_LAYOUT not in {"packed", "split"}:
    raise ImproperlyConfigured(f"DYNO_LAYOUT must be packed or split, not {DYNO_LAYOUT!r}")

# ---------------------------------------------------------------------------------------------------------
# Security
# ---------------------------------------------------------------------------------------------------------
# Production fails fast: a per-boot random key would log everyone out on every restart and break signatures
# between gunicorn workers, so the key must be a config var shared by every process.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: set it as a config var "
            "(Terraform and app.json generate one; the Ansible app role keeps one in the env file)."
        )
    SECRET_KEY = "insecure-local-only-key-double-boiler"  # local runs only, never with DYNO set

DEBUG = env_bool("DJANGO_DEBUG", default=False)

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    ALLOWED_HOSTS = [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]

# Heroku's router (and nginx on the VPS) terminates TLS and says so in X-Forwarded-Proto.
# https://devcenter.heroku.com/articles/http-routing#heroku-headers
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_PORT = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True

# ---------------------------------------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "app.jobs",
    "app.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # whitenoise serves collectstatic's output from gunicorn itself: no separate static server on Heroku.
    # https://whitenoise.readthedocs.io/en/stable/django.html
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------------------
# DATABASE_URL is set by Heroku Postgres (and by the VPS's postgresql role). conn_max_age stays 0: with gevent
# every greenlet would keep its own persistent connection and exhaust the plan's connection limit.
# https://github.com/jazzband/dj-database-url
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{LOCAL_DATA_DIR / 'db.sqlite3'}",
        conn_max_age=0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database that does not answer fails a request in seconds (the API's 503, /api/health names it)
    # instead of holding it for the kernel's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
if PRODUCTION and DATABASES["default"]["ENGINE"].endswith("sqlite3") and "DATABASE_URL" not in os.environ:
    raise ImproperlyConfigured("DATABASE_URL is not set: attach a Postgres add-on or set it as a config var.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------------------------------------
# Internationalisation, static files
# ---------------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# ---------------------------------------------------------------------------------------------------------
# Logging: everything to stdout, one line per event; the platform (Heroku's logplex, journald) adds the time.
# https://devcenter.heroku.com/articles/logging#writing-to-your-log
# ---------------------------------------------------------------------------------------------------------
# Celery's two lines per message, one when the worker receives it and one when it finishes (INFO): relayed
# through the launcher at a storm's rate they cost the worker ~10% of its jobs/s (python -m bench's jobs
# enqueued together, side by side: 6,607 -> 7,359 jobs/s). Each job's state is in the API; a failure, a
# rejection or an internal error is still logged (WARNING and up). LOG_EACH_TASK=true brings them back.
LOG_EACH_TASK = env_bool("LOG_EACH_TASK", default=False)
_QUIET_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "filters": {
        "no_503": {"()": "django.utils.log.CallbackFilter", "callback": lambda record: _not_a_503(record)},
        "no_traceback": {"()": "django.utils.log.CallbackFilter", "callback": lambda record: _strip_traceback(record)},
    },
    "loggers": {
        # The API's 503s are logged by app.jobs, once per outage and then rate-limited; Django's line per
        # response would flood the log while Redis is down.
        "django.request": {"filters": ["no_503"]},
        # A bad Host header is one line, not a traceback per request (scanners send them all day).
        "django.security.DisallowedHost": {"filters": ["no_traceback"]},
        **({} if LOG_EACH_TASK else {name: {"level": "WARNING"} for name in _QUIET_TASK_LOGGERS}),
    },
}


def _not_a_503(record):
    return getattr(record, "status_code", None) != 503


def _strip_traceback(record):
    record.exc_info = None
    record.exc_text = None
    return True


# ---------------------------------------------------------------------------------------------------------
# Concurrency, sized for the dyno's memory (rules and numbers in app/concurrency.py)
# ---------------------------------------------------------------------------------------------------------
DYNO_MEMORY_MB = concurrency.dyno_memory_mb()
# Only gunicorn reads WEB_CONCURRENCY: Heroku's buildpack exports it to every process in the dyno, so the
# Celery worker reads CELERY_WORKER_CONCURRENCY instead and never inherits the web figure.
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY") or concurrency.web_workers(DYNO_MEMORY_MB)
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY") or concurrency.celery_workers(DYNO_MEMORY_MB)
PORT = env_int("PORT") or 5000

# ---------------------------------------------------------------------------------------------------------
# Celery (read by app/celery.py with the CELERY_ namespace)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ---------------------------------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# Seconds to connect to Redis and for each reply (the web side's own pool in app/jobs/records.py too).
REDIS_SOCKET_TIMEOUT = 2
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL is not set: attach a Key-Value Store (Redis) add-on or set it.")

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport, with the fix that keeps a refused Redis from killing the worker.
    CELERY_BROKER_TRANSPORT = "app.redis_transport:Transport"
    CELERY_RESULT_BACKEND = REDIS_URL
    if urlparse(REDIS_URL).scheme == "rediss":
        # Heroku Key-Value Store requires TLS but presents a self-signed certificate.
        # https://devcenter.heroku.com/articles/connecting-heroku-redis#connecting-in-python
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_NONE}
        CELERY_REDIS_BACKEND_USE_SSL = {"ssl_cert_reqs": ssl.CERT_NONE}
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # After a crash (SIGKILL of the dyno, a lost host) the messages its worker held come back to the
        # queue once they have been out this long. A message is out only while its jobs run (prefetch 1 per
        # pool slot, below), and no message outlives 10 s of work (the API caps a job at 10 s, a chunk at
        # 1 s: app/jobs/enqueue.py), so 45 s never hands a live worker's message to another. The worker
        # (app/jobs/runner.py) skips jobs already recorded done, so a redelivered message completes each job
        # once, and each job counts its completions; kombu looks for
        # overdue messages at the worker's start and every 5 s: a crashed dyno's jobs are all done within
        # about a minute of the restart.
        "visibility_timeout": 45,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 30,
        # A stalled Redis (a failover, a full network buffer) fails a call in seconds instead of holding it:
        # the API answers 503 naming the broker and the worker reconnects. Above the BRPOP wait (below).
        "socket_timeout": 3,
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
        # The worker's BRPOP connection ignores socket_timeout: kombu drops it once a reply is this much
        # overdue (default 25 s: a stalled Redis left the worker deaf for 30 s after it came back).
        "health_check_interval": 2,
        # How long the worker's BRPOP waits for a message before it asks again (kombu's brpop_timeout, 1 s by
        # default). A stopping worker first reads the reply of the BRPOP in flight (a message it popped must
        # not be lost), so every stop of the dyno waited up to this long. Four BRPOPs a second when idle.
        "polling_interval": 0.25,
    }
    CELERY_REDIS_SOCKET_TIMEOUT = REDIS_SOCKET_TIMEOUT
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_SOCKET_TIMEOUT
    CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_SOCKET_TIMEOUT
else:
    # Embedded default: a folder-based broker and file results, no server to install. One machine only.
    # The transport is kombu's filesystem one with whole-file writes (app/embedded.py says why).
    _broker_dir = LOCAL_DATA_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "app.embedded:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(LOCAL_DATA_DIR / "broker-control"),
        # The worker looks for a message this often whenever its slots are full or the folder is empty:
        # at 0.05 s each finished job waited up to 50 ms for the next (~100 listdirs a second when idle).
        "polling_interval": 0.01,
    }
    # No Redis connection limit to respect here, and the demo's jobs wait on I/O: threads are cheap.
    if env_int("CELERY_WORKER_CONCURRENCY") is None:
        CELERY_WORKER_CONCURRENCY = concurrency.EMBEDDED_CELERY_THREADS
    CELERY_RESULT_BACKEND = "app.jobs.embedded:AtomicFilesystemBackend+file://" + str(LOCAL_DATA_DIR / "results")
    for _folder in (_broker_dir, LOCAL_DATA_DIR / "broker-control", LOCAL_DATA_DIR / "results"):
        _folder.mkdir(parents=True, exist_ok=True)

# A publish that fails answers the API's 503 at once; the client retries (Celery's default retries would
# hold the request through three more connection timeouts).
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_TRACK_STARTED = True
# No job lost on a dyno restart: a task is acknowledged only once it has run, and one whose worker process
# died is handed back to the queue.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message per pool slot: with acks_late the reserved jobs are exactly the running ones, so a warm
# shutdown has only those to finish (at most 10 s each) inside the stop window.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Threads, not prefork processes: no process per slot (each prefork child is a whole Django + Celery, 35-45 MB
# of PSS: the packed dyno went from ~320 to ~260 MB PSS idle, python -m bench), and more slots for
# I/O-bound jobs cost a thread each (CELERY_WORKER_CONCURRENCY). CPU-bound jobs share one core, which on a
# 512 MB dyno the web tier needs anyway. Celery's time limits are not enforced by this pool: every job bounds
# itself (the API caps ms at 10 s and app/jobs/runner.py stops a job at its deadline). A warm shutdown waits
# for running threads.
# https://docs.celeryq.dev/en/stable/userguide/concurrency/index.html
CELERY_WORKER_POOL = "threads"
# Jobs fit well inside Heroku's 30 s shutdown window, so a warm shutdown can let every running job finish.
CELERY_TASK_SOFT_TIME_LIMIT = 15
CELERY_TASK_TIME_LIMIT = 20
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat keeps its schedule in memory: a dyno's disk is wiped on every restart anyway, and a schedule file
# would be one more writable path on the VPS (and a shared one between dynos on a developer's machine).
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"
CELERY_BEAT_SCHEDULE = {
    # Proves beat is alive inside the dyno; the demo page shows the last tick.
    "heartbeat": {"task": "app.jobs.tasks.heartbeat", "schedule": 10.0},
}
