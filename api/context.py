"""What every endpoint shares: the stores, the settings, and turning a request into a window
over the aggregates of known experiments, answered with its ``meta``."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp

from trace_insights.api.aggregates import Aggregates
from trace_insights.api.digests import DigestCache
from trace_insights.api.errors import invalid, not_found
from trace_insights.api.schemas import InsightsRequest, Meta, Overflow
from trace_insights.api.window import TooManyPeriods, Window, resolve
from trace_insights.core.buckets import Resolution
from trace_insights.core.periods import Unit, zone_of
from trace_insights.core.settings import Settings
from trace_insights.outages import is_outage
from trace_insights.stores.base import AggregateStore
from trace_insights.truth.models import Experiment

DEFAULT_RANGE_MS = 7 * 86_400_000
EDGES: dict[Resolution, Literal["minute", "hour", "day"]] = {
    Resolution.MINUTE: "minute",
    Resolution.HOUR: "hour",
    Resolution.DAY: "day",
}


class ChangePublisher(Protocol):
    """Sends a change of a trace (an assessment or its deletion, tag edits) to the
    aggregators, durably, in the trace's partition; raises ``Unavailable`` when it cannot."""

    def publish(self, trace_id: str, request: ExportTraceServiceRequest) -> None: ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...


@dataclass
class Context:
    settings: Settings
    store: AggregateStore
    engine: sa.Engine
    publisher: ChangePublisher
    closing: threading.Event = field(default_factory=threading.Event)  # the server is stopping
    # what else of this process /ready answers for (in ``up``: the aggregator), in words
    checks: list[Callable[[], list[str]]] = field(default_factory=list)
    # the collector's OTLP/HTTP receiver, served at /v1/traces too: MLflow's client logs spans
    # to its tracking server there (composed by the wiring; the API imports no collector)
    spans: ASGIApp | None = None
    digests: DigestCache = field(init=False)
    _seen: set[str] = field(default_factory=set, init=False)  # experiments known to exist

    def __post_init__(self) -> None:
        self.digests = DigestCache(
            self.store, self.settings.retention_ms(), self.settings.digest_cache_entries
        )

    def aggregates(
        self,
        request: InsightsRequest,
        series: bool = True,
        finest: Resolution = Resolution.MINUTE,
    ) -> Aggregates:
        """The request's experiments (404 if unknown) over its window."""
        self.require_experiments(request.experiment_ids)
        return self.over(request.experiment_ids, self.window(request, series, finest))

    def over(self, experiment_ids: list[str], window: Window) -> Aggregates:
        return Aggregates(self.store, self.digests, experiment_ids, window)

    def window(
        self, request: InsightsRequest, series: bool = True, finest: Resolution = Resolution.MINUTE
    ) -> Window:
        """The request's range as periods of stored buckets; without ``series`` one period
        (the fewest stored buckets)."""
        now = int(time.time() * 1000)
        end = request.end_time if request.end_time is not None else now
        start = request.start_time if request.start_time is not None else end - DEFAULT_RANGE_MS
        if end <= start:
            raise invalid("end_time must be after start_time")
        try:
            return resolve(
                start,
                end,
                Unit(request.time_bucket) if series else None,
                zone_of(request.timezone),
                self.settings.retention_ms(),
                finest,
                now,
            )
        except TooManyPeriods as exc:
            raise invalid(str(exc)) from None

    def require_experiments(self, experiment_ids: list[str]) -> None:
        """Raises 404 for an experiment the database does not hold. While the database is
        down, experiments that the aggregates count (or that were seen here) are known, so
        what Redis serves is still served."""
        try:
            with self.engine.connect() as connection:
                known = set(
                    connection.scalars(
                        sa.select(Experiment.experiment_id).where(
                            Experiment.experiment_id.in_(experiment_ids)
                        )
                    )
                )
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            known = (self._seen | self.store.experiments()) & set(experiment_ids)
            if len(known) < len(set(experiment_ids)):
                raise  # cannot tell: a 503
        self._seen.update(known)  # experiments are not deleted, so once seen, known
        missing = [e for e in experiment_ids if e not in known]
        if missing:
            raise not_found(f"experiment {', '.join(repr(e) for e in missing)} does not exist")

    def meta(
        self,
        aggregates: Aggregates,
        source: Literal["stream", "store"] = "stream",
        overflow: list[Overflow] | None = None,
    ) -> Meta:
        progress = self.store.progress()
        window: Window = aggregates.window
        return Meta(
            source=source,
            watermark=aggregates.watermark(),
            consumer_lag=sum(lag for lag, _ in progress.values()) if progress else None,
            lag_reported_at=max(at for _, at in progress.values()) if progress else None,
            edges=EDGES[window.edges],
            start_time=window.start_ms,
            end_time=window.end_ms,
            cardinality_overflow=overflow or [],
            incomplete=aggregates.incomplete() if source == "stream" else [],
        )
