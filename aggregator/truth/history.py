"""A finalized trace as its aggregates count it at any offset of its partition.

Every fact of a trace is a function of what its partition had delivered by an offset: the
spans it was finalized with, the spans that came late (each with the offset of its first
delivery), the assessments counted at its finalization, the assessment changes since, and its
tag edits. So the aggregates hold, for every finalized trace, its state at the fence; a batch
moves each trace it touched from its state at the fence to its state at the batch's end — a
late root or a late child moves the trace's status, latency, dimensions and counts, exactly
once in effect, whatever order the spans came in and however often the batch is replayed.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from trace_insights.aggregator.truth.assessments import Move
from trace_insights.core.assessments import value_key
from trace_insights.core.records import SpanRecord, TraceSummary, summarize


@dataclass(frozen=True)
class TraceState:
    summary: TraceSummary  # assessments: those the trace has at this offset
    spans: list[SpanRecord]
    late: int  # how many of the spans came after the finalization


@dataclass
class History:
    summary: TraceSummary  # the truth's row: as finalized, unless spans came late
    final_offset: int
    spans: list[SpanRecord]  # delivered by the finalization (with their trace tags if any late)
    late: list[tuple[int, SpanRecord]] = field(default_factory=list)  # offset order
    events: list[Move] = field(default_factory=list)  # offset order
    # tag edits (offset, key, value or None), offset order; those up to the finalization
    # are in its summary, as the spans have them (with their trace tags) when there are any
    edits: list[tuple[int, str, str | None]] = field(default_factory=list)

    @property
    def experiment_id(self) -> str:
        return self.summary.experiment_id

    def changes(self) -> list[int]:
        """The offsets at which the trace's state changed."""
        return [
            self.final_offset,
            *(o for o, _ in self.late),
            *(e.offset for e in self.events),
            *(o for o, _, _ in self.edits if o > self.final_offset),
        ]

    def changed_in(self, after: int, end: int) -> bool:
        return any(after < offset <= end for offset in self.changes())

    def late_in(self, after: int, end: int) -> int:
        return sum(after < offset <= end for offset, _ in self.late)

    def at(self, offset: int) -> TraceState | None:
        """The trace's state once its partition had delivered ``offset``; None before its
        finalization."""
        if offset < self.final_offset:
            return None
        late = [span for at, span in self.late if at <= offset]
        spans = self.spans + late
        summary = self.summary
        if self.late or self.edits:  # the row was revised: summarized from spans and edits
            edits = [(key, value) for at, key, value in self.edits if at <= offset]
            summary = summarize(summary.trace_id, summary.experiment_id, spans, edits)
        assessed = _apply(self.summary.assessments, (e for e in self.events if e.offset <= offset))
        return TraceState(replace(summary, assessments=assessed), spans, len(late))


def _apply(counted: tuple[tuple[str, Any], ...], moves: Iterable[Move]) -> tuple[Any, ...]:
    """The assessments after ``moves``: each takes its previous value out and its new in."""
    values = list(counted)
    for move in moves:
        if move.previous is not None:
            name, value = move.previous
            wanted = (name, value_key(value))
            for index, (n, v) in enumerate(values):
                if (n, value_key(v)) == wanted:
                    del values[index]
                    break
        if move.value is not None:
            values.append((move.name, move.value))
    return tuple(values)
