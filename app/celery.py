"""The Celery app, laid out as Celery's own Django example does.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
Every Celery setting lives in app/settings.py under the CELERY_ prefix.
"""

import contextlib
import ctypes
import multiprocessing
import os
import signal

from celery import Celery
from celery.signals import beat_embedded_init, worker_process_init

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


# prctl(2): ask the kernel to send this process a signal when its parent dies (Linux: Heroku, the VPS).
PR_SET_PDEATHSIG = 1


@beat_embedded_init.connect
def die_with_the_worker(**_):
    """Beat runs inside the worker (`--beat` in LocalProcfile) as a child process. If the worker is killed
    (a crash, an OOM kill, kill -9), that child would live on holding the worker's output pipe, so the
    launcher would never see the worker end and the dyno would not crash as it must; the kernel kills it
    with its parent instead. Where prctl does not exist (macOS), beat still stops with a worker that stops."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the worker died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
