"""The one place that uses honcho's Manager beyond its public API (honcho 2.0.0, pinned in requirements.txt).

honcho's public API is add_process(), loop(), terminate(), kill(), `events` and `returncode`; the launcher
(app/dyno.py) also needs the processes' pids and exit codes, a kill of a whole process group, a line in the
dyno's log under the `system` name, a hook after honcho signals the processes it still sees running, and
each process started in a process group of its own but in the launcher's session (below).
Those live in honcho's private names, read here only; tests/test_adapters.py runs a real Manager through
each of them, so a honcho release that renames one fails there, not in a stopping dyno.
"""

import subprocess

from honcho.manager import Manager


class ManagerAdapter(Manager):
    def add_process(self, name, cmd, **kwargs):
        """honcho's add_process, the process started in a process group of its own (so the launcher can still
        signal or kill all of it) but in the launcher's session, not a new one (honcho's Popen calls setsid).

        Linux groups the CPU time of a session (sched_autogroup, on by default on Debian and on systemd's
        services) and shares the CPU fairly between sessions before `nice` ranks the processes inside one. A
        session per process made LocalProcfile's `nice -n 10` worker an equal of gunicorn: a CPU-bound storm
        took half of a 2-core dyno's page throughput (python -m bench, the packing tax).

        stdin is /dev/null: in the terminal's session but not its foreground group, a process reading the
        terminal (a breakpoint() under `make run`) would be stopped by SIGTTIN and hang the dyno unseen."""
        process = super().add_process(name, cmd, **kwargs)
        child_ctor = process._child_ctor
        process._child_ctor = lambda cmd, **options: child_ctor(
            cmd, start_new_session=False, process_group=0, stdin=subprocess.DEVNULL, **options
        )
        return process

    def processes(self):
        """{name: {"pid": ..., "returncode": ...}} as honcho tracks them (keys appear as events arrive)."""
        return self._processes

    def any_stopped(self):
        return self._any_stopped()

    def kill_group(self, pid):
        """SIGKILL the process group led by `pid` (honcho starts each process in a group of its own)."""
        self._procmgr.kill(pid)

    def system_print(self, text):
        """A line in the dyno's log under honcho's `system` name."""
        self._system_print(text)

    def after_signalling(self, force):
        """Called each time honcho has sent SIGTERM (force=False) or SIGKILL to the processes it sees
        running; for subclasses."""

    def _killall(self, force=False):
        super()._killall(force=force)
        self.after_signalling(force)


def hand_down_fds(process, fds, owner_env):
    """Let honcho's process inherit `fds` (honcho's Popen closes every other fd), through its private
    `_child_ctor`. The command first exports `owner_env`=$$, so the server it execs knows the fds are its own
    (systemd's LISTEN_PID protocol: socket activation on the VPS)."""
    child_ctor = process._child_ctor
    process._child_ctor = lambda cmd, **options: child_ctor(cmd, pass_fds=fds, **options)
    process.cmd = f"export {owner_env}=$$; {process.cmd}"
