"""The Ansible filters that read the project's single sources: the schedule grammar (checked against the shared
fixture tests/fixtures/schedules.json, which the Terraform tests read too) and the Procfile reader (checked
against app/procfile.py, the Python reader, on the project's own Procfiles)."""

import importlib.util
import json
import re

import pytest
from ansible.errors import AnsibleFilterError

from app.procfile import LOCAL_PROCFILE, PROCFILE, read_procfile
from tests.local_dyno import REPO

FILTERS = REPO / "ansible" / "filter_plugins"
SCHEDULES = json.loads((REPO / "tests" / "fixtures" / "schedules.json").read_text())


def _filters(name):
    spec = importlib.util.spec_from_file_location(f"ansible_filter_{name}", FILTERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


@pytest.mark.parametrize("case", SCHEDULES["valid"], ids=lambda case: case["schedule"])
def test_heroku_schedule_becomes_the_timers_oncalendar(case):
    assert _filters("schedule")["heroku_schedule_to_oncalendar"](case["schedule"]) == case["oncalendar"]


@pytest.mark.parametrize("schedule", SCHEDULES["invalid"])
def test_schedule_heroku_scheduler_cannot_run_is_refused_naming_it(schedule):
    refusal = re.escape(f"schedule '{schedule}' is not one Heroku Scheduler can run")
    with pytest.raises(AnsibleFilterError, match=refusal):
        _filters("schedule")["heroku_schedule_to_oncalendar"](schedule)


def test_every_app_json_schedule_is_one_the_timers_accept():
    convert = _filters("schedule")["heroku_schedule_to_oncalendar"]
    for job in json.loads((REPO / "app.json").read_text()).get("cron", []):
        assert convert(job["schedule"]).endswith(" UTC"), job


@pytest.mark.parametrize("path", [PROCFILE, LOCAL_PROCFILE], ids=lambda path: path.name)
def test_ansible_reads_a_procfile_as_the_python_reader_does(path):
    parsed = _filters("procfile")["procfile"](path.read_text())
    assert parsed == read_procfile(path)
    assert list(parsed) == list(read_procfile(path))  # file order too


def test_missing_process_type_is_refused_naming_it():
    command = _filters("procfile")["procfile_command"]
    assert command(PROCFILE.read_text(), "release") == read_procfile(PROCFILE)["release"]
    with pytest.raises(AnsibleFilterError, match="Procfile has no process type 'clock' \\(it has web, worker"):
        command(PROCFILE.read_text(), "clock")
