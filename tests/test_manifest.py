"""The single sources of truth agree: app.json, the Procfiles and the settings; the scheduled jobs run."""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import yaml
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from app.procfile import read_procfile
from tests.local_dyno import REPO, dyno_environment

MANIFEST = json.loads((REPO / "app.json").read_text())
# Set by the platform (Heroku, or the VPS units) or by add-ons, not declared in app.json's env.
PLATFORM_VARS = {"PORT", "DYNO", "DYNO_RAM", "DATABASE_URL", "REDIS_URL"}


def procfile(name):
    return read_procfile(REPO / name)


def config_vars_read_by_settings():
    source = (REPO / "app" / "settings.py").read_text()
    return set(re.findall(r"""(?:os\.environ\.get|env_bool|env_int)\(\s*["']([A-Z_]+)["']""", source))


def test_every_config_var_the_settings_read_is_in_the_manifest_and_no_other():
    read = config_vars_read_by_settings() - PLATFORM_VARS
    declared = set(MANIFEST["env"])
    assert read == declared, f"read but not declared: {read - declared}; declared but never read: {declared - read}"


def test_settings_are_the_only_module_reading_config_vars():
    """No other module reads a config var (app.json's or the platform's). The launcher may read systemd's
    socket-activation protocol (LISTEN_PID, LISTEN_FDS): not config, but how systemd hands over a socket."""
    config_vars = set(MANIFEST["env"]) | PLATFORM_VARS
    readers = []
    for path in (REPO / "app").rglob("*.py"):
        if path.name in ("settings.py", "concurrency.py"):
            continue
        read = re.findall(
            r"""os\.environ(?:\.get\(|\[)\s*["']([A-Z_]+)|os\.getenv\(\s*["']([A-Z_]+)""", path.read_text()
        )
        names = {name for pair in read for name in pair if name}
        if names & config_vars:
            readers.append(f"{path.relative_to(REPO)}: {sorted(names & config_vars)}")
    assert readers == []


def test_secret_key_is_generated_and_required():
    secret = MANIFEST["env"]["DJANGO_SECRET_KEY"]
    assert secret["generator"] == "secret" and secret["required"] is True


def test_procfile_web_runs_the_inner_procfile_and_release_migrates():
    outer = procfile("Procfile")
    assert set(outer) == {"web", "worker", "release"}
    assert outer["web"].startswith("python -m app.dyno web")
    assert "migrate" in outer["release"]
    assert set(MANIFEST["formation"]) <= set(outer)


def test_gunicorn_comes_first_in_the_inner_procfile():
    inner = procfile("LocalProcfile")
    assert list(inner)[0] == "web" and inner["web"].startswith("gunicorn ")
    assert "worker" in inner


def test_beat_runs_inside_the_one_celery_worker_and_nowhere_else():
    # The packed dyno runs exactly one worker, and the split layout exactly one worker dyno: beat inside it
    # (`--beat-thread`, a thread of the worker: app/celery.py) runs once in either layout, and saves a whole
    # process (README.md has the measured figure).
    inner = procfile("LocalProcfile")
    with_beat = [name for name, command in inner.items() if " --beat" in command or " beat" in command]
    assert with_beat == ["worker"]


def test_no_file_restates_the_procfile_commands():
    commands = list(procfile("LocalProcfile").values()) + list(procfile("Procfile").values())
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    restating = []
    for relative in tracked:
        if relative in ("Procfile", "LocalProcfile") or not (REPO / relative).is_file():
            continue
        text = (REPO / relative).read_text(errors="ignore")
        restating += [f"{relative}: {c}" for c in commands if len(c) > 25 and c in text]
    assert restating == []


def test_each_scheduled_job_command_runs_in_a_one_off_dyno(tmp_path):
    """Every `cron` command of app.json, run as a one-off dyno would run it, succeeds."""
    assert MANIFEST["cron"], "app.json lists no scheduled job"
    database = tmp_path / "db.sqlite3"
    config = {
        "DYNO": "scheduler.1",
        "DJANGO_SECRET_KEY": "k" * 50,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    env = dyno_environment(config, REPO)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    for job in MANIFEST["cron"]:
        run = subprocess.run(
            ["bash", "-c", job["command"]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"{job['command']}: {run.stdout}{run.stderr}"


def test_clearsessions_job_removes_expired_sessions_and_keeps_live_ones():
    """The daily job does its work: expired sessions go, live ones stay."""
    command = next(job["command"] for job in MANIFEST["cron"] if "clearsessions" in job["command"])
    expired, live = SessionStore(), SessionStore()
    expired["n"] = live["n"] = 1
    expired.set_expiry(timezone.now() - timedelta(days=1))
    expired.create()
    live.create()
    env = dyno_environment({"DATABASE_URL": os.environ["DATABASE_URL"], "DJANGO_ALLOWED_HOSTS": "x"}, REPO)
    run = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    remaining = set(Session.objects.values_list("session_key", flat=True))
    assert live.session_key in remaining
    assert expired.session_key not in remaining


def test_vps_env_file_takes_config_var_names_from_the_manifest():
    """The Ansible app role's env file is the VPS's `heroku config`, written from app.json's "env": the template
    names no config var of its own, and the few the VPS sets itself (written only where app.json declares
    them) and the add-on URLs are declared names too. A new config var in app.json needs no Ansible edit."""
    role = REPO / "ansible" / "roles" / "app"
    template = (role / "templates" / "etc" / "app" / "env.j2").read_text()
    assert re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", template) == [], "env.j2 restates config var names"
    internal = yaml.safe_load((role / "vars" / "main.yml").read_text())
    site_set = set(internal["_app_site_config_vars"]) | set(internal["_app_fact_config_vars"])
    assert "DJANGO_ALLOWED_HOSTS" in site_set
    assert site_set - set(MANIFEST["env"]) == set()
    assert set(internal["_app_addon_config_vars"]) <= PLATFORM_VARS


def test_ansible_site_facts_live_in_one_role_that_every_role_depends_on():
    """The app's name, user, group and paths are the double_boiler role's defaults (set once in the inventory):
    every other role depends on that role and no role or playbook derives a name or path of its own; each role's
    argument spec lists exactly the variables its defaults set, so `validate_argument_spec` checks them all."""
    roles = REPO / "ansible" / "roles"
    rederived = re.compile(
        r"/srv/|/etc/\{\{|double_boiler_(?!secret)\w+ \| default"
        r"|\b(app|base|dyno|scheduler|router)_(name|app|user|root)\b"
    )
    for role in sorted(path for path in roles.iterdir() if path.name != "double_boiler"):
        meta = yaml.safe_load((role / "meta" / "main.yml").read_text())
        assert {"role": "double_boiler"} in meta["dependencies"], f"{role.name} does not depend on double_boiler"
    for path in [*(REPO / "ansible").glob("*.yml"), *roles.glob("*/*/**/*")]:
        if path.is_file() and roles / "double_boiler" not in path.parents:
            found = [line for line in path.read_text().splitlines() if rederived.search(line.split("#")[0])]
            assert found == [], f"{path.relative_to(REPO)} derives a site fact itself: {found}"
    for role in roles.iterdir():
        defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
        spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
        assert set(spec["options"]) == set(defaults), role.name


def test_procfile_cli_prints_a_process_type_command_and_names_a_missing_one():
    """The Makefile reads Procfile commands through this CLI: the one Procfile reader."""
    cli = [sys.executable, "-m", "app.procfile"]
    shown = subprocess.run([*cli, "Procfile", "release"], cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == procfile("Procfile")["release"]
    listed = subprocess.run([*cli, "LocalProcfile"], cwd=REPO, capture_output=True, text=True)
    assert listed.stdout.split() == list(procfile("LocalProcfile"))
    missing = subprocess.run([*cli, "Procfile", "clock"], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode != 0 and "Procfile has no process type 'clock'" in missing.stderr
