"""What every benchmark starts with: Kafka, Redis and PostgreSQL on loopback ports in a
temporary directory (scripts/services.py), and a migrated database schema; and how it times."""

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import numpy as np  # noqa: E402
import services  # noqa: E402

from tests.support import schema_url, trace_insights  # noqa: E402


@dataclass(frozen=True)
class Servers:
    kafka: str  # bootstrap servers
    redis: str  # URL
    database: str  # URL of a fresh, migrated schema
    postgres: str  # URL of the server, for more schemas (``fresh_schema``)


@contextlib.contextmanager
def started() -> Iterator[Servers]:
    root = Path(tempfile.mkdtemp(prefix="trace-insights-bench-"))
    root.chmod(0o755)
    running = [
        services.Kafka(root / "kafka"),
        services.Redis(root / "redis"),
        services.Postgres(root / "postgres"),
    ]
    try:
        for service in running:
            service.start()
        kafka, redis, postgres = running
        url = fresh_schema(postgres.url)  # type: ignore[attr-defined]
        yield Servers(kafka.bootstrap_servers, redis.url, url, postgres.url)  # type: ignore[attr-defined]
    finally:
        for service in running:
            service.stop()


def fresh_schema(postgres_url: str) -> str:
    """The URL of a new, migrated schema: a run whose topic starts again at offset 0 needs one,
    or the aggregator would read back what an earlier run finalized at the same offsets."""
    _, url = schema_url(postgres_url)
    assert trace_insights("migrate", database_url=url).returncode == 0
    return url


def timed(run: Callable[[], object], repeats: int, warmups: int = 0) -> tuple[float, float]:
    """(p50, p99) in ms of ``repeats`` calls of ``run``, after ``warmups`` untimed ones."""
    for _ in range(warmups):
        run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(samples, [50, 99])
    return float(p50), float(p99)
