"""The job API's OpenAPI 3.1 description, served at /api/openapi.json.

Built from the same constants the views check (app/jobs/views.py), so a limit changes in one place; a test
(tests/test_openapi.py) checks that every API route and method is described, and a fuzz run against the
real dyno checks that every answer fits the description.
"""

from app.jobs import views

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}


def _error(description):
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description, schema_name):
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


UNAVAILABLE = {
    "description": "Redis (the broker and result store) is down or stalled: answered within about 4 s, with "
    "Retry-After; the dyno recovers by itself when Redis returns.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unavailable"}}},
}


def _schemas():
    job_state = {"type": "string", "enum": ["queued", "running", "done", "failed"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Unavailable": {
            "type": "object",
            "required": ["error", "unavailable"],
            "properties": {"error": {"type": "string"}, "unavailable": {"type": "string"}},
        },
        "JobSpec": {
            "type": "object",
            "additionalProperties": False,
            "description": "Every field is optional; an empty body (or {}) enqueues one io job of 100 ms.",
            "properties": {
                "kind": {"type": "string", "enum": list(views.JOB_KINDS), "default": "io"},
                "ms": {"type": "integer", "minimum": 0, "maximum": views.MAX_JOB_MS, "default": 100},
                "count": {"type": "integer", "minimum": 1, "maximum": views.MAX_BATCH, "default": 1},
            },
        },
        "QueuedJob": {
            "type": "object",
            "required": ["id", "state", "kind", "ms"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "state": {"const": "queued"},
                "kind": {"type": "string", "enum": list(views.JOB_KINDS)},
                "ms": {"type": "integer"},
            },
        },
        "Enqueued": {
            "type": "object",
            "required": ["jobs"],
            "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/QueuedJob"}}},
        },
        "Job": {
            "type": "object",
            "required": ["id", "state", "kind", "ms", "completions"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "state": job_state,
                "kind": NULLABLE_STRING,
                "ms": {"type": ["integer", "null"]},
                "enqueued_at": NULLABLE_NUMBER,
                "web_worker": NULLABLE_STRING,
                "celery_worker": NULLABLE_STRING,
                "started_at": NULLABLE_NUMBER,
                "finished_at": NULLABLE_NUMBER,
                "result": {"type": ["object", "null"]},
                "error": NULLABLE_STRING,
                "completions": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many times a worker ran the job to completion: 0 until done, then 1.",
                },
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "unknown"],
            "properties": {
                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                "unknown": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            },
        },
        "Waited": {
            "type": "object",
            "required": ["waited_ms", "web_worker"],
            "properties": {"waited_ms": {"type": "integer"}, "web_worker": {"type": "string"}},
        },
        "Health": {
            "type": "object",
            "required": ["status", "down", "dyno", "layout", "web_worker", "beat_last_tick"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "down": {
                    "type": "object",
                    "description": "Each dependency that is down (redis, database) and why.",
                    "additionalProperties": {"type": "string"},
                },
                "dyno": {"type": "string"},
                "layout": {"type": "string", "enum": ["packed", "split"]},
                "web_worker": {"type": "string"},
                "beat_last_tick": NULLABLE_NUMBER,
            },
        },
        "Dyno": {
            "type": "object",
            "required": ["dyno", "layout", "web_worker", "memory"],
            "properties": {"dyno": {"type": "string"}, "memory": {"type": "object"}},
        },
    }


def spec():
    bad = _error("The request is malformed; the error names the problem.")
    id_parameter = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": "A job id (a UUID) as POST /api/jobs returned it.",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Double Boiler job API",
            "version": "1",
            "description": "Enqueue CPU- or I/O-bound jobs on the dyno's Celery worker and read their state. "
            "Every answer is JSON.",
        },
        "paths": {
            "/api/jobs": {
                "post": {
                    "summary": f"Enqueue 1 to {views.MAX_BATCH} jobs",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
                    },
                    "responses": {"202": _json("The jobs, queued.", "Enqueued"), "400": bad, "503": UNAVAILABLE},
                },
                "get": {
                    "summary": f"Read up to {views.MAX_IDS} jobs at once",
                    "parameters": [
                        {
                            "name": "ids",
                            "in": "query",
                            "required": True,
                            "style": "form",
                            "explode": False,
                            "schema": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": views.MAX_IDS,
                                "items": {"type": "string", "format": "uuid"},
                            },
                        }
                    ],
                    "responses": {
                        "200": _json("The known jobs, and the ids no job has.", "JobList"),
                        "400": bad,
                        "414": _error("The request line is longer than 8190 bytes."),
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "summary": "Read one job",
                    "parameters": [id_parameter],
                    "responses": {
                        "200": _json("The job.", "Job"),
                        "400": bad,
                        "404": _error("No job has this id (or the path is not the API's)."),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/api/wait": {
                "get": {
                    "summary": "Answer after ms milliseconds, holding no worker (a slow request for tests)",
                    "parameters": [
                        {
                            "name": "ms",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": views.MAX_WAIT_MS,
                                "default": views.DEFAULT_WAIT_MS,
                            },
                        }
                    ],
                    "responses": {"200": _json("Waited.", "Waited"), "400": bad},
                }
            },
            "/api/health": {
                "get": {
                    "summary": "The dyno and its dependencies",
                    "responses": {
                        "200": _json("Every dependency answers.", "Health"),
                        "503": _json("A dependency is down: `down` names it.", "Health"),
                    },
                }
            },
            "/api/dyno": {
                "get": {
                    "summary": "The demo page's vital signs: memory of the dyno's processes",
                    "responses": {"200": _json("The dyno.", "Dyno"), "503": UNAVAILABLE},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {"schemas": _schemas()},
    }
