"""The result backend of the embedded (serverless) local default, and the one place that uses a private name
of Celery's file backend (`_filename`, the path of a key): tests/test_adapters.py checks that Celery still reads
what it writes there."""

import os
import tempfile

from celery.backends.filesystem import FilesystemBackend


class AtomicFilesystemBackend(FilesystemBackend):
    """Celery's file backend, but a reader never sees a half-written result.

    The stock backend rewrites the file in place, so a poll that lands mid-write reads an empty file and
    takes the job for unknown; writing a temporary file and renaming it over the old one is atomic.
    """

    def set(self, key, value):
        target = os.fsdecode(self._filename(key))
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(value if isinstance(value, bytes) else value.encode())
        os.replace(temporary, target)
