"""The job API: enqueue jobs, read their state and results. Every error is a JSON 4xx naming the problem."""

import json
import os
import time
import uuid
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from app.jobs import store

JOB_KINDS = ("cpu", "io")
MAX_JOB_MS = 10_000  # keeps every job well inside the 30 s shutdown window
MAX_BATCH = 500  # jobs per request, and ids per status read
MAX_WAIT_MS = 60_000  # long enough to outlast the router's 30 s (the VPS router test needs that)
WEB_WORKER = f"gunicorn pid {os.getpid()}"


class BadRequest(Exception):
    pass


def error(status, message):
    return JsonResponse({"error": message}, status=status)


def allow(*methods):
    """Like Django's require_http_methods, but the 405 is JSON like every other API error."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if request.method not in methods:
                response = error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return checked

    return decorate


def not_found(request, exception=None):
    return error(404, f"no such page: {request.path}")


def server_error(request):
    return error(500, "internal error; the dyno keeps serving")


def _whole_number(payload, name, default, low, high):
    value = payload.get(name, default)
    # bool is an int in Python; true/false are not counts.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, not {value}")
    return value


def _job_spec(request):
    try:
        payload = json.loads(request.body or b"{}")
    except RequestDataTooBig:
        raise BadRequest("request body is too large") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("request body must be JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest('request body must be a JSON object like {"kind": "io", "ms": 100, "count": 1}')
    unknown = sorted(set(payload) - {"kind", "ms", "count"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    kind = payload.get("kind", "io")
    if kind not in JOB_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(JOB_KINDS)}")
    ms = _whole_number(payload, "ms", 100, 0, MAX_JOB_MS)
    count = _whole_number(payload, "count", 1, 1, MAX_BATCH)
    return kind, ms, count


def _parse_id(raw):
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError):
        raise BadRequest(f"{raw!r} is not a job id (a UUID)") from None


@csrf_exempt  # a JSON API without cookies-based auth: CSRF does not apply
@allow("GET", "POST")
def jobs(request):
    try:
        if request.method == "POST":
            kind, ms, count = _job_spec(request)
            ids = store.enqueue(kind, ms, count, WEB_WORKER)
            queued = [{"id": job_id, "state": "queued", "kind": kind, "ms": ms} for job_id in ids]
            return JsonResponse({"jobs": queued}, status=202)
        raw_ids = [i for i in request.GET.get("ids", "").split(",") if i]
        if not raw_ids:
            raise BadRequest("ids is required: /api/jobs?ids=<id>,<id>,...")
        if len(raw_ids) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} ids per request, not {len(raw_ids)}")
        ids = [_parse_id(raw) for raw in raw_ids]
    except BadRequest as problem:
        return error(400, str(problem))
    found = store.fetch(ids)
    return JsonResponse({"jobs": list(found.values()), "unknown": [i for i in ids if i not in found]})


@allow("GET")
def job_detail(request, job_id):
    try:
        job_id = _parse_id(job_id)
    except BadRequest as problem:
        return error(400, str(problem))
    found = store.fetch([job_id])
    if job_id not in found:
        return error(404, f"no job with id {job_id}")
    return JsonResponse(found[job_id])


@allow("GET")
def wait(request):
    """Waits `ms` milliseconds without holding the worker: gevent turns the sleep into a yield."""
    try:
        ms = int(request.GET.get("ms", "50"))
    except ValueError:
        return error(400, "ms must be a whole number of milliseconds")
    if not 0 <= ms <= MAX_WAIT_MS:
        return error(400, f"ms must be from 0 to {MAX_WAIT_MS}, not {ms}")
    time.sleep(ms / 1000)
    return JsonResponse({"waited_ms": ms, "web_worker": WEB_WORKER})


@allow("GET")
def health(request):
    return JsonResponse(
        {
            "status": "ok",
            "dyno": settings.DYNO or "local",
            "layout": settings.DYNO_LAYOUT,
            "web_worker": WEB_WORKER,
            "beat_last_tick": store.last_heartbeat(),
        }
    )
