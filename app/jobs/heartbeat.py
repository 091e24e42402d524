"""Beat's heartbeat: a periodic task writes the time; the health check and the demo read it."""

from app.jobs import records

HEARTBEAT_KEY = b"double-boiler-beat-heartbeat"


def record(when):
    records.set_value(HEARTBEAT_KEY, str(when))


def last():
    raw = records.get_value(HEARTBEAT_KEY)
    if not raw:
        return None
    return float(raw.decode() if isinstance(raw, bytes) else raw)
