"""The reference: bare Flask returning a small JSON body, the ceiling of Flask on gunicorn.

No database, no middleware, no logging: whatever the service does beyond this is what
the benchmark's ratios measure.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> Response:
    return jsonify(message="Hello, World!")
