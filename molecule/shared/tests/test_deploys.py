"""Restarts and deploys as a user makes them, with users on the site the whole time: `systemctl restart` of
the dynos, a new commit with a config var change (the release phase runs, then the release goes live), a commit
whose release phase fails (the old release keeps serving), and rollback.yml twice (the second undoes the first,
as Heroku's does); the generated secrets (the secret key, the Redis and PostgreSQL passwords inside their URLs)
survive all of it. Each converge runs site.yml against the Molecule hosts, from a throwaway clone of this
repository with extra commits, while 20 clients keep asking the router for pages: none may get a non-2xx answer
or a connection error (the dyno's port is systemd's and stays open while the dyno restarts)."""

import concurrent.futures
import json
import os
import subprocess

import pytest
import requests
from conftest import CURRENT, ENV_FILE, REPO, RouterLoad, git, playbook, playbook_log, record

from app.procfile import read_procfile

# The config vars holding a generated secret: app.json's secret key, and the add-ons' URLs with the Redis and
# PostgreSQL passwords the data host keeps.
SECRETS = ["DJANGO_SECRET_KEY", "REDIS_URL", "DATABASE_URL"]


def _live_release(hosts, site):
    return {name: hosts[name].file(CURRENT).linked_to for name in site.app_hosts}


def _restart_dynos(site, hosts):
    """`systemctl restart` of every dyno unit at once, as an operator (or `heroku ps:restart`) does."""
    pairs = site.unit_hosts()
    with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
        list(pool.map(lambda pair: hosts[pair[0]].check_output("systemctl restart %s", pair[1]), pairs))
    return [int(hosts[name].service(unit).systemd_properties["NRestarts"]) for name, unit in pairs]


@pytest.fixture(scope="module")
def deploys(tmp_path_factory, site, hosts, config_vars, router_url):
    """Under load: restart, config change, good commit, failing release phase, rollback; keep what was seen."""
    seen = {"secrets_before": {n: {s: v[s] for s in SECRETS} for n, v in config_vars.items()}, "load": {}}
    seen["first"] = _live_release(hosts, site)
    clone = tmp_path_factory.mktemp("deploy") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    git(clone, "checkout", "--quiet", "-B", "deploy", os.environ.get("DOUBLE_BOILER_SOURCE_REF", "HEAD"))
    source = ["-e", f"app_source_repo={clone}", "-e", "app_source_ref=HEAD"]

    # 0. The dynos restarted by hand (systemctl restart, `heroku ps:restart`).
    with RouterLoad(router_url) as seen["load"]["restart"]:
        _restart_dynos(site, hosts)

    # 1. A good commit deployed with a config var changed (`heroku config:set` and `git push` in one
    #    converge, to keep CI short): the release phase (migrate) runs, then the new release goes live.
    (clone / "DEPLOYED_BY_MOLECULE").write_text("a new release\n")
    git(clone, "add", "DEPLOYED_BY_MOLECULE")
    git(clone, "commit", "--quiet", "-m", "A new release")
    seen["good_id"] = git(clone, "rev-parse", "--short=12", "HEAD")
    config = {"app_config_vars": {"MOLECULE_CONFIG_CHANGE": "1"}}
    with RouterLoad(router_url) as seen["load"]["deploy of a new commit and a config change"]:
        seen["good"] = playbook("site.yml", *source, "-e", json.dumps(config))
    seen["after_good"] = _live_release(hosts, site)
    seen["config_vars_after_change"] = hosts[site.app_hosts[0]].check_output(f"cat {ENV_FILE}")

    # 2. A commit whose release phase fails: the deploy stops, the previous release keeps serving.
    processes = read_procfile(clone / "Procfile")
    processes["release"] = "python -c \"import sys; sys.exit('release phase failed on purpose')\""
    (clone / "Procfile").write_text("".join(f"{kind}: {command}\n" for kind, command in processes.items()))
    git(clone, "commit", "--quiet", "-am", "A release whose release phase fails")
    with RouterLoad(router_url) as seen["load"]["failed release phase"]:
        seen["bad"] = playbook("site.yml", *source)
    seen["after_bad"] = _live_release(hosts, site)

    # 3. Roll back: the release before the live one (the first) serves again.
    with RouterLoad(router_url) as seen["load"]["rollback"]:
        seen["rollback"] = playbook("rollback.yml")
    seen["after_rollback"] = _live_release(hosts, site)
    seen["serving_after_rollback"] = requests.get(f"{router_url}/api/health", timeout=30).status_code

    # 4. Roll back again: as on Heroku, the release live before the first rollback (the good commit) comes
    #    back, not a build older than the live one.
    with RouterLoad(router_url) as seen["load"]["second rollback"]:
        seen["second_rollback"] = playbook("rollback.yml")
    seen["after_second_rollback"] = _live_release(hosts, site)
    seen["secrets_after"] = {}
    for name in site.app_hosts:
        lines = hosts[name].check_output(f"cat {ENV_FILE}").splitlines()
        found = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
        seen["secrets_after"][name] = {secret: found[secret].strip('"') for secret in SECRETS}
    for event, load in seen["load"].items():
        record(f"under load: {event}: requests", len(load.answers))
        record(f"under load: {event}: failed", len(load.failures()))
        record(f"under load: {event}: longest request (s)", round(load.longest(), 2))
    return seen


@pytest.mark.parametrize(
    "event",
    ["restart", "deploy of a new commit and a config change", "failed release phase", "rollback", "second rollback"],
)
def test_no_request_fails_while_the_dynos_restart(deploys, event):
    load = deploys["load"][event]
    assert len(load.answers) > 20, load.summary()
    assert load.failures() == [], load.summary()


def test_config_change_reaches_the_dynos(deploys):
    assert deploys["good"].returncode == 0, playbook_log(deploys["good"])
    assert 'MOLECULE_CONFIG_CHANGE="1"' in deploys["config_vars_after_change"]


def test_new_commit_goes_live_after_the_release_phase(deploys, site, hosts):
    assert deploys["good"].returncode == 0, playbook_log(deploys["good"])
    for name in site.app_hosts:
        assert deploys["after_good"][name].endswith(deploys["good_id"]), name
    release_task = deploys["good"].stdout.split("Run the release phase", 1)[1][:600]
    assert "changed:" in release_task, release_task


def test_failed_release_phase_keeps_the_old_release_serving(deploys, site):
    assert deploys["bad"].returncode != 0, "a failing release phase must fail the deploy"
    assert "release phase failed on purpose" in deploys["bad"].stdout + deploys["bad"].stderr, playbook_log(
        deploys["bad"]
    )
    assert deploys["after_bad"] == deploys["after_good"]


def test_rollback_puts_the_previous_release_back_in_service(deploys, site):
    assert deploys["rollback"].returncode == 0, playbook_log(deploys["rollback"])
    assert deploys["after_rollback"] == deploys["first"]
    assert deploys["serving_after_rollback"] == 200


def test_a_second_rollback_returns_to_the_release_the_first_took_out_of_service(deploys):
    assert deploys["second_rollback"].returncode == 0, playbook_log(deploys["second_rollback"])
    assert deploys["after_second_rollback"] == deploys["after_good"]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_unchanged_after_re_converges(deploys, site, secret):
    for name in site.app_hosts:
        assert deploys["secrets_after"][name][secret] == deploys["secrets_before"][name][secret], name
