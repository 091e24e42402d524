# Test equipment, not part of the kit: copied beside terraform/variables.tf and terraform/locals.tf (and
# app.json one folder up) so that `terraform test` can read what locals.tf derives, with no provider.

output "stack" {
  value = local.stack
}

output "buildpacks" {
  value = local.buildpacks
}

output "plans" {
  value = { redis = local.redis_plan, postgres = local.postgres_plan, scheduler = local.manifest_plan["scheduler"] }
}

output "reserved_config_vars" {
  value = local.reserved_config_vars
}

output "config_vars" {
  value = local.config_vars
}

output "external_config_vars" {
  value     = local.external_config_vars
  sensitive = true
}

output "formations" {
  value = local.formations
}

output "preboot" {
  value = local.preboot
}

output "scheduler_jobs" {
  value = local.scheduler_jobs
}
