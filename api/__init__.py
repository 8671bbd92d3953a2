"""The insights API over the live aggregates and the PostgreSQL source of truth."""
