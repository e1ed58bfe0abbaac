"""gunicorn settings for the peer (bench/peer_app.py): the reference's, i.e. exactly the
service's process model, with the peer app."""

from bench.reference_gunicorn_conf import *  # noqa: F403 - gunicorn reads the names

wsgi_app = "bench.peer_app:create_app()"
proc_name = "bench-peer"
