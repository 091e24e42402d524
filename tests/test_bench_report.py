"""The benchmark's report: ratios, targets and the files it writes, from a made-up run (no servers)."""

import json

from app.bench import report


def _http(server, scenario, connections, rps, p99):
    return {
        "server": server,
        "scenario": scenario,
        "path": "/",
        "connections": connections,
        "requests": int(rps * 6),
        "req_per_s": rps,
        "p50_ms": p99 / 4,
        "p90_ms": p99 / 2,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "errors": 0,
        "error_detail": {},
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


def _results(lost=0):
    return {
        "http": [
            _http("packed dyno", "plain page", 200, 2500, 200),
            _http("bare gevent", "plain page", 200, 2600, 180),
            _http("bare sync", "plain page", 200, 900, 900),
            _http("packed dyno", "I/O view (50 ms wait)", 200, 2000, 150),
            _http("bare sync", "I/O view (50 ms wait)", 200, 30, 6000),
        ],
        "jobs": {
            "http_batched": _jobs(600, lost=lost, per_call=100, inflight=4),
            "celery_naive": _jobs(300),
            "storm": _jobs(400, per_call=1, inflight=100),
        },
        "memory": {
            "idle": {"t": 1, "phase": "idle", "pss_mb": 190, "rss_mb": 300},
            "peak_storm": {"t": 9, "phase": "storm", "pss_mb": 280, "rss_mb": 400},
            "peak_any": {"t": 9, "phase": "storm", "pss_mb": 280, "rss_mb": 400},
            "samples": [
                {"t": 1, "phase": "idle", "pss_mb": 190, "rss_mb": 300},
                {"t": 9, "phase": "storm", "pss_mb": 280, "rss_mb": 400},
            ],
            "quota_mb": 512,
        },
        "settings": {
            "web_concurrency": 2,
            "celery_pool": "threads",
            "celery_concurrency": 8,
            "broker": "redis",
            "memory_quota_mb": 512,
        },
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


def test_bench_targets_are_judged_on_ratios_measured_in_the_same_run():
    results = report.compute(_results())
    assert [t["status"] for t in results["targets"]] == ["met"] * 6
    plain = next(r for r in results["ratios"] if r["scenario"] == "plain page")
    assert round(plain["packed_vs_bare_gevent"], 3) == round(2500 / 2600, 3)
    io = next(r for r in results["ratios"] if r["scenario"].startswith("I/O"))
    assert round(io["gevent_vs_sync"]) == round(2000 / 30)


def test_bench_a_lost_job_fails_the_end_to_end_target_whatever_the_speed():
    results = report.compute(_results(lost=1))
    assert results["targets"][0]["status"] == "NOT met"


def test_bench_writes_markdown_json_and_svg_plot(tmp_path):
    report.write_report(_results(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| plain page | 200 |" in text and "## Targets" in text
    assert json.loads((tmp_path / "report.json").read_text())["targets"]
    assert (tmp_path / "bench.svg").read_text().lstrip().startswith("<?xml")
