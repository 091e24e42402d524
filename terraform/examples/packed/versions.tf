terraform {
  required_version = ">= 1.9"

  required_providers {
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
