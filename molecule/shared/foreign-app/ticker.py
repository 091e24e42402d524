"""The app's worker process type: says it is alive every few seconds, until systemd stops it."""

import os
import signal
import sys
import time

running = True


def stop(signum, frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
while running:
    print(
        f"ticker alive on {os.environ.get('DYNO', '?')} (Python {sys.version_info[0]}.{sys.version_info[1]})",
        flush=True,
    )
    time.sleep(2)
