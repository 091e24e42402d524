"""The dyno behaviour suite (tests/dyno_suite.py), run against the VPS where systemd is the platform."""

import concurrent.futures
import time

import pytest
from conftest import USER, record

from tests import dyno_suite


class SystemdDyno:
    """A dyno target for tests/dyno_suite.py: the app's units on the Molecule hosts.

    start/stop go through systemctl (SIGTERM to every process of each unit, SIGKILL after 30 s); kill(name)
    is `kill -9` of one inner process; systemd restarts the unit, so the target is supervised."""

    supervised = True
    behind_router = True  # base_url is nginx: idle client connections are nginx's, not the dyno's

    def __init__(self, site, hosts, base_url):
        self.site = site
        self.hosts = hosts
        self.base_url = base_url

    def _each_unit(self, action):
        pairs = self.site.unit_hosts()
        with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
            return list(pool.map(lambda pair: action(self.hosts[pair[0]], pair[1]), pairs))

    def start(self):
        began = time.monotonic()
        self._each_unit(lambda host, unit: host.check_output("systemctl start %s", unit))
        dyno_suite.wait_until_serving(self.base_url, timeout=90)
        return time.monotonic() - began

    def stop(self):
        began = time.monotonic()
        self._each_unit(lambda host, unit: host.check_output("systemctl stop %s", unit))
        took = time.monotonic() - began
        statuses = self._each_unit(lambda host, unit: host.service(unit).systemd_properties.get("ExecMainStatus"))
        return took, max((int(s) for s in statuses if s), default=None)

    def _process(self, name):
        """(host, pid) of the gunicorn master ("web") or the Celery worker's parent ("worker")."""
        pattern = {"web": "bin/gunicorn --config", "worker": "bin/celery --app app worker"}[name]
        for hostname in self.site.app_hosts:
            pid = self.hosts[hostname].run("pgrep -o -u %s -f %s", USER, pattern).stdout.strip()
            if pid:
                return self.hosts[hostname], pid
        raise AssertionError(f"no {name} process on {self.site.app_hosts}")

    def restarts(self):
        """systemd's restart counters of every dyno unit."""
        return self._each_unit(lambda host, unit: int(host.service(unit).systemd_properties["NRestarts"]))

    def kill(self, name):
        host, pid = self._process(name)
        self.restarts_before_kill = self.restarts()
        self.killed_at = time.monotonic()
        host.check_output(f"kill -9 {pid}")

    def survivors(self):
        alive = []
        for hostname in self.site.app_hosts:
            alive += self.hosts[hostname].run("pgrep -u %s || true", USER).stdout.split()
        return alive

    def exit_status(self, timeout):  # supervised: systemd restarts it, the suite does not ask
        return None


@pytest.fixture
def dyno(site, hosts, router_url):
    target = SystemdDyno(site, hosts, router_url)
    dyno_suite.wait_until_serving(router_url, timeout=60)
    yield target
    target.start()  # whatever a check did, leave the dynos serving


# The suite's cheap checks (dyno_suite.CHEAP_ON_A_VPS: one dyno restart each); the boot-moment, 300-job and
# Redis-fault checks run locally only (tests/test_dyno_local.py), being minutes each on a VPS.
def test_stop_within_10_s_with_idle_connections_completes_or_redelivers_inflight_work(dyno):
    result = dyno_suite.check_stop_with_clients(dyno, idle=100)
    record("stop seconds (SIGTERM to gone, 100 idle connections)", round(result["stop_seconds"], 1))


@pytest.mark.parametrize("process", ["web", "worker"])
def test_kill_9_of_an_inner_process_and_systemd_brings_the_app_back(dyno, process):
    dyno_suite.check_crash_of_inner_process(dyno, process, idle=100, under_load=True)
    # The dyno must have crashed as a whole (exit != 0) and been restarted by systemd, not merely kept
    # serving with a process missing: wait for the restart counter, then for the app to serve again.
    deadline = time.monotonic() + 30
    while dyno.restarts() == dyno.restarts_before_kill:
        assert time.monotonic() < deadline, f"systemd did not restart the dyno after kill -9 of {process}"
        time.sleep(0.2)
    dyno_suite.wait_until_serving(dyno.base_url, timeout=60)
    seconds = time.monotonic() - dyno.killed_at
    record(f"restart after kill -9 of {process}: serving again after (s)", round(seconds, 1))
    # And it works again end to end: a job round trip after the crash.
    dyno_suite.check_job_round_trip(dyno, count=3)
