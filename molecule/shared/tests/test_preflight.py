"""Bad input fails the run before anything changes on any host, and the message names the variable."""

import os
import re
import subprocess

import pytest
from conftest import REPO


@pytest.mark.parametrize(
    ("variable", "value"),
    [("dyno_memory_max_mb", "lots"), ("router_timeout_sec", "soon"), ("double_boiler_layout", "sideways")],
)
def test_bad_variable_fails_before_any_change_naming_it(variable, value):
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "ansible" / "roles"))
    run = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(REPO / "ansible" / "site.yml"),
            "-e",
            f"{variable}={value}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert variable in output, output[-3000:]
    changed = [int(n) for n in re.findall(r"changed=(\d+)", output)]
    assert changed and not any(changed), f"something changed before the run failed:\n{output[-3000:]}"
