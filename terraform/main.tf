locals {
  # Heroku gives new apps a default host name with a random suffix (name-0123456789ab.herokuapp.com), so the
  # host comes from the app's web_url rather than from its name. The other locals are in locals.tf.
  default_host  = regex("^https?://([^/:]+)", heroku_app.this.web_url)[0]
  allowed_hosts = distinct(concat([local.default_host], var.custom_domains))

  source_archive = coalesce(var.source_archive, "${path.module}/source.tar.gz")

  # The few Platform API calls the provider has no resource for (scripts/heroku-api.sh; curl, and the API key
  # from HEROKU_API_KEY or ~/.netrc like the provider).
  heroku_api = "sh ${path.module}/scripts/heroku-api.sh"
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
  buildpacks = local.buildpacks

  config_vars           = local.config_vars
  sensitive_config_vars = merge({ DJANGO_SECRET_KEY = random_password.django_secret_key.result }, local.external_config_vars)

  # `acm` is not set here: the provider would turn ACM on right after creating the app, before any dyno runs
  # (terraform_data.acm below turns it on once the web formation is scaled).

  dynamic "organization" {
    for_each = var.team == null ? [] : [var.team]
    content {
      name = organization.value
    }
  }

  lifecycle {
    # A changed team would replace the app, and with it the add-ons and their data: `team` is read at
    # creation only, and check "team" warns when the app's team differs.
    ignore_changes = [organization]
  }
}

check "team" {
  assert {
    condition     = try(heroku_app.this.organization[0].name, null) == var.team
    error_message = "team is ${coalesce(var.team, "null (personal account)")}, but app ${var.app_name} belongs to ${try(heroku_app.this.organization[0].name, "a personal account")}. This configuration never moves an app (a new one would start with empty add-ons): move it with `heroku apps:transfer --app ${var.app_name} <team>`, or set team back."
  }
}

# DJANGO_ALLOWED_HOSTS needs the app's own host name, which exists only once the app does: a config var of
# heroku_app cannot refer to heroku_app itself, so this one is set by a second resource. Every change of it
# makes a release, whose release phase (`migrate`) needs DATABASE_URL and REDIS_URL: it depends on the
# add-ons so that `terraform destroy` removes it (one more release) while they still exist.
resource "heroku_app_config_association" "allowed_hosts" {
  app_id = heroku_app.this.id

  vars = {
    DJANGO_ALLOWED_HOSTS = join(",", local.allowed_hosts)
  }

  depends_on = [heroku_addon.redis, heroku_addon.postgres]
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
  count = local.redis_plan == null ? 0 : 1

  app_id = heroku_app.this.id
  plan   = local.redis_plan
}

# Sets DATABASE_URL.
resource "heroku_addon" "postgres" {
  count = local.postgres_plan == null ? 0 : 1

  app_id = heroku_app.this.id
  plan   = local.postgres_plan
}

# Runs app.json's cron jobs in one-off dynos. Scheduler has no API, so its jobs are entered by hand from the
# `scheduler_jobs` output.
resource "heroku_addon" "scheduler" {
  app_id = heroku_app.this.id
  plan   = local.manifest_plan["scheduler"]

  # Only once app.json's schedules are ones Scheduler can run (terraform_data.scheduler_jobs, locals.tf).
  depends_on = [terraform_data.scheduler_jobs]
}

# ---------------------------------------------------------------------------------------------------------
# Code: build, release phase, dynos
# ---------------------------------------------------------------------------------------------------------

# Builds the tarball with the Python buildpack and creates a release; the release phase (Procfile `release:`,
# the migrations) runs then. It waits for the config vars and add-ons, because the release dyno counts as
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

# heroku_build waits for the build only, not for its release: the release phase may still be running, or
# have failed. This waits for the release and fails the apply, naming the release and its status, unless it
# succeeded; the formations, preboot and ACM come after it.
resource "terraform_data" "release" {
  input = heroku_build.this.release_id

  provisioner "local-exec" {
    command = "${local.heroku_api} wait-release ${heroku_app.this.id} ${heroku_build.this.release_id}"
  }
}

# Preboot: on a new release, the new dynos take requests once they bind $PORT, and only then do the old ones
# stop (zero-downtime deploys). Heroku has it on the professional dyno sizes only.
resource "heroku_app_feature" "preboot" {
  count = local.preboot ? 1 : 0

  app_id = heroku_app.this.id
  name   = "preboot"

  depends_on = [terraform_data.release]
}

# A formation can only be scaled once a release has the process type ("Couldn't find that process type"),
# and only a release whose release phase succeeded should get dynos: hence depends_on the release.
resource "heroku_formation" "web" {
  app_id   = heroku_app.this.id
  type     = "web"
  quantity = local.formations.web.quantity
  size     = local.formations.web.size

  depends_on = [terraform_data.release]
}

# Managed in both layouts (locals.tf): 1 in split, never more, because beat runs in it; 0 in packed.
resource "heroku_formation" "worker" {
  app_id   = heroku_app.this.id
  type     = "worker"
  quantity = local.formations.worker.quantity
  size     = local.formations.worker.size

  depends_on = [terraform_data.release]
}

# Automated Certificate Management, once the web formation runs on a size that has it (variables.tf refuses
# eco). Turning `acm` off later turns ACM off.
resource "terraform_data" "acm" {
  count = var.acm ? 1 : 0

  input = heroku_app.this.id

  provisioner "local-exec" {
    command = "${local.heroku_api} acm-enable ${self.input}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "sh ${path.module}/scripts/heroku-api.sh acm-disable ${self.input}"
  }

  depends_on = [heroku_formation.web, heroku_domain.custom]
}
