"""Job records: written when a job is enqueued, updated by the worker, read by the API.

A job's record is its Celery result meta, kept in Celery's own result backend (Redis on Heroku and the VPS,
files locally), so the worker's ordinary state updates (STARTED, SUCCESS, FAILURE) are the job's progress and
there is no second store to keep in step. The web side writes a PENDING record *before* publishing, which is
what tells a queued job from an unknown id.

With gevent, `celery_app.backend` is per greenlet (Celery keeps it thread-local), which opens a Redis
connection pool per request (celery/celery#7960); this module keeps one backend per process instead.
"""

import contextlib
import os
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache

import kombu.exceptions
import redis.exceptions
from celery import states
from django.conf import settings

from app.celery import app as celery_app

# What a failing broker or result store raises on the web side: Redis refused, reset or stalled past its
# socket timeout, the pool's wait for a free connection, kombu's publish errors; the embedded store's
# folder errors. The API answers these with a JSON 503 naming BROKER_NAME.
BROKER_ERRORS = (redis.exceptions.RedisError, kombu.exceptions.OperationalError, OSError)
BROKER_NAME = "redis" if settings.REDIS_URL else "embedded broker"

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
RUN_JOB_TASK = "app.jobs.tasks.run_job"
RUN_JOBS_TASK = "app.jobs.tasks.run_jobs"


@lru_cache(maxsize=1)
def backend():
    return celery_app.backend


# redis-py's default pool allows 100 connections and then raises MaxConnectionsError: a gevent worker with
# 200 status reads in flight got 500s from it (python -m app.bench). Our own reads and writes share a small
# blocking pool per process instead: a greenlet (or pool thread) waits its turn for a connection, MGETs take
# well under a millisecond, and the dyno stays inside the Redis plan's connection limit (20 on Heroku's mini).
REDIS_POOL_SIZE = 8
# A stalled Redis must not hold a request: a greenlet waits at most this long for a pooled connection and
# then for each reply (settings.REDIS_SOCKET_TIMEOUT), so a request answers - 503 - within about 4 s.
REDIS_POOL_WAIT = 2


@lru_cache(maxsize=1)
def redis_client():
    """A Redis client on a bounded blocking pool, or None with a backend that is not Redis (the embedded one)."""
    store = backend()
    if not hasattr(store, "connparams"):
        return None
    import redis

    params = {k: v for k, v in store.connparams.items() if k != "max_connections"}
    params.update(socket_timeout=settings.REDIS_SOCKET_TIMEOUT, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT)
    pool = redis.BlockingConnectionPool(max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT, **params)
    return redis.Redis(connection_pool=pool)


def _mget(store, keys):
    client = redis_client()
    return client.mget(keys) if client is not None else store.mget(keys)


def _record(job_id, kwargs):
    """A PENDING meta in the shape Celery itself stores with result_extended on."""
    return {
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": job_id,
        "name": RUN_JOB_TASK,
        "args": [],
        "kwargs": kwargs,
        "worker": None,
        "retries": 0,
        "queue": None,
    }


def _batched(producer):
    """kombu's publish batch: on Redis every LPUSH of the call goes in one pipelined round trip (other
    transports publish one by one, as before)."""
    if hasattr(producer, "batch"):
        return producer.batch(max_size=1000)
    return contextlib.nullcontext()


def enqueue(kind, ms, count, web_worker):
    """Record `count` jobs as queued, then publish them; returns their ids in order."""
    enqueued_at = time.time()
    jobs = []
    for _ in range(count):
        job_id = str(uuid.uuid4())
        kwargs = {"kind": kind, "ms": ms, "enqueued_at": enqueued_at, "web_worker": web_worker}
        jobs.append((job_id, kwargs))
    # Records first: a fast worker's STARTED/SUCCESS must never be overwritten by our PENDING.
    store = backend()
    _store(store, [(store.get_key_for_task(job_id), _record(job_id, kwargs)) for job_id, kwargs in jobs], publish=False)
    # What run_job.apply_async() does, minus the result subscription: Celery's Redis backend subscribes every
    # task it sends to a pub/sub channel for a later .get(), and unsubscribes when the AsyncResult is
    # collected - two Redis round trips per job (a third of the enqueue time, per py-spy) for a .get() we
    # never call: the API reads status with MGET.
    # Every job travels in a run_jobs message, a single one too: run_chunk's skip of finished jobs is what
    # makes a redelivered message (after a crash, see the visibility timeout in settings) complete each job
    # once.
    amqp = celery_app.amqp
    with celery_app.producer_or_acquire() as producer, _batched(producer):
        for chunk in chunks(jobs, ms):
            batch = [{"id": job_id, **kwargs} for job_id, kwargs in chunk]
            message = amqp.create_task_message(str(uuid.uuid4()), RUN_JOBS_TASK, (), {"jobs": batch})
            amqp.send_task_message(producer, RUN_JOBS_TASK, message)
    return [job_id for job_id, _ in jobs]


# A Celery message costs the worker ~3 ms of CPU whatever the job (receive, two result writes with a read
# before each, ack; py-spy), which caps a small dyno near 250 short jobs/s. Jobs enqueued together therefore
# travel together: up to CHUNK_JOBS of them, CHUNK_MS of work at most, per message, so a chunk stays far
# inside the shutdown window and the pool's threads still share the load. Each job keeps its own record
# and its own queued -> running -> done.
CHUNK_JOBS = 50
CHUNK_MS = 1000


def chunks(jobs, ms):
    size = max(1, min(CHUNK_JOBS, CHUNK_MS // ms if ms else CHUNK_JOBS))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def run_chunk(jobs, execute, hostname):
    """Run the jobs of one message in order, each recorded as Celery records a task (STARTED, then SUCCESS
    or FAILURE, published like Celery does so AsyncResult.get() works too). A chunk that comes back after
    a lost worker skips the jobs that already finished: nothing runs twice to completion."""
    store = backend()
    keys = [store.get_key_for_task(job["id"]) for job in jobs]
    finished = set()
    for job, raw in zip(jobs, _mget(store, keys), strict=True):
        if raw and store.decode_result(raw).get("status") in states.READY_STATES:
            finished.add(job["id"])
    pending_write = []
    completed = []
    for job, key in zip(jobs, keys, strict=True):
        if job["id"] in finished:
            continue
        kwargs = {k: job[k] for k in ("kind", "ms", "enqueued_at", "web_worker")}
        started = _record(job["id"], kwargs)
        started.update(status=states.STARTED, result={"pid": os.getpid(), "hostname": hostname}, worker=hostname)
        pending_write.append((key, started))
        # the previous job's outcome and this one's STARTED, one round trip
        _store(store, pending_write, completed=completed)
        pending_write, completed = [], []
        done = _record(job["id"], kwargs)
        done.update(worker=hostname, date_done=datetime.now(UTC).isoformat())
        try:
            done.update(status=states.SUCCESS, result=execute(job["kind"], job["ms"]))
        except Exception as problem:  # noqa: BLE001 - recorded as the job's failure, like Celery would
            done.update(
                status=states.FAILURE,
                result={"exc_type": type(problem).__name__, "exc_message": str(problem), "exc_module": None},
            )
        pending_write.append((key, done))
        completed.append(completions_key(store, job["id"]))
    _store(store, pending_write, completed=completed)


def completions_key(store, job_id):
    """How many times a worker ran the job to completion: 1, or 0 until it is done. Counted apart from the
    record (INCR, atomic), so two runs could never both count as the first."""
    return store.get_key_for_task(job_id) + b"-completions"


def _store(store, pairs, publish=True, completed=()):
    """Write job records (key, meta), and count the completions in `completed`: on Redis in one pipelined
    round trip, publishing each record like Celery does so AsyncResult.get() sees it (queued records have no
    one waiting, so they skip that)."""
    if not pairs:
        return
    client = redis_client()
    if client is None:
        for key, meta in pairs:
            store.set(key, store.encode(meta))
        for key in completed:  # the embedded store: one machine, one worker process
            store.set(key, str(int(store.get(key) or 0) + 1))
        return
    with client.pipeline(transaction=False) as pipe:
        for key, meta in pairs:
            value = store.encode(meta)
            pipe.set(key, value, ex=store.expires or None)
            if publish:
                pipe.publish(key, value)
        for key in completed:
            pipe.incr(key)
            pipe.expire(key, store.expires or 24 * 3600)
        pipe.execute()


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
    """Records for `job_ids`: {id: job} for the known ones; unknown ids are simply absent."""
    store = backend()
    keys = [store.get_key_for_task(job_id) for job_id in job_ids]
    values = _mget(store, keys + [completions_key(store, job_id) for job_id in job_ids])
    found = {}
    for job_id, raw, completions in zip(job_ids, values[: len(keys)], values[len(keys) :], strict=True):
        if raw:
            found[job_id] = describe(job_id, store.decode_result(raw), int(completions or 0))
    return found


HEARTBEAT_KEY = b"double-boiler-beat-heartbeat"


def record_heartbeat(when):
    client = redis_client()
    (client or backend()).set(HEARTBEAT_KEY, str(when))


def last_heartbeat():
    client = redis_client()
    raw = (client or backend()).get(HEARTBEAT_KEY)
    if not raw:
        return None
    return float(raw.decode() if isinstance(raw, bytes) else raw)
