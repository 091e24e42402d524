output "app_id" {
  description = "UUID of the Heroku app (what other heroku_* resources take as app_id)."
  value       = heroku_app.this.id
}

output "app_name" {
  description = "Name of the Heroku app (what the heroku CLI takes as --app)."
  value       = heroku_app.this.name
}

output "web_url" {
  description = "URL of the app on its default *.herokuapp.com host name."
  value       = heroku_app.this.web_url
}

output "allowed_hosts" {
  description = "Host names the app answers to (DJANGO_ALLOWED_HOSTS)."
  value       = local.allowed_hosts
}

output "dns_targets" {
  description = "For each custom domain, the DNS target its CNAME (or ALIAS) record must point at."
  value       = { for hostname, domain in heroku_domain.custom : hostname => domain.cname }
}

output "release_id" {
  description = "ID of the release the last heroku_build created, once its release phase succeeded."
  value       = terraform_data.release.output
}

output "scheduler_jobs" {
  description = "Heroku Scheduler has no API: add each of these jobs in the dashboard (heroku addons:open scheduler --app <app_name>), picking the frequency and time shown. They come from app.json \"cron\"."
  value       = local.scheduler_jobs
}

output "config_vars" {
  description = "Config vars set by this configuration, secrets included (sensitive: read with `terraform output -json config_vars`)."
  value       = merge(local.config_vars, { DJANGO_SECRET_KEY = random_password.django_secret_key.result }, local.external_config_vars, heroku_app_config_association.allowed_hosts.vars)
  sensitive   = true
}
