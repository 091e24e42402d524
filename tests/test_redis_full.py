"""A storm larger than the Redis plan holds: Redis at its maxmemory (noeviction, as Heroku's plans) refuses
writes, and the job API says so with a 503 naming it; what was accepted before stays readable."""

import os

import pytest
import redis
from django.test import Client


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def full_redis():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    old = client.config_get("maxmemory")["maxmemory"], client.config_get("maxmemory-policy")["maxmemory-policy"]
    yield lambda: (client.config_set("maxmemory-policy", "noeviction"), client.config_set("maxmemory", "1"))
    client.config_set("maxmemory", old[0])
    client.config_set("maxmemory-policy", old[1])


def test_a_storm_into_a_full_redis_gets_a_503_naming_it_and_loses_nothing_accepted(client, full_redis):
    accepted = client.post("/api/jobs", {"kind": "io", "ms": 0, "count": 3}, content_type="application/json")
    assert accepted.status_code == 202
    ids = [job["id"] for job in accepted.json()["jobs"]]
    full_redis()
    refused = client.post("/api/jobs", {"kind": "io", "ms": 0, "count": 3}, content_type="application/json")
    assert refused.status_code == 503
    assert "Redis" in refused.json()["error"] and "full" in refused.json()["error"]
    assert refused["Retry-After"] == "30"
    read = client.get("/api/jobs", {"ids": ",".join(ids)})  # reads still work on a full Redis
    assert read.status_code == 200 and len(read.json()["jobs"]) == 3
