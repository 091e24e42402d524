"""Double Boiler: a Django project and its Celery app, packed into one dyno.

The Celery app is imported here, as in Celery's Django example, so that @shared_task binds to it whenever
Django starts (gunicorn, manage.py, the worker).
"""

from app.celery import app as celery_app

__all__ = ("celery_app",)
