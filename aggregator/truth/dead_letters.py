"""Dead letters in the source of truth: kept with the truth writes of their batch (so a replay
keeps each once), listed, and marked for replay; the partition's owner re-appends a marked
record to its partition, where it is read again as new (a new offset: exactly once in effect,
as for any duplicate delivery).

They live in PostgreSQL (SQLite in ``up``) rather than on a topic of their own: they must
outlive the embedded bus, be listed and replayed one by one, and stay few — what no store can
hold is refused at the collector (``core.storable``), so a dead letter is a defect to fix.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from trace_insights.core import storable
from trace_insights.truth.bulk import insert_ignoring_conflicts
from trace_insights.truth.models import DeadLetter

_ERROR_CHARS = 2000
_LETTERS = DeadLetter.__table__
DECODE, TRUTH, AGGREGATES = "decode", "truth", "aggregates"  # where it failed


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    stage: str
    error: str
    payload: bytes


def keep(connection: sa.Connection, letters: Iterable[Letter]) -> None:
    """Record them; one already kept (a replayed batch) stays as it was."""
    now = int(time.time() * 1000)
    rows = [
        {
            "src_partition": letter.partition,
            "src_offset": letter.offset,
            "stage": letter.stage,
            "error": storable.text(letter.error)[:_ERROR_CHARS],
            "payload": letter.payload,
            "recorded_ms": now,
            "replay_requested_ms": None,
            "replayed_ms": None,
        }
        for letter in letters
    ]
    insert_ignoring_conflicts(connection, DeadLetter, rows)


def listed(connection: sa.Connection) -> list[sa.Row[Any]]:
    """Every letter (its columns), by partition and offset."""
    query = sa.select(_LETTERS).order_by(DeadLetter.src_partition, DeadLetter.src_offset)
    return list(connection.execute(query))


def request_replay(connection: sa.Connection, keys: list[tuple[int, int]] | None) -> int:
    """Mark letters (all not yet replayed, or the (partition, offset) ones) for replay."""
    query = sa.update(DeadLetter).where(DeadLetter.replayed_ms.is_(None))
    if keys is not None:
        query = query.where(_at(keys))
    return connection.execute(query.values(replay_requested_ms=int(time.time() * 1000))).rowcount


def due(connection: sa.Connection, partitions: list[int]) -> list[sa.Row[Any]]:
    """Letters of these partitions marked for replay and not yet replayed, oldest first."""
    query = (
        sa.select(_LETTERS)
        .where(DeadLetter.src_partition.in_(partitions))
        .where(DeadLetter.replay_requested_ms.is_not(None), DeadLetter.replayed_ms.is_(None))
        .order_by(DeadLetter.src_partition, DeadLetter.src_offset)
    )
    return list(connection.execute(query))


def replayed(connection: sa.Connection, letters: list[sa.Row[Any]]) -> None:
    keys = [(letter.src_partition, letter.src_offset) for letter in letters]
    now = int(time.time() * 1000)
    connection.execute(sa.update(DeadLetter).where(_at(keys)).values(replayed_ms=now))


def _at(keys: list[tuple[int, int]]) -> sa.ColumnElement[bool]:
    return sa.tuple_(DeadLetter.src_partition, DeadLetter.src_offset).in_(keys)
