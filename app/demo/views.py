"""The job storm page and the dyno's vital signs (GET /api/dyno) that it polls."""

from functools import lru_cache

from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from app.demo.memory import cached_tree_memory
from app.jobs import heartbeat
from app.jobs.views import MAX_BATCH, MAX_IDS, MAX_JOB_MS, WEB_WORKER, allow

# Status reads go as GET /api/jobs?ids=...: the page reads as many as one read allows.
POLL_BATCH = MAX_IDS
STORM_MAX = 10_000


def _static(name):
    # collectstatic's manifest names the hashed file; without a manifest (tests that skip collectstatic)
    # fall back to the plain name rather than fail the page.
    try:
        return staticfiles_storage.url(name)
    except ValueError:
        return settings.STATIC_URL + name


def dyno_facts():
    return {
        "dyno": settings.DYNO or "local",
        "layout": settings.DYNO_LAYOUT,
        "memory_quota_mb": settings.DYNO_MEMORY_MB,
        "web_concurrency": settings.WEB_CONCURRENCY,
        "celery_pool": getattr(settings, "CELERY_WORKER_POOL", "prefork"),
        "celery_concurrency": settings.CELERY_WORKER_CONCURRENCY,
        "broker": "redis" if settings.REDIS_URL else "embedded",
    }


@allow("GET")
def index(request):
    return HttpResponse(_page())


@lru_cache(maxsize=1)
def _page():
    """The page, rendered once per process: everything on it is fixed for the process's life (its facts, the
    limits, the static files' hashed names). Rendering it was a quarter of a gunicorn worker's time under
    wrk (py-spy); python -m bench's plain page is this view."""
    context = {
        "facts": dyno_facts(),
        "limits": {
            "storm_max": STORM_MAX,
            "batch_max": MAX_BATCH,
            "poll_batch": POLL_BATCH,
            "ms_max": MAX_JOB_MS,
        },
        "css": _static("demo/storm.css"),
        "js": _static("demo/storm.js"),
    }
    return render_to_string("demo/index.html", context)


@allow("GET")
def dyno(request):
    memory = cached_tree_memory()
    return JsonResponse(
        {
            **dyno_facts(),
            "web_worker": WEB_WORKER,
            "beat_last_tick": heartbeat.last(),
            "memory": memory,
        }
    )
