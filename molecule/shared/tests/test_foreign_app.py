"""Another Procfile app through the same roles, as `git push` of another codebase to a Heroku app: the
fixture molecule/shared/foreign-app/ (gunicorn + a worker loop, no Django, no app.json, a .python-version),
given to site.yml as a git URL. First with a .python-version Debian does not provide: the run fails in its
first play, before anything changes, naming the file, the version and the ones available. Then as it is: it
serves through the router, its Procfile's process types run as dynos, and no collectstatic runs for an app
without manage.py.

It replaces the app the other verifiers test, so it runs last (conftest.py), in the default scenario only
(one deploy is enough to show the roles take any Procfile app; CI time)."""

import re
import shutil
import time

import pytest
import requests
from conftest import APP, CURRENT, REPO, git, playbook, playbook_log, record

FOREIGN_APP = REPO / "molecule" / "shared" / "foreign-app"

pytestmark = pytest.mark.replaces_the_app


def _site(source):
    return playbook("site.yml", "-e", f"app_source_repo={source}", "-e", "app_source_ref=HEAD")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory, site, hosts):
    repo = tmp_path_factory.mktemp("foreign") / "app"
    shutil.copytree(FOREIGN_APP, repo)
    wanted = (repo / ".python-version").read_text().strip()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / ".python-version").write_text("2.7\n")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "An app asking for a Python no Debian release has")
    seen = {"live_before": {n: hosts[n].file(CURRENT).linked_to for n in site.app_hosts}}
    began = time.monotonic()
    seen["refused"] = _site(f"file://{repo}")
    record("another app: site.yml refusing its .python-version (s)", round(time.monotonic() - began, 1))
    seen["live_after_refusal"] = {n: hosts[n].file(CURRENT).linked_to for n in site.app_hosts}

    (repo / ".python-version").write_text(f"{wanted}\n")
    git(repo, "commit", "--quiet", "-am", "Ask for the Python the host's Debian provides")
    seen["wanted_python"] = wanted
    seen["commit"] = git(repo, "rev-parse", "--short=12", "HEAD")
    began = time.monotonic()
    seen["deployed"] = _site(f"file://{repo}")
    record("another app: site.yml deploying it over the app (s)", round(time.monotonic() - began, 1))
    return seen


def test_unavailable_python_version_fails_before_any_change_naming_it(foreign):
    run = foreign["refused"]
    output = run.stdout + run.stderr
    assert run.returncode != 0, playbook_log(run)
    assert re.search(r"\.python-version .* asks for Python 2\.7;.* provides 3\.\d+", output), playbook_log(run)
    changed = [int(n) for n in re.findall(r"changed=(\d+)", output)]
    assert changed and not any(changed), playbook_log(run)
    assert foreign["live_after_refusal"] == foreign["live_before"]


def test_foreign_app_from_a_git_url_serves_through_the_router(foreign, site, hosts, router_url):
    assert foreign["deployed"].returncode == 0, playbook_log(foreign["deployed"])
    for name in site.app_hosts:
        assert hosts[name].file(CURRENT).linked_to.endswith(foreign["commit"]), name
    answer = requests.get(f"{router_url}/hello", timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json() == {"app": "foreign", "python": foreign["wanted_python"], "dyno": "web.1", "path": "/hello"}


def test_every_process_type_of_its_procfile_runs_as_a_dyno(foreign, site, hosts):
    assert foreign["deployed"].returncode == 0, playbook_log(foreign["deployed"])
    for kind in ("web", "worker"):
        (name,) = [n for n in site.app_hosts if site.layout == "packed" or n in site.group(kind)]
        assert hosts[name].service(f"{APP}-{kind}.service").is_running, (name, kind)
    (name,) = [n for n in site.app_hosts if site.layout == "packed" or n in site.group("worker")]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journal = hosts[name].check_output(f"journalctl --no-pager -n 20 -u {APP}-worker.service")
        if "ticker alive on worker.1" in journal:
            break
        time.sleep(1)
    assert "ticker alive on worker.1" in journal, journal


def test_no_collectstatic_for_an_app_without_manage_py(foreign):
    deployed = foreign["deployed"]
    assert deployed.returncode == 0, playbook_log(deployed)
    task = deployed.stdout.split("Collect static files", 1)[1].split("TASK [", 1)[0]
    assert "skipping:" in task and "changed:" not in task, task
