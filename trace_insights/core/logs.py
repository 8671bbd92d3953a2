"""Structured, quiet-by-default logging shared by every process."""

import json
import logging
import sys
import threading
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so log pipelines need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every reconnect attempt at WARNING/ERROR; ours say what matters.
    if level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


class Throttled:
    """One line per failure kind per interval: the first at once, the rest counted and told
    with the next line after the interval (an outage would log a line per request or retry)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._seen: dict[str, tuple[float, int]] = {}  # kind → (last logged, since then)
        self._lock = threading.Lock()

    def log(
        self,
        level: int,
        kind: str,
        message: str,
        fields: dict[str, object] | None = None,
        exc_info: BaseException | None = None,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._seen.get(kind, (-self._interval_s, 0))
            if now - last < self._interval_s:
                self._seen[kind] = (last, suppressed + 1)
                return
            self._seen[kind] = (now, 0)
        extra = {**(fields or {}), "kind": kind}
        if suppressed:
            extra["repeated"] = suppressed  # times it happened since the last line
        self._logger.log(level, message, extra={"fields": extra}, exc_info=exc_info)
