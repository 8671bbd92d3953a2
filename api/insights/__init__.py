"""The insights endpoints, one module per family, all served from the aggregates."""
