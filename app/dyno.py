"""The dyno launcher: runs LocalProcfile's processes inside one dyno, the way Heroku runs a dyno.

    python -m app.dyno web       (Procfile `web`)
    python -m app.dyno worker    (Procfile `worker`, split layout only)

In the packed layout the `web` dyno runs every process of LocalProcfile (gunicorn, the Celery worker, beat);
in the split layout `web` runs LocalProcfile's `web` alone and `worker` runs the rest.

honcho runs the processes (its Manager and Procfile parser); this module adds what Heroku parity needs:
- a 28 s stop window instead of honcho's hard-coded 5 s KILL_WAIT, so gunicorn and Celery finish their
  in-flight work inside Heroku's 30 s between SIGTERM and SIGKILL;
- when any process dies, the whole dyno stops and exits non-zero, so Heroku (or systemd) restarts it;
- a process that dies is noticed at once: honcho learns of an exit only when the process's output pipe
  closes, which the orphaned workers of a killed gunicorn master held open for seconds; a watcher thread
  polls a pidfd per process and reports the exit itself;
- on the VPS, the listening socket systemd holds for the web dyno (socket activation: the port stays open
  across restarts, so connections wait instead of being refused) is handed to LocalProcfile's `web`;
- nothing survives the dyno: the process groups of processes that already died (a killed gunicorn master
  leaves its workers behind) are signalled too, and the launcher waits for every group to empty.
"""

import argparse
import datetime
import os
import select
import signal
import subprocess
import sys
import threading
import time

from honcho.printer import Message, Printer

from app.honcho_adapter import ManagerAdapter, hand_down_fds
from app.procfile import LOCAL_PROCFILE, read_procfile

# Heroku SIGKILLs 30 s after SIGTERM; leave two seconds to kill stragglers and exit on our own terms.
STOP_WINDOW_SECONDS = 28.0


def select_processes(processes, process_type, layout):
    """The LocalProcfile entries one dyno of `process_type` runs, in file order."""
    names = list(processes)
    if "web" not in names:
        raise SystemExit(f"{LOCAL_PROCFILE.name} must have a `web` process (it binds $PORT)")
    if process_type == "web":
        chosen = names if layout == "packed" else ["web"]
    elif process_type == "worker":
        if layout != "split":
            raise SystemExit(
                "the worker process type runs only with DYNO_LAYOUT=split; "
                "in the packed layout the web dyno already runs the worker and beat"
            )
        chosen = [name for name in names if name != "web"]
    else:
        raise SystemExit(f"unknown process type {process_type!r}: use web or worker")
    return {name: processes[name] for name in chosen}


def configured_layout():
    """DYNO_LAYOUT, from the settings loaded in a short-lived interpreter.

    Loading them fails fast on bad config (a missing DJANGO_SECRET_KEY in production) before any process
    starts. It happens in a child so that the launcher, and the output readers honcho forks from it, stay
    free of Django and Celery: about 17 MB less for the dyno.
    """
    check = subprocess.run(
        [sys.executable, "-c", "from app import settings; print(settings.DYNO_LAYOUT)"],
        cwd=LOCAL_PROCFILE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit("the settings do not load (the error is above): no process started")
    return check.stdout.strip().splitlines()[-1]


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_status_of_zombie(pid):
    """The exit status of a process that has exited but is not reaped yet (its wait status from
    /proc/<pid>/stat, field 52), as a subprocess returncode (-N for signal N); None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] not in ("Z", "X") or len(fields) < 50:
        return None
    wait_status = int(fields[49])
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


class ExitWatcher(threading.Thread):
    """Reports each process's exit to honcho's event queue as soon as it happens (a pidfd turns readable),
    the way honcho's own reader does once the output pipe closes; the first report wins the dyno's stop."""

    POLL_SECONDS = 0.2

    def __init__(self, manager):
        super().__init__(name="exit-watcher", daemon=True)
        self.manager = manager
        self.watched = {}  # pidfd -> (name, pid)
        self.seen = set()

    def run(self):
        while True:
            for name, process in list(self.manager.processes().items()):
                pid = process.get("pid")
                if pid is None or name in self.seen:
                    continue
                self.seen.add(name)
                try:
                    self.watched[os.pidfd_open(pid)] = (name, pid)
                except ProcessLookupError:
                    continue  # gone and reaped already: honcho's reader reports it
            ready = select.select(list(self.watched), [], [], self.POLL_SECONDS)[0] if self.watched else []
            if not self.watched:
                time.sleep(self.POLL_SECONDS)
            for fd in ready:
                name, pid = self.watched.pop(fd)
                os.close(fd)
                returncode = exit_status_of_zombie(pid)
                if returncode is not None:
                    self.manager.report_exit(name, returncode)


class DynoManager(ManagerAdapter):
    """honcho's Manager with Heroku's stop window and no process left behind."""

    def __init__(self, stop_window=STOP_WINDOW_SECONDS, **kwargs):
        super().__init__(**kwargs)
        self.stop_window = stop_window
        self.stop_began = None
        self.asked_to_stop = False
        self.forced = False

    def report_exit(self, name, returncode):
        """From the exit watcher: `name` exited with `returncode`; honcho's loop takes it as its own."""
        now = datetime.datetime.now()
        self.events.put(Message(type="stop", data={"returncode": returncode}, time=now, name=name, colour=None))

    def terminate(self):
        if self.stop_began is None:
            self.stop_began = time.monotonic()
            # Nothing had exited yet, so the stop came from outside (SIGTERM from Heroku or systemd).
            self.asked_to_stop = not self.any_stopped()
        super().terminate()

    def kill(self):
        # honcho's loop calls this every 0.1 s once its own 5 s wait is over; hold off until ours ends.
        if time.monotonic() - self.stop_began < self.stop_window:
            return
        self.forced = True
        super().kill()

    def after_signalling(self, force):
        # honcho signals only processes it still sees running. One that already died may have left its
        # children behind (a gunicorn master killed with -9 leaves its workers): with no parent to finish
        # their work in order, they are killed at once.
        for process in self.processes().values():
            if "returncode" in process and "pid" in process:
                self.kill_group(process["pid"])

    def wait_for_groups(self):
        """After honcho's loop: wait (within the window) until every process group is empty."""
        groups = [p["pid"] for p in self.processes().values() if "pid" in p]
        if self.stop_began is None:
            self.stop_began = time.monotonic()
        while any(_group_alive(g) for g in groups):
            if time.monotonic() - self.stop_began >= self.stop_window:
                self.forced = True
                for group in groups:
                    self.kill_group(group)
                time.sleep(0.1)
                break
            time.sleep(0.05)

    def exit_code(self):
        """0 for a clean stop on request; otherwise non-zero, so the platform restarts the dyno."""
        if self.asked_to_stop:
            return 1 if self.forced else 0
        first = self.returncode
        if first is None or first == 0:
            return 1  # a dyno process must never exit on its own
        if first < 0:
            return 128 - first  # killed by a signal: the shell's convention
        return first


def systemd_sockets():
    """The listening sockets systemd passed to this dyno (sd_listen_fds: fds 3.., for this pid), or none."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return ()
    return tuple(range(3, 3 + int(os.environ.get("LISTEN_FDS", "0"))))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m app.dyno", description=__doc__.split("\n\n")[0])
    parser.add_argument("process_type", choices=["web", "worker"], help="the Procfile process type to run")
    args = parser.parse_args(argv)

    chosen = select_processes(read_procfile(LOCAL_PROCFILE), args.process_type, configured_layout())

    sockets = systemd_sockets()
    manager = DynoManager(printer=Printer(sys.stdout))
    for name, command in chosen.items():
        # honcho runs each command through `sh -c`; exec makes the process honcho watches the program itself,
        # so a kill -9 of it is seen as that process dying (a dead wrapper shell would leave it orphaned).
        process = manager.add_process(name, f"exec {command}")
        if name == "web" and sockets:
            hand_down_fds(process, sockets, owner_env="LISTEN_PID")
    ExitWatcher(manager).start()
    manager.loop()
    manager.wait_for_groups()
    # Stopped. Heroku sends SIGTERM "sometimes more than once": one arriving while the interpreter exits
    # (which puts back the default action, death by the signal) turned a clean stop's status 0 into -15.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    code = manager.exit_code()
    manager.system_print(f"dyno exits with status {code}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
