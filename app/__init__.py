"""Double Boiler: a Django project and its Celery app, packed into one dyno.

The Celery app is exported here as in Celery's Django example, but loaded on first use: the dyno launcher
(`python -m app.dyno`) imports this package too, and it and the output readers honcho forks from it stay
free of Celery and Django that way (about 20 MB less for the dyno). Django loads the Celery app when it starts
(app/jobs/apps.py), so @shared_task always binds to it.
"""

__all__ = ("celery_app",)


def __getattr__(name):
    if name == "celery_app":
        from app.celery import app

        return app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
