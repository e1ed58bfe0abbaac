"""gunicorn settings for the reference app: exactly the service's process model.

Workers, threads, worker class, keep-alive, timeouts, recycling and header limits are
imported from service.runtime.gunicorn_conf (so they cannot drift apart); logging, hooks and the
bind address are not: the reference is bare Flask on the same gunicorn.
"""

from service.runtime.gunicorn_conf import (  # noqa: F401 - gunicorn reads these names
    control_socket_disable,
    graceful_timeout,
    keepalive,
    limit_request_field_size,
    limit_request_fields,
    limit_request_line,
    max_requests,
    max_requests_jitter,
    preload_app,
    threads,
    timeout,
    worker_class,
    worker_tmp_dir,
    workers,
)

wsgi_app = "bench.reference_app:app"
proc_name = "bench-reference"
