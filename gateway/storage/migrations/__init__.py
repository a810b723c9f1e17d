"""Alembic migrations of the event store (applied by :meth:`EventStore.open`)."""
