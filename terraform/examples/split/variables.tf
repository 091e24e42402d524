variable "app_name" {
  description = "Name of the Heroku app to create (3 to 30 characters: lowercase letters, digits and dashes)."
  type        = string
  nullable    = false
}

variable "region" {
  description = "Common Runtime region: \"us\" or \"eu\"."
  type        = string
  default     = "us"
  nullable    = false
}

variable "custom_domains" {
  description = "Host names of your own for the app, e.g. [\"www.example.com\"]; ACM issues their certificates."
  type        = list(string)
  default     = []
  nullable    = false
}
