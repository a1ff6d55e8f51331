"""Persistence (SQLAlchemy). SQLite embedded by default, PostgreSQL in production."""
