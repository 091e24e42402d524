# What this configuration derives from its inputs and from app.json, and nothing else: nothing here reads a
# heroku resource or needs a provider but Terraform's own, so the tests evaluate this file with variables.tf
# alone under `terraform test`.

locals {
  # app.json is the manifest that Heroku, this configuration and the Ansible roles all read.
  manifest = jsondecode(file("${path.module}/../app.json"))

  stack      = coalesce(var.stack, local.manifest.stack)
  buildpacks = [for buildpack in local.manifest.buildpacks : buildpack.url]

  # app.json "addons": objects with "plan" and "as" (the config var prefix, e.g. REDIS -> REDIS_URL), or a
  # bare plan slug. The add-on plan defaults and the config vars the add-ons set are read from it.
  manifest_addons = [for addon in local.manifest.addons : { plan = try(tostring(addon.plan), tostring(addon)), as = try(tostring(addon.as), null) }]
  manifest_plan = {
    for service in ["heroku-redis", "heroku-postgresql", "scheduler"] :
    service => one([for addon in local.manifest_addons : addon.plan if startswith(addon.plan, "${service}:")])
  }
  addon_config_vars = [for addon in local.manifest_addons : "${addon.as}_URL" if addon.as != null]

  # Config var names nobody may set through extra_config_vars: every one app.json "env" declares (this
  # configuration manages them), the add-ons' URLs, and the ones Heroku sets in each dyno itself.
  reserved_config_vars = sort(distinct(concat(keys(local.manifest.env), local.addon_config_vars, ["PORT", "DYNO", "DYNO_RAM"])))

  # null picks app.json's plan; "none" leaves the add-on out (and the matching *_url variable replaces it).
  redis_plan    = var.redis_plan == "none" ? null : coalesce(var.redis_plan, local.manifest_plan["heroku-redis"])
  postgres_plan = var.postgres_plan == "none" ? null : coalesce(var.postgres_plan, local.manifest_plan["heroku-postgresql"])

  # Config vars the app reads (app/settings.py); their descriptions live in app.json "env". Each app.json
  # "value" is the default (so a new config var needs no edit here), this module's own variables override
  # theirs, and DJANGO_ALLOWED_HOSTS has its own association (main.tf). REDIS_URL and DATABASE_URL come from
  # the add-ons, or from redis_url / database_url when a plan is "none".
  config_vars = merge(
    { for name, spec in local.manifest.env : name => tostring(spec.value) if can(spec.value) && name != "DJANGO_ALLOWED_HOSTS" },
    var.extra_config_vars,
    {
      DJANGO_DEBUG = tostring(var.django_debug)
      DYNO_LAYOUT  = var.layout
    },
    var.web_concurrency == null ? {} : { WEB_CONCURRENCY = tostring(var.web_concurrency) },
    var.celery_worker_concurrency == null ? {} : { CELERY_WORKER_CONCURRENCY = tostring(var.celery_worker_concurrency) },
  )
  external_config_vars = merge(
    local.redis_plan == null ? { REDIS_URL = var.redis_url } : {},
    local.postgres_plan == null ? { DATABASE_URL = var.database_url } : {},
  )

  # Dynos. Beat runs in exactly one dyno: the web dyno when packed (so web stays at 1), the one worker dyno
  # when split. The worker formation is managed in both layouts: removing a heroku_formation from the
  # configuration does not scale it down (the provider's delete only forgets it), so packed keeps it at 0.
  formations = {
    web    = { quantity = var.web_quantity, size = var.dyno_size }
    worker = { quantity = var.layout == "split" ? 1 : 0, size = coalesce(var.worker_dyno_size, var.dyno_size) }
  }
  # Heroku's tiers: eco, basic, and the professional sizes (standard-*, performance-*). Preboot (the new
  # release's dynos take traffic before the old ones stop) exists on the professional sizes only.
  professional = !contains(["eco", "basic"], var.dyno_size)
  preboot      = local.professional

  # Heroku Scheduler has no API: the jobs are app.json "cron" entries, translated into the three kinds of
  # schedule its dashboard offers. The one grammar (tests/fixtures/schedules.json): "*/10 * * * *"; "M * * * *"
  # with M in 0, 10, ..., 50; "M H * * *" with M 0 or 30 (UTC). Anything else gets frequency = null and stops
  # the plan (terraform_data.scheduler_jobs names it).
  cron_jobs = [
    for job in try(local.manifest.cron, []) : {
      command          = job.command
      schedule         = job.schedule
      fields           = split(" ", job.schedule)
      every_10_minutes = can(regex("^\\*/10 \\* \\* \\* \\*$", job.schedule))
      hourly           = can(regex("^[0-5]?0 \\* \\* \\* \\*$", job.schedule))
      daily            = can(regex("^(0?0|30) (0?[0-9]|1[0-9]|2[0-3]) \\* \\* \\*$", job.schedule))
    }
  ]
  scheduler_jobs = [
    for job in local.cron_jobs : {
      command  = job.command
      schedule = job.schedule
      frequency = (
        job.every_10_minutes ? "Every 10 minutes" :
        job.hourly ? "Every hour at..." :
        job.daily ? "Every day at..." :
        null
      )
      at = (
        job.hourly ? format(":%02d", tonumber(job.fields[0])) :
        job.daily ? format("%02d:%02d UTC", tonumber(job.fields[1]), tonumber(job.fields[0])) :
        null
      )
    }
  ]
  unschedulable_jobs = [for job in local.scheduler_jobs : "\"${job.schedule}\" (${job.command})" if job.frequency == null]
}

# Stops the plan when an app.json schedule is not one Heroku Scheduler can run, naming it; the Scheduler
# add-on waits for it. The jobs themselves are entered by hand from the `scheduler_jobs` output.
resource "terraform_data" "scheduler_jobs" {
  input = local.scheduler_jobs

  lifecycle {
    precondition {
      condition     = length(local.unschedulable_jobs) == 0
      error_message = "Every app.json cron schedule must be one Heroku Scheduler can run: \"*/10 * * * *\", \"M * * * *\" with M in 0,10,...,50, or \"M H * * *\" with M 0 or 30 (UTC). These are not: ${join(", ", local.unschedulable_jobs)}."
    }
  }
}
