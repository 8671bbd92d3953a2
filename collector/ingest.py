"""The transport-independent export path shared by OTLP/HTTP and OTLP/gRPC."""

from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from trace_insights.collector import metrics
from trace_insights.collector.batcher import PartitionBatcher
from trace_insights.collector.producer import SpanProducer, Unavailable
from trace_insights.collector.regroup import regroup
from trace_insights.core.routing import check_experiment_id
from trace_insights.core.settings import Settings


class InvalidExperiment(ValueError):
    """The experiment header is malformed; the whole request is refused (400)."""


@dataclass
class Ingestor:
    settings: Settings
    producer: SpanProducer
    batcher: PartitionBatcher

    @classmethod
    def over(cls, settings: Settings, producer: SpanProducer) -> "Ingestor":
        """The export path over ``producer``, batching as the settings say."""
        linger_s = settings.batch_linger_ms / 1000
        return cls(
            settings, producer, PartitionBatcher(producer, settings.max_message_bytes, linger_s)
        )

    async def export(
        self, request: ExportTraceServiceRequest, experiment_header: str | None, transport: str
    ) -> ExportTraceServiceResponse:
        """Valid spans are durable in Kafka when this returns; raises ``Unavailable`` if not."""
        if experiment_header is not None:
            try:
                check_experiment_id(experiment_header)
            except ValueError as exc:
                raise InvalidExperiment(f"header x-mlflow-experiment-id: {exc}") from None
        partitions = self.producer.partitions
        if not partitions:
            raise Unavailable("Kafka is not connected yet", self.settings.retry_after_s)
        grouped = regroup(
            request,
            partitions=partitions,
            max_message_bytes=self.settings.max_message_bytes,
            experiment_id=experiment_header,
        )
        metrics.SPANS_RECEIVED.labels(transport).inc(grouped.accepted + grouped.rejected_count)
        for reason, count in grouped.rejected.items():
            metrics.SPANS_REJECTED.labels(reason).inc(count)
        if grouped.routed:
            await self.batcher.submit(grouped.routed)
        metrics.SPANS_ACCEPTED.inc(grouped.accepted)
        response = ExportTraceServiceResponse()
        if grouped.rejected:
            response.partial_success.rejected_spans = grouped.rejected_count
            response.partial_success.error_message = grouped.error_message()
        return response
