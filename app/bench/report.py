"""The benchmark's report: ratios and targets, report.md (tables), report.json (every figure), bench.svg."""

import json
from pathlib import Path

# The targets of issue 3, as (key, description, threshold) - judged on this run's figures only.
E2E_RATIO_TARGET = 1.5
WEB_RATIO_TARGET = 0.9
WEB_P99_TARGET_MS = 250
IO_RATIO_TARGET = 50
IDLE_PSS_TARGET_MB = 200
STORM_PSS_TARGET_MB = 300


def _find(rows, server, scenario, connections):
    for row in rows:
        if row["server"] == server and row["scenario"] == scenario and row["connections"] == connections:
            return row
    return None


def _ratio(a, b):
    return a / b if a is not None and b else None


def compute(results):
    http = results["http"]
    jobs = results["jobs"]
    memory = results["memory"]
    ratios = []
    for scenario, connections in sorted({(r["scenario"], r["connections"]) for r in http}, key=lambda x: (x[0], x[1])):
        packed = _find(http, "packed dyno", scenario, connections)
        gevent = _find(http, "bare gevent", scenario, connections)
        sync = _find(http, "bare sync", scenario, connections)
        ratios.append(
            {
                "scenario": scenario,
                "connections": connections,
                "packed_vs_bare_gevent": _ratio(packed and packed["req_per_s"], gevent and gevent["req_per_s"]),
                "gevent_vs_sync": _ratio(
                    (gevent or packed) and (gevent or packed)["req_per_s"], sync and sync["req_per_s"]
                ),
                "packed_vs_sync": _ratio(packed and packed["req_per_s"], sync and sync["req_per_s"]),
            }
        )
    results["ratios"] = ratios

    batched, naive, storm = jobs.get("http_batched"), jobs.get("celery_naive"), jobs.get("storm")
    plain_packed = _find(http, "packed dyno", "plain page", 200)
    plain_bare = _find(http, "bare gevent", "plain page", 200)
    io_packed = _find(http, "packed dyno", "I/O view (50 ms wait)", 200)
    io_sync = _find(http, "bare sync", "I/O view (50 ms wait)", 200)
    e2e_ratio = _ratio(batched and batched["jobs_per_s"], naive and naive["jobs_per_s"])
    clean = all(r and r["lost"] == 0 and r["duplicated_ids"] == 0 and r["failed"] == 0 for r in (batched, naive, storm))
    web_ratio = _ratio(plain_packed and plain_packed["req_per_s"], plain_bare and plain_bare["req_per_s"])
    io_ratio = _ratio(io_packed and io_packed["req_per_s"], io_sync and io_sync["req_per_s"])
    idle = memory.get("idle") or {}
    peak = memory.get("peak_storm") or {}
    quota = memory.get("quota_mb", 512)

    def verdict(ok):
        return "met" if ok else "NOT met"

    targets = [
        {
            "target": f"jobs/s end to end through HTTP >= {E2E_RATIO_TARGET}x the naive Celery round trip, "
            "nothing lost or duplicated",
            "measured": f"{batched['jobs_per_s']:,.0f} vs {naive['jobs_per_s']:,.0f} jobs/s = {e2e_ratio:.2f}x; "
            f"lost {batched['lost'] + naive['lost'] + storm['lost']}, duplicated "
            f"{batched['duplicated_ids'] + naive['duplicated_ids'] + storm['duplicated_ids']}"
            if batched and naive and storm and e2e_ratio
            else "not measured",
            "status": verdict(e2e_ratio is not None and e2e_ratio >= E2E_RATIO_TARGET and clean),
        },
        {
            "target": f"packed web tier >= {WEB_RATIO_TARGET}x bare gunicorn+gevent (plain page, 200 connections)",
            "measured": f"{plain_packed['req_per_s']:,.0f} vs {plain_bare['req_per_s']:,.0f} req/s = {web_ratio:.2f}x"
            if web_ratio
            else "not measured",
            "status": verdict(web_ratio is not None and web_ratio >= WEB_RATIO_TARGET),
        },
        {
            "target": f"packed web tier p99 <= {WEB_P99_TARGET_MS} ms at 200 connections (plain page)",
            "measured": f"{plain_packed['p99_ms']:,.0f} ms" if plain_packed else "not measured",
            "status": verdict(plain_packed is not None and plain_packed["p99_ms"] <= WEB_P99_TARGET_MS),
        },
        {
            "target": f"I/O-bound view (50 ms), 200 connections: gevent >= {IO_RATIO_TARGET}x sync",
            "measured": f"{io_packed['req_per_s']:,.0f} vs {io_sync['req_per_s']:,.0f} req/s = {io_ratio:,.0f}x"
            if io_ratio
            else "not measured",
            "status": verdict(io_ratio is not None and io_ratio >= IO_RATIO_TARGET),
        },
        {
            "target": f"whole dyno idle <= {IDLE_PSS_TARGET_MB} MB PSS",
            "measured": f"{idle.get('pss_mb', 0):.0f} MB PSS ({idle.get('rss_mb', 0):.0f} MB summed RSS)",
            "status": verdict(idle and idle["pss_mb"] <= IDLE_PSS_TARGET_MB),
        },
        {
            "target": f"whole dyno <= {STORM_PSS_TARGET_MB} MB PSS at the peak of the 10,000-job storm "
            f"(and inside the {quota} MB quota)",
            "measured": f"{peak.get('pss_mb', 0):.0f} MB PSS ({peak.get('rss_mb', 0):.0f} MB summed RSS)",
            "status": verdict(peak and peak["pss_mb"] <= STORM_PSS_TARGET_MB),
        },
    ]
    results["targets"] = targets
    return results


def _ms(seconds):
    return f"{seconds * 1000:,.0f}" if seconds is not None else "–"


def markdown(results):
    s = results["settings"]
    m = results["machine"]
    lines = [
        "# Double Boiler mini benchmark",
        "",
        f"{m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}; whole run {m['wall_seconds']:.0f} s"
        + (" (--quick)" if m.get("quick") else "")
        + f". Load average at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end')} "
        "(other work on the machine shares its 2 cores: compare figures within this run, not across runs).",
        f"Packed dyno: {s.get('web_concurrency')} gunicorn gevent workers, Celery {s.get('celery_pool')} x "
        f"{s.get('celery_concurrency')}, beat, {s.get('broker')} broker, sized for "
        f"{s.get('memory_quota_mb')} MB. Bare servers: the same WSGI app and worker count, gunicorn defaults, "
        "no Celery in the process tree. Load: wrk (2 threads, separate process) for HTTP, each scenario "
        "against the three servers back to back, best of the repeats (all in report.json); "
        "`python -m app.bench.load` (separate process) for jobs.",
        "",
        "## Targets",
        "",
        "| Target | Measured | |",
        "|---|---|---|",
    ]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | **{t['status']}** |")
    lines += [
        "",
        "## HTTP",
        "",
        "| Scenario | Conns | Packed dyno req/s | p50 / p99 ms | err | Bare gevent req/s | p50 / p99 ms | err "
        "| Bare sync req/s | p50 / p99 ms | err | packed ÷ bare gevent | gevent ÷ sync |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    http = results["http"]
    for ratio in results["ratios"]:
        cells = [ratio["scenario"], str(ratio["connections"])]
        for server in ("packed dyno", "bare gevent", "bare sync"):
            row = _find(http, server, ratio["scenario"], ratio["connections"])
            if row:
                cells += [
                    f"{row['req_per_s']:,.0f}",
                    f"{row['p50_ms']:,.0f} / {row['p99_ms']:,.0f}",
                    str(row["errors"]),
                ]
            else:
                cells += ["–", "–", "–"]
        cells.append(f"{ratio['packed_vs_bare_gevent']:.2f}x" if ratio["packed_vs_bare_gevent"] else "–")
        gevent_vs_sync = ratio["gevent_vs_sync"]
        cells.append(f"{gevent_vs_sync:,.1f}x" if gevent_vs_sync else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "gevent ÷ sync uses the bare gevent server where it ran the scenario, else the packed dyno (the I/O view).",
        "",
        "## Jobs end to end",
        "",
        "| Run | Jobs | Per call / in flight | Jobs/s | Enqueue→done p50 / p95 / p99 ms | Done | Failed | Lost "
        "| Duplicated |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "http_batched": "HTTP enqueue → Celery → HTTP read (io 0 ms)",
        "celery_naive": "naive Celery: .delay() + .get(), no HTTP (io 0 ms)",
        "storm": "the storm: one job per ajax call (io 0 ms)",
    }
    for key in ("http_batched", "celery_naive", "storm"):
        r = results["jobs"].get(key)
        if not r:
            continue
        lat = r.get("latency_s")
        latency = f"{_ms(lat['p50'])} / {_ms(lat['p95'])} / {_ms(lat['p99'])}" if lat else "–"
        shape = f"{r['per_call']} / {r['inflight']}" if "per_call" in r else "1 / sequential"
        lines.append(
            f"| {names[key]} | {r['jobs']:,} | {shape} | {r['jobs_per_s']:,.0f} | {latency} | {r['done']:,} "
            f"| {r['failed']} | {r['lost']} | {r['duplicated_ids']} |"
        )
    mem = results["memory"]
    lines += [
        "",
        "## Memory (whole dyno process tree)",
        "",
        "| When | PSS MB | summed RSS MB | quota MB |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (("idle", "idle"), ("peak, 10,000-job storm", "peak_storm"), ("peak, whole run", "peak_any")):
        sample = mem.get(key)
        if sample:
            lines.append(f"| {label} | {sample['pss_mb']:.0f} | {sample['rss_mb']:.0f} | {mem['quota_mb']} |")
    lines += ["", "![throughput, latency and memory](bench.svg)", ""]
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = results["http"]
    servers = [("packed dyno", "#e0a526"), ("bare gevent", "#3fb96d"), ("bare sync", "#7f8c99")]
    scenarios = [(r["scenario"], r["connections"]) for r in results["ratios"]]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    width = 0.27
    for ax, metric, title in (
        (axes[0][0], "req_per_s", "HTTP throughput (req/s, higher is better)"),
        (axes[0][1], "p99_ms", "HTTP p99 latency (ms, log scale, lower is better)"),
    ):
        for k, (server, colour) in enumerate(servers):
            values = []
            for scenario, connections in scenarios:
                row = _find(http, server, scenario, connections)
                values.append(row[metric] if row else 0)
            xs = [i + (k - 1) * width for i in range(len(scenarios))]
            ax.bar(xs, values, width, label=server, color=colour)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([f"{s}\n{c} conns" for s, c in scenarios], fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if metric == "p99_ms":
            ax.set_yscale("log")
            ax.axhline(WEB_P99_TARGET_MS, color="#e5484d", linestyle="--", linewidth=1, label="p99 target")
        ax.legend(fontsize=8)

    ax = axes[1][0]
    jobs = results["jobs"]
    labels, values, colours = [], [], []
    for key, label, colour in (
        ("http_batched", "HTTP, batched\n(100 per call)", "#e0a526"),
        ("storm", "HTTP storm\n(1 per call)", "#f2c14e"),
        ("celery_naive", "naive Celery\n.delay() + .get()", "#7f8c99"),
    ):
        if key in jobs:
            labels.append(label)
            values.append(jobs[key]["jobs_per_s"])
            colours.append(colour)
    bars = ax.bar(labels, values, color=colours)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    ax.set_title("Jobs end to end (jobs/s)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    ax = axes[1][1]
    samples = results["memory"].get("samples", [])
    if samples:
        t0 = samples[0]["t"]
        ts = [s["t"] - t0 for s in samples]
        ax.plot(ts, [s["pss_mb"] for s in samples], label="PSS (sum over the tree)", color="#e0a526")
        ax.plot(ts, [s["rss_mb"] for s in samples], label="RSS (sum)", color="#7f8c99", linestyle=":")
        quota = results["memory"].get("quota_mb", 512)
        ax.axhline(quota, color="#e5484d", linewidth=1, label=f"quota {quota} MB")
        ax.axhline(STORM_PSS_TARGET_MB, color="#e5484d", linewidth=1, linestyle="--", label="storm target")
        ax.axhline(IDLE_PSS_TARGET_MB, color="#3fb96d", linewidth=1, linestyle="--", label="idle target")
        phase_start = {}
        for t, s in zip(ts, samples, strict=True):
            phase_start.setdefault(s["phase"], t)
        for k, (phase, t) in enumerate(phase_start.items()):
            ax.axvline(t, color="#999", linewidth=0.5)
            ax.annotate(phase, (t, quota * (1.02 - 0.05 * (k % 3))), fontsize=7, color="#555")
        ax.set_ylim(0, quota * 1.12)
        ax.set_xlabel("seconds")
        ax.set_ylabel("MB")
    ax.set_title("Packed dyno memory during the run", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.suptitle("Double Boiler: one packed dyno", fontsize=12)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results, out):
    out = Path(out)
    compute(results)
    (out / "report.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(markdown(results))
    plot(results, out / "bench.svg")
