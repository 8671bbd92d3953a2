"""How the aggregator writes batches to the source of truth and what they owe the aggregates."""
