"""The embedded broker (app/embedded.py): kombu's filesystem transport with whole-file writes, driven through
kombu's own producer and consumer API. No worker: a reader polls the folder while a writer publishes."""

import threading

from kombu import Connection, Exchange, Queue

from app import embedded


def _connection(folder):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder)}
    return Connection("filesystem://", transport="app.embedded:Transport", transport_options=options)


def test_embedded_broker_delivers_every_message_whole_once_while_the_reader_polls(tmp_path):
    queue = Queue("jobs", Exchange("jobs"), routing_key="jobs")
    sent = [{"n": n, "padding": "x" * 20_000} for n in range(300)]  # big enough that a write takes a while
    received, problems = [], []

    def read():
        with _connection(tmp_path) as connection, connection.SimpleQueue(queue) as inbox:
            while len(received) < len(sent):
                try:
                    message = inbox.get(timeout=10)
                except Exception as problem:  # noqa: BLE001 - a half-written file shows up here
                    problems.append(repr(problem))
                    return
                received.append(message.payload["n"])
                message.ack()

    with _connection(tmp_path) as connection, connection.SimpleQueue(queue) as outbox:
        reader = threading.Thread(target=read)
        reader.start()
        for body in sent:
            outbox.put(body)
        reader.join(60)
    assert problems == []
    assert sorted(received) == [body["n"] for body in sent]  # kombu orders by the millisecond only
    assert not list(tmp_path.glob("*.writing"))


def test_embedded_broker_names_messages_the_way_kombus_reader_picks_them():
    # kombu's filesystem reader takes files named "<ms>_<uuid>.<queue>.msg", oldest first; a kombu that
    # changed its naming would strand our messages, and this fails.
    name = embedded.message_name("celery")
    assert name.partition(".")[2] == "celery.msg" and name.split("_")[0].isdigit()
    assert issubclass(embedded.Transport.Channel, embedded.filesystem.Channel)
