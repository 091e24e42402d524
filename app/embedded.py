"""The local run's embedded broker: kombu's filesystem transport, with every message written whole.

kombu's filesystem channel creates a message file under its final name and then writes into it, while a
worker polling the folder takes (renames) any file with that name: under a storm the worker read a file
before its writer had filled it, and died of it (`CRITICAL celery.worker: Unrecoverable error:
JSONDecodeError`, python -m bench, the page's storm at ~100 jobs/s). Here a message is written under a name
the reader ignores and renamed into place, which is atomic within one filesystem. Local runs only: Heroku
and the VPS use Redis (app/settings.py).
"""

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


def message_name(queue):
    """kombu's own file name for a message: milliseconds first (the reader takes the oldest), then the queue."""
    return f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        target = os.path.join(self.data_folder_out, message_name(queue))
        staging = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.writing")
        try:
            with open(staging, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(staging, target)
        except OSError as problem:
            raise filesystem.ChannelError(f"Cannot add file {target!r} to directory") from problem


class Transport(filesystem.Transport):
    Channel = Channel
