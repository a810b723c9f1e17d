"""Hand-written Alembic revisions, one per schema change (Alembic skips this file)."""
