"""A Procfile app that is not Double Boiler: one WSGI callable, served by gunicorn (which takes the port
systemd holds for the web dyno: LISTEN_FDS), no Django, no app.json. The Molecule verifier deploys it with
the same roles (molecule/shared/tests/test_foreign_app.py)."""

import json
import os
import sys


def application(environ, start_response):
    body = json.dumps(
        {
            "app": "foreign",
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "dyno": os.environ.get("DYNO", ""),
            "path": environ.get("PATH_INFO", ""),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
