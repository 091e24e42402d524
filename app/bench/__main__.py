"""The mini benchmark: what one packed dyno does, measured side by side in one run.

    python -m app.bench [--out bench-report] [--quick]      (`make bench`)

It starts a redis-server of its own, the packed dyno as Heroku would (Procfile `web`, Redis broker) and, for
the comparisons, bare gunicorn on the same WSGI app with the same worker count (gevent, then sync). Separate
load processes drive them over HTTP: wrk for plain HTTP (each scenario against the three servers back to
back), app.bench.load for jobs (HTTP end to end, then the naive Celery round trip on the same worker, then
the 10,000-job storm). The dyno's process tree is weighed twice a second throughout. Progress goes to the
terminal; bench-report/ gets report.md, report.json and bench.svg. About 4 minutes on 2 cores.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from app.bench import harness
from app.bench.report import write_report
from app.demo.memory import tree_memory

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""

STARTED = time.monotonic()


def say(message):
    print(f"[{time.monotonic() - STARTED:5.0f}s] {message}", flush=True)


class MemorySampler(threading.Thread):
    """PSS and RSS of the dyno's whole process tree, twice a second, with the phase it was taken in."""

    def __init__(self, root_pid, interval=0.5):
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.samples = []
        self.phase = "boot"
        self.running = True

    def run(self):
        while self.running:
            try:
                memory = tree_memory(self.root)
            except psutil.Error:
                break
            self.samples.append(
                {
                    "t": time.monotonic() - STARTED,
                    "phase": self.phase,
                    "pss_mb": memory["pss_mb"],
                    "rss_mb": memory["rss_mb"],
                    "processes": len(memory["processes"]),
                }
            )
            time.sleep(self.interval)

    def peak(self, phase=None):
        chosen = [s for s in self.samples if phase is None or s["phase"] == phase]
        if not chosen:
            return None
        return max(chosen, key=lambda s: s["pss_mb"])

    def stop(self):
        self.running = False
        self.join(5)


class Bench:
    def __init__(self, out, quick):
        self.out = out
        self.quick = quick
        self.duration = 3
        self.repeats = 1 if quick else 2
        self.results = {"http": [], "jobs": {}, "memory": {}, "settings": {}, "targets": {}}
        self.wrk_script = out / "wrk-report.lua"
        self.wrk_script.write_text(WRK_SCRIPT)

    def wrk(self, server, label, path, connections, duration=None, record=True):
        duration = duration or self.duration
        command = [
            "wrk",
            "--threads",
            "2",
            "--connections",
            str(connections),
            "--duration",
            f"{duration}s",
            "--timeout",
            "10s",
            "--script",
            str(self.wrk_script),
            server.base_url + path,
        ]
        output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
        line = next((x for x in output.splitlines() if x.startswith("WRK-JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{output}")
        raw = json.loads(line[len("WRK-JSON ") :])
        seconds = raw["duration_us"] / 1e6
        errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
        row = {
            "server": server.label,
            "scenario": label,
            "path": path,
            "connections": connections,
            "requests": raw["requests"],
            "req_per_s": raw["requests"] / seconds,
            "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "max_ms": raw["max_us"] / 1000,
            "errors": errors,
            "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]},
        }
        if record:
            say(
                f"  {server.label:<12} {label:<22} {connections:>3} conns {row['req_per_s']:7,.0f} req/s  "
                f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  errors {errors}"
            )
        return row

    def load(self, *args, env=None):
        command = [sys.executable, "-m", "app.bench.load", *args]
        completed = subprocess.run(
            command,
            cwd=harness.ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            text=True,
            timeout=240,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed with {completed.returncode}")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def run(self):
        for tool in ("wrk", "redis-server"):
            if not shutil.which(tool):
                raise SystemExit(
                    f"{tool} is not installed: `make bench` installs it (Debian: apt-get install wrk redis-server)"
                )
        self.load_at_start = [round(x, 2) for x in os.getloadavg()]
        harness.collectstatic()
        redis = harness.Redis().start()
        say(f"redis-server on port {redis.port}")
        try:
            self.measure(redis)
        finally:
            redis.stop()
        self.results["machine"] = {
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "load_average_at_start": self.load_at_start,
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "wall_seconds": round(time.monotonic() - STARTED, 1),
            "quick": self.quick,
        }
        write_report(self.results, self.out)
        say(f"report: {self.out / 'report.md'}, {self.out / 'report.json'}, {self.out / 'bench.svg'}")

    def measure(self, redis):
        say("packed dyno (Procfile web: gunicorn + Celery worker + beat), Redis broker")
        dyno = harness.dyno(redis_url=redis.url, log_path=self.out / "dyno.log")
        dyno.label = "packed dyno"
        dyno.start()
        sampler = MemorySampler(dyno.pid)
        sampler.start()
        try:
            facts = json.loads(http_get(dyno.base_url + "/api/dyno"))
            self.results["settings"] = {k: v for k, v in facts.items() if k not in ("memory", "web_worker")}
            # Idle: booted, every process warmed by a request or a job, then left alone for a moment.
            self.load("http", "--url", dyno.base_url, "--jobs", "20", "--per-call", "1", "--inflight", "4")
            http_get(dyno.base_url + "/")
            sampler.phase = "idle"
            time.sleep(4)
            idle = sampler.samples[-1]
            self.results["memory"]["idle"] = idle
            say(f"  idle dyno: {idle['pss_mb']:.0f} MB PSS, {idle['rss_mb']:.0f} MB RSS, {idle['processes']} processes")
            ids = json.loads(http_post(dyno.base_url + "/api/jobs", {"kind": "io", "ms": 0, "count": 20}))
            self.job_path = "/api/jobs?ids=" + ",".join(j["id"] for j in ids["jobs"])

            sampler.phase = "http"
            self.http(redis, dyno, facts["web_concurrency"])
            self.jobs(redis, dyno, sampler)
        finally:
            sampler.stop()
            code = dyno.stop()
            say(f"  packed dyno stopped with status {code}")
        self.results["memory"]["peak_storm"] = sampler.peak("storm")
        self.results["memory"]["peak_any"] = sampler.peak()
        self.results["memory"]["samples"] = [
            {k: s[k] for k in ("t", "phase", "pss_mb", "rss_mb")} for s in sampler.samples
        ]
        self.results["memory"]["quota_mb"] = self.results["settings"].get("memory_quota_mb", 512)

    def http(self, redis, dyno, workers):
        """Each scenario against the three servers back to back, so what is compared is measured seconds
        apart (this machine's other work comes and goes; minutes apart, ratios would drift)."""
        say(
            f"HTTP (wrk, 2 threads, {self.duration} s per run, best of {self.repeats}): packed dyno vs bare gunicorn, "
            f"{workers} workers each"
        )
        servers = [dyno]
        try:
            for worker_class, label in (("gevent", "bare gevent"), ("sync", "bare sync")):
                server = harness.bare_gunicorn(
                    worker_class, workers, redis_url=redis.url, log_path=self.out / f"bare-{worker_class}.log"
                )
                server.label = label
                server.start()
                servers.append(server)
            for server in servers:
                self.wrk(server, "warm-up", "/", 50, duration=1, record=False)
            for label, path, connections in self.scenarios():
                runs = {}
                for _ in range(self.repeats):
                    for server in servers:
                        if label.startswith("I/O") and server.label == "bare gevent":
                            continue  # gevent's side of this ratio is the packed dyno
                        runs.setdefault(server.label, []).append(self.wrk(server, label, path, connections))
                # Best of the repeats for each server: other work on the machine only ever slows a run down.
                for server_runs in runs.values():
                    best = max(server_runs, key=lambda row: row["req_per_s"])
                    best["repeats"] = [
                        {k: r[k] for k in ("req_per_s", "p50_ms", "p99_ms", "errors")} for r in server_runs
                    ]
                    self.results["http"].append(best)
        finally:
            for server in servers[1:]:
                server.stop()

    def jobs(self, redis, dyno, sampler):
        say("jobs end to end: HTTP enqueue -> Celery -> result read over HTTP, vs naive Celery, same worker")
        sampler.phase = "jobs"
        jobs = 1500 if self.quick else 4000
        self.results["jobs"]["http_batched"] = self.load(
            "http",
            "--url",
            dyno.base_url,
            "--jobs",
            str(jobs),
            "--per-call",
            "100",
            "--inflight",
            "4",
            "--label",
            "HTTP, batched",
        )
        self.results["jobs"]["celery_naive"] = self.load(
            "celery",
            "--jobs",
            str(jobs),
            "--label",
            "naive Celery",
            env={"REDIS_URL": redis.url},
        )
        for key in ("http_batched", "celery_naive"):
            r = self.results["jobs"][key]
            say(f"  {key:<14} {r['jobs_per_s']:7,.0f} jobs/s  done {r['done']}/{r['jobs']}  lost {r['lost']}")

        storm = 2000 if self.quick else 10_000
        say(f"the storm: {storm:,} jobs (io 0 ms), one per ajax call, 100 calls in flight (what the page does)")
        sampler.phase = "storm"
        self.results["jobs"]["storm"] = self.load(
            "http",
            "--url",
            dyno.base_url,
            "--jobs",
            str(storm),
            "--per-call",
            "1",
            "--inflight",
            "100",
            "--kind",
            "io",
            "--ms",
            "0",
            "--label",
            "storm",
        )
        r = self.results["jobs"]["storm"]
        peak = sampler.peak("storm")
        say(
            f"  storm {r['jobs_per_s']:7,.0f} jobs/s  done {r['done']}/{r['jobs']}  lost {r['lost']}  "
            f"peak {peak['pss_mb']:.0f} MB PSS"
        )

    def scenarios(self):
        rows = []
        for connections in (50, 200):
            rows.append(("plain page", "/", connections))
            rows.append(("job API (status read)", self.job_path, connections))
        rows.append(("I/O view (50 ms wait)", "/api/wait?ms=50", 200))
        return rows


def http_get(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def http_post(url, payload):
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(harness.ROOT / "bench-report"), help="report folder")
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the benchmark)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Bench(out, args.quick).run()


if __name__ == "__main__":
    main()
