"""The web tier, side by side: the packed dyno against bare gunicorn+gevent (and any gunicorn config), several
rounds of wrk against each in turn, medians; with the CPU time each stack's processes spent per request.

    python -m bench.probe [--rounds 5] [--duration 3] [--connections 50,200] [--conf LABEL=PATH ...]

On a shared machine a single run's req/s moves by tens of percent between runs seconds apart; the servers
take turns (a new order each round) so each is measured under the same background, and the CPU seconds per
1,000 requests, read from /proc for each process of the stack, move far less than req/s do. `--conf` adds
stock gunicorn (gevent) started with that config file (and only that: no launcher, no Celery): the A/B of a
change to app/gunicorn.conf.py is a copy of it beside the original, e.g.
`--conf web=app/gunicorn.conf.py --conf trial=/tmp/trial.conf.py`.
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench import peers
from bench.__main__ import Bench, build_and_release, in_turns
from tests.local_dyno import REPO, LocalCommand, RedisServer


def stack_cpu(server):
    """{process name: CPU seconds so far} over the stack's live processes (user + system)."""
    found = {}
    for pid in server.survivors():
        try:
            process = psutil.Process(pid)
            times = process.cpu_times()
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        name = "gunicorn" if "gunicorn" in command else "celery" if "celery" in command else process.name()
        if name == "gunicorn" and process.children():
            name = "gunicorn master"
        elif name == "gunicorn":
            name = f"gunicorn {pid}"
        found[name] = found.get(name, 0.0) + times.user + times.system
    return found


def connections_per_worker(server, port, client_ports=None):
    """{gunicorn worker pid: established client connections on the port} (how the workers shared wrk's);
    only the connections from `client_ports` when given (a client's own, whatever else is connected)."""
    found = {}
    for pid in server.survivors():
        try:
            process = psutil.Process(pid)
            if "gunicorn" not in " ".join(process.cmdline()) or process.children():
                continue
            found[pid] = sum(
                1
                for c in process.net_connections("tcp")
                if c.status == psutil.CONN_ESTABLISHED
                and c.laddr.port == port
                and (client_ports is None or (c.raddr and c.raddr.port in client_ports))
            )
        except psutil.Error:
            continue
    return found


def machine_busy():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def gunicorn_with(config, redis_url, log_path, label):
    command = f"gunicorn --config {config} app.wsgi"
    server = LocalCommand(command, REPO, peers.config_vars(redis_url), log_path)
    server.label = label
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds of each wrk run")
    parser.add_argument("--connections", default="50,200")
    parser.add_argument("--path", default="/", help="the page to load (default: the plain page)")
    parser.add_argument("--conf", action="append", default=[], metavar="LABEL=PATH", help="gunicorn -c PATH")
    parser.add_argument("--no-dyno", action="store_true", help="leave the packed dyno out")
    parser.add_argument("--out", help="where to write every run as JSON (default: the run's temporary folder)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="double-boiler-probe-"))
    bench = Bench(folder, smoke=False)
    bench.duration = args.duration
    workers = bench.dyno_facts()["web_concurrency"]
    build_and_release()
    redis = RedisServer(folder / "redis").start()
    servers = [] if args.no_dyno else [peers.packed_dyno(redis.url, folder / "packed.log")]
    servers.append(peers.bare_gunicorn("gevent", redis.url, workers, folder / "bare.log"))
    for item in args.conf:
        label, _, path = item.partition("=")
        servers.append(gunicorn_with(Path(path).resolve(), redis.url, folder / f"{label}.log", label))
    runs = []
    try:
        bench.start(*servers)
        for server in servers:
            bench.wrk(server, "warm-up", args.path, 50, duration=1, record=False)
        for round_number in range(args.rounds):
            for connections in (int(c) for c in args.connections.split(",")):
                for server in in_turns(servers, round_number):
                    row = measured_run(bench, server, args.path, connections)
                    row["round"] = round_number
                    runs.append(row)
    finally:
        for server in servers:
            server.close()
        redis.stop()
    found = summary(runs, servers)
    print(json.dumps(found, indent=1))
    out = Path(args.out) if args.out else folder / "probe.json"
    out.write_text(json.dumps({**found, "runs": runs}, indent=1))
    print(f"every run: {out}")


def measured_run(bench, server, path, connections):
    """One wrk run, with the CPU time each process of the stack (and wrk) spent per request, how the gunicorn
    workers shared the connections one second in, and how busy the whole machine was meanwhile."""
    before, machine_before = stack_cpu(server), machine_busy()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is a child of this process
    shares = {}
    timer = threading.Timer(1, lambda: shares.update(connections_per_worker(server, server.port)))
    timer.start()
    row = bench.wrk(server, "probe", path, connections)
    timer.join()
    after, machine_after = stack_cpu(server), machine_busy()
    wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = wrk.ru_utime + wrk.ru_stime - children.ru_utime - children.ru_stime
    requests = max(row["requests"], 1)
    row["cpu_ms_per_1000"] = {name: round((after[name] - before.get(name, 0.0)) * 1e6 / requests, 1) for name in after}
    row["cpu_ms_per_1000"]["wrk"] = round(wrk_seconds * 1e6 / requests, 1)
    row["connections_per_worker"] = sorted(shares.values())
    busy, total = (machine_after[i] - machine_before[i] for i in (0, 1))
    row["machine_busy"] = round(busy / total, 3) if total else None  # every process's, other users' too
    print(
        f"    CPU ms per 1,000 requests {row['cpu_ms_per_1000']}; connections per worker "
        f"{row['connections_per_worker']}; machine busy {row['machine_busy']}",
        flush=True,
    )
    return row


def summary(runs, servers):
    """Medians per server and connection count, and each server's req/s against bare gevent's."""
    table = {}
    for connections in sorted({r["connections"] for r in runs}):
        medians = {}
        for server in servers:
            mine = [r for r in runs if r["server"] == server.label and r["connections"] == connections]
            cpu = [sum(v for k, v in r["cpu_ms_per_1000"].items() if k != "wrk") for r in mine]
            medians[server.label] = {
                "req_per_s": round(statistics.median(r["req_per_s"] for r in mine)),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in mine), 1),
                "cpu_ms_per_1000": round(statistics.median(cpu), 1),
                "wrk_cpu_ms_per_1000": round(statistics.median(r["cpu_ms_per_1000"]["wrk"] for r in mine), 1),
                "machine_busy": round(statistics.median(r["machine_busy"] for r in mine), 3),
                "runs": [round(r["req_per_s"]) for r in mine],
            }
        # Each round's ratio to bare gevent's run of the same round (measured seconds apart), then the median.
        bare = {
            r["round"]: r["req_per_s"] for r in runs if r["server"] == "bare gevent" and r["connections"] == connections
        }
        for label, row in medians.items():
            ratios = [
                r["req_per_s"] / bare[r["round"]]
                for r in runs
                if r["server"] == label and r["connections"] == connections and r["round"] in bare
            ]
            row["vs_bare"] = round(statistics.median(ratios), 3)
        table[connections] = medians
    return {"started": time.strftime("%H:%M:%S"), "medians": table}


if __name__ == "__main__":
    sys.exit(main())
