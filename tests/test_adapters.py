"""The project's reaches into libraries' private names, each behind one adapter: these tests run the real
library through the adapter, so a release that renames or changes what it relies on fails here."""

import io
import os
import runpy
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from honcho.printer import Printer

from app.honcho_adapter import ManagerAdapter
from app.jobs.embedded import AtomicFilesystemBackend

GUNICORN_CONF = runpy.run_path(str(Path(__file__).resolve().parents[1] / "app" / "gunicorn.conf.py"))


class Recording(ManagerAdapter):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.signalled = []

    def after_signalling(self, force):
        self.signalled.append((force, {n: dict(p) for n, p in self.processes().items()}))


def test_honcho_manager_adapter_tracks_pids_exits_and_signals():
    out = io.StringIO()
    manager = Recording(printer=Printer(out))
    manager.add_process("short", "exec sleep 0.5")
    manager.add_process("long", "exec sleep 30")
    assert not manager.any_stopped()
    began = time.monotonic()
    manager.loop()  # `short` exits, honcho sends SIGTERM to `long`, the loop ends when both are gone
    assert time.monotonic() - began < 10
    processes = manager.processes()
    assert processes["short"]["returncode"] == 0
    assert processes["long"]["returncode"] == -signal.SIGTERM
    assert manager.any_stopped()
    # The hook ran once, after SIGTERM went out, when honcho knew `short` had exited and `long` had not.
    (force, seen) = manager.signalled[0]
    assert force is False
    assert "returncode" in seen["short"] and "returncode" not in seen["long"]
    assert all(isinstance(p["pid"], int) for p in processes.values())
    manager.system_print("a line from the launcher\n")
    assert "system | a line from the launcher" in out.getvalue().replace("  ", " ")


def test_honcho_manager_adapter_kills_a_whole_process_group():
    # A process that leaves a child behind in its group, as a gunicorn master leaves its workers.
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & exec sleep 30"], start_new_session=True)
    time.sleep(0.2)
    ManagerAdapter(printer=Printer(io.StringIO())).kill_group(leader.pid)
    assert leader.wait(timeout=5) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("the process group outlived kill_group")


def test_celery_file_backend_adapter_writes_where_celery_reads(tmp_path):
    backend = AtomicFilesystemBackend(app=Celery("adapter-test"), url=f"file://{tmp_path}")
    key = backend.get_key_for_task("job-1")
    backend.set(key, b'{"status": "SUCCESS"}')
    # Celery's own reader, through the stock class, finds what the adapter wrote, at the path _filename gives.
    assert FilesystemBackend.get(backend, key) == b'{"status": "SUCCESS"}'
    assert os.fsdecode(backend._filename(key)).startswith(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(os.fsdecode(backend._filename(key)))]


def test_celery_file_backend_adapter_never_shows_a_half_written_record(tmp_path):
    backend = AtomicFilesystemBackend(app=Celery("adapter-test"), url=f"file://{tmp_path}")
    key = backend.get_key_for_task("job-2")
    big = b"x" * 2_000_000
    backend.set(key, big)
    seen = set()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.add(len(FilesystemBackend.get(backend, key) or b""))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(30):
        backend.set(key, big)
    stop.set()
    reader.join()
    assert seen == {len(big)}


def test_kombu_redis_adapter_turns_a_closed_connection_into_an_error_celery_ignores():
    """Celery releases a broken broker connection with its connection errors ignored; closing a channel then
    builds a client from the connection, which kombu has already dropped (transport.client is None). Stock
    kombu raises AttributeError there, which killed the worker; the adapter raises redis' ConnectionError,
    one of the transport's connection errors. If kombu changes this, one of the two assertions fails."""
    import redis
    from kombu import Connection
    from kombu.transport import redis as kombu_redis

    from app import redis_transport

    for transport, raised in (
        (kombu_redis.Transport, AttributeError),
        (redis_transport.Transport, redis.ConnectionError),
    ):
        connection = Connection(os.environ["REDIS_URL"], transport=transport)
        channel = connection.channel()
        assert channel._connparams()["port"] == connection.port  # a live connection works through it
        connection.transport.client = None  # what kombu's Connection._do_close_transport() does first
        with pytest.raises(raised):
            channel._connparams()
        assert issubclass(raised, tuple(connection.transport.connection_errors)) is (raised is not AttributeError)


def test_kombu_redis_adapter_sends_every_command_through_one_client(monkeypatch):
    """Stock kombu builds a redis.Redis client per command sent outside the consumer (each publish, each
    ack); the adapter's channel reuses one. Counted over real publishes, gets and acks on the tests' Redis:
    stock kombu builds one per command, the adapter a fixed few, and the messages still go round."""
    import redis
    from kombu import Connection
    from kombu.transport import redis as kombu_redis

    from app import redis_transport

    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    clients = {}
    for transport in (kombu_redis.Transport, redis_transport.Transport):
        with Connection(os.environ["REDIS_URL"], transport=transport) as connection:
            queue = connection.SimpleQueue(f"adapter-test-{transport.__module__}-{os.getpid()}")
            built.clear()
            for n in range(20):
                queue.put({"n": n})
                message = queue.get(timeout=5)
                assert message.payload == {"n": n}
                message.ack()
            clients[transport] = len(built)
            queue.close()
    assert clients[kombu_redis.Transport] >= 40, clients  # a client per publish and per ack at least
    assert clients[redis_transport.Transport] <= 3, clients


def test_honcho_adapter_hands_a_listening_socket_down_to_the_process():
    """Socket activation on the VPS: the web process inherits systemd's socket, and knows it is its own."""
    import socket

    from app.honcho_adapter import hand_down_fds

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check = (
            f"import os, socket; s = socket.socket(fileno={listener.fileno()}); "
            "print('inherited', s.getsockname()[1], os.environ['OWNER'] == str(os.getpid()))"
        )
        out = io.StringIO()
        manager = ManagerAdapter(printer=Printer(out))
        process = manager.add_process("web", f'exec python3 -c "{check}"')
        hand_down_fds(process, (listener.fileno(),), owner_env="OWNER")
        manager.loop()
    assert f"inherited {port} True" in out.getvalue(), out.getvalue()


def test_honcho_adapter_starts_each_process_in_its_own_group_inside_the_launchers_session():
    """One session for the whole dyno, so `nice` in LocalProcfile ranks the worker below gunicorn (Linux shares
    the CPU between sessions first: sched_autogroup); one process group each, so kill_group still works;
    stdin /dev/null, as a background group's must be."""
    out = io.StringIO()
    manager = ManagerAdapter(printer=Printer(out))
    check = "import os; print('ids', os.getsid(0), os.getpgid(0), os.getpid(), os.readlink('/proc/self/fd/0'))"
    manager.add_process("probe", f'exec python3 -c "{check}"')
    manager.loop()
    line = next(x for x in out.getvalue().splitlines() if " ids " in x)
    session, group, pid, stdin = line.split(" ids ")[1].split()
    session, group, pid = int(session), int(group), int(pid)
    assert session == os.getsid(0), "the process left the launcher's session"
    assert stdin == "/dev/null", "a process reading the terminal from a background group would be stopped"
    assert group == pid, "the process does not lead a process group of its own"


def test_celery_threaded_beat_stops_without_waiting_out_its_sleep():
    """app/celery.py's BeatThread stops beat through `EmbeddedService(thread=True).service.stop(wait=False)`:
    the threaded service's `service` attribute is Celery's, not public. A Celery that renames it, or whose
    beat no longer ends promptly when asked, fails here."""
    from celery.beat import EmbeddedService

    from app.celery import BeatThread

    beat_app = Celery("adapter-test", broker="memory://")
    beat_app.conf.beat_schedule = {}

    class Worker:
        app = beat_app
        scheduler = "celery.beat:Scheduler"

    step = BeatThread(Worker, beat_thread=True)
    step.obj = step.create(Worker)
    assert isinstance(step.obj, threading.Thread) and type(step.obj) is type(EmbeddedService(beat_app, thread=True))
    step.obj.start()
    time.sleep(0.5)  # into its loop of ticks
    assert step.obj.is_alive()
    asked = time.monotonic()
    step.stop(Worker)
    step.obj.join(5)
    assert not step.obj.is_alive(), "beat's thread still ticking 5 s after it was asked to stop"
    assert time.monotonic() - asked < 5


# gunicorn 27.0.1's GeventWorker.run, the loop FairGeventWorker.run rewrites.
GUNICORN_GEVENT_RUN_SHA256 = "50119854ef8be38caa6e96a5978978de9c42bc0b24ac22228101399e7ef3005d"


def test_gunicorn_names_the_worker_config_relies_on():
    """app/gunicorn.conf.py reaches two of gunicorn's internals: FairGeventWorker.run is gunicorn's gevent
    worker loop (GeventWorker.run) rewritten to build QueueShareServers and to wake at once on a stop, so a
    gunicorn whose loop changes (a new setting it honours, another way to drain) fails here until ours is
    compared with it and this pin moved; and a freshly forked worker drains the arbiter's SIG_QUEUE (a
    queue.SimpleQueue) for a stop signal that came before its own handlers. A gunicorn that keeps its signals
    elsewhere fails here rather than in a dyno that ignores a stop during boot."""
    import hashlib
    import inspect
    import queue

    from gunicorn.arbiter import Arbiter
    from gunicorn.workers import ggevent

    loop = inspect.getsource(ggevent.GeventWorker.run)
    assert hashlib.sha256(loop.encode()).hexdigest() == GUNICORN_GEVENT_RUN_SHA256, (
        "gunicorn's GeventWorker.run changed: compare FairGeventWorker.run (app/gunicorn.conf.py) with it"
    )

    arbiter = Arbiter.__new__(Arbiter)
    init = inspect.getsource(Arbiter.__init__)
    assert "self.SIG_QUEUE = queue.SimpleQueue()" in init, "the arbiter keeps its signals elsewhere"
    arbiter.SIG_QUEUE = queue.SimpleQueue()
    arbiter.signal(signal.SIGTERM, None)  # what the master's handler does with a signal
    assert arbiter.SIG_QUEUE.get_nowait() == signal.SIGTERM


def test_gunicorn_asks_a_connections_listener_only_its_address():
    """FairGeventWorker hands gunicorn's connection handler a ListenerName (app/gunicorn.conf.py) in place of
    the listening socket, which a stopping worker has closed when a connection accepted just before is
    handled. It answers getsockname() only: a gunicorn whose connection handlers (plain, HTTP/2, h2c upgrade)
    ask the listener for anything else fails here."""
    import inspect
    import re

    from gunicorn.workers.base_async import AsyncWorker

    handlers = [AsyncWorker.handle, AsyncWorker.handle_http2, AsyncWorker._try_h2c_upgrade]
    for handler in handlers:
        source = inspect.getsource(handler)
        asked = re.findall(r"\blistener\.(\w+)", source)
        assert set(asked) <= {"getsockname"}, f"{handler.__qualname__} asks the listener for {sorted(set(asked))}"
    name = GUNICORN_CONF["ListenerName"](type("Listener", (), {"getsockname": lambda self: ("127.0.0.1", 5000)})())
    assert name.getsockname() == ("127.0.0.1", 5000)


def test_gevent_server_takes_its_share_of_the_accept_queue_per_wake_up():
    """app/gunicorn.conf.py's server answers gevent's max_accept (a documented attribute of gevent's servers:
    the connections accepted per wake-up) with its worker's share of the listening socket's accept queue, read
    from the kernel (TCP_INFO). This runs gevent's real accept loop: with 40 connections waiting and 2
    workers, one wake-up takes 20 and leaves 20 for the other worker (or for this one's next turn). A gevent
    that reads max_accept some other way, or a kernel that no longer reports the queue, fails here."""
    import socket

    import gevent

    waiting_connections = GUNICORN_CONF["waiting_connections"]

    class TwoWorkers(GUNICORN_CONF["QueueShareServer"]):
        workers = 2

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        assert waiting_connections(listener) == 0
        clients = [socket.create_connection(listener.getsockname()) for _ in range(40)]
        assert waiting_connections(listener) == 40
        left_after_first_wake_up = []

        def handle(client, address):
            # Handlers start once the wake-up that accepted them has ended.
            if not left_after_first_wake_up:
                left_after_first_wake_up.append(waiting_connections(listener))

        listener.setblocking(False)  # as gunicorn's is in a gevent worker: accept never blocks the hub
        server = TwoWorkers(listener, handle)
        server.start()
        try:
            gevent.sleep(0.2)
            assert waiting_connections(listener) == 0, "the next wake-ups took the rest"
        finally:
            server.stop()
        assert left_after_first_wake_up == [20]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        clients += [socket.create_connection(listener.getsockname()) for _ in range(300)]
        assert TwoWorkers(listener, handle).max_accept == 100, "never more than gevent's default at once"
    for client in clients:
        client.close()
    with socket.socket(socket.AF_UNIX) as unix_listener:  # a Unix socket bind: no queue figure, gevent's default
        assert waiting_connections(unix_listener) is None


class _RecordingSocket:
    """A real socket that remembers what each send or sendall call carried."""

    def __init__(self, sock):
        self.sock = sock
        self.writes = []

    def send(self, data):
        self.writes.append(bytes(data))
        return self.sock.send(data)

    def sendall(self, data):
        self.writes.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _gunicorn_response(request, app):
    """One request through gunicorn's own parser and Response, written as its async worker writes it
    (gunicorn.workers.base_async.handle_request), with the dyno's response socket in between."""
    import socket

    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    server_end, client_end = socket.socketpair()
    client_end.sendall(request)
    received = []
    reader = threading.Thread(target=lambda: received.extend(iter(lambda: client_end.recv(65536), b"")))
    reader.start()  # reads as the response is written, so no socket buffer size can stall the test
    cfg = Config()
    req = next(RequestParser(cfg, server_end, ("127.0.0.1", 40000)))
    recorded = _RecordingSocket(server_end)
    response_socket = GUNICORN_CONF["OneSendResponseSocket"](recorded)
    resp, environ = wsgi.create(req, response_socket, ("127.0.0.1", 40000), ("127.0.0.1", 5000), cfg)
    respiter = app(environ, resp.start_response)
    if isinstance(respiter, environ["wsgi.file_wrapper"]):
        resp.write_file(respiter)
    else:
        for item in respiter:
            resp.write(item)
    resp.close()
    response_socket.flush()  # what the dyno's worker does once gunicorn's handle_request returns
    server_end.close()
    reader.join(10)
    client_end.close()
    return recorded.writes, b"".join(received)


def test_gunicorn_response_reaches_the_client_in_one_send():
    """app/gunicorn.conf.py hands gunicorn's Response a socket that holds the headers until the first body
    chunk and sends both at once. It relies on gunicorn writing the headers with one sendall right before
    the first chunk, and on sendfile and 100 Continue going through other socket calls (which send what is
    held first). This drives gunicorn's real parser and Response: a gunicorn that writes a response another
    way fails here, and so would a socket that sent a file before its headers."""
    import tempfile

    def page(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]

    writes, received = _gunicorn_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", page)
    assert len(writes) == 1, f"the response took {len(writes)} sends: {writes}"
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\nhello")

    def no_body(environ, start_response):
        start_response("204 No Content", [])
        return []

    writes, received = _gunicorn_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", no_body)
    assert len(writes) == 1 and received.startswith(b"HTTP/1.1 204 No Content\r\n")

    with tempfile.TemporaryFile() as content:
        content.write(b"x" * 100_000)
        content.seek(0)

        def file_response(environ, start_response):
            start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "100000")])
            return environ["wsgi.file_wrapper"](content)

        writes, received = _gunicorn_response(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n", file_response)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"x" * 100_000, "the file went before its headers"

    def echo(environ, start_response):
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi"
    writes, received = _gunicorn_response(request, echo)
    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n", "100 Continue must not wait for the response"
    assert received.endswith(b"\r\n\r\nhi") and len(writes) == 2

    def early_hints(environ, start_response):
        environ["wsgi.early_hints"]([("Link", "</static/demo/storm.css>; rel=preload")])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    writes, received = _gunicorn_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", early_hints)
    assert writes[0].startswith(b"HTTP/1.1 103 Early Hints"), "103 must go before the final response is ready"
    assert len(writes) == 2 and received.endswith(b"\r\n\r\nok")

    def stream(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])  # no length: chunked
        yield b""  # get the headers out now; the first event comes later
        yield b"data: 1\n\n"

    writes, received = _gunicorn_response(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", stream)
    assert b"Transfer-Encoding: chunked" in writes[0] and writes[0].endswith(b"\r\n\r\n"), writes
    assert b"data: 1" in received and received.endswith(b"0\r\n\r\n")
