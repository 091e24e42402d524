"""Job records: where a job's state lives, for the web side, the worker and the API alike.

A job's record is a Celery result meta (the shape Celery's backend stores with result_extended on), kept in
Celery's own result backend - Redis on Heroku and the VPS, files locally - under Celery's key for the job's
id, so `AsyncResult(job_id).get()` works too. Beside it a counter of completions (INCR, atomic) says how many
times a worker ran the job to completion; each record carries the count as it was when the record was written
(`completions`), so one read of the records answers the API.

Reads and writes go through one small blocking Redis pool per process (below): with gevent,
`celery_app.backend` is per greenlet (Celery keeps it thread-local), which opened a Redis connection pool
per request (celery/celery#7960), and Celery's backend writes one round trip per call. A batch of records is
one Redis command: MGET to read, one Lua script (WRITE_SCRIPT) to write. Records are JSON, as Celery's json
result serializer writes them, encoded and decoded with orjson. kombu's codec (an object hook per nested
dict) and redis-py packing and parsing four commands per record were most of the CPU a job cost the web side
and the worker (python -m bench, "jobs enqueued together"); after them, the standard library's C codec was
(8.6 us to encode a finished job's record, 7 us to decode one; orjson takes 0.8 and 2.5).
"""

from functools import lru_cache

import kombu.exceptions
import orjson
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


@lru_cache(maxsize=1)
def _key_prefix():
    """Celery's key prefix for task results (with any global prefix), derived from its own public method once:
    building each key through it was a tenth of a status read's CPU."""
    sample = "0"
    return backend().get_key_for_task(sample)[: -len(sample)]


def key(job_id):
    return _key_prefix() + job_id.encode()


def completions_key(job_id):
    """How many times a worker ran the job to completion: 1, or 0 until it is done. Counted apart from the
    record (INCR, atomic), so two runs could never both count as the first."""
    return key(job_id) + b"-completions"


def job_kwargs(job):
    """A job's arguments as its record keeps them, from the job as it travels (its id beside them)."""
    return {name: job[name] for name in ("kind", "ms", "enqueued_at", "web_worker")}


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


@lru_cache(maxsize=1)
def _check_serializer():
    serializer = backend().serializer
    if serializer != "json":
        raise ValueError(
            f"job records are JSON: CELERY_RESULT_SERIALIZER must be json (app/settings.py), not {serializer!r}"
        )


def _encode(record):
    """The record as JSON bytes, compact (orjson: the standard library's encoder took 8.6 us for a finished
    job's record, a tenth of the worker's CPU per job; py-spy --gil of the worker)."""
    _check_serializer()
    if "completions" in record:  # the count is Redis's to write (WRITE_SCRIPT)
        record = {k: v for k, v in record.items() if k != "completions"}
    return orjson.dumps(record)


def mget(keys):
    client = redis_client()
    return client.mget(keys) if client is not None else list(backend().mget(keys))


def read(job_ids):
    """{job_id: (record, completions)} for the ids that have a record."""
    found, uncounted = {}, []
    for job_id, record in _decoded(job_ids):
        completions = record.pop("completions", None)
        found[job_id] = (record, completions)
        if completions is None:  # a record written before records carried their count
            uncounted.append(job_id)
    if uncounted:
        for job_id, count in zip(uncounted, mget([completions_key(i) for i in uncounted]), strict=True):
            found[job_id] = (found[job_id][0], int(count or 0))
    return found


def finished(job_ids):
    """The ids among `job_ids` whose record says done or failed."""
    return {job_id for job_id, record in _decoded(job_ids) if record.get("status") in states.READY_STATES}


def _decoded(job_ids):
    """(job_id, record) for the ids that have a record, in order: one MGET, and one JSON decode for all."""
    present = [(job_id, raw) for job_id, raw in zip(job_ids, mget([key(i) for i in job_ids]), strict=True) if raw]
    if not present:
        return []
    joined = b",".join(raw if isinstance(raw, bytes) else raw.encode() for _, raw in present)
    decoded = orjson.loads(b"[" + joined + b"]")
    return [(job_id, record) for (job_id, _), record in zip(present, decoded, strict=True)]


# One call writes a batch of records, atomically per record: the completion count (INCR, or the counter as it
# stands) goes into the record as it is stored, so the record read back says how many times the job completed,
# whichever of two runs wrote last. Each record is published on its key as Celery's backend does, so
# AsyncResult.get() sees it; in the script the value crosses the network once.
#   KEYS: the record keys, then the counter key of each record that has one (see COUNT_*), in order
#   ARGV: seconds to keep records and counters; "1" to publish; then a COUNT_* flag and a JSON record per key
WRITE_SCRIPT = """
local expires, publish, n = ARGV[1], ARGV[2] == '1', (#ARGV - 2) / 2
local counter = n
for i = 1, n do
    local flag, value, count = ARGV[1 + 2 * i], ARGV[2 + 2 * i], 0
    if flag ~= '0' then
        counter = counter + 1
        if flag == '+' then
            count = redis.call('INCR', KEYS[counter])
            redis.call('EXPIRE', KEYS[counter], expires)
        else
            count = redis.call('GET', KEYS[counter]) or 0
        end
    end
    value = string.sub(value, 1, -2) .. ',"completions":' .. count .. '}'
    redis.call('SET', KEYS[i], value, 'EX', expires)
    if publish then
        redis.call('PUBLISH', KEYS[i], value)
    end
end
"""
COUNT_NONE = "0"  # a queued record, written before its job is published: nothing has run it
COUNT_ONE_MORE = "+"  # this write completes the job
COUNT_AS_IT_STANDS = "="  # running (or any other state a worker writes)


@lru_cache(maxsize=1)
def _write_script():
    return redis_client().register_script(WRITE_SCRIPT)


def _count_flag(job_id, record, completed):
    if job_id in completed:
        return COUNT_ONE_MORE
    return COUNT_NONE if record.get("status") == states.PENDING else COUNT_AS_IT_STANDS


def write(records, publish=True, completed=()):
    """Write records ({job_id: meta}) and count one completion for each id in `completed` (a subset of the
    records' ids): on Redis one Lua call, publishing each record like Celery does so AsyncResult.get() sees it
    (queued records have no one waiting, so they skip that)."""
    completed = set(completed)
    if not completed <= set(records):
        raise ValueError(f"completed jobs without a record: {sorted(completed - set(records))}")
    _store(
        [(job_id, _count_flag(job_id, record, completed), _encode(record)) for job_id, record in records.items()],
        publish,
    )


# The id in a queued record's template: a NUL, JSON-encoded as "\u0000", which job arguments do not hold.
_ID_MARK = "\0"
_ID_MARK_JSON = orjson.dumps(_ID_MARK)


def write_queued(jobs):
    """Record jobs (as they travel: id and arguments) as queued, not published (nobody waits on a queued job).
    A call's jobs share their arguments, so their records differ only in the id: one JSON encoding per call,
    not per job (encoding each record was a third of a 100-job enqueue's records write: py-spy of the web
    workers under `python -m bench`'s jobs enqueued together)."""
    templates = {}
    entries = []
    for job in jobs:
        kwargs = job_kwargs(job)
        shared = tuple(kwargs.values())
        parts = templates.get(shared)
        if parts is None:
            parts = templates[shared] = _encode(meta(_ID_MARK, kwargs)).split(_ID_MARK_JSON)
        # Two parts, unless the arguments hold the mark too (a NUL in web_worker): then encoded one by one.
        value = orjson.dumps(job["id"]).join(parts) if len(parts) == 2 else _encode(meta(job["id"], kwargs))
        entries.append((job["id"], COUNT_NONE, value))
    _store(entries, publish=False)


def _store(entries, publish):
    """Store (job_id, COUNT_* flag, JSON record) entries: on Redis one Lua call (WRITE_SCRIPT)."""
    if not entries:
        return
    store = backend()
    client = redis_client()
    if client is None:  # the embedded store: one machine, one worker process
        for job_id, flag, value in entries:
            count = 0
            if flag != COUNT_NONE:
                count = int(store.get(completions_key(job_id)) or 0)
            if flag == COUNT_ONE_MORE:
                count += 1
                store.set(completions_key(job_id), str(count))
            store.set(key(job_id), value[:-1] + b',"completions":%d}' % count)
        return
    keys = [key(job_id) for job_id, _, _ in entries]
    keys += [completions_key(job_id) for job_id, flag, _ in entries if flag != COUNT_NONE]
    args = [store.expires or 24 * 3600, "1" if publish else "0"]
    for _, flag, value in entries:
        args += (flag, value)
    _write_script()(keys=keys, args=args, client=client)


def get_value(name):
    client = redis_client()
    return (client or backend()).get(name)


def set_value(name, value):
    client = redis_client()
    (client or backend()).set(name, value)
