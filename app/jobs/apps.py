from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "app.jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Load the Celery app whenever Django starts, so @shared_task binds to it (Celery's Django example
        # does this from the project package's __init__, which the dyno launcher must not pay for).
        import app.celery  # noqa: F401
