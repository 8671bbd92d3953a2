"""What every benchmark starts with: Kafka, Redis and PostgreSQL on loopback ports in a
temporary directory (scripts/services.py), and a migrated database schema."""

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import services  # noqa: E402

from tests.support import schema_url, trace_insights  # noqa: E402


@dataclass(frozen=True)
class Servers:
    kafka: str  # bootstrap servers
    redis: str  # URL
    database: str  # URL of a fresh, migrated schema


@contextlib.contextmanager
def started() -> Iterator[Servers]:
    root = Path(tempfile.mkdtemp(prefix="trace-insights-bench-"))
    root.chmod(0o755)
    running = [services.Kafka(root / "kafka"), services.Redis(root / "redis"),
               services.Postgres(root / "postgres")]  # fmt: skip
    try:
        for service in running:
            service.start()
        kafka, redis, postgres = running
        _, url = schema_url(postgres.url)  # type: ignore[attr-defined]
        assert trace_insights("migrate", database_url=url).returncode == 0
        yield Servers(kafka.bootstrap_servers, redis.url, url)  # type: ignore[attr-defined]
    finally:
        for service in running:
            service.stop()
