# What terraform/locals.tf derives from the inputs and app.json: formations per layout, preboot per tier,
# add-on plans, config vars. Run by tests/test_terraform.py on a provider-free copy (see probe.tf).

variables {
  app_name = "double-boiler-test"
}

run "packed_runs_one_web_dyno_and_no_worker" {
  command = apply

  assert {
    condition     = output.formations == { web = { quantity = 1, size = "basic" }, worker = { quantity = 0, size = "basic" } }
    error_message = "packed: beat runs in the one web dyno, so web is 1 and the worker formation 0, got ${jsonencode(output.formations)}"
  }

  assert {
    condition     = output.config_vars == { DJANGO_DEBUG = "false", DYNO_LAYOUT = "packed", LOG_EACH_TASK = "false" }
    error_message = "the defaults set app.json's values only (DJANGO_DEBUG, DYNO_LAYOUT, LOG_EACH_TASK: the app sizes its concurrency), got ${jsonencode(output.config_vars)}"
  }

  assert {
    condition     = !output.preboot
    error_message = "basic dynos have no preboot"
  }
}

run "split_runs_one_worker_dyno_on_its_own_size" {
  command = apply

  variables {
    layout           = "split"
    dyno_size        = "standard-1x"
    worker_dyno_size = "performance-m"
    web_quantity     = 3
  }

  assert {
    condition     = output.formations == { web = { quantity = 3, size = "standard-1x" }, worker = { quantity = 1, size = "performance-m" } }
    error_message = "split: web scales, the one worker dyno runs beat, got ${jsonencode(output.formations)}"
  }

  assert {
    condition     = output.config_vars.DYNO_LAYOUT == "split"
    error_message = "DYNO_LAYOUT tells the dynos the layout"
  }

  assert {
    condition     = output.preboot
    error_message = "standard and performance dynos get preboot"
  }
}

run "worker_size_defaults_to_the_web_size" {
  command = apply

  variables {
    layout    = "split"
    dyno_size = "standard-2x"
  }

  assert {
    condition     = output.formations.worker == { quantity = 1, size = "standard-2x" }
    error_message = "worker_dyno_size null means dyno_size, got ${jsonencode(output.formations.worker)}"
  }
}

run "preboot_follows_the_tier_not_the_layout" {
  command = apply

  variables {
    dyno_size = "performance-l"
  }

  assert {
    condition     = output.preboot && output.formations.web.quantity == 1
    error_message = "a packed performance dyno gets preboot too"
  }
}

run "add_on_plans_and_stack_come_from_app_json" {
  command = apply

  assert {
    condition = output.plans == {
      redis     = [for a in jsondecode(file("../app.json")).addons : a.plan if can(a.plan) && startswith(try(a.plan, ""), "heroku-redis:")][0]
      postgres  = [for a in jsondecode(file("../app.json")).addons : a.plan if can(a.plan) && startswith(try(a.plan, ""), "heroku-postgresql:")][0]
      scheduler = "scheduler:standard"
    }
    error_message = "the add-on plans default to app.json's, got ${jsonencode(output.plans)}"
  }

  assert {
    condition     = output.stack == jsondecode(file("../app.json")).stack && output.buildpacks == ["heroku/python"]
    error_message = "stack and buildpacks come from app.json"
  }
}

run "a_plan_of_its_own_wins" {
  command = apply

  variables {
    redis_plan    = "heroku-redis:premium-0"
    postgres_plan = "heroku-postgresql:standard-0"
  }

  assert {
    condition     = output.plans.redis == "heroku-redis:premium-0" && output.plans.postgres == "heroku-postgresql:standard-0"
    error_message = "an explicit plan replaces app.json's"
  }
}

run "none_leaves_the_add_ons_out_and_sets_the_urls" {
  command = apply

  variables {
    redis_plan    = "none"
    redis_url     = "rediss://:pw@redis.example.com:6380"
    postgres_plan = "none"
    database_url  = "postgres://u:p@db.example.com/app"
  }

  assert {
    condition     = output.plans.redis == null && output.plans.postgres == null
    error_message = "\"none\" means no add-on"
  }

  assert {
    condition     = nonsensitive(jsonencode(output.external_config_vars)) == jsonencode({ REDIS_URL = "rediss://:pw@redis.example.com:6380", DATABASE_URL = "postgres://u:p@db.example.com/app" })
    error_message = "the URLs replace the add-ons' config vars"
  }
}

run "reserved_config_var_names_are_app_json_env_and_add_on_urls" {
  command = apply

  assert {
    condition = toset(output.reserved_config_vars) == setunion(
      keys(jsondecode(file("../app.json")).env), ["REDIS_URL", "DATABASE_URL", "PORT", "DYNO", "DYNO_RAM"]
    )
    error_message = "reserved: app.json env, the add-ons' URLs and Heroku's own, got ${jsonencode(output.reserved_config_vars)}"
  }
}

run "explicit_concurrency_and_extras" {
  command = apply

  variables {
    web_concurrency           = 3
    celery_worker_concurrency = 8
    extra_config_vars         = { SENTRY_ENVIRONMENT = "production" }
  }

  assert {
    condition     = output.config_vars == { DJANGO_DEBUG = "false", DYNO_LAYOUT = "packed", LOG_EACH_TASK = "false", WEB_CONCURRENCY = "3", CELERY_WORKER_CONCURRENCY = "8", SENTRY_ENVIRONMENT = "production" }
    error_message = "got ${jsonencode(output.config_vars)}"
  }
}
