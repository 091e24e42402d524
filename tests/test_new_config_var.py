"""A new config var is one app.json entry plus its read in settings.py: proven on a copy of the
tree with one added, where the manifest checks, the settings and Terraform's derived values take it up
with no other edit."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.local_dyno import REPO
from tests.test_terraform import provider_free_copy, run, tools  # noqa: F401 - tools is a fixture

NAME = "DOUBLE_BOILER_GREETING"


@pytest.fixture(scope="module")
def tree_with_new_var(tmp_path_factory):
    """The tracked tree, copied, with NAME added to app.json and read in settings.py, and nothing else."""
    root = tmp_path_factory.mktemp("tree")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for relative in tracked.split():
        if (REPO / relative).is_file():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, root / relative)
    manifest = json.loads((root / "app.json").read_text())
    manifest["env"][NAME] = {"description": "What the demo says first.", "value": "hello", "required": False}
    (root / "app.json").write_text(json.dumps(manifest, indent=2))
    with (root / "app" / "settings.py").open("a") as settings:
        settings.write(f'\nGREETING = os.environ.get("{NAME}", "hello")\n')
    return root, manifest


def test_manifest_checks_accept_the_new_var_with_no_other_edit(tree_with_new_var):
    root, _ = tree_with_new_var
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_manifest.py", "-k", "config_var"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert checks.returncode == 0, checks.stdout + checks.stderr
    assert re.search(r"\d+ passed", checks.stdout), checks.stdout


def test_settings_read_the_new_var(tree_with_new_var):
    root, _ = tree_with_new_var
    read = subprocess.run(
        [sys.executable, "-c", "from app import settings; print(settings.GREETING)"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, NAME: "bonjour", "DJANGO_SETTINGS_MODULE": "app.settings"},
    )
    assert read.returncode == 0 and read.stdout.split()[-1] == "bonjour", read.stderr


def test_terraform_sets_the_new_var_from_app_json_and_reserves_its_name(tree_with_new_var, tools, tmp_path):  # noqa: F811
    _, manifest = tree_with_new_var
    workdir = provider_free_copy(tools, tmp_path, manifest=manifest)
    apply = run(tools, workdir, "apply", "-auto-approve", "-input=false", "-no-color", "-var=app_name=double-boiler-t")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    outputs = json.loads(run(tools, workdir, "output", "-json").stdout)
    assert outputs["config_vars"]["value"][NAME] == "hello"
    assert NAME in outputs["reserved_config_vars"]["value"]
