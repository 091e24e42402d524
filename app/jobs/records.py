"""Job records: where a job's state lives, for the web side, the worker and the API alike.

A job's record is a Celery result meta (the shape Celery's backend stores with result_extended on), kept in
Celery's own result backend - Redis on Heroku and the VPS, files locally - under Celery's key for the job's
id, so `AsyncResult(job_id).get()` works too. Beside it a counter of completions (INCR, atomic) says how many
times a worker ran the job to completion.

Reads and writes go through one small blocking Redis pool per process (below), pipelined: with gevent,
`celery_app.backend` is per greenlet (Celery keeps it thread-local), which opened a Redis connection pool
per request (celery/celery#7960), and Celery's backend writes one round trip per call.
"""

from functools import lru_cache

import kombu.exceptions
import redis
import redis.exceptions
from celery import states
from django.conf import settings

from app.celery import app as celery_app

# What a failing broker or result store raises on the web side: Redis refused, reset or stalled past its
# socket timeout, the pool's wait for a free connection, kombu's publish errors; the embedded store's
# folder errors. The API answers these with a JSON 503 naming BROKER_NAME.
BROKER_ERRORS = (
    redis.exceptions.RedisError,
    kombu.exceptions.OperationalError,
    kombu.exceptions.BatchPublishError,  # the publish batch failed part-way (Redis refused mid-pipeline)
    OSError,
)
BROKER_NAME = "redis" if settings.REDIS_URL else "embedded broker"

RUN_JOBS_TASK = "app.jobs.tasks.run_jobs"

# redis-py's default pool allows 100 connections and then raises MaxConnectionsError: a gevent worker with
# 200 status reads in flight got 500s from it (python -m bench). Our own reads and writes share a small
# blocking pool per process instead: a greenlet (or pool thread) waits its turn for a connection, MGETs take
# well under a millisecond, and the dyno stays inside the Redis plan's connection limit (20 on Heroku's mini).
REDIS_POOL_SIZE = 8
# A stalled Redis must not hold a request: a greenlet waits at most this long for a pooled connection and
# then for each reply (settings.REDIS_SOCKET_TIMEOUT), so a request answers - 503 - within about 4 s.
REDIS_POOL_WAIT = 2


@lru_cache(maxsize=1)
def backend():
    return celery_app.backend


@lru_cache(maxsize=1)
def redis_client():
    """A Redis client on a bounded blocking pool, or None with a backend that is not Redis (the embedded one)."""
    store = backend()
    if not hasattr(store, "connparams"):
        return None
    params = {k: v for k, v in store.connparams.items() if k != "max_connections"}
    params.update(socket_timeout=settings.REDIS_SOCKET_TIMEOUT, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT)
    pool = redis.BlockingConnectionPool(max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT, **params)
    return redis.Redis(connection_pool=pool)


def key(job_id):
    return backend().get_key_for_task(job_id)


def completions_key(job_id):
    """How many times a worker ran the job to completion: 1, or 0 until it is done. Counted apart from the
    record (INCR, atomic), so two runs could never both count as the first."""
    return key(job_id) + b"-completions"


def meta(job_id, kwargs, status=states.PENDING, **fields):
    """A record in the shape Celery's backend stores (result_extended on)."""
    return {
        "status": status,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": job_id,
        "name": RUN_JOBS_TASK,
        "args": [],
        "kwargs": kwargs,
        "worker": None,
        "retries": 0,
        "queue": None,
        **fields,
    }


def mget(keys):
    client = redis_client()
    return client.mget(keys) if client is not None else list(backend().mget(keys))


def read(job_ids):
    """{job_id: (record, completions)} for the ids that have a record."""
    store = backend()
    keys = [key(job_id) for job_id in job_ids]
    values = mget(keys + [completions_key(job_id) for job_id in job_ids])
    found = {}
    for job_id, raw, completions in zip(job_ids, values[: len(keys)], values[len(keys) :], strict=True):
        if raw:
            found[job_id] = (store.decode_result(raw), int(completions or 0))
    return found


def finished(job_ids):
    """The ids among `job_ids` whose record says done or failed."""
    store = backend()
    return {
        job_id
        for job_id, raw in zip(job_ids, mget([key(job_id) for job_id in job_ids]), strict=True)
        if raw and store.decode_result(raw).get("status") in states.READY_STATES
    }


def write(records, publish=True, completed=()):
    """Write records ({job_id: meta}) and count one completion for each id in `completed`: on Redis in one
    pipelined round trip, publishing each record like Celery does so AsyncResult.get() sees it (queued
    records have no one waiting, so they skip that)."""
    if not records and not completed:
        return
    store = backend()
    client = redis_client()
    if client is None:
        for job_id, record in records.items():
            store.set(key(job_id), store.encode(record))
        for job_id in completed:  # the embedded store: one machine, one worker process
            store.set(completions_key(job_id), str(int(store.get(completions_key(job_id)) or 0) + 1))
        return
    expires = store.expires or 24 * 3600
    with client.pipeline(transaction=False) as pipe:
        for job_id, record in records.items():
            value, name = store.encode(record), key(job_id)
            pipe.set(name, value, ex=expires)
            if publish:
                pipe.publish(name, value)
        for job_id in completed:
            name = completions_key(job_id)
            pipe.incr(name)
            pipe.expire(name, expires)
        pipe.execute()


def get_value(name):
    client = redis_client()
    return (client or backend()).get(name)


def set_value(name, value):
    client = redis_client()
    (client or backend()).set(name, value)
