"""``trace-insights``: one subcommand per process, plus the load generator."""

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from trace_insights.core import logs
from trace_insights.core.settings import Settings

app = typer.Typer(
    help="Trace Insights: OTLP traces of LLM and agent applications turned into live insights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None, typer.Option(help="Local state directory [env: TRACE_INSIGHTS_DATA_DIR]")
]
Host = Annotated[str | None, typer.Option(help="Bind address [env: TRACE_INSIGHTS_HOST]")]
HttpPort = Annotated[
    int | None,
    typer.Option(help="OTLP/HTTP port, default 4318 [env: TRACE_INSIGHTS_OTLP_HTTP_PORT]"),
]
GrpcPort = Annotated[
    int | None,
    typer.Option(help="OTLP/gRPC port, default 4317 [env: TRACE_INSIGHTS_OTLP_GRPC_PORT]"),
]
KafkaServers = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap servers [env: TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS]"),
]


def load_settings(**overrides: Any) -> Settings:
    """Environment first, flags on top; a bad value ends the command with a clear message."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise typer.BadParameter(problems) from None


@app.command()
def collector(
    otlp_http_port: HttpPort = None,
    otlp_grpc_port: GrpcPort = None,
    host: Host = None,
    data_dir: DataDir = None,
    kafka_bootstrap_servers: KafkaServers = None,
) -> None:
    """Receive OTLP traces over HTTP and gRPC and write them durably to Kafka."""
    from trace_insights.wiring import run_collector

    settings = load_settings(
        otlp_http_port=otlp_http_port,
        otlp_grpc_port=otlp_grpc_port,
        host=host,
        data_dir=data_dir,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
    )
    try:
        settings.require_kafka()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    run_collector(settings)


RedisUrl = Annotated[str | None, typer.Option(help="Redis URL [env: TRACE_INSIGHTS_REDIS_URL]")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="Database URL, default SQLite in the data dir [env: TRACE_INSIGHTS_DATABASE_URL]"
    ),
]


@app.command()
def aggregator(
    aggregator_port: Annotated[
        int | None,
        typer.Option(
            help="/health, /ready and /metrics, default 9464 [env: TRACE_INSIGHTS_AGGREGATOR_PORT]"
        ),
    ] = None,
    host: Host = None,
    data_dir: DataDir = None,
    kafka_bootstrap_servers: KafkaServers = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Consume the span topic into PostgreSQL and the Redis aggregates (one group member)."""
    from trace_insights.wiring import run_aggregator

    settings = load_settings(
        aggregator_port=aggregator_port,
        host=host,
        data_dir=data_dir,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        redis_url=redis_url,
        database_url=database_url,
    )
    try:
        settings.require_kafka()
        settings.require_redis()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    run_aggregator(settings)


ApiPort = Annotated[
    int | None, typer.Option(help="API port, default 8000 [env: TRACE_INSIGHTS_API_PORT]")
]


@app.command()
def up(
    otlp_http_port: HttpPort = None,
    otlp_grpc_port: GrpcPort = None,
    api_port: ApiPort = None,
    host: Host = None,
    data_dir: DataDir = None,
    demo: Annotated[bool, typer.Option(help="Also send demo agent traffic (experiment 0)")] = False,
) -> None:
    """Everything in one process: collector, aggregator and API. Embedded bus, in-memory
    aggregates and SQLite unless TRACE_INSIGHTS_* server URLs are set."""
    from trace_insights.up import run

    settings = load_settings(
        otlp_http_port=otlp_http_port,
        otlp_grpc_port=otlp_grpc_port,
        api_port=api_port,
        host=host,
        data_dir=data_dir,
    )
    logs.configure(settings.log_level, settings.log_format)
    run(settings, demo=demo)


@app.command()
def api(
    api_port: ApiPort = None,
    host: Host = None,
    data_dir: DataDir = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
    kafka_bootstrap_servers: KafkaServers = None,
) -> None:
    """Serve the insights API over Redis and PostgreSQL (assessments go through Kafka)."""
    from trace_insights.wiring import run_api

    settings = load_settings(
        api_port=api_port,
        host=host,
        data_dir=data_dir,
        redis_url=redis_url,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
    )
    try:
        settings.require_redis()
        settings.require_kafka()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    run_api(settings)


@app.command()
def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database schema (idempotent)."""
    from sqlalchemy.exc import SQLAlchemyError

    from trace_insights.outages import database_problem
    from trace_insights.truth.database import create_engine
    from trace_insights.truth.database import migrate as upgrade

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    engine = create_engine(settings.database())
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        typer.echo(f"error: migration failed: {database_problem(exc)}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo("schema is up to date")


@app.command()
def rebuild(
    start_ms: Annotated[
        int | None, typer.Option(help="Range start, epoch ms (whole UTC days)")
    ] = None,
    end_ms: Annotated[int | None, typer.Option(help="Range end, epoch ms (exclusive)")] = None,
    experiment_id: Annotated[list[str] | None, typer.Option(help="Only these experiments")] = None,
    reprice: Annotated[
        bool,
        typer.Option(help="First price the range's spans again, with the prices in force now"),
    ] = False,
    data_dir: DataDir = None,
    redis_url: RedisUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Recompute the Redis aggregates from the database (live aggregators wait meanwhile;
    they also do this by themselves for experiments the store lost). With --reprice, a price
    override created or deleted since applies to the range's past calls."""
    from trace_insights.aggregator.rebuild import Busy, count_traces
    from trace_insights.aggregator.rebuild import rebuild as replay
    from trace_insights.aggregator.reprice import reprice as price_again
    from trace_insights.truth.database import create_engine
    from trace_insights.wiring import open_store, policy

    if (start_ms is None) != (end_ms is None):
        raise typer.BadParameter("give both --start-ms and --end-ms, or neither")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise typer.BadParameter("--end-ms must be after --start-ms")
    settings = load_settings(data_dir=data_dir, redis_url=redis_url, database_url=database_url)
    engine = create_engine(settings.database())
    total = count_traces(engine, start_ms, end_ms, experiment_id)
    if reprice:
        with typer.progressbar(length=total, label="repricing") as bar:
            changed = price_again(engine, start_ms, end_ms, experiment_id, bar.update)
        typer.echo(f"priced {changed} calls anew")
        if not settings.redis_url:  # up's aggregates live in its process
            typer.echo("no Redis: `trace-insights up` rebuilds its aggregates when it starts")
            engine.dispose()
            return
    try:
        store = open_store(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with typer.progressbar(length=total, label="rebuilding") as bar:
        try:
            replayed = replay(
                engine, store, policy(settings), start_ms, end_ms, experiment_id, bar.update
            )
        except Busy as exc:
            raise typer.BadParameter(f"{exc}; run it again once that one is done") from None
    store.close()
    engine.dispose()
    typer.echo(f"rebuilt the aggregates of {replayed} traces")


@app.command("dead-letters")
def dead_letters(
    replay: Annotated[
        list[str] | None,
        typer.Option(help="Replay this one, as PARTITION:OFFSET (repeat for more)"),
    ] = None,
    replay_all: Annotated[bool, typer.Option(help="Replay every one not replayed yet")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the records the aggregators kept as dead letters, or replay them after a fix (the
    aggregator reading each one's partition re-appends it there within seconds)."""
    from sqlalchemy.exc import SQLAlchemyError

    from trace_insights.aggregator.truth import dead_letters as letters
    from trace_insights.outages import database_problem
    from trace_insights.truth.database import create_engine

    keys = None
    if replay:
        try:
            keys = [(int(p), int(o)) for p, _, o in (item.partition(":") for item in replay)]
        except ValueError:
            raise typer.BadParameter("--replay takes PARTITION:OFFSET, e.g. 3:1204") from None
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    engine = create_engine(settings.database())
    try:
        if keys is not None or replay_all:
            with engine.begin() as connection:
                marked = letters.request_replay(connection, keys)
            typer.echo(f"marked {marked} dead letters for replay")
            return
        with engine.connect() as connection:
            kept = letters.listed(connection)
    except SQLAlchemyError as exc:
        problem = database_problem(exc)
        typer.echo(f"error: {problem} (is the schema current? trace-insights migrate)", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if not kept:
        typer.echo("no dead letters")
    for letter in kept:
        state = (
            "replayed"
            if letter.replayed_ms
            else "replay requested"
            if letter.replay_requested_ms
            else "kept"
        )
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(letter.recorded_ms / 1000))
        error = (letter.error.splitlines() or [""])[0][:200]
        typer.echo(
            f"{letter.src_partition}:{letter.src_offset}\t{when}\t{letter.stage}\t"
            f"{state}\t{len(letter.payload)} bytes\t{error}"
        )


@app.command()
def generate(
    endpoint: Annotated[
        str, typer.Option(help="Collector address: http://host:4318 (HTTP) or host:4317 (gRPC)")
    ] = "http://127.0.0.1:4318",
    protocol: Annotated[str, typer.Option(help="http or grpc")] = "http",
    traces: Annotated[int, typer.Option(min=1, help="How many traces to send")] = 100,
    rate: Annotated[
        float, typer.Option(min=0, help="Traces per second; 0 = as fast as possible")
    ] = 20.0,
    experiment_id: Annotated[str, typer.Option(help="Sent as x-mlflow-experiment-id")] = "0",
    error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of failing tool calls")
    ] = 0.1,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable traffic")] = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token, if the collector wants one")
    ] = None,
) -> None:
    """Send realistic LLM-agent traces through the OpenTelemetry SDK's OTLP exporters."""
    from trace_insights.generate import Traffic, send

    if protocol not in ("http", "grpc"):
        raise typer.BadParameter("--protocol must be http or grpc")
    traffic = Traffic(error_rate=error_rate, seed=seed)
    sent = send(
        traffic,
        endpoint=endpoint,
        protocol=protocol,
        traces=traces,
        rate=rate,
        experiment_id=experiment_id,
        token=token,
        progress=True,
    )
    typer.echo(f"sent {sent.traces} traces ({sent.spans} spans) to {endpoint} over {protocol}")
    if sent.failed_spans:
        typer.echo(f"error: the collector refused {sent.failed_spans} spans", err=True)
        raise typer.Exit(1)
