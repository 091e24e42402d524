"""Deploys as a user makes them: a new commit goes live after the release phase, a failing release phase
leaves the old release serving, rollback.yml puts the previous release back, and the generated secret key
survives every re-converge. Each deploy runs site.yml against the Molecule hosts, from a throwaway clone of
this repository with one extra commit."""

import os
import subprocess

import pytest
import requests
from conftest import APP, REPO, record

ANSIBLE = REPO / "ansible"


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=molecule", "-c", "user.email=molecule@localhost", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _playbook(name, *extra):
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ANSIBLE / "roles"))
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(ANSIBLE / name), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def _live_release(hosts, site):
    return {name: hosts[name].file(f"/srv/{APP}/current").linked_to for name in site.app_hosts}


@pytest.fixture(scope="module")
def deploys(tmp_path_factory, site, hosts, config_vars, router_url):
    """Deploy a good commit, then a commit whose release phase fails, then roll back; keep what was seen."""
    seen = {"key_before": {n: v["DJANGO_SECRET_KEY"] for n, v in config_vars.items()}}
    seen["first"] = _live_release(hosts, site)
    clone = tmp_path_factory.mktemp("deploy") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    _git(clone, "checkout", "--quiet", "-B", "deploy", os.environ.get("DOUBLE_BOILER_SOURCE_REF", "HEAD"))

    # 1. A good commit: the release phase (migrate) runs, then the new release goes live.
    (clone / "DEPLOYED_BY_MOLECULE").write_text("a new release\n")
    _git(clone, "add", "DEPLOYED_BY_MOLECULE")
    _git(clone, "commit", "--quiet", "-m", "A new release")
    seen["good_id"] = _git(clone, "rev-parse", "--short=12", "HEAD")
    good = _playbook("site.yml", "-e", f"app_source_repo={clone}", "-e", "app_source_ref=HEAD")
    seen["good"] = good
    seen["after_good"] = _live_release(hosts, site)
    seen["serving_after_good"] = requests.get(f"{router_url}/api/health", timeout=10).status_code

    # 2. A commit whose release phase fails: the deploy stops, the previous release keeps serving.
    procfile = (clone / "Procfile").read_text().splitlines()
    procfile = [
        "release: python -c \"import sys; sys.exit('release phase failed on purpose')\""
        if line.startswith("release:")
        else line
        for line in procfile
    ]
    (clone / "Procfile").write_text("\n".join(procfile) + "\n")
    _git(clone, "commit", "--quiet", "-am", "A release whose release phase fails")
    bad = _playbook("site.yml", "-e", f"app_source_repo={clone}", "-e", "app_source_ref=HEAD")
    seen["bad"] = bad
    seen["after_bad"] = _live_release(hosts, site)
    seen["serving_after_bad"] = requests.get(f"{router_url}/api/health", timeout=10).status_code

    # 3. Roll back: the release before the live one (the first) serves again.
    back = _playbook("rollback.yml")
    seen["rollback"] = back
    seen["after_rollback"] = _live_release(hosts, site)
    seen["serving_after_rollback"] = requests.get(f"{router_url}/api/health", timeout=30).status_code
    seen["key_after"] = {
        name: dict(
            line.split("=", 1)
            for line in hosts[name].check_output(f"cat /etc/{APP}/env").splitlines()
            if line and not line.startswith("#")
        )["DJANGO_SECRET_KEY"].strip('"')
        for name in site.app_hosts
    }
    return seen


def _log(result):
    return f"rc={result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_new_commit_goes_live_after_the_release_phase(deploys, site, hosts):
    assert deploys["good"].returncode == 0, _log(deploys["good"])
    for name in site.app_hosts:
        assert deploys["after_good"][name].endswith(deploys["good_id"]), name
    release_task = deploys["good"].stdout.split("Run the release phase", 1)[1][:600]
    assert "changed:" in release_task, release_task
    assert deploys["serving_after_good"] == 200


def test_failed_release_phase_keeps_the_old_release_serving(deploys, site):
    assert deploys["bad"].returncode != 0, "a failing release phase must fail the deploy"
    assert "release phase failed on purpose" in deploys["bad"].stdout + deploys["bad"].stderr, _log(deploys["bad"])
    assert deploys["after_bad"] == deploys["after_good"]
    assert deploys["serving_after_bad"] == 200


def test_rollback_puts_the_previous_release_back_in_service(deploys, site):
    assert deploys["rollback"].returncode == 0, _log(deploys["rollback"])
    assert deploys["after_rollback"] == deploys["first"]
    assert deploys["serving_after_rollback"] == 200


def test_secret_key_unchanged_after_re_converges(deploys):
    assert deploys["key_after"] == deploys["key_before"]
    record("deploys checked", 3)
