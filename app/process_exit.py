"""The dyno's processes exit without Python's final garbage collection.

When the interpreter exits it collects garbage once more over every object it still holds: for a process that
has imported Django, Celery and their kin that took 0.2 s of CPU even alone (python -c "import django ...;
sys.exit()"), and 0.3-0.6 s in each of gunicorn's workers and the Celery worker during a dyno's stop, where
all of them exit at once on two cores (strace: no system call between the last close and exit_group). Every
stop and restart of the dyno waited for it. The memory goes back to the system with the process anyway, so at
exit every object is moved out of the collector's reach (gc.freeze()); files and sockets still close and
flush as their last reference goes, logging still flushes (its own exit handler), and the exit status is kept.
"""

import atexit
import gc


def skip_the_final_collection():
    """Freeze the garbage collector as the interpreter starts to exit (idempotent per process; a forked child
    inherits it)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
