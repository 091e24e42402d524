"""The Celery app, laid out as Celery's own Django example does.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
Every Celery setting lives in app/settings.py under the CELERY_ prefix.
"""

import os
import signal

from celery import Celery, bootsteps
from celery.beat import EmbeddedService
from celery.signals import worker_process_init
from click import Option

from app.process_exit import skip_the_final_collection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

app = Celery("app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker exits without a last garbage collection, which made every stop 0.3-0.6 s longer.
skip_the_final_collection()


@worker_process_init.connect
def leave_shutdown_to_the_parent(**_):
    """With the prefork pool (the default pool is threads, see settings): Heroku sends SIGTERM to every
    process in the dyno, the pool's children included. A child that died of it would abort its job; ignoring
    it lets the parent's warm shutdown finish the running jobs and then stop the children itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class BeatThread(bootsteps.StartStopStep):
    """`celery worker --beat-thread` (LocalProcfile): beat as a thread of the worker process, where Celery's
    own `--beat` forks a child process for it (celery/worker/components.py Beat).

    The child cost the dyno a whole interpreter at rest (README.md has the measured figure), and it could outlive a
    worker killed with -9, holding the worker's output pipe open. A thread costs neither: it lives and dies
    with the worker process, so exactly one beat runs per worker started with the flag. It is Celery's own
    embedded service in its threaded form (EmbeddedService(thread=True)), which ticks at least once a second.
    """

    label = "Beat thread"
    conditional = True
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker, beat_thread=False, **kwargs):
        self.enabled = bool(beat_thread)
        super().__init__(worker, **kwargs)

    def create(self, worker):
        return EmbeddedService(worker.app, thread=True, scheduler_cls=worker.scheduler)

    def stop(self, worker):
        # The schedule lives in memory (CELERY_BEAT_SCHEDULER), so there is nothing to save: ask the thread
        # not to tick again and go on with the worker's shutdown instead of waiting out its sleep (up to 1 s).
        # It is a daemon thread, so it ends with the worker process.
        self.obj.service.stop(wait=False)


app.user_options["worker"].add(
    Option(["--beat-thread"], is_flag=True, default=False, help="Run beat as a thread of this worker (one per dyno).")
)
app.steps["worker"].add(BeatThread)
