output "web_url" {
  description = "Where the app answers on its herokuapp.com host name."
  value       = module.double_boiler.web_url
}

output "dns_targets" {
  description = "The DNS target of each custom domain."
  value       = module.double_boiler.dns_targets
}

output "scheduler_jobs" {
  description = "The jobs to add in the Heroku Scheduler dashboard."
  value       = module.double_boiler.scheduler_jobs
}
