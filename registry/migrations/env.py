"""Alembic's entry point: migrations run on the connection ``registry.db`` hands over.

There is no alembic.ini: ``registry.db.upgrade(engine)`` (``wardwatch registry db upgrade``)
builds the configuration and passes its connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from registry.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("run the registry's migrations with `wardwatch registry db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
