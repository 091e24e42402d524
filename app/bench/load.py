"""The benchmark's load process for jobs (HTTP wrk cannot do: enqueue, then read every result back).

    python -m app.bench.load http   --url URL --jobs N --per-call K --inflight C --kind io --ms 0
    python -m app.bench.load celery --jobs N --kind io --ms 0          (needs REDIS_URL, like the dyno)

`http` does what the demo page does, from its own process: C greenlets keep POST /api/jobs calls in flight,
each enqueuing K jobs, while a poller reads the oldest unfinished jobs back with GET /api/jobs?ids=...
(batches of 200, a few in parallel) until every job is done or failed.

`celery` is the naive round trip every Celery tutorial shows, with no HTTP: `.delay()` each job, then
`.get()` each result, against the same worker.

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


def run_http(args):  # noqa: C901 - one loop per HTTP client; split when the bench moves
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
    duplicates = 0
    next_slot = [0]
    enqueue_finished = [False]
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
        while True:
            while cursor < n and ids[cursor] is not None and ids[cursor] in seen_done:
                cursor += 1
            if enqueue_finished[0] and cursor >= n:
                break
            wanted = []
            for slot in range(cursor, n):
                job_id = ids[slot]
                if job_id is not None and job_id not in seen_done:
                    wanted.append(job_id)
                    if len(wanted) >= args.poll_batch * args.poll_parallel:
                        break
            if not wanted and enqueue_finished[0]:
                break  # everything sent was seen done; ids of failed POSTs stay None

            def read(batch):
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
        "lost": n - len(done) - len(failed),
        "duplicated_ids": duplicates,
        "http_errors": len(http_errors),
        "error_samples": http_errors[:5],
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "jobs_per_s": len(done) / elapsed if elapsed else 0.0,
        "latency_s": percentiles(server_latency),
        "client_latency_s": percentiles(client_latency),
        "web_workers": sorted({r.get("web_worker") for r in done}),
        "celery_workers": sorted({r.get("celery_worker") for r in done}),
    }


def run_celery(args):
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    from app.jobs.tasks import run_job

    n = args.jobs
    started = time.monotonic()
    results = [
        run_job.delay(kind=args.kind, ms=args.ms, enqueued_at=time.time(), web_worker="bench .delay()")
        for _ in range(n)
    ]
    enqueue_seconds = time.monotonic() - started
    progress = Progress(f"{args.label} (.delay() then .get())", n)
    values, failed, latency = [], 0, []
    for i, result in enumerate(results):
        try:
            value = result.get(timeout=120)
            values.append(value)
            latency.append(value["finished_at"] - value.get("started_at", value["finished_at"]))
        except Exception:  # noqa: BLE001 - a failed job is counted, not fatal
            failed += 1
        progress.show(i + 1)
    elapsed = time.monotonic() - started
    progress.show(n, force=True)
    ids = [r.id for r in results]
    return {
        "mode": "celery",
        "jobs": n,
        "kind": args.kind,
        "ms": args.ms,
        "done": len(values),
        "failed": failed,
        "lost": n - len(values) - failed,
        "duplicated_ids": len(ids) - len(set(ids)),
        "seconds": elapsed,
        "enqueue_seconds": enqueue_seconds,
        "jobs_per_s": len(values) / elapsed if elapsed else 0.0,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m app.bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["http", "celery"])
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
