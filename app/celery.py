"""The Celery app, laid out as Celery's own Django example does.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
Every Celery setting lives in app/settings.py under the CELERY_ prefix.
"""

import os
import signal

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

app = Celery("app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def leave_shutdown_to_the_parent(**_):
    """With the prefork pool (the default pool is threads, see settings): Heroku sends SIGTERM to every
    process in the dyno, the pool's children included. A child that died of it would abort its job; ignoring
    it lets the parent's warm shutdown finish the running jobs and then stop the children itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
