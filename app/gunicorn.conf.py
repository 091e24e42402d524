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
#
# gunicorn's own gevent worker is unfair at saturation: measured with wrk at 200 keep-alive connections, the
# median request took 1-2 ms while p99 was 1.5-5 s (some connections waited for most of the run). Two causes,
# two small fixes in FairGeventWorker below:
# - with several workers gunicorn sets the gevent server's max_accept to 1, so a busy worker takes one new
#   connection per turn of its event loop and the rest wait in the listen backlog for seconds; we accept up
#   to 100 per wake-up, gevent's default;
# - a keep-alive connection goes straight on to its next request without yielding; we yield after each
#   request (gevent.sleep(0)), so the connections of a worker take turns.
# Together: p99 1.3-1.5 s -> 175 ms at 200 connections on a plain WSGI app, with no loss of throughput.
from gevent.server import StreamServer  # noqa: E402
from gunicorn.workers import ggevent  # noqa: E402


class _AcceptingServer(StreamServer):
    """gevent's StreamServer that keeps its default max_accept when gunicorn tries to set it to 1."""

    @property
    def max_accept(self):
        return StreamServer.max_accept

    @max_accept.setter
    def max_accept(self, value):
        pass


class FairGeventWorker(ggevent.GeventWorker):
    def run(self):
        ggevent.StreamServer = _AcceptingServer  # the name ggevent.GeventWorker.run builds its servers with
        super().run()

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            ggevent.gevent.sleep(0)


worker_class = FairGeventWorker

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

# Errors to stdout. The per-request access log is off by default: Heroku's router (and nginx on the VPS)
# already logs every request with its status, service time and request id, and in the packed dyno each app
# log line also passes through the launcher - at a storm's rate that relay halved the web tier's throughput
# (python -m bench: ~420 vs ~970 req/s at 200 connections). To get the lines back, with the router's
# request id so router and app lines join up:  GUNICORN_CMD_ARGS="--access-logfile -"
accesslog = None
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms request_id=%({x-request-id}i)s'

# gunicorn 27's control socket lives under $HOME, which is read-only on the VPS (ProtectSystem=strict) and
# ephemeral on Heroku; the dyno is managed by signals, as Heroku manages it, so the socket is not needed.
control_socket_disable = True
