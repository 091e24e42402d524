# The smallest useful Double Boiler: one basic dyno runs gunicorn, the Celery worker and beat, with the
# Key-Value Store, Postgres and Scheduler add-ons. From this folder:
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
}
