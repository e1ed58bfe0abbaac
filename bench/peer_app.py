"""The peer: the items API as a Flask-SQLAlchemy app, written the way its users write one.

The benchmark runs it beside the service on the same gunicorn process model and the same
database, and compares their throughput per scenario (issue 26: the service should serve
at least 3x as much). It serves the same JSON for what the benchmark asks (an item with
its tags sorted, a page with `next_cursor`, a POST with tags; tests/bench checks the
answers are equal), in the idiomatic way: ORM models, a session per request, the tags
loaded with `selectinload`, `jsonify` of `to_dict()`.

Rows have owners, as the service's do (issue 25): each request acts for the bearer
token's `sub`, read without checking the signature, and reaches only that owner's rows,
or every owner's with `items:admin` in the token's scope (the benchmark's admin).
It does less than the service, which only makes the comparison harder for the service:
no access control (no signature, scope or expiry checked), no access log, no metrics, no
request ids, a body validated by hand rather than by a schema.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import jwt
from flask import Blueprint, Flask, Response, jsonify, request, url_for
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, String, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

item_tags = Table(
    "item_tags",
    Base.metadata,
    Column("item_id", BigInteger, ForeignKey("items.id"), primary_key=True),
    Column("tag_id", BigInteger, ForeignKey("tags.id"), primary_key=True),
)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Item(db.Model):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    tags: Mapped[list[Tag]] = relationship(secondary=item_tags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "tags": sorted(tag.name for tag in self.tags),
        }


def create_app(database_url: str | None = None) -> Flask:
    """The app on `database_url` (default: $DATABASE_URL, as the benchmark sets it)."""
    app = Flask(__name__)
    url = database_url or os.environ["DATABASE_URL"]
    app.config["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg://", 1)
    db.init_app(app)
    app.register_blueprint(_routes())
    return app


def _caller() -> tuple[str, bool]:
    """The token's `sub` and whether its scope has `items:admin` (not verified: the peer
    checks no signature), else `anonymous`."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token:
        return "anonymous", False
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["sub"]), "items:admin" in str(claims.get("scope", "")).split()


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": str(status), "message": message, "details": []}), status


def _routes() -> Blueprint:
    api = Blueprint("api", __name__)

    @api.get("/livez")
    def livez() -> Response:
        return jsonify(status="ok")

    @api.get("/api/v1/items/<int:item_id>")
    def get_item(item_id: int) -> Response:
        owner, admin = _caller()
        query = select(Item).options(selectinload(Item.tags)).where(Item.id == item_id)
        item = db.first_or_404(query if admin else query.where(Item.owner == owner))
        return jsonify(item.to_dict())

    @api.get("/api/v1/items")
    def list_items() -> Response:
        limit = request.args.get("limit", 20, type=int)
        cursor = request.args.get("cursor", 0, type=int)
        owner, admin = _caller()
        query = select(Item).options(selectinload(Item.tags)).where(Item.id > cursor)
        if not admin:
            query = query.where(Item.owner == owner)
        if tag := request.args.get("tag"):
            named = Tag.name == tag
            query = query.where(Item.tags.any(named if admin else named & (Tag.owner == owner)))
        items = db.session.scalars(query.order_by(Item.id).limit(limit)).all()
        next_cursor = str(items[-1].id) if len(items) == limit else None
        return jsonify(items=[item.to_dict() for item in items], next_cursor=next_cursor)

    @api.post("/api/v1/items")
    def create_item() -> Any:
        data = request.get_json()
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return _error(422, "name is required")
        owner, _ = _caller()  # its own tags, and the item its own, as the service's POST
        names = sorted(set(data.get("tags", [])))
        named = select(Tag).where(Tag.owner == owner, Tag.name.in_(names))
        tags = db.session.scalars(named).all() if names else []
        if len(tags) != len(names):
            return _error(422, "unknown tags")
        item = Item(
            owner=owner, name=data["name"], description=data.get("description"), tags=list(tags)
        )
        db.session.add(item)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return _error(409, "an item with this name exists")
        location = url_for("api.get_item", item_id=item.id)
        return jsonify(item.to_dict()), 201, {"Location": location}

    return api
