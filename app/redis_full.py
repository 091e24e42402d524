"""A full Redis, said as such: a storm larger than the Redis plan holds gets a 503 naming it, not a 500.

Heroku's Key-Value Store (and the VPS's redis-server) refuse writes once `maxmemory` is reached (policy
noeviction: nothing queued or finished is dropped to make room). The job API writes a job's record, then
publishes it, so the refused request's jobs are never handed to the client; the jobs already accepted
stay queued and run. `make bench` measures how many queued jobs fit in Heroku's smallest plan (25 MB).
"""

from django.http import JsonResponse
from redis.exceptions import OutOfMemoryError


def _redis_out_of_memory(exception):
    """The OOM error itself, or one kombu or Celery raised from it."""
    seen = set()
    while exception is not None and id(exception) not in seen:
        if isinstance(exception, OutOfMemoryError):
            return True
        seen.add(id(exception))
        exception = exception.__cause__ or exception.__context__
    return False


class RedisFullMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _redis_out_of_memory(exception):
            return None
        message = (
            "the job store (Redis) is full: it refuses writes at its maxmemory, so this request's jobs were not "
            "accepted; jobs already accepted are kept and still run. Retry once some have finished and expired, "
            "or move to a Redis plan with more memory."
        )
        return JsonResponse({"error": message}, status=503, headers={"Retry-After": "30"})
