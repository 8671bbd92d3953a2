"""The PostgreSQL (or SQLite) source of truth: models, migrations and the batch writer."""
