"""The API application: insights over the aggregates, MLflow-compatible resources, health."""

import hmac
import time

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route

from trace_insights.api import dashboard, errors
from trace_insights.api.alerts import routes as alerts
from trace_insights.api.body_limit import BodyLimit
from trace_insights.api.context import Context
from trace_insights.api.errors import INVALID_PARAMETER_VALUE, UNAUTHENTICATED, ApiError
from trace_insights.api.insights import correlation, prices, quality, stream, tags, tools, traffic
from trace_insights.api.mlflow import assessments, experiments, search, traces, version

INSIGHTS_PREFIX = "/api/3.0/mlflow/traces/insights"
OTLP_TRACES = "/v1/traces"
REQUESTS = Counter("trace_insights_api_requests", "API requests", ["route", "status"])
SECONDS = Histogram("trace_insights_api_request_seconds", "API request latency", ["route"])


def create_app(context: Context) -> FastAPI:
    app = FastAPI(
        title="Trace Insights",
        summary="Live insights over OpenTelemetry traces of LLM and agent applications.",
        version="0.1.0",
    )
    app.state.context = context
    app.add_middleware(
        BodyLimit, max_bytes=context.settings.max_api_body_bytes, exempt=(OTLP_TRACES,)
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024)  # Starlette leaves SSE uncompressed
    app.state.snapshots = stream.Snapshots()
    errors.install(app)
    guarded = [Depends(_authorize)]
    insights = APIRouter(prefix=INSIGHTS_PREFIX, dependencies=guarded, tags=["insights"])
    for module in (traffic, quality, tools, tags, correlation):
        insights.include_router(module.router)
        for route in module.router.routes:
            # claim the other methods, or GET .../insights/x/y would reach GET /traces/{id}/...
            insights.add_api_route(
                route.path,
                _post_only,
                methods=["GET", "PUT", "PATCH", "DELETE"],
                include_in_schema=False,
            )
    insights.include_router(stream.router)
    insights.include_router(alerts.router)
    insights.include_router(prices.router)
    app.include_router(insights)
    app.include_router(experiments.router, dependencies=guarded, tags=["experiments"])
    app.include_router(search.v2, dependencies=guarded, tags=["traces"])
    app.include_router(search.v3, dependencies=guarded, tags=["traces"])
    app.include_router(traces.router, dependencies=guarded, tags=["traces"])
    app.include_router(traces.v2, dependencies=guarded, tags=["traces"])
    app.include_router(assessments.router, dependencies=guarded, tags=["assessments"])
    app.include_router(version.router)
    if context.spans is not None:  # it checks the token itself, as the collector does
        app.router.routes.append(Route(OTLP_TRACES, context.spans, methods=["POST"]))
    dashboard.install(app)

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # answered here, so it is counted and logged once
            response = errors.failure(exc, context.settings.retry_after_s)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        REQUESTS.labels(name, str(response.status_code)).inc()
        SECONDS.labels(name).observe(time.perf_counter() - started)
        return response

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    def ready() -> JSONResponse:
        problems = _problems(context)
        return JSONResponse(
            {"status": "ready" if not problems else "not ready", "problems": problems},
            status_code=200 if not problems else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _post_only() -> None:
    raise ApiError(405, INVALID_PARAMETER_VALUE, "insights endpoints take POST with a JSON body")


def _authorize(request: Request) -> None:
    token = request.app.state.context.settings.auth_token
    if token is None:
        return
    supplied = request.headers.get("authorization", "")
    if not hmac.compare_digest(supplied.encode(), f"Bearer {token.get_secret_value()}".encode()):
        raise ApiError(401, UNAUTHENTICATED, "missing or wrong bearer token")


def _problems(context: Context) -> list[str]:
    problems = []
    try:
        with context.engine.connect() as connection:
            connection.execute(sa.select(1))
    except SQLAlchemyError as exc:
        problems.append(f"database: {exc.__class__.__name__}")
    try:
        context.store.progress()
    except (RedisError, OSError) as exc:
        problems.append(f"aggregate store: {exc.__class__.__name__}")
    if not context.publisher.ready():
        problems.append("assessment publisher: Kafka not reachable")
    for check in context.checks:
        problems.extend(check())
    return problems
