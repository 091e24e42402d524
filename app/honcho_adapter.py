"""The one place that uses honcho's Manager beyond its public API (honcho 2.0.0, pinned in requirements.txt).

honcho's public API is add_process(), loop(), terminate(), kill(), `events` and `returncode`; the launcher
(app/dyno.py) also needs the processes' pids and exit codes, a kill of a whole process group, a line in the
dyno's log under the `system` name, and a hook after honcho signals the processes it still sees running.
Those live in honcho's private names, read here only; tests/test_adapters.py runs a real Manager through
each of them, so a honcho release that renames one fails there, not in a stopping dyno.
"""

from honcho.manager import Manager


class ManagerAdapter(Manager):
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
