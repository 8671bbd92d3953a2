"""OTLP/HTTP receiver: ``POST /v1/traces`` (and ``/v1/metrics``, ``/v1/logs``, refused item by
item: other_signals.py) plus health, readiness and Prometheus metrics.

Replies follow the OTLP/HTTP rules: the body is in the request's content type, errors are a
``google.rpc.Status`` (in JSON also carrying MLflow's ``error_code``), 503 carries
``Retry-After``, and client mistakes are 4xx that name the problem, never 500.
"""

import hmac
import logging
import time
import zlib
from collections.abc import Mapping

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trace_insights.collector import metrics
from trace_insights.collector.ingest import Ingestor, InvalidExperiment
from trace_insights.collector.other_signals import SIGNALS, Unreadable
from trace_insights.collector.otlp_json import OtlpJsonError, decode_request, encode_response
from trace_insights.collector.producer import Unavailable
from trace_insights.core.routing import EXPERIMENT_HEADER

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# HTTP status → (gRPC status code, MLflow error code)
_CODES = {
    400: (3, "INVALID_PARAMETER_VALUE"),
    401: (16, "UNAUTHENTICATED"),
    404: (5, "ENDPOINT_NOT_FOUND"),
    405: (12, "BAD_REQUEST"),
    413: (8, "REQUEST_LIMIT_EXCEEDED"),
    415: (3, "BAD_REQUEST"),
    500: (13, "INTERNAL_ERROR"),
    503: (14, "TEMPORARILY_UNAVAILABLE"),
}


class Problem(Exception):
    """A request the collector refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def create_app(ingestor: Ingestor) -> Starlette:
    settings = ingestor.settings
    token = settings.auth_token.get_secret_value() if settings.auth_token else None

    async def export(request: Request) -> Response:
        started = time.perf_counter()
        content_type = _media_type(request)
        try:
            _authorize(request, token)
            if content_type not in (PROTOBUF, JSON):
                raise Problem(
                    415,
                    f"unsupported Content-Type {content_type or '(none)'!r}; "
                    f"use {PROTOBUF} or {JSON}",
                )
            body = await _read_body(
                request, settings.max_request_bytes, settings.max_decompressed_bytes
            )
            export_request = _decode(body, content_type)
            response = await ingestor.export(
                export_request, request.headers.get(EXPERIMENT_HEADER), "http"
            )
        except Problem as problem:
            metrics.REQUESTS.labels("http", str(problem.status)).inc()
            return _error(problem.status, str(problem), content_type, problem.headers)
        except InvalidExperiment as exc:
            metrics.REQUESTS.labels("http", "400").inc()
            return _error(400, str(exc), content_type)
        except Unavailable as exc:
            metrics.REQUESTS.labels("http", "503").inc()
            retry = {"Retry-After": str(exc.retry_after_s)}
            return _error(503, f"unavailable, retry later: {exc}", content_type, retry)
        except Exception:
            log.exception("export failed")
            metrics.REQUESTS.labels("http", "500").inc()
            return _error(500, "internal error", content_type)
        metrics.REQUESTS.labels("http", "200").inc()
        metrics.REQUEST_SECONDS.labels("http").observe(time.perf_counter() - started)
        if content_type == PROTOBUF:
            return Response(response.SerializeToString(), media_type=PROTOBUF)
        return Response(encode_response(response), media_type=JSON)

    async def other_signal(request: Request) -> Response:
        """Metrics and logs: read like traces, then every item refused (other_signals)."""
        signal = SIGNALS[request.url.path]
        content_type = _media_type(request)
        try:
            _authorize(request, token)
            if content_type not in (PROTOBUF, JSON):
                raise Problem(415, f"unsupported Content-Type {content_type or '(none)'!r}")
            body = await _read_body(
                request, settings.max_request_bytes, settings.max_decompressed_bytes
            )
            response = signal.refuse(body, as_json=content_type == JSON)
        except Problem as problem:
            return _error(problem.status, str(problem), content_type, problem.headers)
        except Unreadable as exc:
            return _error(400, str(exc), content_type)
        metrics.OTHER_SIGNALS.labels(signal.name).inc()
        if content_type == PROTOBUF:
            return Response(response.SerializeToString(), media_type=PROTOBUF)
        return Response(json_format.MessageToJson(response), media_type=JSON)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if await ingestor.producer.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "kafka unreachable"}, status_code=503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = (
            f"{request.method} is not allowed on {request.url.path}"
            if exc.status_code == 405
            else f"no endpoint {request.url.path}; OTLP traces go to POST /v1/traces"
        )
        return _error(exc.status_code, message, _media_type(request), exc.headers or {})

    return Starlette(
        routes=[
            Route("/v1/traces", export, methods=["POST"]),
            *(Route(path, other_signal, methods=["POST"]) for path in SIGNALS),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    supplied = request.headers.get("authorization", "")
    if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
        raise Problem(
            401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="otlp"'}
        )


async def _read_body(request: Request, max_bytes: int, max_decompressed: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > max_bytes:
            raise Problem(413, f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    chunks = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:
                raise Problem(413, f"body exceeds the {max_bytes}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Problem(400, "client disconnected before the body was complete") from None
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(body, max_decompressed)
    if encoding not in ("identity", ""):
        raise Problem(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes, so a gzip bomb costs nothing."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Problem(400, f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise Problem(413, f"decompressed body exceeds the {limit}-byte limit")
    if not inflater.eof:
        raise Problem(400, "gzip body is truncated")
    return data


def _decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    if content_type == JSON:
        try:
            return decode_request(body)
        except OtlpJsonError as exc:
            raise Problem(400, f"malformed OTLP/JSON: {exc}") from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise Problem(400, f"malformed OTLP protobuf: {exc}") from None
    return request


def _error(
    status: int, message: str, content_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    grpc_code, error_code = _CODES.get(status, (2, "BAD_REQUEST"))
    if content_type == PROTOBUF:
        body = Status(code=grpc_code, message=message).SerializeToString()
        return Response(body, status_code=status, media_type=PROTOBUF, headers=headers)
    return JSONResponse(
        {"code": grpc_code, "message": message, "error_code": error_code},
        status_code=status,
        headers=headers,
    )
