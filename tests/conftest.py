"""Real services for the suite: started once per session on free loopback ports, or taken
from ``TRACE_INSIGHTS_*`` URLs when those are set."""

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Collector, start_collector

sys.path.insert(0, str(ROOT / "scripts"))
import services


@pytest.fixture(scope="session")
def service_root() -> Iterator[Path]:
    # Under /tmp rather than pytest's private tmp dir: the postgres user must reach it.
    root = Path(tempfile.mkdtemp(prefix="trace-insights-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _server(env_name: str, start: Callable[[], tuple[str, Callable[[], None]]]) -> Iterator[str]:
    """The server named by ``env_name`` if set, else one started here for the session."""
    external = os.environ.get(env_name)
    if external:
        yield external
        return
    address, stop = start()
    yield address
    stop()


@pytest.fixture(scope="session")
def kafka_servers(service_root: Path) -> Iterator[str]:
    def start() -> tuple[str, Callable[[], None]]:
        broker = services.Kafka(service_root / "kafka")
        broker.start()
        return broker.bootstrap_servers, broker.stop

    yield from _server("TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS", start)


@pytest.fixture(scope="session")
def redis_url(service_root: Path) -> Iterator[str]:
    def start() -> tuple[str, Callable[[], None]]:
        server = services.Redis(service_root / "redis")
        server.start()
        return server.url, server.stop

    yield from _server("TRACE_INSIGHTS_REDIS_URL", start)


@pytest.fixture(scope="session")
def database_url(service_root: Path) -> Iterator[str]:
    def start() -> tuple[str, Callable[[], None]]:
        server = services.Postgres(service_root / "postgres")
        server.start()
        return server.url, server.stop

    yield from _server("TRACE_INSIGHTS_DATABASE_URL", start)


@pytest.fixture
def topic() -> str:
    return f"spans-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def collector_factory(kafka_servers: str) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(
        topic: str | None = None, servers: str | None = None, **settings: object
    ) -> Collector:
        collector = start_collector(
            servers or kafka_servers, topic or f"spans-{uuid.uuid4().hex[:12]}", **settings
        )
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


@pytest.fixture
def collector(collector_factory: Callable[..., Collector], topic: str) -> Collector:
    return collector_factory(topic)


@pytest.fixture(params=["sqlite", "postgres"])
def truth_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A migrated, empty source of truth: a SQLite file, or a PostgreSQL schema of its own."""
    import sqlalchemy as sa

    from trace_insights.truth.database import create_engine, migrate

    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'truth.db'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("database_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    engine = sa.create_engine(
        url, connect_args={"options": f"-csearch_path={schema},public"}, pool_size=4
    )
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(sa.schema.DropSchema(schema, cascade=True))
    admin.dispose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[object]:
    from trace_insights.stores.memory import MemoryStore
    from trace_insights.stores.redis import RedisStore

    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore(request.getfixturevalue("redis_url"))
    yield redis_store
    redis_store.close()
