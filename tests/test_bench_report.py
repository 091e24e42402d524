"""The benchmark's report: ratios, targets and the files it writes, from a made-up run (no servers)."""

import json

from bench import report
from bench.__main__ import tax_row


def _http(server, scenario, connections, rps, p99):
    return {
        "server": server,
        "scenario": scenario,
        "connections": connections,
        "requests": int(rps * 3),
        "req_per_s": rps,
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "errors": 0,
    }


def _jobs(rate, lost=0, **extra):
    return {
        "jobs": 5000,
        "jobs_per_s": rate,
        "done": 5000 - lost,
        "failed": 0,
        "lost": lost,
        "duplicated_ids": 0,
        "latency_s": {"p50": 0.1, "p90": 0.2, "p95": 0.3, "p99": 0.4, "max": 0.5},
        **extra,
    }


def _tax(server, connections, idle_p99, busy_p99, idle_rps, busy_rps):
    return {
        "server": server,
        "connections": connections,
        "idle": _http(server, "plain page, worker idle", connections, idle_rps, idle_p99),
        "busy": _http(server, "plain page, worker busy", connections, busy_rps, busy_p99),
        "req_ratio": busy_rps / idle_rps,
        "p99_ratio": busy_p99 / idle_p99,
        "cpu_jobs_done_while_busy": 10,
    }


def _memory(pss):
    return {
        "pss_mb": pss,
        "rss_mb": pss * 1.4,
        "processes": [{"pid": 1, "name": "launcher", "pss_mb": pss, "rss_mb": 1}],
    }


def _results(lost=0, seed_stop=3.0, busy_p99=300):
    http = []
    for connections in (50, 200):
        http += [
            _http("packed dyno", "plain page", connections, 2500, 200),
            _http("seed-style", "plain page", connections, 2000, 400),
            _http("bare gevent", "plain page", connections, 2600, 180),
            _http("bare sync", "plain page", connections, 900, 900),
        ]
    http += [
        _http("packed dyno", "I/O view (50 ms wait)", 200, 2000, 150),
        _http("bare sync", "I/O view (50 ms wait)", 200, 30, 6000),
    ]
    return {
        "http": http,
        "tax": [_tax("packed dyno", c, 200, busy_p99, 2500, 2200) for c in (50, 200)],
        "jobs": {
            "storm": _jobs(300, per_call=1, inflight=100),
            "celery_tasks": _jobs(320),
            "http_together": _jobs(900, lost=lost, per_call=100, inflight=4),
            "celery_chunks": _jobs(800),
            "seed_storm": _jobs(200),
            "embedded_storm": _jobs(250),
        },
        "memory": {
            "idle": {"packed dyno": _memory(190), "seed-style": _memory(230)},
            "peak_storm": {"t": 9, "server": "packed dyno", "phase": "storm", "pss_mb": 280, "rss_mb": 400},
            "peak_any": {"packed dyno": {"pss_mb": 280, "rss_mb": 400}},
            "samples": [
                {"t": 1, "server": "packed dyno", "phase": "idle", "pss_mb": 190, "rss_mb": 300},
                {"t": 9, "server": "packed dyno", "phase": "storm", "pss_mb": 280, "rss_mb": 400},
            ],
        },
        "lifecycle": {
            "packed dyno": {"boot_seconds": 2.5, "stop_seconds": 2.0, "exit_status": 0},
            "seed-style": {"boot_seconds": 3.0, "stop_seconds": seed_stop, "exit_status": 143},
        },
        "scale": {
            "done_mb_per_1000": 1.2,
            "redis_maxmemory_mb": 25,
            "queued_mb_per_1000": 1.1,
            "queued_jobs_that_fit": 21000,
            "refused": {"status": 503, "body": '{"error": "the job store (Redis) is full"}'},
            "accepted_but_unknown": 0,
            "serving_after": 200,
        },
        "settings": {"web_concurrency": 2, "celery_pool": "threads", "celery_concurrency": 2, "broker": "redis"},
        "machine": {
            "cpus": 2,
            "memory_gb": 24,
            "python": "3.11",
            "platform": "linux",
            "wall_seconds": 200,
            "load_average_at_start": [0.1, 0.1, 0.1],
            "load_average_at_end": [1, 1, 1],
        },
    }


def _status(results, starts_with):
    return next(t["status"] for t in results["targets"] if t["target"].startswith(starts_with))


def test_bench_targets_are_judged_on_ratios_measured_in_the_same_run():
    results = report.compute(_results())
    assert [t["status"] for t in results["targets"]] == ["met"] * len(results["targets"])
    plain = next(r for r in results["ratios"] if r["scenario"] == "plain page" and r["connections"] == 200)
    assert round(plain["packed_vs_bare_gevent"], 3) == round(2500 / 2600, 3)
    assert round(plain["seed_vs_bare_gevent"], 3) == round(2000 / 2600, 3)
    io = next(r for r in results["ratios"] if r["scenario"].startswith("I/O"))
    assert round(io["packed_vs_sync"]) == round(2000 / 30)


def test_bench_a_lost_job_fails_its_target_whatever_the_speed():
    results = report.compute(_results(lost=1))
    assert _status(results, "jobs enqueued together") == "NOT met"


def test_bench_refused_calls_fail_the_target_and_are_told_apart_from_lost_jobs():
    results = _results()
    results["jobs"]["http_together"]["refused"] = 3
    results = report.compute(results)
    row = next(t for t in results["targets"] if t["target"].startswith("jobs enqueued together"))
    assert row["status"] == "NOT met"
    assert "lost 0" in row["measured"] and "3 refused" in row["measured"]
    assert "| 3 | 0 | 0 |" in report.markdown(results)


def test_bench_says_where_the_seed_style_stack_beats_the_packed_dyno():
    results = report.compute(_results(seed_stop=1.0))
    row = next(t for t in results["targets"] if t["target"].startswith("the packed dyno beats"))
    assert row["status"] == "NOT met" and row["measured"] == "beaten on: stop time"


def test_bench_says_what_a_missed_target_is_known_to_cost_and_only_when_missed():
    results = report.compute(_results())
    assert "Targets missed in this run" not in report.markdown(results)
    results = _results()
    results["jobs"]["http_together"]["jobs_per_s"] = 600  # Celery's chunks did 800
    results = report.compute(results)
    text = report.markdown(results)
    assert _status(results, "jobs enqueued together") == "NOT met"
    missed = text.split("Targets missed in this run", 1)[1].split("\n## ", 1)[0]
    assert missed.count("\n- ") == 1 and "- jobs enqueued together" in missed and "nice 10" in missed


def test_bench_a_web_tier_slowed_by_the_busy_worker_fails_the_packing_tax():
    results = report.compute(_results(busy_p99=500))
    assert _status(results, "packing tax, 50 connections") == "NOT met"


def test_bench_writes_markdown_json_and_svg_plot(tmp_path):
    report.write_report(_results(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| plain page | 200 |" in text and "## Targets" in text and "## The packing tax" in text
    assert json.loads((tmp_path / "report.json").read_text())["targets"]
    assert (tmp_path / "bench.svg").read_text().lstrip().startswith("<?xml")


def _rounds(row, *rates_and_p99s):
    row["repeats"] = [{"req_per_s": rps, "p50_ms": p99 / 4, "p99_ms": p99, "errors": 0} for rps, p99 in rates_and_p99s]
    return row


def test_bench_judges_the_web_ratio_on_the_median_of_the_rounds_not_on_each_servers_best_run():
    results = _results()
    # Bare gevent's best run was a lucky one; round by round the packed dyno kept up.
    packed = find_row(results, "packed dyno", 200)
    bare = find_row(results, "bare gevent", 200)
    _rounds(packed, (2500, 200), (1800, 220), (2100, 210))
    _rounds(bare, (2400, 900), (1850, 1200), (3600, 800))
    results = report.compute(results)
    row = next(t for t in results["targets"] if t["target"].startswith("packed web tier") and "200" in t["target"])
    assert row["status"] == "met", row
    assert row["measured"].startswith("0.97x over 3 rounds (1.04, 0.97, 0.58)")
    # Round by round it trailed: not met, whatever its best run was.
    results = _results()
    _rounds(find_row(results, "packed dyno", 200), (2500, 200), (1500, 220), (1600, 210))
    _rounds(find_row(results, "bare gevent", 200), (2400, 900), (1850, 1200), (1800, 800))
    assert _status(report.compute(results), "packed web tier >= 0.95x bare gunicorn+gevent, plain page, 200") == (
        "NOT met"
    )


def test_bench_judges_p99_on_the_median_of_the_rounds():
    results = _results()
    _rounds(find_row(results, "packed dyno", 200), (2500, 200), (2400, 300), (2450, 260))
    assert _status(report.compute(results), "packed p99") == "NOT met"


def find_row(results, server, connections):
    return report.find(results["http"], server, "plain page", connections)


def test_bench_judges_jobs_together_on_the_median_of_rounds_and_counts_every_rounds_losses():
    """Jobs enqueued together and Celery's chunked ceiling run in rounds taking turns (bench.combined keeps
    the median run and adds up every round's losses): the target takes the median of the rounds' ratios, so
    one round on a slow stretch of the machine does not decide it, and a job lost in any round fails it."""
    from bench.__main__ import combined

    results = _results()
    ours = [_jobs(5000), _jobs(3000), _jobs(5200)]
    ceiling = [_jobs(4900), _jobs(5100), _jobs(5000)]
    results["jobs"]["http_together"], results["jobs"]["celery_chunks"] = combined(ours), combined(ceiling)
    row = next(t for t in report.compute(results)["targets"] if t["target"].startswith("jobs enqueued together"))
    assert row["status"] == "met"
    assert row["measured"].startswith("1.02x, the median of 3 rounds' ratios (1.02, 0.59, 1.04;")

    ours[1]["lost"] = 1  # a round that is not the median run
    results["jobs"]["http_together"] = combined(ours)
    row = next(t for t in report.compute(results)["targets"] if t["target"].startswith("jobs enqueued together"))
    assert row["status"] == "NOT met" and "lost 1" in row["measured"]


def test_bench_judges_the_packing_tax_on_the_median_of_its_rounds():
    """One round's busy/idle ratio moves by 0.2 from the next on a shared machine: a round below the target
    does not fail a tax whose median round meets it, and the report shows every round's ratio."""
    rounds = [
        _tax("packed dyno", 200, 200, 260, 2500, busy) | {"cpu_rounds_while_busy": 1} for busy in (2250, 1750, 2125)
    ]
    row = tax_row(rounds)
    assert (row["req_ratio"], row["busy"]["req_per_s"], row["rounds"]) == (0.85, 2125, rounds)
    assert row["p99_ratio"] == 1.3 and row["idle"]["req_per_s"] == 2500  # the median round's, all of it
    results = _results()
    results["tax"] = [row]
    report.compute(results)
    target = next(t for t in results["targets"] if t["target"].startswith("packing tax, 200"))
    assert target["status"] == "met", target
    assert "3 rounds' req/s and p99 ratios: 0.90 and 1.30, 0.70 and 1.30, 0.85 and 1.30" in target["measured"]
    results["tax"] = [tax_row([rounds[1]])]
    report.compute(results)
    assert _status(results, "packing tax, 200") == "NOT met"
