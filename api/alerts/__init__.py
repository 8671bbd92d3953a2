"""Alert rules over the aggregates, evaluated as updates are applied, with signed webhooks."""
