"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from service.config import Settings
from service.http.json_provider import OrjsonProvider


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings -> db -> blueprints -> errors -> traces, logs and metrics."""
    from service import auth
    from service.api import items, notes, tags
    from service.http import errors, health, openapi, security_headers
    from service.store.database import Database
    from service.telemetry import metrics, middleware, tracing

    settings = settings or Settings.from_env()
    settings.refuse_anonymous_api()  # whatever the entry point, never an open API by accident
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(
        DEBUG=settings.debug,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # Errors are answered by our handlers as JSON, never re-raised to the server.
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.extensions["settings"] = settings

    db = Database(settings)
    if settings.metrics_enabled:
        db.on_engine_created.append(
            lambda engine: metrics.track_pool(engine, settings.db_pool_size)
        )
        metrics.track_database(db)
    db.init_app(app)

    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(items.blueprint)
    app.register_blueprint(tags.blueprint)
    app.register_blueprint(notes.blueprint)
    auth.init_app(app, settings.auth)
    errors.init_app(app)
    security_headers.init_app(app)
    # Inside the request observer: the request id is set before the span starts, and the
    # observer's metrics see the span (a sampled one's trace id is an exemplar).
    tracing.init_app(app, settings.tracing)
    middleware.init_app(app, metrics_enabled=settings.metrics_enabled)
    return app
