"""What the whole dyno weighs: PSS and RSS summed over its process tree, against its memory quota.

PSS (proportional set size) splits each shared page between the processes that map it, so the sum over a
tree is what the tree really costs; summed RSS counts shared pages (the Python binary, libraries, pages a
forked child still shares with its parent) once per process and overstates it. Heroku's quota (R14) is
closer to the PSS figure, so the demo and the benchmark judge the dyno by PSS and show RSS beside it.
"""

import os
import time

import psutil

# The launcher (`python -m app.dyno`) is the root of a packed dyno; without it (bare gunicorn, a VPS unit
# per process) the topmost gunicorn master is.
ROOT_MARKERS = ("app.dyno", "gunicorn")


def _cmdline(process):
    try:
        return " ".join(process.cmdline())
    except (psutil.Error, OSError):
        return ""


def dyno_root(pid=None):
    """The outermost ancestor of `pid` (default: this process) that belongs to the dyno."""
    process = psutil.Process(pid or os.getpid())
    chain = [process]
    try:
        while True:
            parent = chain[-1].parent()
            if parent is None or parent.pid <= 1:
                break
            chain.append(parent)
    except psutil.Error:
        pass
    for marker in ROOT_MARKERS:
        matching = [p for p in chain if marker in _cmdline(p)]
        if matching:
            return matching[-1]
    return process


def _label(cmdline):
    """A short name for a process of the dyno, from its command line."""
    words = cmdline.split()
    if cmdline.startswith("/bin/sh"):
        return "sh"
    for word in words:
        base = os.path.basename(word)
        if base in ("gunicorn", "celery", "honcho"):
            rest = [w for w in words[words.index(word) + 1 :] if not w.startswith("-")]
            if base == "celery":
                role = next((w for w in rest if w in ("worker", "beat", "flower")), "")
                return f"celery {role}".strip()
            return base
    if "app.dyno" in cmdline:
        return "launcher"
    return os.path.basename(words[0]) if words else "?"


def tree_memory(root=None):
    """{"pss_mb", "rss_mb", "processes": [...]} for `root` (default: this dyno's root) and its descendants."""
    root = root or dyno_root()
    try:
        members = [root] + root.children(recursive=True)
    except psutil.Error:
        members = [root]
    return {"root_pid": root.pid, **processes_memory(members)}


def processes_memory(members):
    """{"pss_mb", "rss_mb", "processes": [...]} summed over the given psutil processes (gone ones skipped)."""
    processes = []
    for process in members:
        try:
            info = process.memory_full_info()
            cmdline = _cmdline(process)
        except (psutil.Error, OSError):
            continue  # it exited while we looked
        processes.append(
            {
                "pid": process.pid,
                "name": _label(cmdline),
                "pss_mb": round(info.pss / 2**20, 1),
                "rss_mb": round(info.rss / 2**20, 1),
            }
        )
    return {
        "pss_mb": round(sum(p["pss_mb"] for p in processes), 1),
        "rss_mb": round(sum(p["rss_mb"] for p in processes), 1),
        "processes": processes,
    }


_cache = {"at": 0.0, "value": None}
CACHE_SECONDS = 0.5


def cached_tree_memory():
    """tree_memory(), at most twice a second per process: every open demo page polls it."""
    now = time.monotonic()
    if _cache["value"] is None or now - _cache["at"] > CACHE_SECONDS:
        _cache["value"] = tree_memory()
        _cache["at"] = now
    return _cache["value"]
