output "web_url" {
  description = "Where the app answers."
  value       = module.double_boiler.web_url
}

output "scheduler_jobs" {
  description = "The jobs to add in the Heroku Scheduler dashboard."
  value       = module.double_boiler.scheduler_jobs
}
