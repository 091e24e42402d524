"""kombu's Redis transport with one fix, the one place that overrides a private kombu name (kombu 5.7.0,
pinned in requirements.txt); the broker settings name it (CELERY_BROKER_TRANSPORT).

When Redis refuses while the worker is connected, Celery's consumer releases the old connection and ignores
connection errors while doing so. Closing each channel puts its unacknowledged messages back, through a
client built from the connection's parameters; by then the transport has dropped its link to the connection
and kombu fails with AttributeError ('NoneType' object has no attribute 'hostname'), which Celery does not
ignore: the worker died and the dyno restarted. Here a closed connection raises redis' ConnectionError
instead, which Celery ignores as it should; those messages come back through the visibility timeout.
tests/test_adapters.py drives a real channel through the case, so a kombu release that changes it fails there.
"""

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
