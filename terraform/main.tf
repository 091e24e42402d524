locals {
  # app.json is the manifest that Heroku, this configuration and the Ansible roles all read (DESIGN.md).
  manifest = jsondecode(file("${path.module}/../app.json"))

  stack = coalesce(var.stack, local.manifest.stack)

  # Config vars the app reads (app/settings.py); their descriptions live in app.json "env". REDIS_URL and
  # DATABASE_URL come from the add-ons, or from redis_url / database_url when a plan is null.
  config_vars = merge(
    var.extra_config_vars,
    {
      DJANGO_DEBUG = tostring(var.django_debug)
      DYNO_LAYOUT  = var.layout
    },
    var.web_concurrency == null ? {} : { WEB_CONCURRENCY = tostring(var.web_concurrency) },
    var.celery_worker_concurrency == null ? {} : { CELERY_WORKER_CONCURRENCY = tostring(var.celery_worker_concurrency) },
  )

  sensitive_config_vars = merge(
    { DJANGO_SECRET_KEY = random_password.django_secret_key.result },
    var.redis_plan == null ? { REDIS_URL = var.redis_url } : {},
    var.postgres_plan == null ? { DATABASE_URL = var.database_url } : {},
  )

  # Heroku gives new apps a default host name with a random suffix (name-0123456789ab.herokuapp.com), so the
  # host comes from the app's web_url rather than from its name.
  default_host  = regex("^https?://([^/:]+)", heroku_app.this.web_url)[0]
  allowed_hosts = distinct(concat([local.default_host], var.custom_domains))

  source_archive = coalesce(var.source_archive, "${path.module}/source.tar.gz")

  # Scheduler has no API: the jobs are app.json "cron" entries, translated into the three kinds of schedule
  # the Scheduler dashboard offers. Anything else gets frequency = null and stops the plan (see the scheduler
  # add-on's precondition).
  cron_jobs = [
    for job in try(local.manifest.cron, []) : {
      command  = job.command
      schedule = job.schedule
      fields   = split(" ", job.schedule)
      # Every 10 minutes.
      every_10_minutes = can(regex("^\\*/10 \\* \\* \\* \\*$", job.schedule))
      # Every hour at :00, :10, ... :50.
      hourly = can(regex("^[0-5]?0 \\* \\* \\* \\*$", job.schedule))
      # Every day at HH:00 or HH:30 UTC.
      daily = can(regex("^(0?0|30) (0?[0-9]|1[0-9]|2[0-3]) \\* \\* \\*$", job.schedule))
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
}

# ---------------------------------------------------------------------------------------------------------
# The app and its config vars
# ---------------------------------------------------------------------------------------------------------

# Django's signing key, generated once and kept in state. 50 characters like Django's own
# get_random_secret_key(); no special characters, so the value survives shells, .env files and
# `heroku config:set` without quoting. Letters and digits alone still give about 297 bits.
resource "random_password" "django_secret_key" {
  length  = 50
  special = false
}

resource "heroku_app" "this" {
  name       = var.app_name
  region     = var.region
  stack      = local.stack
  acm        = var.acm
  buildpacks = [for buildpack in local.manifest.buildpacks : buildpack.url]

  config_vars           = local.config_vars
  sensitive_config_vars = local.sensitive_config_vars

  dynamic "organization" {
    for_each = var.team == null ? [] : [var.team]
    content {
      name = organization.value
    }
  }
}

# DJANGO_ALLOWED_HOSTS needs the app's own host name, which exists only once the app does: a config var of
# heroku_app cannot refer to heroku_app itself, so this one is set by a second resource.
resource "heroku_app_config_association" "allowed_hosts" {
  app_id = heroku_app.this.id

  vars = {
    DJANGO_ALLOWED_HOSTS = join(",", local.allowed_hosts)
  }
}

resource "heroku_domain" "custom" {
  for_each = toset(var.custom_domains)

  app_id   = heroku_app.this.id
  hostname = each.value
}

# ---------------------------------------------------------------------------------------------------------
# Add-ons
# ---------------------------------------------------------------------------------------------------------

# Sets REDIS_URL (rediss://, self-signed certificate: the settings turn certificate checks off for it).
resource "heroku_addon" "redis" {
  count = var.redis_plan == null ? 0 : 1

  app_id = heroku_app.this.id
  plan   = var.redis_plan
}

# Sets DATABASE_URL.
resource "heroku_addon" "postgres" {
  count = var.postgres_plan == null ? 0 : 1

  app_id = heroku_app.this.id
  plan   = var.postgres_plan
}

# Runs app.json's cron jobs in one-off dynos. Scheduler has no API, so its jobs are entered by hand from the
# `scheduler_jobs` output.
resource "heroku_addon" "scheduler" {
  app_id = heroku_app.this.id
  plan   = "scheduler:standard"

  lifecycle {
    precondition {
      condition     = alltrue([for job in local.scheduler_jobs : job.frequency != null])
      error_message = "Every app.json cron schedule must be one Heroku Scheduler can run: \"*/10 * * * *\", \"M * * * *\" with M in 0,10,...,50, or \"M H * * *\" with M 0 or 30 (UTC). These are not: ${join(", ", [for job in local.scheduler_jobs : "\"${job.schedule}\" (${job.command})" if job.frequency == null])}."
    }
  }
}

# ---------------------------------------------------------------------------------------------------------
# Code: build, release phase, dynos
# ---------------------------------------------------------------------------------------------------------

# Builds the tarball with the Python buildpack and releases it; the release phase (Procfile `release:`, the
# migrations) runs then. It waits for the config vars and add-ons, because the release dyno counts as
# production and refuses to start without DJANGO_SECRET_KEY, DATABASE_URL and REDIS_URL.
# The source is a tarball, never a directory above this configuration (terraform-provider-heroku#269).
resource "heroku_build" "this" {
  app_id = heroku_app.this.id

  source {
    path = var.source_url == null ? local.source_archive : null
    url  = var.source_url
  }

  depends_on = [
    heroku_app_config_association.allowed_hosts,
    heroku_addon.redis,
    heroku_addon.postgres,
  ]
}

# A formation can only be scaled once a release has the process type ("Couldn't find that process type"),
# hence depends_on the build.
resource "heroku_formation" "web" {
  app_id   = heroku_app.this.id
  type     = "web"
  quantity = var.web_quantity
  size     = var.dyno_size

  depends_on = [heroku_build.this]
}

# Managed in both layouts: removing a heroku_formation from the configuration does not scale it down (the
# provider's delete only forgets it), so "packed" keeps the worker at 0 explicitly. In "split" it is 1,
# never more, because beat runs in it.
resource "heroku_formation" "worker" {
  app_id   = heroku_app.this.id
  type     = "worker"
  quantity = var.layout == "split" ? 1 : 0
  size     = coalesce(var.worker_dyno_size, var.dyno_size)

  depends_on = [heroku_build.this]
}
