"""The embedded mode's in-process partitioned log: what Kafka is to the cluster deployment.

Offsets of a partition continue from ``first_offsets`` so that, after a restart, new records
sort after everything the source of truth already holds (fences and owed ranges are offsets).
"""

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp_ms: int
    value: bytes


class LocalBus:
    """Partitions of records with one consumer's read positions and committed offsets; records
    below the committed offset are dropped, so memory holds only what is not yet applied."""

    def __init__(self, partitions: int, first_offsets: dict[int, int] | None = None) -> None:
        self.partitions = partitions
        self._start = [(first_offsets or {}).get(p, 0) for p in range(partitions)]
        self._logs: list[list[Record]] = [[] for _ in range(partitions)]
        self._positions = list(self._start)  # next offset to read
        self._committed = list(self._start)
        self._changed = threading.Condition()

    def append(self, partition: int, value: bytes, timestamp_ms: int) -> int:
        with self._changed:
            log_ = self._logs[partition]
            offset = self._start[partition] + len(log_)
            log_.append(Record(offset, timestamp_ms, value))
            self._changed.notify_all()
            return offset

    def poll(self, timeout_ms: int, max_records: int = 5000) -> dict[int, list[Record]]:
        with self._changed:
            if not self._pending():
                self._changed.wait(timeout_ms / 1000)
            out = {}
            for partition, log_ in enumerate(self._logs):
                index = self._positions[partition] - self._start[partition]
                if index < len(log_):
                    out[partition] = log_[index : index + max_records]
                    self._positions[partition] += len(out[partition])
            return out

    def commit(self, offsets: dict[int, int]) -> None:
        with self._changed:
            for partition, offset in offsets.items():
                self._committed[partition] = offset
                del self._logs[partition][: offset - self._start[partition]]
                self._start[partition] = offset

    def rewind(self, partition: int, offset: int) -> None:
        with self._changed:
            self._positions[partition] = max(offset, self._start[partition])

    def lag(self, partition: int) -> int | None:
        with self._changed:
            end = self._start[partition] + len(self._logs[partition])
            return end - self._positions[partition]

    def assigned(self) -> list[int]:
        return list(range(self.partitions))

    def tick(self, partition: int, timestamp_ms: int) -> None:
        self.append(partition, b"", timestamp_ms)

    def restart(self) -> None:
        """As after a crash: the next poll resumes from the committed offsets."""
        with self._changed:
            self._positions = list(self._committed)

    def drained(self) -> bool:
        """Everything appended has been committed (applied)."""
        with self._changed:
            return not any(self._logs)

    def close(self) -> None:
        pass

    def _pending(self) -> bool:
        return any(
            position - start < len(log_)
            for position, start, log_ in zip(self._positions, self._start, self._logs, strict=True)
        )
