"""Aggregate stores: Redis in production, in-memory in the embedded mode; one contract."""
