"""The consumer group that turns the span topic into PostgreSQL rows and Redis aggregates."""
