"""Fixtures for the VPS verifiers: the Molecule hosts as testinfra hosts (podman exec), the site's layout,
the router's URL, and the journal of every host printed under a failing test.

Shared by the `default` (packed, one host) and `split` (web host + worker host) scenarios; tests ask the
inventory what runs where instead of hard-coding host names.
"""

import datetime
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import jinja2
import pytest
import requests
import testinfra
import yaml

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(REPO))  # tests.dyno_suite: the dyno behaviour suite shared with the local run

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
FIGURES = REPO / "artifacts" / f"vps-figures-{SCENARIO}.json"


def record(name, value):
    """Keep a measured figure for the report (artifacts/vps-figures-<scenario>.json)."""
    FIGURES.parent.mkdir(exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))


def pytest_configure(config):
    config.addinivalue_line("markers", "replaces_the_app: deploys another app over the one under test; runs last")


def pytest_collection_modifyitems(config, items):
    """Tests that replace the app run after every other; they deploy in the default scenario only."""
    replacing = [item for item in items if item.get_closest_marker("replaces_the_app")]
    if SCENARIO != "default":
        config.hook.pytest_deselected(items=replacing)
        items[:] = [item for item in items if item not in replacing]
    else:
        items[:] = [item for item in items if item not in replacing] + replacing


def pytest_sessionstart(session):
    """Each verify run starts a fresh figures file."""
    FIGURES.unlink(missing_ok=True)


def _inventory():
    listing = subprocess.run(
        ["ansible-inventory", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--list"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(listing.stdout)


def site_facts(hostvars):
    """The site's facts (app name, user, paths) as the roles see them: the double_boiler role's defaults, the
    inventory's values over them, rendered."""
    facts = yaml.safe_load((REPO / "ansible" / "roles" / "double_boiler" / "defaults" / "main.yml").read_text())
    facts.update({name: value for name, value in hostvars.items() if name in facts})
    render = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in facts:  # a fact may name another; each pass resolves one level more
        facts = {name: render.from_string(v).render(facts) if isinstance(v, str) else v for name, v in facts.items()}
    return facts


# The inventory Molecule made (absent when the file is only collected, e.g. by a linter: the roles' defaults).
FACTS = site_facts(
    next(iter(_inventory().get("_meta", {}).get("hostvars", {}).values()), {})
    if os.environ.get("MOLECULE_INVENTORY_FILE")
    else {}
)
APP = FACTS["double_boiler_app"]
USER = FACTS["double_boiler_user"]
CURRENT = FACTS["double_boiler_current"]
ENV_FILE = FACTS["double_boiler_env_file"]
CONFIG_DIR = FACTS["double_boiler_config_dir"]
VENV = FACTS["double_boiler_venv"]
PORT = FACTS["double_boiler_port"]  # the web dyno's $PORT


def git(repo, *args):
    """git in a throwaway checkout the verifiers deploy from, with a committer of its own."""
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=molecule", "-c", "user.email=molecule@localhost", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def playbook(name, *extra):
    """ansible-playbook ansible/<name> against the Molecule hosts, as a user runs it; the run is kept."""
    ansible = REPO / "ansible"
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(ansible / "roles"),
        ANSIBLE_FILTER_PLUGINS=str(ansible / "filter_plugins"),
    )
    began = time.monotonic()
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(ansible / name), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,  # a deploy on a busy CI machine; bounded all the same
    )
    # Kept whole beside the figures (with its per-task timings), so a slow CI run can be read afterwards.
    FIGURES.parent.mkdir(exist_ok=True)
    with open(FIGURES.parent / f"playbooks-{SCENARIO}.log", "a") as log:
        log.write(f"=== ansible-playbook {name} {' '.join(extra)}: rc={run.returncode}, ")
        log.write(f"{time.monotonic() - began:.0f} s\n{run.stdout}\n{run.stderr}\n")
    return run


def playbook_log(run):
    """The end of a playbook run's output, for an assertion message."""
    return f"rc={run.returncode}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"


class Site:
    """What runs where, from the Molecule inventory (the same groups site.yml reads)."""

    def __init__(self, inventory):
        self.inventory = inventory
        self.hostvars = inventory.get("_meta", {}).get("hostvars", {})
        self.layout = next(iter(self.hostvars.values()), {}).get("double_boiler_layout", "packed")

    def group(self, name):
        return list(self.inventory.get(name, {}).get("hosts", []))

    @property
    def app_hosts(self):
        return sorted(set(self.group("web") + self.group("worker")))

    @property
    def data_host(self):
        return self.group("data")[0]

    @property
    def beat_host(self):
        """Where beat and the scheduled jobs run: the worker in the split layout, the web dyno otherwise."""
        return self.group("worker")[0] if self.layout == "split" else self.group("web")[0]

    def units(self, hostname):
        """The dyno units on a host: made from the Procfile's types by layout and inventory group."""
        if self.layout == "packed":
            return [f"{APP}-web.service"] if hostname in self.group("web") else []
        return [f"{APP}-{kind}.service" for kind in ("web", "worker") if hostname in self.group(kind)]

    def unit_hosts(self):
        return [(name, unit) for name in self.app_hosts for unit in self.units(name)]


@pytest.fixture(scope="session")
def site():
    return Site(_inventory())


@pytest.fixture(scope="session")
def hosts(site):
    names = set(site.app_hosts + [site.data_host])
    return {name: testinfra.get_host(f"podman://{name}") for name in names}


def address_of(hostname):
    return subprocess.run(
        ["podman", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", hostname],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="session")
def router_url(site):
    """nginx on the (first) web host, port 80, as a browser would reach the VPS."""
    return f"http://{address_of(site.group('web')[0])}"


class RouterLoad:
    """Users on the router while something happens: `clients` threads, each with its own keep-alive session,
    ask for the home page and the health API in turn, `pause` seconds after each answer (people, not a
    benchmark: the machine must still run the deploy), and every answer is kept (status, seconds, error).

        with RouterLoad(router_url) as load:
            ...restart, deploy...
        load.failures(), load.longest()
    """

    PATHS = ("/", "/api/health")

    # 20 keep-alive connections, each through every restart, asking up to 4 times a second: 80 requests a
    # second find a gap of 50 ms in service. At 10 a second each (200 a second, the other scenario's load
    # beside it) the deploy converge it watched took 431 s, its tasks 2-4x their time in the first converge.
    def __init__(self, base_url, clients=20, pause=0.25, max_seconds=1200):
        self.base_url = base_url
        self.clients = clients
        self.pause = pause
        self.max_seconds = max_seconds  # the loop's bound, whatever happens to the test
        self.answers = []  # (path, status or None, seconds, error or None, sent at: UTC, to match the journals)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _client(self):
        session = requests.Session()
        began = time.monotonic()
        turn = 0
        while not self._stop.is_set() and time.monotonic() - began < self.max_seconds:
            path = self.PATHS[turn % len(self.PATHS)]
            turn += 1
            sent, sent_at = time.monotonic(), datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S.%f")
            try:
                answer = session.get(f"{self.base_url}{path}", timeout=60)
                # A failed answer keeps the start of its body: the API's 503 names what was down and why.
                status, error = answer.status_code, None if answer.ok else answer.text[:300]
            except requests.RequestException as problem:
                status, error = None, repr(problem)
            with self._lock:
                self.answers.append((path, status, time.monotonic() - sent, error, sent_at))
            self._stop.wait(self.pause)

    def __enter__(self):
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        time.sleep(1)  # every client has been answered at least once before the event
        return self

    def __exit__(self, *exc):
        time.sleep(2)  # and keeps being answered after it
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=70)

    def failures(self):
        """Answers that were not 2xx, and connection errors (refused, reset, timed out)."""
        return [a for a in self.answers if a[1] is None or not 200 <= a[1] < 300]

    def longest(self):
        return max((a[2] for a in self.answers), default=0.0)

    def summary(self):
        failures = self.failures()
        return (
            f"{len(self.answers)} requests by {self.clients} clients, {len(failures)} failed, "
            f"longest {self.longest():.2f} s; first failures: {failures[:5]}"
        )


@pytest.fixture(scope="session")
def config_vars(site, hosts):
    """The env file of every app host, parsed."""
    parsed = {}
    for name in site.app_hosts:
        text = hosts[name].check_output(f"cat {ENV_FILE}")
        parsed[name] = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
        parsed[name] = {key: value.strip('"') for key, value in parsed[name].items()}
    return parsed


_SERVICE_UNITS = ["nginx.service", "redis-server.service", "postgresql@*"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Print each host's journal (dynos, jobs, nginx, data services) under a failing test."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    try:
        inventory = _inventory()
        names = sorted(inventory.get("_meta", {}).get("hostvars", {}))
    except (subprocess.CalledProcessError, KeyError, json.JSONDecodeError) as error:
        report.sections.append(("journal", f"could not list the hosts: {error}"))
        return
    # The app's units apart from the rest: the router's access lines (nginx's unit) would push a dyno's error
    # out of one shared tail.
    units = {"the app's units": ([f"{APP}-*"], 150), "nginx, Redis, PostgreSQL": (_SERVICE_UNITS, 60)}
    for name in names:
        for what, (patterns, lines) in units.items():
            selected = [argument for pattern in patterns for argument in ("--unit", pattern)]
            journal = subprocess.run(
                ["podman", "exec", name, "journalctl", "--no-pager", "--lines", str(lines)]
                + ["--output", "short-precise", *selected],
                capture_output=True,
                text=True,
            )
            report.sections.append((f"journal of {name}: {what}", journal.stdout + journal.stderr))
