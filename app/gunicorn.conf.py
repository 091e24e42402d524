"""gunicorn's settings for the dyno's web process (LocalProcfile's `web`).

Every value comes from app/settings.py, the one place that reads config vars.
https://docs.gunicorn.org/en/stable/settings.html
"""

from app import settings

# The job API reads status as GET /api/jobs?ids=<uuid>,<uuid>,...: allow request lines up to Heroku's router
# limit (8 KB, about 210 ids) rather than gunicorn's default 4 KB.
# https://devcenter.heroku.com/articles/http-routing#request-buffering
limit_request_line = 8190

# Heroku gives the dyno a new $PORT on every boot and routes to it; the web process must bind it within 60 s.
# https://devcenter.heroku.com/articles/dyno-startup-behavior
bind = f"0.0.0.0:{settings.PORT}"

# gevent: each worker serves many connections at once, so a request waiting on Redis, Postgres or a slow
# client does not hold a whole process. This is what lets one small dyno take a storm of ajax calls.
# https://docs.gunicorn.org/en/stable/design.html#async-workers
worker_class = "gevent"

# Processes, sized for the dyno's memory in app/concurrency.py (WEB_CONCURRENCY overrides).
workers = settings.WEB_CONCURRENCY

# Simultaneous connections per worker. Past this a worker stops accepting and the others (or the listen
# backlog) take the load, which keeps one worker from hoarding connections it cannot serve in time.
worker_connections = 500

# Heroku sends SIGTERM and kills 30 s later; the launcher kills at 28 s. gunicorn must be done before that.
graceful_timeout = 25

# With async workers this is a heartbeat: a worker whose event loop is blocked this long is restarted.
timeout = 30

# Heroku's router keeps idle connections for 90 s (nginx on the VPS likewise): stay open longer than the
# proxy, or it may send a request on a connection we are closing.
# https://devcenter.heroku.com/articles/http-routing#keepalives
keepalive = 95

# Off: gevent must monkey-patch before Django is imported, which happens in each worker after the fork.
preload_app = False

# Trust X-Forwarded-* from the router in front (Heroku's, or nginx on the VPS); the dyno is not reachable
# any other way.
forwarded_allow_ips = "*"

# Logs to stdout, one line per request, carrying the router's request id so router and app lines join up.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms request_id=%({x-request-id}i)s'
