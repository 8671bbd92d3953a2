"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``."""

import hmac
import logging
import time

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from trace_insights.collector import metrics
from trace_insights.collector.ingest import Ingestor, InvalidExperiment
from trace_insights.collector.producer import Unavailable
from trace_insights.core.routing import EXPERIMENT_HEADER

log = logging.getLogger(__name__)


SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceService:
    """Receives raw bytes and parses them itself, so a malformed message is INVALID_ARGUMENT
    (gRPC's own deserializer would answer INTERNAL, which clients read as a server fault)."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor
        token = ingestor.settings.auth_token
        self._expected = f"Bearer {token.get_secret_value()}".encode() if token else None

    async def export(
        self, body: bytes, context: grpc.aio.ServicerContext
    ) -> ExportTraceServiceResponse:
        started = time.perf_counter()
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        if self._expected is not None:
            supplied = str(metadata.get("authorization", "")).encode()
            if not hmac.compare_digest(supplied, self._expected):
                metrics.REQUESTS.labels("grpc", "UNAUTHENTICATED").inc()
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"
                )
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            metrics.REQUESTS.labels("grpc", "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed OTLP protobuf: {exc}")
        header = metadata.get(EXPERIMENT_HEADER)
        try:
            response = await self._ingestor.export(
                request, str(header) if header is not None else None, "grpc"
            )
        except InvalidExperiment as exc:
            metrics.REQUESTS.labels("grpc", "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Unavailable as exc:
            metrics.REQUESTS.labels("grpc", "UNAVAILABLE").inc()
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"unavailable, retry later: {exc}",
                trailing_metadata=_retry_metadata(exc.retry_after_s, str(exc)),
            )
        metrics.REQUESTS.labels("grpc", "OK").inc()
        metrics.REQUEST_SECONDS.labels("grpc").observe(time.perf_counter() - started)
        return response


def _retry_metadata(seconds: int, message: str) -> tuple[tuple[str, bytes], ...]:
    """RetryInfo both as the standard status detail and as the key OTel's Python SDK reads."""
    retry = RetryInfo(retry_delay=Duration(seconds=seconds))
    status = Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message)
    status.details.add().Pack(retry)
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", retry.SerializeToString()),
    )


async def start_server(ingestor: Ingestor, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start serving; returns the server and the port it bound (useful when ``port`` is 0)."""
    limit = ingestor.settings.max_decompressed_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    handler: grpc.RpcMethodHandler = grpc.unary_unary_rpc_method_handler(
        TraceService(ingestor).export,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
