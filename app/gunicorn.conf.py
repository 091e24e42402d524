"""gunicorn's settings for the dyno's web process (LocalProcfile's `web`).

Every value comes from app/settings.py, the one place that reads config vars.
https://docs.gunicorn.org/en/stable/settings.html
"""

from app import settings
from app.process_exit import skip_the_final_collection

# The job API reads status as GET /api/jobs?ids=<uuid>,<uuid>,...: allow request lines up to Heroku's router
# limit (8 KB) rather than gunicorn's default 4 KB; app/jobs/views.py's MAX_IDS fits inside it.
# https://devcenter.heroku.com/articles/http-routing#request-buffering
limit_request_line = 8190  # gunicorn's maximum

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
#   connection per turn of its event loop and the rest wait in the listen backlog for seconds; gevent's
#   default, up to 100 per wake-up, let the first worker awake take a whole burst (wrk's 50 connections: 50
#   and 0 in one run of six, so one core served and the other idled, 0.5-0.7x the req/s). Each wake-up takes
#   its worker's share of the connections waiting (the kernel's accept queue length / workers, at least
#   one): a burst is shared, and what one worker leaves is taken by the other or by its own next turns;
# - a keep-alive connection goes straight on to its next request without yielding; we yield after each
#   request (gevent.sleep(0)), so the connections of a worker take turns.
# Together: p99 1.3-1.5 s -> 175 ms at 200 connections on a plain WSGI app. The yield is the price: measured
# on the demo page under wrk (python -m bench.probe, servers in turns), without it this config served
# 1.05-1.15x stock gunicorn+gevent's req/s at 200 connections, with it 0.90-1.08x, while p99 went back to
# 1.3-1.9 s. Yielding only once the event loop's turn had run 5 ms kept the req/s but lost the p99 (2 s);
# only when a connection had not waited since its previous request, it served less (0.82x/0.92x). A
# fixed 10 accepts per wake-up spread bursts too, but held new connections longer (p99 ~320 -> ~500 ms at
# 200), and so did counting each worker's connections in shared memory and taking one per wake-up while
# ahead (~600 ms).
#
# Two more for Heroku's stop (SIGTERM to every process, SIGKILL 30 s later):
# - gunicorn's gevent worker waits on SIGTERM until every connection is closed, idle keep-alive ones included
#   (a browser or a router holds one): one idle connection made every stop take graceful_timeout. The
#   worker below closes its idle connections as soon as it is asked to stop (and any that turn idle
#   afterwards); a request in flight still completes, with `Connection: close`, and so does one whose
#   connection was accepted just before the stop (a connection with no whole request is idle after 2 s).
# - a client error gunicorn answers itself (a request line past limit_request_line, a bad header) gets a
#   JSON body like every other API error, not gunicorn's HTML page.
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

from gevent.event import Event  # noqa: E402
from gevent.monkey import get_original  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from gevent.server import StreamServer  # noqa: E402
from gunicorn import sock as gunicorn_sockets  # noqa: E402  (its ssl_context: a setting name in this file)
from gunicorn import util  # noqa: E402
from gunicorn.workers import ggevent  # noqa: E402


def waiting_connections(listener):
    """How many connections wait in the listening socket's accept queue (Linux: TCP_INFO of a listening
    socket gives the queue length as tcpi_unacked), or None where the kernel does not say."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except (AttributeError, OSError):  # not Linux, or not a TCP socket (a Unix socket bind)
        return None
    return struct.unpack_from("I", info, _TCPI_UNACKED)[0] if len(info) >= _TCP_INFO_SIZE else None


# struct tcp_info (linux/tcp.h, a stable ABI): eight one-byte fields, then u32 rto, ato, snd_mss, rcv_mss,
# unacked (for a listening socket: the accept queue's length), sacked (its limit).
_TCPI_UNACKED = 24
_TCP_INFO_SIZE = 32


class QueueShareServer(StreamServer):
    """gevent's StreamServer that takes its share of the waiting connections per wake-up, where gunicorn
    sets max_accept to 1 (above) and gevent's default takes up to 100."""

    workers = 1  # gunicorn's worker count, set by the worker before it builds its servers

    @property
    def max_accept(self):
        waiting = waiting_connections(self.socket) if hasattr(self, "socket") else None
        if waiting is None:  # a Unix socket bind: the kernel gives no queue length, so gevent's default
            return StreamServer.max_accept
        return max(1, min(StreamServer.max_accept, math.ceil(waiting / self.workers)))

    @max_accept.setter
    def max_accept(self, value):
        pass


class ListenerName:
    """What gunicorn's connection handler asks of the listener it came from: its address (getsockname, for the
    request's SERVER_NAME and SERVER_PORT). gunicorn asks the listening socket itself, which a stopping worker
    closes first: a connection accepted just before was then handled with the socket closed, getsockname
    raised EBADF ("Socket error processing request") and the connection closed unanswered, a 503 from the
    router during a restart. The address is read once, while the socket is open."""

    def __init__(self, listener):
        self.address = listener.getsockname()

    def getsockname(self):
        return self.address


class _CapturedReply:
    """Stands in for the client socket while gunicorn writes its error page, to learn the status line."""

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0

    def setblocking(self, flag):
        pass

    def sendall(self, data):
        self.data += data


_PlainSocket = get_original("socket", "socket")

# How often a stopping worker closes connections that turned idle since it was asked to stop.
IDLE_SWEEP_SECONDS = 0.2
# A connection that has not yet sent a whole request is idle only after this long: a client (the router
# opens one connection per request) sends its request right after connecting, and closing the connection
# in between answered it with nothing (a 502 from the router during a restart under load).
NEW_CONNECTION_GRACE_SECONDS = 2.0


class OneSendResponseSocket:
    """The client socket as one response sees it. gunicorn writes a response's headers and then its first
    body chunk with two sendall calls in a row (Response.write; the headers wait for the first chunk anyway):
    sent together they cost one send and one segment for the client to read, where two also cost gevent a
    buffer-size query each (strace of a worker: 5 syscalls per plain-page request, 2 with this). The headers
    are held until the next write, the end of the request or any other use of the socket (sendfile's fileno,
    a 100 Continue), which sends them first. Not held: an interim 1xx response (103 Early Hints must go
    before the final one is ready) and the headers of a chunked response (a streaming app may send an empty
    first chunk to get its headers out early)."""

    def __init__(self, sock):
        self._sock = sock
        self._held = None
        self._holding = True  # until the response's headers have been written

    def sendall(self, data):
        if self._holding and not data.startswith(_INTERIM):
            self._holding = False
            if _CHUNKED not in data:
                self._held = bytes(data)
                return
        if self._held is not None:
            data, self._held = b"".join((self._held, data)), None
        self._send(data)

    def flush(self):
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held)

    def _send(self, data):
        sent = self._sock.send(data)  # one try: a response fits the socket's buffer unless the client lags
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:])

    def __getattr__(self, name):
        self.flush()
        return getattr(self._sock, name)


_INTERIM = (b"HTTP/1.1 1", b"HTTP/1.0 1")
_CHUNKED = b"\r\nTransfer-Encoding: chunked\r\n"


class FairGeventWorker(ggevent.GeventWorker):
    def init_process(self):
        self.idle_connections = set()  # client sockets waiting for their next request
        self.new_connections = {}  # client socket -> when accepted, until its first request is read
        self.serving = False
        super().init_process()

    def run(self):
        """gunicorn's GeventWorker.run with two changes: its servers are QueueShareServers, and it wakes as
        soon as it is asked to stop. gunicorn's own loop looks whether to stop once a second, then once a
        second whether its last requests are done: each stop of the dyno waited up to two seconds on those
        ticks (strace of a worker: 0.6 s from SIGTERM to its listener's close)."""
        ssl_args = {"ssl_context": gunicorn_sockets.ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        QueueShareServer.workers = self.cfg.workers
        self.stop_asked = Event()
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = QueueShareServer(
                listener,
                handle=partial(self.handle, ListenerName(listener)),
                spawn=Pool(self.worker_connections),
                **ssl_args,
            )
            server.start()
            servers.append(server)
        self.serving = True

        while self.alive:
            self.notify()  # the heartbeat the master watches (timeout below)
            self.stop_asked.wait(1.0)

        for server in servers:
            server.close()  # no new connections; the listening socket stays open in the master
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for server in servers:
            while not server.pool.join(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                    server.stop(timeout=1)
                    break
                self.notify()

    def handle(self, listener, client, addr):
        self.new_connections[client] = time.monotonic()
        try:
            super().handle(listener, client, addr)
        finally:
            self.new_connections.pop(client, None)
            self.idle_connections.discard(client)

    def handle_request(self, listener_name, req, sock, addr):
        self.new_connections.pop(sock, None)
        self.idle_connections.discard(sock)
        response_socket = OneSendResponseSocket(sock)
        try:
            return super().handle_request(listener_name, req, response_socket, addr)
        finally:
            with contextlib.suppress(OSError):  # the client may be gone; gunicorn's handle() closes the socket
                response_socket.flush()
            self.idle_connections.add(sock)
            ggevent.gevent.sleep(0)

    def handle_exit(self, sig, frame):
        if not self.serving:
            # Still importing Django (seconds on a busy dyno): it has served nothing, so it ends now rather
            # than finish booting only to stop.
            os._exit(0)
        super().handle_exit(sig, frame)
        self.stop_asked.set()
        ggevent.gevent.spawn(self._close_idle_connections)

    def _close_idle_connections(self):
        while True:
            silent_since = time.monotonic() - NEW_CONNECTION_GRACE_SECONDS
            silent = [sock for sock, accepted in list(self.new_connections.items()) if accepted < silent_since]
            for sock in list(self.idle_connections) + silent:
                # Shut the connection down through a plain socket on a duplicate descriptor: the blocked read
                # then sees an ordinary EOF and gunicorn closes the connection quietly (gevent's own
                # shutdown() cancels the read with EBADF, which gunicorn logs as a socket error).
                with contextlib.suppress(OSError), _PlainSocket(fileno=os.dup(sock.fileno())) as plain:
                    plain.shutdown(socket.SHUT_RDWR)
            ggevent.gevent.sleep(IDLE_SWEEP_SECONDS)

    def handle_error(self, req, client, addr, exc):
        captured = _CapturedReply()
        super().handle_error(req, captured, addr, exc)
        status_line = captured.data.split(b"\r\n", 1)[0].decode("latin1")  # HTTP/1.1 414 URI Too Long
        _, status, reason = (status_line.split(" ", 2) + ["", ""])[:3]
        message = reason if status == "500" else f"{reason}: {exc}"
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin1") + body)
        except Exception:  # noqa: BLE001 - the client may be gone, as in gunicorn's own handle_error
            self.log.debug("Failed to send error message.")


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


def post_fork(server, worker):
    """A worker just forked still has the master's signal handlers until it installs its own, after
    importing Django (1-2 s): a SIGTERM in between was only queued for the master, and the master then
    waited graceful_timeout for a worker that ignored it. Until the worker's own handlers are in, a stop
    signal ends it at once (it serves nothing yet); one that already arrived ends it now."""
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
    queued = set()
    while True:  # the child's copy of the master's signal queue: what the inherited handler received
        try:
            queued.add(server.SIG_QUEUE.get_nowait())
        except queue.Empty:
            break
    if queued & stop_signals:
        os._exit(0)
    for signum in stop_signals:
        signal.signal(signum, lambda *_: os._exit(0))


# The master and (inheriting it at the fork) each worker exit without a last garbage collection, which made
# every stop 0.3-0.6 s longer (app/process_exit.py).
skip_the_final_collection()

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
