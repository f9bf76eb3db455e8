"""Alembic migrations of the registry's schema (run through ``registry.db.upgrade``)."""
