"""The job API: enqueue jobs, read their state and results. Every answer is JSON: a 4xx names the problem,
a 503 names the dependency that is down (Redis or the database), and nothing a client sends makes a 500."""

import json
import logging
import os
import re
import time
import uuid
from functools import wraps

import orjson
from celery import states
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import OutOfMemoryError

from app.jobs import heartbeat, records
from app.jobs.enqueue import enqueue

JOB_KINDS = ("cpu", "io")
MAX_JOB_MS = 10_000  # keeps every job well inside the 30 s shutdown window
MAX_BATCH = 500  # jobs per POST
# Ids per status read. The ids travel in the request line, which gunicorn (and Heroku's router) cap at
# 8190 bytes: 200 ids take 7.8 KB even with every comma percent-encoded, so 200 is the limit that holds
# through every hop. Past gunicorn's cap the worker itself answers a JSON 414 (app/gunicorn.conf.py).
MAX_IDS = 200
DEFAULT_WAIT_MS = 50
MAX_WAIT_MS = 60_000  # long enough to outlast the router's 30 s (the VPS router test needs that)
WEB_WORKER = f"gunicorn pid {os.getpid()}"
# A body arrives with Content-Length or chunked (Heroku's router passes chunked bodies on); either way at
# most Django's DATA_UPLOAD_MAX_MEMORY_SIZE is read.
MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

log = logging.getLogger("app.jobs")


class BadRequest(Exception):
    pass


def error(status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=status)


def jobs_response(data, status=200):
    """The job endpoints' JSON, encoded by orjson: a 200-job status read spent more CPU in Django's
    JsonResponse (the standard library's encoder, 6 us a job) than in reading the records."""
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


class OutageLog:
    """One log line per dependency outage and then at most one every `every` seconds while it lasts, with the
    number of requests answered 503 since the last line: a refused Redis under load must not flood the log
    with a traceback per request."""

    def __init__(self, every=10.0):
        self.every = every
        self.last = {}
        self.suppressed = {}

    def report(self, dependency, problem):
        now = time.monotonic()
        if now - self.last.get(dependency, -self.every) < self.every:
            self.suppressed[dependency] = self.suppressed.get(dependency, 0) + 1
            return
        since = self.suppressed.pop(dependency, 0)
        self.last[dependency] = now
        more = f" ({since} more 503s since the last line)" if since else ""
        log.warning("%s unavailable, answering 503: %s%s", dependency, _one_line(problem), more)


outages = OutageLog()


def _one_line(problem):
    return f"{type(problem).__name__}: {problem}".splitlines()[0][:300]


def unavailable(dependency, problem):
    outages.report(dependency, problem)
    response = error(503, f"{dependency} is unavailable; try again shortly", unavailable=dependency)
    response["Retry-After"] = "5"
    return response


def _redis_out_of_memory(problem):
    """The OOM refusal itself, or one kombu or Celery raised from it."""
    seen = set()
    while problem is not None and id(problem) not in seen:
        if isinstance(problem, OutOfMemoryError):
            return True
        seen.add(id(problem))
        problem = problem.__cause__ or problem.__context__
    return False


def redis_full(problem):
    """Heroku's Key-Value Store (and the VPS's redis-server, policy noeviction) refuse writes at maxmemory:
    nothing queued or finished is dropped to make room. A job's record is written before it is published,
    so the refused request's jobs were never accepted, and the jobs already accepted stay queued and run."""
    outages.report("redis (full)", problem)
    message = (
        "the job store (Redis) is full: it refuses writes at its maxmemory, so this request's jobs were not "
        "accepted; jobs already accepted are kept and still run. Retry once some have finished and expired, "
        "or move to a Redis plan with more memory."
    )
    response = error(503, message, unavailable=records.BROKER_NAME)
    response["Retry-After"] = "30"
    return response


def api(*methods):
    """Every API view: no CSRF (a JSON API without cookie auth), a JSON 405 for any other method (like
    Django's require_http_methods, but JSON), and a JSON 503 naming the broker when Redis fails."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if request.method not in methods:
                response = error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except records.BROKER_ERRORS as problem:
                if _redis_out_of_memory(problem):
                    return redis_full(problem)
                return unavailable(records.BROKER_NAME, problem)

        checked.allowed_methods = methods  # read by the OpenAPI consistency test
        return csrf_exempt(checked)

    return decorate


allow = api  # the demo's views use the same rules


def not_found(request, exception=None):
    return error(404, f"no such page: {request.path}")


def bad_request(request, exception=None):
    # Django's own 400s: a Host header outside DJANGO_ALLOWED_HOSTS (logged once, without a traceback, by
    # the settings' LOGGING), an undecodable query.
    return error(400, f"bad request: {exception}" if exception else "bad request")


def server_error(request):
    return error(500, "internal error; the dyno keeps serving")


# Celery states, as the API names them.
STATE_NAMES = {
    states.PENDING: "queued",
    states.RECEIVED: "queued",
    states.RETRY: "queued",
    states.STARTED: "running",
    states.SUCCESS: "done",
    states.FAILURE: "failed",
    states.REVOKED: "failed",
}


def describe(job_id, meta, completions=0):
    """The API's view of one job record."""
    kwargs = meta.get("kwargs") or {}
    status = meta.get("status", states.PENDING)
    result = meta.get("result")
    job = {
        "id": job_id,
        "state": STATE_NAMES.get(status, "queued"),
        "kind": kwargs.get("kind"),
        "ms": kwargs.get("ms"),
        "enqueued_at": kwargs.get("enqueued_at"),
        "web_worker": kwargs.get("web_worker"),
        "celery_worker": None,
        "started_at": None,
        "finished_at": None,
        "result": None,
        "error": None,
        "completions": completions,
    }
    if status == states.STARTED and isinstance(result, dict):
        # Celery's own STARTED meta: {"pid": ..., "hostname": ...}
        job["celery_worker"] = f"{result.get('hostname')} pid {result.get('pid')}"
    elif status == states.SUCCESS and isinstance(result, dict):
        job["celery_worker"] = result.get("celery_worker")
        job["started_at"] = result.get("started_at")
        job["finished_at"] = result.get("finished_at")
        job["result"] = result
    elif status in (states.FAILURE, states.REVOKED):
        if isinstance(result, dict):
            job["error"] = f"{result.get('exc_type', 'Error')}: {result.get('exc_message', '')}".strip()
        else:
            job["error"] = str(result)
        job["celery_worker"] = meta.get("worker")
    return job


def fetch(job_ids):
    """{id: job} for the known ids; unknown ids are simply absent."""
    return {job_id: describe(job_id, meta, n) for job_id, (meta, n) in records.read(job_ids).items()}


def _whole_number(payload, name, default, low, high):
    value = payload.get(name, default)
    # bool is an int in Python; true/false are not counts.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, not {value}")
    return value


def _body(request):
    """The request body, Content-Length or chunked. Django reads only Content-Length bodies (a chunked one
    looks empty to it), so a chunked body is read from the server's input stream, which de-chunks it."""
    if request.META.get("CONTENT_LENGTH") or "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", ""):
        try:
            return request.body
        except RequestDataTooBig:
            raise BadRequest("request body is too large") from None
    raw = request.META["wsgi.input"].read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("request body is too large")
    return raw


def _job_spec(request):
    body = _body(request)
    try:
        payload = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError: not JSON, or an integer past Python's 4300-digit conversion limit; RecursionError:
        # nesting deeper than the parser's stack.
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


# A job id as the API hands them out (str(uuid4())): taken as it is, without building a UUID (a tenth of a
# 200-id status read's CPU); any other spelling uuid.UUID accepts is normalised to it.
CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _parse_id(raw):
    if CANONICAL_ID.fullmatch(raw):
        return raw
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError):
        raise BadRequest(f"{raw[:100]!r} is not a job id (a UUID)") from None


@api("GET", "POST")
def jobs(request):
    try:
        if request.method == "POST":
            kind, ms, count = _job_spec(request)
            ids = enqueue(kind, ms, count, WEB_WORKER)
            queued = [{"id": job_id, "state": "queued", "kind": kind, "ms": ms} for job_id in ids]
            return jobs_response({"jobs": queued}, status=202)
        raw_ids = [i for i in request.GET.get("ids", "").split(",") if i]
        if not raw_ids:
            raise BadRequest("ids is required: /api/jobs?ids=<id>,<id>,...")
        if len(raw_ids) > MAX_IDS:
            raise BadRequest(f"at most {MAX_IDS} ids per request, not {len(raw_ids)}")
        ids = [_parse_id(raw) for raw in raw_ids]
    except BadRequest as problem:
        return error(400, str(problem))
    found = fetch(ids)
    return jobs_response({"jobs": list(found.values()), "unknown": [i for i in ids if i not in found]})


@api("GET")
def job_detail(request, job_id):
    try:
        job_id = _parse_id(job_id)
    except BadRequest as problem:
        return error(400, str(problem))
    found = fetch([job_id])
    if job_id not in found:
        return error(404, f"no job with id {job_id}")
    return jobs_response(found[job_id])


@api("GET")
def wait(request):
    """Waits `ms` milliseconds without holding the worker: gevent turns the sleep into a yield."""
    raw = request.GET.get("ms", str(DEFAULT_WAIT_MS))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        return error(400, f"ms must be a whole number of milliseconds from 0 to {MAX_WAIT_MS}")
    ms = int(raw)
    if ms > MAX_WAIT_MS:
        return error(400, f"ms must be from 0 to {MAX_WAIT_MS}, not {ms}")
    time.sleep(ms / 1000)
    return JsonResponse({"waited_ms": ms, "web_worker": WEB_WORKER})


@api("GET")
def openapi(request):
    from app.jobs.openapi import spec

    return JsonResponse(spec())


class DatabaseProbe:
    """The database's answer to `SELECT 1`, asked at most once per `every` seconds per web process.

    Connections are not kept (settings: conn_max_age 0), so each probe opens one: a new PostgreSQL backend
    and a SCRAM handshake. Monitors and load balancers poll /api/health many times a second; one connection
    per poll made the health check itself a load on the database host (under load through the router during
    a deploy, the data host's new connections took longer than the 3 s connect timeout). An outage or a
    recovery still shows within `every` seconds."""

    def __init__(self, every=1.0):
        self.every = every
        self._asked_at = None
        self._problem = None

    def problem(self):
        now = time.monotonic()
        if self._asked_at is None or now - self._asked_at >= self.every:
            # Taken before asking: while a slow connect is under way (the 3 s case this exists for), the other
            # greenlets answer with the last answer rather than each opening a connection of its own.
            self._asked_at = now
            self._problem = self._ask()
        return self._problem

    @staticmethod
    def _ask():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return None
        except Exception as problem:  # noqa: BLE001 - any failure means the database is down for the app
            return problem
        finally:
            connection.close()


database_probe = DatabaseProbe()


@api("GET")
def health(request):
    """200 when every dependency answers; 503 naming the ones that do not. The dyno keeps serving `/`."""
    down = {}
    try:
        beat_last_tick = heartbeat.last()
    except records.BROKER_ERRORS as problem:
        beat_last_tick = None
        down[records.BROKER_NAME] = _one_line(problem)
    problem = database_probe.problem()
    if problem is not None:
        down["database"] = _one_line(problem)
    for dependency, problem in down.items():
        outages.report(dependency, problem)
    body = {
        "status": "degraded" if down else "ok",
        "down": down,
        "dyno": settings.DYNO or "local",
        "layout": settings.DYNO_LAYOUT,
        "web_worker": WEB_WORKER,
        "beat_last_tick": beat_last_tick,
    }
    return JsonResponse(body, status=503 if down else 200)
