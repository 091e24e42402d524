# Double Boiler outgrown one dyno: web dynos run gunicorn only, and one worker dyno runs the Celery worker and
# beat. Same Procfiles, same code; only the layout and the dyno sizes change. From this folder:
#
#   export HEROKU_API_KEY=...        # heroku authorizations:create --short
#   git -C ../../.. archive --format=tar.gz --output terraform/source.tar.gz HEAD
#   terraform init
#   terraform apply -var app_name=my-double-boiler
#
# Copied elsewhere, point `source` at this repository instead of "../..".

# Credentials come from HEROKU_API_KEY (or ~/.netrc), never from this file. The customizations keep every
# config var and add-on credential out of the state file: the provider stores only the ones this
# configuration sets (the module's config_vars output), not the app's whole environment.
provider "heroku" {
  customizations {
    set_app_all_config_vars_in_state = false
    set_addon_config_vars_in_state   = false
  }
}

module "double_boiler" {
  source = "../.."

  app_name = var.app_name
  region   = var.region

  layout           = "split"
  dyno_size        = "standard-1x"
  worker_dyno_size = "standard-2x"
  web_quantity     = 2

  # Plans with room for a production load; any Key-Value Store and Postgres plan slug works.
  redis_plan    = "heroku-redis:premium-0"
  postgres_plan = "heroku-postgresql:standard-0"

  custom_domains = var.custom_domains
  acm            = length(var.custom_domains) > 0
}
