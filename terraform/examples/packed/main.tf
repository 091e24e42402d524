# The smallest useful Double Boiler: one basic dyno runs gunicorn, the Celery worker and beat, with the
# Key-Value Store, Postgres and Scheduler add-ons. From this folder:
#
#   export HEROKU_API_KEY=...        # heroku authorizations:create --short
#   git -C ../../.. archive --format=tar.gz --output terraform/source.tar.gz HEAD
#   terraform init
#   terraform apply -var app_name=my-double-boiler
#
# Copied elsewhere, point `source` at this repository instead of "../..".

# Credentials come from HEROKU_API_KEY (or ~/.netrc), never from this file.
provider "heroku" {}

module "double_boiler" {
  source = "../.."

  app_name = var.app_name
  region   = var.region
}
