"""Alembic migrations of firstright, one branch per concept (see README.md here)."""
