"""The Celery app, laid out as Celery's own Django example does.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
Every Celery setting lives in app/settings.py under the CELERY_ prefix.
"""

import os
import signal

from celery import Celery, platforms
from celery.apps.beat import Beat
from celery.signals import worker_process_init
from kombu.utils.objects import cached_property

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")


class DynoBeat(Beat):
    """`celery beat` whose SIGTERM/SIGINT only ends it.

    Celery's own handler saves the schedule first, through the service's scheduler, which it builds if it
    is not built yet: a SIGTERM during beat's start-up (Heroku stops a dyno at any moment, boot included)
    re-entered that construction from inside itself and hung beat until the launcher's SIGKILL. Our schedule
    lives in memory (settings.CELERY_BEAT_SCHEDULER), so there is nothing to save: SystemExit ends beat
    wherever it is, and Celery's loop still closes the scheduler when it was running."""

    def install_sync_handler(self, service):
        def stop(signum, frame):
            raise SystemExit()

        platforms.signals.update(SIGTERM=stop, SIGINT=stop)


class DynoCelery(Celery):
    @cached_property
    def Beat(self):  # Celery's name for the beat application class
        return self.subclass_with_self(DynoBeat)


app = DynoCelery("app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def leave_shutdown_to_the_parent(**_):
    """With the prefork pool (the default pool is threads, see settings): Heroku sends SIGTERM to every
    process in the dyno, the pool's children included. A child that died of it would abort its job; ignoring
    it lets the parent's warm shutdown finish the running jobs and then stop the children itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
