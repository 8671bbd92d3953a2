"""Occurrence, total and partner counts of a window: what NPMI reads of the aggregates,
for the dimension endpoints and the alert rules alike."""

from trace_insights.api.aggregates import Aggregates, Figures, total
from trace_insights.core import keys
from trace_insights.core.keys import fields


class Counts:
    """Occurrences, total and partner counts of a window, summed over its buckets; read as
    narrowly as the question allows (a few fields, unless a whole hash is needed)."""

    def __init__(self, aggregates: Aggregates) -> None:
        self.aggregates = aggregates
        self.total = int(total(aggregates.counters(keys.bucket, [fields.TRACES]))[fields.TRACES])
        self._occurrences: Figures | None = None

    @property
    def all_occurrences(self) -> Figures:
        if self._occurrences is None:
            self._occurrences = total(self.aggregates.counters(keys.occurrences))
        return self._occurrences

    def occurrences(self, dimensions: list[str]) -> Figures:
        if self._occurrences is not None:
            return self._occurrences
        if not dimensions:
            return Figures()
        return total(self.aggregates.counters(keys.occurrences, dimensions))

    def partners(self, dimension: str, wanted: list[str] | None = None) -> Figures:
        return total(
            self.aggregates.counters(lambda e, r, s: keys.partners(e, r, s, dimension), wanted)
        )

    def values_of(self, assessment: str) -> list[str]:
        prefix = f"assessment.{assessment}="
        return [d for d, n in self.all_occurrences.items() if d.startswith(prefix) and n > 0]
