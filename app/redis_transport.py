"""kombu's Redis transport with one fix and one saving, the one place that overrides kombu's names (kombu
5.7.0, pinned in requirements.txt); the broker settings name it (CELERY_BROKER_TRANSPORT).

When Redis refuses while the worker is connected, Celery's consumer releases the old connection and ignores
connection errors while doing so. Closing each channel puts its unacknowledged messages back, through a
client built from the connection's parameters; by then the transport has dropped its link to the connection
and kombu fails with AttributeError ('NoneType' object has no attribute 'hostname'), which Celery does not
ignore: the worker died and the dyno restarted. Here a closed connection raises redis' ConnectionError
instead, which Celery ignores as it should; those messages come back through the visibility timeout.

The saving: kombu builds a new redis.Redis client (and its table of ~200 response callbacks) for every
command it sends outside the consumer's own connection - each ack, each publish - which was 8% of the worker's
CPU (py-spy --gil, jobs enqueued together). The channel keeps one client on its connection pool instead; a
redis-py client is thread-safe (each command takes a connection from the pool).

tests/test_adapters.py drives a real channel through both, so a kombu release that changes them fails there.
"""

from contextlib import contextmanager

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:  # a new pool after a reconnect
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel
