"""The Terraform configuration (terraform/): provider schemas, input validation, agreement with the rest of the
kit (Procfile, app.json, the settings), the Scheduler entries, the source tarball, checkov.

Terraform cannot run on the project's machines (no binary, no registry), so the checks here are offline:
terraform/schema_check.py holds every .tf file to the providers' real schemas, and terraform/hcl_eval.py
evaluates the configuration's own expressions. Where `terraform` is on PATH (a user's machine) the last
tests also run `terraform fmt -check`, `terraform init -backend=false && terraform validate` and compare
`terraform console` with the offline evaluation; elsewhere they are reported as skipped, with the reason.
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

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
EXAMPLES = sorted(path for path in (TERRAFORM / "examples").iterdir() if path.is_dir())
CONFIGURATIONS = [TERRAFORM, *EXAMPLES]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "terraform"
# CI and the developers' checkouts have shared/ beside the repository.
REFERENCE = REPO.parent / "shared" / "reference" / "terraform-provider-schemas.json"

sys.path.insert(0, str(TERRAFORM))
import derive_provider_schemas  # noqa: E402
import hcl_eval  # noqa: E402
import schema_check  # noqa: E402

MANIFEST = json.loads((REPO / "app.json").read_text())
CONFIG = hcl_eval.Configuration.load(TERRAFORM)
APP = {"app_name": "double-boiler-test"}
WEB_URL = "https://double-boiler-test-0123456789ab.herokuapp.com/"
SECRET = "generated-by-random-password"
# Stand-ins for what the providers compute at apply time.
RESOURCES = {
    "heroku_app": {"this": {"web_url": WEB_URL, "id": "0b7c5b4e-0f5e-4c4b-9d4e-1a2b3c4d5e6f"}},
    "random_password": {"django_secret_key": {"result": SECRET}},
}
# Which config var each add-on sets (Heroku's defaults for these add-ons, see heroku-runtime.md).
ADDON_CONFIG_VARS = {"heroku-redis": "REDIS_URL", "heroku-postgresql": "DATABASE_URL"}


def _ids(paths):
    return [str(path.relative_to(REPO)) for path in paths]


# ---------------------------------------------------------------------------------------------------------
# Provider schemas
# ---------------------------------------------------------------------------------------------------------


def test_committed_provider_schemas_are_derived_from_the_reference():
    if not REFERENCE.exists():
        pytest.skip(f"{REFERENCE} is not on this machine: the committed terraform/provider_schemas.json is used as is")
    committed = (TERRAFORM / "provider_schemas.json").read_text()
    assert committed == derive_provider_schemas.render(REFERENCE), (
        "terraform/provider_schemas.json is stale: run python terraform/derive_provider_schemas.py"
    )


def test_provider_schemas_are_the_versions_the_configuration_pins():
    schemas = schema_check.load_schemas()
    assert schemas["heroku/heroku"]["version"] == "5.3.2"
    assert schemas["hashicorp/random"]["version"] == "3.9.0"
    for directory in CONFIGURATIONS:
        module = schema_check.load_module(directory)
        pins = {name: (source, spec["version"]) for name, (_, source, spec) in module.required_providers.items()}
        assert pins == {"heroku": ("heroku/heroku", '"~> 5.3"'), "random": ("hashicorp/random", '"~> 3.9"')}, directory


@pytest.mark.parametrize("directory", CONFIGURATIONS, ids=_ids(CONFIGURATIONS))
def test_configuration_matches_the_provider_schemas(directory):
    assert schema_check.check([directory]) == []


BROKEN_FIXTURES = {
    "misspelled_argument": [
        "heroku_app.this: unknown argument or block 'regoin' (did you mean 'region'?)",
        "heroku_app.this: required argument 'region' is missing",
    ],
    "missing_required_argument": ["heroku_formation.web: required argument 'size' is missing"],
    "wrong_app_id": ["heroku_addon.scheduler: app_id must reference an app's UUID as heroku_app.<name>.id"],
}


@pytest.mark.parametrize("fixture", sorted(BROKEN_FIXTURES))
def test_broken_fixture_fails_the_schema_check(fixture):
    problems = schema_check.check([FIXTURES / fixture])
    expected = BROKEN_FIXTURES[fixture]
    for message in expected:
        assert any(message in problem for problem in problems), problems
    assert len(problems) == len(expected), problems  # and nothing else in the fixture is flagged


def test_schema_check_command_exits_non_zero_only_on_problems():
    command = [sys.executable, str(TERRAFORM / "schema_check.py")]
    broken = subprocess.run([*command, str(FIXTURES / "wrong_app_id")], capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert "app_id must reference" in broken.stdout
    clean = subprocess.run([*command, *map(str, CONFIGURATIONS)], capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout


# Each mutation breaks the real configuration the way a typo would; the checker must name the breakage.
MUTATIONS = {
    "misspelled argument": (
        "main.tf",
        'plan   = "scheduler:standard"',
        'plna   = "scheduler:standard"',
        "heroku_addon.scheduler: unknown argument or block 'plna' (did you mean 'plan'?)",
    ),
    "missing required argument": (
        "main.tf",
        '  type     = "worker"\n',
        "",
        "heroku_formation.worker: required argument 'type' is missing",
    ),
    "app name as app_id": (
        "main.tf",
        'resource "heroku_addon" "redis" {\n  count = var.redis_plan == null ? 0 : 1\n\n  app_id = heroku_app.this.id',
        'resource "heroku_addon" "redis" {\n  count = var.redis_plan == null ? 0 : 1\n\n  app_id = var.app_name',
        "heroku_addon.redis: app_id must reference an app's UUID",
    ),
    "block written as argument": ("main.tf", "  source {\n", "  source = {\n", "'source' is a block"),
    "computed attribute set": (
        "main.tf",
        "  length  = 50\n",
        '  length  = 50\n  result  = "fixed"\n',
        "random_password.django_secret_key: 'result' is computed by the provider",
    ),
    "unknown resource type": (
        "main.tf",
        'resource "heroku_domain" "custom"',
        'resource "heroku_domains" "custom"',
        "'heroku_domains' is not a resource type of the provider",
    ),
    "unknown attribute": (
        "outputs.tf",
        "value       = heroku_app.this.web_url",
        "value       = heroku_app.this.web_uri",
        "heroku_app.this has no attribute 'web_uri'",
    ),
    "secret output not sensitive": (
        "outputs.tf",
        "  sensitive   = true\n",
        "",
        "output.config_vars: its value carries a sensitive value",
    ),
    "undeclared variable": (
        "main.tf",
        'var.layout == "split" ? 1 : 0',
        'var.layuot == "split" ? 1 : 0',
        "refers to var.layuot, which is not declared",
    ),
    "provider from the wrong namespace": (
        "versions.tf",
        'source  = "heroku/heroku"',
        'source  = "hashicorp/heroku"',
        "source 'hashicorp/heroku' is not a provider this project has a schema for",
    ),
    "validations in a cycle": (
        "variables.tf",
        '    error_message = "redis_url must start with redis:// or rediss://."\n  }\n',
        '    error_message = "redis_url must start with redis:// or rediss://."\n  }\n\n'
        "  validation {\n    condition     = var.redis_plan != null || var.redis_url != null\n"
        '    error_message = "redis_url is needed."\n  }\n',
        "validations refer to each other in a cycle: var.redis_plan -> var.redis_url -> var.redis_plan",
    ),
    "unknown module variable": (
        "examples/split/main.tf",
        "  web_quantity     = 2\n",
        "  web_qantity      = 2\n",
        "module.double_boiler: module '../..' has no variable 'web_qantity'",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_schema_check_catches_a_mistake_in_the_real_configuration(tmp_path, mutation):
    file, old, new, expected = MUTATIONS[mutation]
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", "*.tar.gz", "__pycache__"))
    target = copy / file
    text = target.read_text()
    assert text.count(old) == 1, f"the mutation no longer applies to {file}: {old!r}"
    target.write_text(text.replace(old, new))
    directories = [copy, *(copy / "examples" / path.name for path in EXAMPLES)]
    problems = schema_check.check(directories)
    assert any(expected in problem for problem in problems), problems


# ---------------------------------------------------------------------------------------------------------
# Input validation: the configuration's own validation blocks, evaluated with Terraform's rules
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
        "redis_plan": None,
        "redis_url": "rediss://:pw@redis.example.com:6380",
        "postgres_plan": None,
        "database_url": "postgres://u:p@db.example.com/app",
    },
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
    "domain with a scheme": ({"custom_domains": ["https://www.example.com"]}, "custom_domains must"),
    "extra var with a bad name": ({"extra_config_vars": {"MY-VAR": "x"}}, "extra_config_vars keys must"),
    "extra var overriding a managed one": (
        {"extra_config_vars": {"DJANGO_DEBUG": "true"}},
        "extra_config_vars must not set",
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
    "redis plan typo": ({"redis_plan": "redis:mini"}, "redis_plan must be null or"),
    "no redis at all": ({"redis_plan": None}, "redis_plan is null, so set redis_url"),
    "redis url that is not redis": (
        {"redis_plan": None, "redis_url": "https://redis.example.com"},
        "redis_url must start with",
    ),
    "redis url and add-on": ({"redis_url": "rediss://redis.example.com:6380"}, "redis_plan adds the Key-Value Store"),
    "postgres plan typo": ({"postgres_plan": "postgres:mini"}, "postgres_plan must be null or"),
    "no database at all": ({"postgres_plan": None}, "postgres_plan is null, so set database_url"),
    "database url that is not postgres": (
        {"postgres_plan": None, "database_url": "mysql://db.example.com/app"},
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


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_valid_inputs_pass_every_validation(case):
    assert CONFIG.validation_errors({**APP, **ACCEPTED[case]}) == []


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_invalid_input_is_refused_with_a_message_naming_the_variable(case):
    overrides, expected = REJECTED[case]
    errors = CONFIG.validation_errors({**APP, **overrides})
    assert [e for e in errors if e.startswith(expected)], errors
    assert len(errors) == 1, errors  # exactly the rule the case is about


def test_every_validation_rule_is_exercised_by_a_rejected_case():
    fired = set()
    for overrides, _ in REJECTED.values():
        fired.update((name, index) for name, index, _ in CONFIG.failed_validations({**APP, **overrides}))
    rules = {
        (name, index)
        for name, block in CONFIG.variables.items()
        for index, _ in enumerate(block.blocks_of("validation"))
    }
    assert rules - fired == set()


def test_validation_messages_start_with_the_variable_they_refuse():
    for name, block in CONFIG.variables.items():
        for validation in block.blocks_of("validation"):
            message = hcl_eval.Evaluator({}).evaluate(validation.attributes["error_message"])
            assert message.startswith(name + " "), (name, message)


@pytest.mark.parametrize("directory", CONFIGURATIONS, ids=_ids(CONFIGURATIONS))
def test_every_variable_is_typed_and_described_and_every_output_described(directory):
    config = hcl_eval.Configuration.load(directory)
    for name, block in config.variables.items():
        assert {"type", "description"} <= set(block.attributes), f"variable {name}"
    for name, block in config.outputs.items():
        assert "description" in block.attributes, f"output {name}"


# ---------------------------------------------------------------------------------------------------------
# Agreement with the rest of the kit
# ---------------------------------------------------------------------------------------------------------


def procfile_types(path):
    types = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(\S.*)$", line)
        if match:
            types[match.group(1)] = match.group(2)
    return types


def test_formation_process_types_exist_in_the_procfile():
    procfile = procfile_types(REPO / "Procfile")
    formations = [name for (type_name, name) in CONFIG.resources if type_name == "heroku_formation"]
    types = {CONFIG.argument("heroku_formation", name, "type", APP) for name in formations}
    assert types == {"web", "worker"}
    assert types <= set(procfile), procfile


@pytest.mark.parametrize(
    ("variables", "web", "worker"),
    [
        ({}, 1, 0),
        ({"layout": "split"}, 1, 1),
        ({"layout": "split", "dyno_size": "standard-1x", "web_quantity": 4}, 4, 1),
    ],
    ids=["packed", "split", "split with four web dynos"],
)
def test_beat_runs_in_exactly_one_dyno_in_either_layout(variables, web, worker):
    values = {**APP, **variables}
    assert CONFIG.validation_errors(values) == []
    assert CONFIG.argument("heroku_formation", "web", "quantity", values) == web
    assert CONFIG.argument("heroku_formation", "worker", "quantity", values) == worker
    layout = CONFIG.local("config_vars", values)["DYNO_LAYOUT"]
    # packed: the one web dyno runs beat; split: the one worker dyno does.
    assert (web if layout == "packed" else worker) == 1


def test_worker_dyno_size_defaults_to_the_web_size():
    assert CONFIG.argument("heroku_formation", "worker", "size", {**APP, "dyno_size": "standard-2x"}) == "standard-2x"
    split = {**APP, "layout": "split", "dyno_size": "standard-1x", "worker_dyno_size": "performance-m"}
    assert CONFIG.argument("heroku_formation", "worker", "size", split) == "performance-m"


CONFIG_VAR_ARGUMENTS = {
    "heroku_app": ("config_vars", "sensitive_config_vars"),
    "heroku_app_config_association": ("vars", "sensitive_vars"),
}


def config_vars_set(variables):
    """{name: (value, sensitive)} for every config var the configuration sets, extras included."""
    out = {}
    for (type_name, name), block in CONFIG.resources.items():
        for argument in CONFIG_VAR_ARGUMENTS.get(type_name, ()):
            if argument in block.attributes:
                for key, value in CONFIG.argument(type_name, name, argument, variables, RESOURCES).items():
                    assert key not in out, f"{key} is set twice"
                    out[key] = (value, argument.startswith("sensitive"))
    return out


def addon_config_vars(variables):
    names = set()
    for (type_name, name), block in CONFIG.resources.items():
        if type_name != "heroku_addon":
            continue
        count = CONFIG.argument(type_name, name, "count", variables) if "count" in block.attributes else 1
        plan = CONFIG.argument(type_name, name, "plan", variables) if count else None
        if plan and plan.split(":")[0] in ADDON_CONFIG_VARS:
            names.add(ADDON_CONFIG_VARS[plan.split(":")[0]])
    return names


EVERY_OPTION = {
    **APP,
    "web_concurrency": 3,
    "celery_worker_concurrency": 2,
    "django_debug": True,
    "custom_domains": ["www.example.com"],
    "redis_plan": None,
    "redis_url": "rediss://:pw@redis.example.com:6380",
    "postgres_plan": None,
    "database_url": "postgres://u:p@db.example.com/app",
}


@pytest.mark.parametrize("variables", [APP, EVERY_OPTION], ids=["defaults", "every option"])
def test_config_vars_terraform_sets_are_app_json_env_vars_the_app_reads(variables):
    names = set(config_vars_set(variables)) | addon_config_vars(variables)
    known = set(MANIFEST["env"]) | set(ADDON_CONFIG_VARS.values())
    assert names <= known, names - known
    app_source = "\n".join(path.read_text() for path in (REPO / "app").rglob("*.py"))
    unread = {name for name in names if f'"{name}"' not in app_source}
    assert unread == set(), f"set by Terraform but read nowhere in app/: {unread}"


@pytest.mark.parametrize("variables", [APP, EVERY_OPTION], ids=["add-ons", "external services"])
def test_every_config_var_the_app_requires_in_production_is_set(variables):
    required = {name for name, spec in MANIFEST["env"].items() if spec.get("required")}
    # settings.py refuses to start a dyno without a database and a broker.
    required |= {"DATABASE_URL", "REDIS_URL"}
    provided = set(config_vars_set(variables)) | addon_config_vars(variables)
    assert required <= provided, required - provided


def test_unset_concurrency_lets_the_app_size_itself_from_the_dyno():
    names = set(config_vars_set(APP))
    assert not names & {"WEB_CONCURRENCY", "CELERY_WORKER_CONCURRENCY"}
    values = config_vars_set(EVERY_OPTION)
    assert values["WEB_CONCURRENCY"] == ("3", False)
    assert values["CELERY_WORKER_CONCURRENCY"] == ("2", False)
    assert values["DJANGO_DEBUG"] == ("true", False)


def test_secrets_are_sensitive_config_vars_and_plain_ones_hold_none():
    values = config_vars_set(EVERY_OPTION)
    generated = {name for name, spec in MANIFEST["env"].items() if spec.get("generator") == "secret"}
    assert generated == {"DJANGO_SECRET_KEY"}
    for name in generated:
        assert values[name] == (SECRET, True), name
    for name in ("REDIS_URL", "DATABASE_URL"):
        assert values[name] == (EVERY_OPTION[name.lower()], True), name
    for name, (value, sensitive) in values.items():
        if not sensitive:
            assert SECRET not in value and "pw@" not in value and "u:p@" not in value, name


def test_secret_key_is_fifty_letters_and_digits():
    assert CONFIG.argument("random_password", "django_secret_key", "length", APP) == 50
    assert CONFIG.argument("random_password", "django_secret_key", "special", APP) is False


def test_allowed_hosts_are_the_default_host_and_custom_domains():
    values = {**APP, "custom_domains": ["www.example.com", "example.com"]}
    hosts = config_vars_set(values)["DJANGO_ALLOWED_HOSTS"][0]
    assert hosts == "double-boiler-test-0123456789ab.herokuapp.com,www.example.com,example.com"
    domains = CONFIG.argument("heroku_domain", "custom", "for_each", values)
    assert sorted(domains) == ["example.com", "www.example.com"]


def test_add_on_plans_default_to_the_app_json_add_ons():
    manifest_plans = {addon["plan"] if isinstance(addon, dict) else addon for addon in MANIFEST["addons"]}
    terraform_plans = {
        CONFIG.argument("heroku_addon", name, "plan", APP)
        for (type_name, name) in CONFIG.resources
        if type_name == "heroku_addon"
    }
    assert terraform_plans == manifest_plans


def test_null_plan_leaves_the_add_on_out():
    assert CONFIG.argument("heroku_addon", "redis", "count", APP) == 1
    assert CONFIG.argument("heroku_addon", "redis", "count", EVERY_OPTION) == 0
    assert CONFIG.argument("heroku_addon", "postgres", "count", EVERY_OPTION) == 0
    assert "count" not in CONFIG.resources[("heroku_addon", "scheduler")].attributes  # Scheduler: always


def test_stack_and_buildpacks_come_from_app_json():
    assert CONFIG.argument("heroku_app", "this", "stack", APP) == MANIFEST["stack"]
    assert CONFIG.argument("heroku_app", "this", "stack", {**APP, "stack": "heroku-22"}) == "heroku-22"
    assert CONFIG.argument("heroku_app", "this", "buildpacks", APP) == [b["url"] for b in MANIFEST["buildpacks"]]


def test_build_waits_for_config_vars_and_add_ons_and_formations_wait_for_the_build():
    depends = schema_check.load_module(TERRAFORM).resources[("heroku_build", "this")][1]["depends_on"]
    assert set(depends) == {
        "${heroku_app_config_association.allowed_hosts}",
        "${heroku_addon.redis}",
        "${heroku_addon.postgres}",
    }
    for name in ("web", "worker"):
        body = schema_check.load_module(TERRAFORM).resources[("heroku_formation", name)][1]
        assert body["depends_on"] == ["${heroku_build.this}"], name


def test_build_source_is_a_tarball_beside_the_configuration_or_an_https_url():
    source = CONFIG.resources[("heroku_build", "this")].blocks_of("source")[0]
    scope = CONFIG.scope(APP)
    path = scope.evaluate(source.attributes["path"])
    assert Path(path) == TERRAFORM / "source.tar.gz"
    # Never an ancestor of the configuration (terraform-provider-heroku#269).
    assert not TERRAFORM.is_relative_to(Path(path))
    remote = CONFIG.scope({**APP, "source_url": "https://example.com/app.tar.gz"})
    assert remote.evaluate(source.attributes["path"]) is None
    assert remote.evaluate(source.attributes["url"]) == "https://example.com/app.tar.gz"


# ---------------------------------------------------------------------------------------------------------
# Scheduled jobs: app.json "cron" -> the entries to add in the Heroku Scheduler dashboard
# ---------------------------------------------------------------------------------------------------------


def scheduler_terms(schedule):
    """Heroku Scheduler's choices, from first principles: every 10 minutes; every hour at :00, :10 ... :50;
    every day at a UTC hour and minute 00 or 30. Returns (frequency, at) or None."""
    fields = schedule.split(" ")
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        return None
    minute, hour = fields[:2]
    if minute == "*/10" and hour == "*":
        return ("Every 10 minutes", None)
    if not re.fullmatch(r"[0-9]{1,2}", minute):
        return None
    if hour == "*":
        return ("Every hour at...", f":{int(minute):02d}") if int(minute) % 10 == 0 and int(minute) < 60 else None
    if re.fullmatch(r"[0-9]{1,2}", hour) and int(hour) < 24 and int(minute) in (0, 30):
        return ("Every day at...", f"{int(hour):02d}:{int(minute):02d} UTC")
    return None


def test_app_json_has_a_scheduled_job():
    assert MANIFEST["cron"], "app.json lists no cron job"
    assert all(set(job) >= {"command", "schedule"} for job in MANIFEST["cron"])


@pytest.mark.parametrize("job", MANIFEST["cron"], ids=[job["schedule"] for job in MANIFEST["cron"]])
def test_app_json_cron_schedule_is_expressible_in_heroku_scheduler(job):
    assert scheduler_terms(job["schedule"]) is not None, job


def test_scheduler_jobs_output_is_derived_from_app_json():
    expected = [
        {"command": job["command"], "schedule": job["schedule"], "frequency": terms[0], "at": terms[1]}
        for job in MANIFEST["cron"]
        for terms in [scheduler_terms(job["schedule"])]
    ]
    assert CONFIG.output("scheduler_jobs", APP) == expected


SCHEDULES = [
    "*/10 * * * *",
    "0 * * * *",
    "00 * * * *",
    "50 * * * *",
    "30 3 * * *",
    "0 0 * * *",
    "00 23 * * *",
    "30 9 * * *",
    "15 * * * *",
    "5 * * * *",
    "60 * * * *",
    "45 3 * * *",
    "30 24 * * *",
    "30 3 * * 1",
    "30 3 1 * *",
    "*/5 * * * *",
    "*/10 3 * * *",
    "0 */2 * * *",
    "@daily",
    "30 3 * *",
]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_terraform_translates_a_cron_schedule_as_heroku_scheduler_can_run_it(schedule):
    manifest = {**MANIFEST, "cron": [{"command": "python manage.py clearsessions", "schedule": schedule}]}
    (job,) = CONFIG.local("scheduler_jobs", APP, locals_={"manifest": manifest})
    terms = scheduler_terms(schedule)
    assert (job["frequency"], job["at"]) == (terms if terms else (None, None))


def test_plan_stops_on_a_schedule_heroku_scheduler_cannot_run():
    precondition = (
        CONFIG.resources[("heroku_addon", "scheduler")].blocks_of("lifecycle")[0].blocks_of("precondition")[0]
    )
    good = CONFIG.scope(APP)
    assert good.evaluate(precondition.attributes["condition"]) is True
    manifest = {
        **MANIFEST,
        "cron": [*MANIFEST["cron"], {"command": "python manage.py prune", "schedule": "15 * * * *"}],
    }
    bad = CONFIG.scope(APP, locals_={"manifest": manifest})
    assert bad.evaluate(precondition.attributes["condition"]) is False
    assert '"15 * * * *" (python manage.py prune)' in bad.evaluate(precondition.attributes["error_message"])


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
    failed, _ = run_checkov(FIXTURES / "checkov_unpinned_module")
    assert "CKV_TF_1" in {check["check_id"] for check in failed}


# ---------------------------------------------------------------------------------------------------------
# Terraform itself, where it is installed (never on the project's machines: no binary, no registry)
# ---------------------------------------------------------------------------------------------------------

TERRAFORM_BIN = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(
    TERRAFORM_BIN is None,
    reason="terraform is not on PATH: fmt -check, init + validate and the console cross-checks run where it is",
)


def _terraform(directory, *arguments, stdin=None):
    return subprocess.run(
        [TERRAFORM_BIN, *arguments],
        cwd=directory,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        # No update check (checkpoint) calls home from a test run.
        env={**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"},
    )


def _init_or_skip(directory):
    init = _terraform(directory, "init", "-backend=false", "-input=false", "-no-color")
    if init.returncode != 0 and re.search(
        r"could not connect to|Failed to query available provider packages", init.stderr
    ):
        pytest.skip(
            f"terraform init cannot download heroku/heroku and hashicorp/random here (no registry): {directory}"
        )
    assert init.returncode == 0, init.stdout + init.stderr


@needs_terraform
def test_terraform_fmt_finds_nothing_to_change():
    result = _terraform(TERRAFORM, "fmt", "-check", "-recursive", "-diff", "-no-color")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_terraform
@pytest.mark.parametrize("directory", CONFIGURATIONS, ids=_ids(CONFIGURATIONS))
def test_terraform_validate_accepts_the_configuration(tmp_path, directory):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "terraform", copy / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tar.gz"))
    shutil.copy(REPO / "app.json", copy / "app.json")
    workdir = copy / directory.relative_to(REPO)
    _init_or_skip(workdir)
    validate = _terraform(workdir, "validate", "-no-color")
    assert validate.returncode == 0, validate.stdout + validate.stderr


# Without providers Terraform can still evaluate what needs none: the variables (with their validations) and
# the locals that read no resource. That is a real-Terraform cross-check of everything hcl_eval evaluates above,
# and it runs wherever the binary does, registry or not.


@pytest.fixture(scope="module")
def providerless(tmp_path_factory):
    if TERRAFORM_BIN is None:
        pytest.skip("terraform is not on PATH")
    root = tmp_path_factory.mktemp("providerless")
    workdir = root / "terraform"
    workdir.mkdir()
    shutil.copy(REPO / "app.json", root / "app.json")
    shutil.copy(TERRAFORM / "variables.tf", workdir / "variables.tf")
    text = (TERRAFORM / "main.tf").read_text()
    start = text.index("locals {\n")
    body = text[start + len("locals {\n") : text.index("\n}\n", start)]
    chunks, current = [], []
    for line in body.split("\n"):
        if re.match(r"^  [a-z_]+\s*=", line) and current:
            chunks.append("\n".join(current))
            current = []
        current.append(line)
    chunks.append("\n".join(current))
    # Keep the locals that read no resource, directly or through a local that does.
    dropped, kept = set(), chunks
    while True:
        keep = [
            chunk
            for chunk in kept
            if not schema_check.RESOURCE_REF.search(chunk)
            and not {m.group(1) for m in schema_check.LOCAL_REF.finditer(chunk)} & dropped
        ]
        dropped |= {re.match(r"^\s*(?:#.*\n\s*)*([a-z_]+)", chunk).group(1) for chunk in kept if chunk not in keep}
        if keep == kept:
            break
        kept = keep
    assert any("scheduler_jobs =" in chunk for chunk in kept) and any("config_vars =" in chunk for chunk in kept)
    (workdir / "locals.tf").write_text("locals {\n" + "\n".join(kept) + "\n}\n")
    (workdir / "probe.tf").write_text(
        'output "probe" {\n  value = { scheduler_jobs = local.scheduler_jobs, config_vars = local.config_vars }\n}\n'
    )
    return workdir


def _apply(workdir, variables):
    """terraform apply of the provider-free copy (nothing to create, so no provider is needed): it runs every
    variable validation, then evaluates the probe output. Returns (exit status, probe value, errors)."""
    var_file = workdir / "case.tfvars.json"
    var_file.write_text(json.dumps(variables))
    result = _terraform(workdir, "apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={var_file}")
    errors = " ".join((result.stdout + result.stderr).split())
    if result.returncode != 0:
        return result.returncode, None, errors
    output = _terraform(workdir, "output", "-no-color", "-json", "probe")
    assert output.returncode == 0, output.stderr
    return 0, json.loads(output.stdout), errors


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_terraform_accepts_valid_inputs_and_evaluates_like_hcl_eval(providerless, case):
    variables = {**APP, **ACCEPTED[case]}
    code, probe, errors = _apply(providerless, variables)
    assert code == 0, errors
    assert probe == {
        "scheduler_jobs": CONFIG.local("scheduler_jobs", variables),
        "config_vars": CONFIG.local("config_vars", variables),
    }


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_terraform_refuses_invalid_input_with_the_same_message(providerless, case):
    overrides, expected = REJECTED[case]
    code, _, errors = _apply(providerless, {**APP, **overrides})
    assert code != 0
    assert errors.count("Error: Invalid value for variable") == 1, errors
    # Terraform wraps long messages: compare with whitespace folded.
    (message,) = CONFIG.validation_errors({**APP, **overrides})
    assert " ".join(message.split()) in errors, (message, errors)
    assert expected in errors


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_terraform_translates_cron_like_hcl_eval(providerless, schedule):
    manifest = {**MANIFEST, "cron": [{"command": "python manage.py clearsessions", "schedule": schedule}]}
    (providerless.parent / "app.json").write_text(json.dumps(manifest))
    try:
        code, probe, errors = _apply(providerless, APP)
    finally:
        shutil.copy(REPO / "app.json", providerless.parent / "app.json")
    assert code == 0, errors
    assert probe["scheduler_jobs"] == CONFIG.local("scheduler_jobs", APP, locals_={"manifest": manifest})


@needs_terraform
def test_terraform_console_agrees_with_the_offline_evaluation_of_the_full_configuration(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(TERRAFORM, copy / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tar.gz"))
    shutil.copy(REPO / "app.json", copy / "app.json")
    _init_or_skip(copy / "terraform")
    jobs = _terraform(
        copy / "terraform", "console", "-var", f"app_name={APP['app_name']}", stdin="jsonencode(local.scheduler_jobs)\n"
    )
    assert jobs.returncode == 0, jobs.stderr
    assert json.loads(json.loads(jobs.stdout.strip().splitlines()[-1])) == CONFIG.local("scheduler_jobs", APP)
