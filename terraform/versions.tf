terraform {
  # 1.9 is the first release whose variable validations may refer to other variables (layout vs. quantity,
  # add-on plan vs. the URL that replaces it).
  required_version = ">= 1.9"

  required_providers {
    # 5.x references apps by UUID (`app_id = heroku_app.this.id`), not by name.
    heroku = {
      source  = "heroku/heroku"
      version = "~> 5.3"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.9"
    }
  }
}
