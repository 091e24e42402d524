"""The Terraform configuration (terraform/) under the real tools: `terraform fmt`, `terraform test`, `terraform
init` + `validate`, checkov, and its agreement with the rest of the kit (app.json, the Procfile, the settings,
the shared schedule fixture).

The binary is terraform, or OpenTofu built from its Go module where there is none; the providers are built
from their Go modules into a filesystem mirror (tests/terraform_tools.py). What needs no provider but
Terraform's own (every variable validation, and everything terraform/locals.tf derives: formations, preboot,
add-on plans, config vars, Scheduler jobs) runs under `terraform test` on a copy of variables.tf and
locals.tf. What needs heroku/heroku and hashicorp/random (init + validate of the root module and the
examples) is skipped, naming the module that could not be built, where neither the Go module proxy nor a
registry has them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests import terraform_tools

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
EXAMPLES = sorted(path for path in (TERRAFORM / "examples").iterdir() if path.is_dir())
CONFIGURATIONS = [TERRAFORM, *EXAMPLES]
LOGIC = Path(__file__).resolve().parent / "terraform" / "logic"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = json.loads((REPO / "app.json").read_text())
SCHEDULES = json.loads((FIXTURES / "schedules.json").read_text())
APP = {"app_name": "double-boiler-test"}
APP_VAR = [f"-var=app_name={APP['app_name']}"]
MAIN_TF = (TERRAFORM / "main.tf").read_text()


def _ids(paths):
    return [str(path.relative_to(REPO)) for path in paths]


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    found = terraform_tools.prepare()
    assert found.binary, found.binary_reason
    found.config = found.cli_config(tmp_path_factory.mktemp("terraform-cli"))
    return found


def run(tools, directory, *arguments):
    return subprocess.run(
        [tools.binary, *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        # No update check calls home; the CLI config is the tests' own (the providers' mirror).
        env={
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(tools.config),
        },
    )


def provider_free_copy(tools, root, manifest=MANIFEST):
    """terraform/variables.tf and terraform/locals.tf (unchanged) with the tests' probe outputs, and app.json
    one folder up as locals.tf expects: a module that needs no provider but Terraform's own."""
    workdir = root / "terraform"
    (workdir / "tests").mkdir(parents=True)
    (root / "app.json").write_text(json.dumps(manifest))
    for name in ("variables.tf", "locals.tf"):
        shutil.copy(TERRAFORM / name, workdir / name)
    shutil.copy(LOGIC / "probe.tf", workdir / "probe.tf")
    for test in LOGIC.glob("*.tftest.hcl"):
        shutil.copy(test, workdir / "tests" / test.name)
    init = run(tools, workdir, "init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    return workdir


def terraform_test(tools, workdir, *arguments):
    """`terraform test -json`: {(file, run): {"status": ..., "diagnostics": [...]}} and the raw output."""
    result = run(tools, workdir, "test", "-json", "-no-color", *arguments)
    runs = {}
    for line in result.stdout.splitlines():
        event = json.loads(line)
        key = (event.get("@testfile"), event.get("@testrun"))
        # A run's outcome: terraform's "complete" event, or OpenTofu's one event per run, carries its status.
        if event.get("type") == "test_run" and "status" in event["test_run"]:
            runs.setdefault(key, {"diagnostics": []})["status"] = event["test_run"]["status"]
        elif event.get("type") == "diagnostic" and key[1]:
            runs.setdefault(key, {"diagnostics": []})["diagnostics"].append(event["diagnostic"])
    return runs, result


def hcl(value):
    """A Python value as an HCL expression (JSON is one, except for null's spelling it agrees)."""
    return json.dumps(value)


def run_block(name, variables, asserts=()):
    lines = [f'run "{name}" {{', "  command = apply", "  variables {"]
    lines += [f"    {key} = {hcl(value)}" for key, value in variables.items()]
    lines.append("  }")
    for condition, message in asserts:
        lines += ["  assert {", f"    condition     = {condition}", f"    error_message = {hcl(message)}", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# terraform fmt
# ---------------------------------------------------------------------------------------------------------


def test_terraform_fmt_finds_nothing_to_change(tools):
    for directory in (TERRAFORM, LOGIC):
        result = run(tools, directory, "fmt", "-check", "-recursive", "-diff", "-no-color")
        assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# Variable validations, under `terraform test`: one test file per case, so that each case fails alone
# ---------------------------------------------------------------------------------------------------------

ACCEPTED = {
    "defaults": {},
    "split with more web dynos": {"layout": "split", "dyno_size": "standard-1x", "web_quantity": 3},
    "split with a bigger worker": {"layout": "split", "dyno_size": "standard-1x", "worker_dyno_size": "performance-m"},
    "eu, team, custom domains, ACM": {
        "region": "eu",
        "team": "acme",
        "custom_domains": ["www.example.com"],
        "acm": True,
    },
    "external Redis and Postgres": {
        "redis_plan": "none",
        "redis_url": "rediss://:pw@redis.example.com:6380",
        "postgres_plan": "none",
        "database_url": "postgres://u:p@db.example.com/app",
    },
    "plans of its own": {"redis_plan": "heroku-redis:premium-0", "postgres_plan": "heroku-postgresql:standard-0"},
    "explicit concurrency": {"web_concurrency": 3, "celery_worker_concurrency": 2, "dyno_size": "standard-2x"},
    "extras": {"extra_config_vars": {"SENTRY_ENVIRONMENT": "production"}},
    "source from a release tarball": {"source_url": "https://github.com/example/double-boiler/archive/v1.0.tar.gz"},
    "another stack": {"stack": "heroku-22"},
}

REJECTED = {
    "app name with capitals": ({"app_name": "Double-Boiler"}, "app_name must be"),
    "app name too short": ({"app_name": "db"}, "app_name must be"),
    "app name ending in a dash": ({"app_name": "double-boiler-"}, "app_name must be"),
    "private space region": ({"region": "virginia"}, "region must be"),
    "stack typo": ({"stack": "heroku24"}, "stack must be"),
    "team with spaces": ({"team": "my team"}, "team must be"),
    "acm on eco": ({"acm": True, "dyno_size": "eco"}, "acm needs a basic, standard or performance"),
    "domain with a scheme": ({"custom_domains": ["https://www.example.com"]}, "custom_domains must"),
    "extra var with a bad name": ({"extra_config_vars": {"MY-VAR": "x"}}, "extra_config_vars keys must"),
    "extra var overriding a managed one": (
        {"extra_config_vars": {"DJANGO_DEBUG": "true"}},
        "extra_config_vars must not set DJANGO_DEBUG:",
    ),
    "extra var overriding an add-on's": (
        {"extra_config_vars": {"DATABASE_URL": "postgres://x/y"}},
        "extra_config_vars must not set DATABASE_URL:",
    ),
    "unknown layout": ({"layout": "both"}, "layout must be"),
    "unknown dyno size": ({"dyno_size": "standard-3x"}, "dyno_size must be one of"),
    "unknown worker size": (
        {"layout": "split", "dyno_size": "standard-1x", "worker_dyno_size": "huge"},
        "worker_dyno_size must be null",
    ),
    "mixed dyno tiers": (
        {"layout": "split", "dyno_size": "basic", "worker_dyno_size": "standard-2x"},
        "worker_dyno_size must be in the same tier",
    ),
    "fractional web quantity": (
        {"layout": "split", "dyno_size": "standard-1x", "web_quantity": 1.5},
        "web_quantity must be a whole number",
    ),
    "two packed web dynos": ({"dyno_size": "standard-1x", "web_quantity": 2}, "web_quantity must be 1 while layout"),
    "two basic web dynos": ({"layout": "split", "web_quantity": 2}, "web_quantity above 1 needs"),
    "zero gunicorn workers": ({"web_concurrency": 0}, "web_concurrency must be"),
    "fractional celery workers": ({"celery_worker_concurrency": 2.5}, "celery_worker_concurrency must be"),
    "redis plan typo": ({"redis_plan": "redis:mini"}, "redis_plan must be null"),
    "redis plan the string null": ({"redis_plan": "null"}, 'redis_plan is the string "null"'),
    "no redis at all": ({"redis_plan": "none"}, 'redis_plan is "none", so set redis_url'),
    "redis url that is not redis": (
        {"redis_plan": "none", "redis_url": "https://redis.example.com"},
        "redis_url must start with",
    ),
    "redis url and add-on": ({"redis_url": "rediss://redis.example.com:6380"}, "redis_plan adds the Key-Value Store"),
    "postgres plan typo": ({"postgres_plan": "postgres:mini"}, "postgres_plan must be null"),
    "postgres plan the string null": ({"postgres_plan": "null"}, 'postgres_plan is the string "null"'),
    "no database at all": ({"postgres_plan": "none"}, 'postgres_plan is "none", so set database_url'),
    "database url that is not postgres": (
        {"postgres_plan": "none", "database_url": "mysql://db.example.com/app"},
        "database_url must start with",
    ),
    "database url and add-on": ({"database_url": "postgres://db.example.com/app"}, "postgres_plan adds the Postgres"),
    "source directory": ({"source_archive": "../"}, "source_archive must be null or"),
    "plain http source": ({"source_url": "http://example.com/app.tar.gz"}, "source_url must start with https://"),
    "two sources": (
        {"source_url": "https://example.com/app.tar.gz", "source_archive": "app.tar.gz"},
        "source_url and source_archive are alternatives",
    ),
}


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@pytest.fixture(scope="module")
def validation_runs(tools, tmp_path_factory):
    workdir = provider_free_copy(tools, tmp_path_factory.mktemp("validations"))
    cases = workdir / "cases"
    cases.mkdir()
    for name, variables in ACCEPTED.items():
        (cases / f"accepted_{_slug(name)}.tftest.hcl").write_text(run_block("case", {**APP, **variables}))
    for name, (variables, _) in REJECTED.items():
        (cases / f"rejected_{_slug(name)}.tftest.hcl").write_text(run_block("case", {**APP, **variables}))
    runs, result = terraform_test(tools, workdir, "-test-directory=cases")
    assert runs, result.stdout + result.stderr
    return {Path(file).name.removesuffix(".tftest.hcl"): outcome for (file, _), outcome in runs.items()}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_valid_inputs_pass_every_validation(validation_runs, case):
    outcome = validation_runs[f"accepted_{_slug(case)}"]
    assert outcome["status"] == "pass", [d["detail"] for d in outcome["diagnostics"]]


def _variable_errors(outcome):
    return [d for d in outcome["diagnostics"] if d["summary"] == "Invalid value for variable"]


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_invalid_input_is_refused_with_a_message_naming_the_variable(validation_runs, case):
    _, expected = REJECTED[case]
    outcome = validation_runs[f"rejected_{_slug(case)}"]
    assert outcome["status"] in ("fail", "error")
    errors = _variable_errors(outcome)
    assert len(errors) == 1, [d["detail"] for d in outcome["diagnostics"]]  # exactly the rule the case is about
    message = " ".join(errors[0]["detail"].split())
    assert message.startswith(expected), message
    # The message starts with the variable's name, and the diagnostic points at it: terraform at the value it
    # refused (var.NAME, unless sensitive), OpenTofu at the variable's declaration.
    variable = expected.split(" ")[0]
    snippet = errors[0]["snippet"]
    traversals = {value["traversal"] for value in snippet["values"]}
    assert f"var.{variable}" in traversals or re.search(rf"\b{variable}\b", snippet["code"]), errors[0]


def test_every_validation_rule_is_exercised_by_a_rejected_case(validation_runs):
    text = (TERRAFORM / "variables.tf").read_text().splitlines()
    rules = {f"variables.tf:{number}" for number, line in enumerate(text, 1) if line.strip() == "validation {"}
    fired = set()
    for name, outcome in validation_runs.items():
        if name.startswith("rejected_"):
            for error in _variable_errors(outcome):
                fired.update(re.findall(r"validation rule at (variables\.tf:\d+)", error["detail"]))
    assert rules and rules - fired == set()


def test_every_variable_and_output_is_typed_and_described():
    for directory in CONFIGURATIONS:
        for path in directory.glob("*.tf"):
            for kind, name, body in re.findall(
                r'^(variable|output) "(\w+)" \{\n(.*?)^\}', path.read_text(), re.M | re.S
            ):
                assert "  description = " in body, f"{path}: {kind} {name}"
                if kind == "variable":
                    assert "  type " in body, f"{path}: variable {name}"


# ---------------------------------------------------------------------------------------------------------
# What locals.tf derives (tests/terraform/logic/*.tftest.hcl) and its agreement with the rest of the kit
# ---------------------------------------------------------------------------------------------------------


def test_derived_values_pass_their_terraform_tests(tools, tmp_path):
    workdir = provider_free_copy(tools, tmp_path)
    runs, result = terraform_test(tools, workdir)
    assert len(runs) >= 9, result.stdout + result.stderr
    failed = {run_name: outcome for (_, run_name), outcome in runs.items() if outcome["status"] != "pass"}
    assert failed == {}, failed


@pytest.fixture(scope="module")
def defaults(tools, tmp_path_factory):
    """The derived values for the defaults: an apply of the provider-free copy, read with `terraform output`."""
    workdir = provider_free_copy(tools, tmp_path_factory.mktemp("defaults"))
    apply = run(tools, workdir, "apply", "-auto-approve", "-input=false", "-no-color", *APP_VAR)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    output = run(tools, workdir, "output", "-json")
    return {name: value["value"] for name, value in json.loads(output.stdout).items()}


def test_formation_process_types_exist_in_the_procfile(defaults):
    procfile = subprocess.run(
        [sys.executable, "-m", "app.procfile", "Procfile"], cwd=REPO, capture_output=True, text=True, check=False
    )
    types = set(re.findall(r'resource "heroku_formation" "\w+" \{\n[^}]*?type\s*= "(\w+)"', MAIN_TF))
    assert types == set(defaults["formations"]) == {"web", "worker"}
    for process_type in types:
        command = subprocess.run(
            [sys.executable, "-m", "app.procfile", "Procfile", process_type], cwd=REPO, capture_output=True, text=True
        )
        assert command.returncode == 0 and command.stdout.strip(), (process_type, procfile.stdout, command.stderr)


def test_config_vars_terraform_sets_are_app_json_env_vars_the_app_reads(defaults):
    names = set(defaults["config_vars"]) | {"DJANGO_SECRET_KEY"} | set(re.findall(r"(DJANGO_ALLOWED_HOSTS) =", MAIN_TF))
    names |= {"WEB_CONCURRENCY", "CELERY_WORKER_CONCURRENCY"}  # set when their variables are
    assert names <= set(MANIFEST["env"]), names - set(MANIFEST["env"])
    app_source = "\n".join(path.read_text() for path in (REPO / "app").rglob("*.py"))
    unread = {name for name in names | {"REDIS_URL", "DATABASE_URL"} if f'"{name}"' not in app_source}
    assert unread == set(), f"set by Terraform but read nowhere in app/: {unread}"
    # Every var app.json requires is set by the configuration (or generated: the secret key).
    required = {name for name, spec in MANIFEST["env"].items() if spec.get("required")}
    assert required <= names, required - names


def test_add_on_plans_default_to_the_app_json_add_ons(defaults):
    manifest_plans = {addon["plan"] if isinstance(addon, dict) else addon for addon in MANIFEST["addons"]}
    assert set(defaults["plans"].values()) == manifest_plans


def test_secret_key_is_fifty_letters_and_digits():
    block = re.search(r'resource "random_password" "django_secret_key" \{(.*?)\n\}', MAIN_TF, re.S).group(1)
    assert re.search(r"^  length\s*=\s*50$", block, re.M) and re.search(r"^  special\s*=\s*false$", block, re.M)


# ---------------------------------------------------------------------------------------------------------
# Scheduled jobs: the shared schedule fixture through terraform/locals.tf
# ---------------------------------------------------------------------------------------------------------


def _with_cron(schedules, tag):
    cron = [{"command": f"python manage.py {tag}-{index}", "schedule": s} for index, s in enumerate(schedules)]
    return {**MANIFEST, "cron": cron}


def test_scheduler_jobs_are_the_fixture_s_valid_forms(tools, tmp_path):
    valid = SCHEDULES["valid"]
    workdir = provider_free_copy(tools, tmp_path, _with_cron([case["schedule"] for case in valid], "valid"))
    apply = run(tools, workdir, "apply", "-auto-approve", "-input=false", "-no-color", *APP_VAR)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    jobs = json.loads(run(tools, workdir, "output", "-json", "scheduler_jobs").stdout)
    assert [(job["schedule"], job["frequency"], job["at"]) for job in jobs] == [
        (case["schedule"], case["frequency"], case["at"]) for case in valid
    ]


def test_plan_stops_on_each_schedule_heroku_scheduler_cannot_run_and_names_it(tools, tmp_path):
    invalid = SCHEDULES["invalid"]
    manifest = _with_cron([*invalid, SCHEDULES["valid"][0]["schedule"]], "job")
    workdir = provider_free_copy(tools, tmp_path, manifest)
    plan = run(tools, workdir, "plan", "-input=false", "-no-color", *APP_VAR)
    assert plan.returncode != 0
    message = " ".join(plan.stderr.split())
    assert "Resource precondition failed" in message, plan.stderr
    for index, schedule in enumerate(invalid):
        assert f'"{schedule}" (python manage.py job-{index})' in message, (schedule, message)
    assert f"job-{len(invalid)})" not in message  # the valid one is not named


def test_app_json_cron_schedules_are_heroku_scheduler_s(defaults):
    assert MANIFEST["cron"], "app.json lists no cron job"
    assert [job["frequency"] for job in defaults["scheduler_jobs"]] == [
        next(case["frequency"] for case in SCHEDULES["valid"] if case["schedule"] == job["schedule"])
        for job in MANIFEST["cron"]
    ]


# ---------------------------------------------------------------------------------------------------------
# The root module and the examples with the real providers
# ---------------------------------------------------------------------------------------------------------


def _copy_configuration(tmp_path):
    """terraform/ beside app.json, as in the repository, without a user's .terraform/ or state."""
    shutil.copytree(TERRAFORM, tmp_path / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copy(REPO / "app.json", tmp_path / "app.json")
    return tmp_path / "terraform"


def _init(tools, directory):
    init = run(tools, directory, "init", "-backend=false", "-input=false", "-no-color")
    unreachable = re.search(r"(?i)failed to (query|install)|could not connect", init.stderr)
    if init.returncode != 0 and tools.missing and unreachable:
        pytest.skip(f"{tools.name} init cannot install the providers: {tools.missing_reason()}")
    assert init.returncode == 0, init.stdout + init.stderr


@pytest.mark.parametrize("directory", CONFIGURATIONS, ids=_ids(CONFIGURATIONS))
def test_terraform_validate_accepts_the_configuration(tools, tmp_path, directory):
    copy = _copy_configuration(tmp_path)
    target = copy / directory.relative_to(TERRAFORM)
    _init(tools, target)
    validate = run(tools, target, "validate", "-no-color")
    assert validate.returncode == 0, validate.stdout + validate.stderr


# ---------------------------------------------------------------------------------------------------------
# The source tarball heroku_build uploads
# ---------------------------------------------------------------------------------------------------------


def _git_archive(output):
    # The command the README documents, run from the repository root.
    subprocess.run(
        ["git", "archive", "--format=tar.gz", "--output", str(output), "HEAD"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )


def test_git_archive_ships_what_heroku_builds_and_leaves_the_tooling_out(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    archive = tmp_path / "source.tar.gz"
    _git_archive(archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    needed = {
        "Procfile",
        "LocalProcfile",
        "requirements.txt",
        ".python-version",
        "manage.py",
        "app.json",
        "app/settings.py",
    }
    assert needed <= names, needed - names
    for tooling in ("terraform", "ansible", "molecule", "tests", ".ci"):
        assert not [name for name in names if name == tooling or name.startswith(tooling + "/")], tooling


def test_git_archive_is_reproducible_so_an_unchanged_commit_is_not_rebuilt(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    first, second = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"
    _git_archive(first)
    _git_archive(second)
    # heroku_build starts a new build whenever the tarball's checksum changes.
    assert first.read_bytes() == second.read_bytes()


# ---------------------------------------------------------------------------------------------------------
# checkov (its own virtualenv: `make checkov` makes .venv-checkov)
# ---------------------------------------------------------------------------------------------------------


def _checkov():
    for candidate in (os.environ.get("CHECKOV"), REPO / ".venv-checkov" / "bin" / "checkov", shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def run_checkov(directory):
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov is not installed: `make checkov` makes .venv-checkov and runs it")
    # --skip-download and BC_SKIP_MAPPING keep checkov off the network (no Prisma Cloud account is used).
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(directory),
            "--framework",
            "terraform",
            "secrets",
            "--skip-download",
            "--output",
            "json",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [check for report in reports for check in report.get("results", {}).get("failed_checks", [])]
    parsing_errors = sum(report.get("summary", report).get("parsing_errors", 0) for report in reports)
    return failed, parsing_errors


def test_checkov_finds_no_failed_check_in_the_terraform_configuration():
    failed, parsing_errors = run_checkov(TERRAFORM)
    assert parsing_errors == 0
    assert [(c["check_id"], c["file_path"], c["resource"]) for c in failed] == []


def test_checkov_run_really_scans_a_broken_fixture():
    failed, _ = run_checkov(FIXTURES / "terraform" / "checkov_unpinned_module")
    assert "CKV_TF_1" in {check["check_id"] for check in failed}
