from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "app.jobs"
    verbose_name = "Jobs"
