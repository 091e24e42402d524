"""The benchmark's load process for jobs (HTTP wrk cannot do: enqueue, then read every result back).

    python -m bench.load http          --url URL --jobs N --per-call K --inflight C --kind io --ms 0
    python -m bench.load celery-tasks  --jobs N --kind io --ms 0     (needs REDIS_URL, like the dyno)
    python -m bench.load celery-chunks --jobs N --kind io --ms 0

`http` does what the demo page does, from its own process: C greenlets keep POST /api/jobs calls in flight,
each enqueuing K jobs, while a poller reads the oldest unfinished jobs back with GET /api/jobs?ids=...
(batches of 200, a few in parallel) until every job is done or failed. Once it has caught up with the
worker it reads one batch ten times a second; behind it, every batch, round after round.

`celery-tasks` and `celery-chunks` are Celery's ceiling on the same worker and broker, with no HTTP: every
job published through Celery's public API as fast as it goes (one task each, or Celery's own chunks), then
every result awaited.

Both print progress to stderr and one JSON line to stdout: jobs/s, latency percentiles, lost/duplicated.
"""

import argparse
import json
import sys
import time


def percentiles(values, points=(50, 90, 95, 99)):
    ordered = sorted(values)
    if not ordered:
        return {f"p{p}": None for p in points}
    out = {}
    for p in points:
        rank = min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))
        out[f"p{p}"] = ordered[rank]
    out["max"] = ordered[-1]
    return out


class Progress:
    def __init__(self, label, total):
        self.label, self.total, self.last = label, total, 0.0

    def show(self, done, force=False):
        now = time.monotonic()
        if force or now - self.last > 1.0:
            self.last = now
            print(f"    {self.label}: {done:,}/{self.total:,} done", file=sys.stderr, flush=True)


def run_http(args):  # noqa: C901 - one loop per HTTP client
    from gevent import monkey

    monkey.patch_all()
    import http.client
    from urllib.parse import urlparse

    import gevent
    from gevent.pool import Pool
    from gevent.queue import Queue

    target = urlparse(args.url)
    connections = Queue()

    def request(method, path, body=None):
        conn = (
            connections.get()
            if connections.qsize()
            else http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        )
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except Exception:
            conn.close()
            raise
        connections.put(conn)
        return response.status, data

    n = args.jobs
    ids = [None] * n
    sent_at = [0.0] * n
    seen_done = {}
    records = {}
    http_errors = []
    status_reads = [0, 0]  # GET calls, ids asked for
    duplicates = 0
    next_slot = [0]
    enqueue_finished = [False]
    unanswered = [0]  # jobs of calls that got no answer (a timeout, a reset): accepted or not, nobody knows
    started = time.monotonic()

    def sender():
        while next_slot[0] < n:
            first = next_slot[0]
            count = min(args.per_call, n - first)
            next_slot[0] += count
            body = json.dumps({"kind": args.kind, "ms": args.ms, "count": count})
            t0 = time.monotonic()
            try:
                status, data = request("POST", "/api/jobs", body)
            except Exception as problem:  # noqa: BLE001 - counted and reported
                http_errors.append(f"POST: {problem!r}")
                unanswered[0] += count
                continue
            if status != 202:
                http_errors.append(f"POST {status}: {data[:200]!r}")
                continue
            for k, job in enumerate(json.loads(data)["jobs"]):
                ids[first + k] = job["id"]
                sent_at[first + k] = t0

    progress = Progress(f"{args.label} ({args.per_call}/call, {args.inflight} in flight)", n)

    def poller():  # noqa: C901
        cursor = 0
        caught_up = False
        while True:
            while cursor < n and ids[cursor] is not None and ids[cursor] in seen_done:
                cursor += 1
            if enqueue_finished[0] and cursor >= n:
                break
            # Caught up with the worker, one batch of the oldest unfinished jobs tells whether any finished
            # (reads of unfinished jobs are the dyno's CPU spent for nothing); behind it, every batch at once.
            window = args.poll_batch if caught_up else args.poll_batch * args.poll_parallel
            wanted = []
            for slot in range(cursor, n):
                job_id = ids[slot]
                if job_id is not None and job_id not in seen_done:
                    wanted.append(job_id)
                    if len(wanted) >= window:
                        break
            if not wanted and enqueue_finished[0]:
                break  # everything sent was seen done; ids of failed POSTs stay None

            def read(batch):
                status_reads[0] += 1
                status_reads[1] += len(batch)
                try:
                    status, data = request("GET", "/api/jobs?ids=" + ",".join(batch))
                except Exception as problem:  # noqa: BLE001
                    http_errors.append(f"GET: {problem!r}")
                    return
                if status != 200:
                    http_errors.append(f"GET {status}: {data[:200]!r}")
                    return
                now = time.monotonic()
                body = json.loads(data)
                for job in body["jobs"]:
                    if job["state"] in ("done", "failed") and job["id"] not in seen_done:
                        seen_done[job["id"]] = now
                        records[job["id"]] = job
                for job_id in body["unknown"]:
                    http_errors.append(f"unknown id {job_id}")
                    seen_done[job_id] = now

            batches = [wanted[i : i + args.poll_batch] for i in range(0, len(wanted), args.poll_batch)]
            gevent.joinall([gevent.spawn(read, b) for b in batches])
            progress.show(len(seen_done))
            # Wait before the next round only once caught up with the worker (some job asked about is not
            # done yet). A poller behind it, every job it asked about done, reads on at once: idling between
            # rounds capped what it could see at 1,000 jobs a round, below Celery's chunked ceiling.
            caught_up = not wanted or any(job_id not in seen_done for job_id in wanted)
            if caught_up:
                gevent.sleep(args.poll_interval)

    pool = Pool(args.inflight)
    senders = [pool.spawn(sender) for _ in range(args.inflight)]
    poll = gevent.spawn(poller)
    gevent.joinall(senders)
    enqueue_finished[0] = True
    enqueue_seconds = time.monotonic() - started
    poll.join()
    elapsed = time.monotonic() - started
    progress.show(len(seen_done), force=True)

    sent = [i for i in ids if i is not None]
    done = [r for r in records.values() if r["state"] == "done"]
    failed = [r for r in records.values() if r["state"] == "failed"]
    duplicates = len(sent) - len(set(sent))
    server_latency = [r["finished_at"] - r["enqueued_at"] for r in done if r.get("finished_at")]
    # The server's span (first job enqueued to last job finished, the dyno's clock; this process began a
    # little before it): what the rest of `seconds` is, is the poller noticing the last jobs.
    finished = [r["finished_at"] for r in done if r.get("finished_at")]
    server_span = max(finished) - min(r["enqueued_at"] for r in done) if finished else None
    client_latency = [seen_done[i] - sent_at[s] for s, i in enumerate(ids) if i in seen_done]
    return {
        "mode": "http",
        "jobs": n,
        "per_call": args.per_call,
        "inflight": args.inflight,
        "kind": args.kind,
        "ms": args.ms,
        "enqueued": len(sent),
        "done": len(done),
        "failed": len(failed),
        # Refused: calls the API answered with an error (a 503 names what failed), so those jobs were never
        # accepted and the caller knows; unanswered: calls that got no answer at all, whose jobs may have been
        # accepted (never seen, so counted apart from both); lost: accepted (an id came back) but never seen
        # done or failed.
        "refused": n - len(sent) - unanswered[0],
        "unanswered": unanswered[0],
        "lost": len(sent) - len(done) - len(failed),
        "duplicated_ids": duplicates,
        "http_errors": len(http_errors),
        "error_samples": http_errors[:5],
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "jobs_per_s": len(done) / elapsed if elapsed else 0.0,
        "server_span_s": server_span,
        "status_reads": status_reads[0],
        "ids_read_per_job": status_reads[1] / len(sent) if sent else 0.0,
        "latency_s": percentiles(server_latency),
        "client_latency_s": percentiles(client_latency),
        "web_workers": sorted({r.get("web_worker") for r in done}),
        "celery_workers": sorted({r.get("celery_worker") for r in done}),
    }


def run_celery(args):
    """Celery's own best on the same worker and broker, through its public API: every job published at once
    (a group: one producer, as fast as Celery goes) or in Celery's own chunks (`task.chunks`, the same
    chunk size the job API uses), then every result awaited."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()
    from celery import group

    from app.jobs.enqueue import CHUNK_JOBS
    from app.jobs.tasks import run_job

    n = args.jobs
    started = time.monotonic()
    enqueued_at = time.time()
    if args.mode == "celery-tasks":
        signatures = (
            run_job.s(kind=args.kind, ms=args.ms, enqueued_at=enqueued_at, web_worker="bench: Celery group")
            for _ in range(n)
        )
        result = group(signatures).apply_async()
    else:
        arguments = [(args.kind, args.ms, enqueued_at, "bench: Celery chunks")] * n
        result = run_job.chunks(arguments, CHUNK_JOBS).group().apply_async()
    enqueue_seconds = time.monotonic() - started
    print(f"    {args.label}: {n:,} jobs published in {enqueue_seconds:.1f} s", file=sys.stderr, flush=True)
    values = result.join_native(timeout=300, propagate=False)
    elapsed = time.monotonic() - started
    if args.mode == "celery-chunks":
        values = [v for chunk in values for v in (chunk if isinstance(chunk, list) else [chunk])]
    done = [v for v in values if isinstance(v, dict) and v.get("finished_at")]
    ids = [r.id for r in result.results]
    latency = [v["finished_at"] - enqueued_at for v in done]
    return {
        "mode": args.mode,
        "jobs": n,
        "per_call": CHUNK_JOBS if args.mode == "celery-chunks" else 1,
        "kind": args.kind,
        "ms": args.ms,
        "enqueued": n,
        "done": len(done),
        "failed": len(values) - len(done),
        "lost": n - len(values),
        "duplicated_ids": len(ids) - len(set(ids)),
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "jobs_per_s": len(done) / elapsed if elapsed else 0.0,
        "latency_s": percentiles(latency),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["http", "celery-tasks", "celery-chunks"])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--per-call", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=50)
    parser.add_argument("--kind", choices=["cpu", "io"], default="io")
    parser.add_argument("--ms", type=int, default=0)
    parser.add_argument("--poll-batch", type=int, default=200)
    parser.add_argument("--poll-parallel", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--label", default="jobs")
    args = parser.parse_args(argv)
    summary = run_http(args) if args.mode == "http" else run_celery(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
