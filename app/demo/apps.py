from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "app.demo"
    verbose_name = "Job storm demo"
