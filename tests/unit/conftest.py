"""The API over the embedded implementations (SQLite, in-memory store, in-process bus), driven
in-process: fast tests of its contract without servers."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trace_insights.aggregator.loop import Aggregator
from trace_insights.api.app import create_app
from trace_insights.api.context import Context
from trace_insights.api.publisher import BusPublisher
from trace_insights.bus import LocalBus
from trace_insights.core.settings import Settings
from trace_insights.stores.memory import MemoryStore
from trace_insights.truth.database import create_engine, migrate
from trace_insights.wiring import policy


@dataclass
class EmbeddedApi:
    client: TestClient
    bus: LocalBus
    aggregator: Aggregator

    def drain(self) -> None:
        """Apply everything on the bus."""
        for _ in range(1000):
            if self.aggregator.run_once(poll_timeout_ms=1) == 0 and self.bus.drained():
                return


@contextlib.contextmanager
def embedded(tmp_path: Path, **overrides: object) -> Iterator[EmbeddedApi]:
    settings = Settings(data_dir=tmp_path, topic_partitions=3, **overrides)  # type: ignore[arg-type]
    engine = create_engine(settings.database())
    migrate(engine)
    store, bus = MemoryStore(), LocalBus(settings.topic_partitions)
    aggregator = Aggregator(bus, engine, store, policy(settings), 600_000)
    context = Context(settings=settings, store=store, engine=engine, publisher=BusPublisher(bus))
    with TestClient(create_app(context), raise_server_exceptions=False) as client:
        yield EmbeddedApi(client, bus, aggregator)
    engine.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[EmbeddedApi]:
    with embedded(tmp_path) as running:
        yield running
