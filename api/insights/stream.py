"""``GET /insights/stream``: a Server-Sent Events feed of bucket changes, as they are applied.

The aggregator announces every applied update on the experiment's change stream (atomically
with its deltas); each subscriber follows those streams from its own cursor and is sent the new
values of the changed buckets at its resolution. The event id is the cursor, so a client that
reconnects with ``Last-Event-ID`` resumes after the last change it saw. Subscribers only read:
a slow or vanished one never holds up the aggregator or another subscriber, and any number of
API replicas can serve them.
"""

import asyncio
import base64
import binascii
import json
import time
from collections import OrderedDict
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from trace_insights.api.aggregates import Figures
from trace_insights.api.context import Context
from trace_insights.api.errors import invalid
from trace_insights.api.figures import (
    by_subject,
    cost_figures,
    error_stats,
    latency_stats,
    token_counts,
    volume_counts,
)
from trace_insights.api.schemas import (
    CostFigures,
    ErrorStats,
    LatencyStats,
    TokenCounts,
    VolumeCounts,
)
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.stores.base import FIRST_CHANGE, Change

router = APIRouter()
METRICS = ("volume", "errors", "latency", "tokens", "cost", "tools")
POLL_S = 0.2
HEARTBEAT_S = 15.0
_RESOLUTIONS = {"minute": Resolution.MINUTE, "hour": Resolution.HOUR, "day": Resolution.DAY}


class ToolCount(BaseModel):
    tool_name: str
    count: int
    error_count: int


class BucketUpdate(BaseModel):
    """The new values of one changed bucket (UTC, the stored resolution asked for)."""

    experiment_id: str
    time_bucket: int
    watermark: int
    volume: VolumeCounts | None = None
    errors: ErrorStats | None = None
    latency: LatencyStats | None = None
    tokens: TokenCounts | None = None
    cost: CostFigures | None = None  # USD, exact decimal strings
    tools: list[ToolCount] | None = None


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    experiment_ids: Annotated[list[str], Query(min_length=1)],
    time_bucket: Literal["minute", "hour", "day"] = "minute",
    metrics: Annotated[str, Query(description="Comma-separated: " + ", ".join(METRICS))] = ",".join(
        METRICS
    ),
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    context: Context = request.app.state.context
    snapshots: Snapshots = request.app.state.snapshots
    wanted = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown or not wanted:
        raise invalid(
            f"invalid value for 'metrics': {', '.join(unknown) or 'empty'}; "
            f"choose from {', '.join(METRICS)}"
        )
    await asyncio.to_thread(context.require_experiments, experiment_ids)
    cursor = _Cursor.parse(last_event_id) if last_event_id else _Cursor({}, None)
    for experiment in experiment_ids:
        if experiment not in cursor.done:
            cursor.done[experiment] = await asyncio.to_thread(context.store.last_change, experiment)
    cursor.done = {e: cursor.done[e] for e in experiment_ids}
    resolution = _RESOLUTIONS[time_bucket]

    async def events():
        yield "retry: 2000\n\n"
        beat = time.monotonic()
        while not context.closing.is_set() and not await request.is_disconnected():
            changes = await asyncio.to_thread(context.store.changes, dict(cursor.done))
            for change in changes:
                if change.lost:  # fell behind the stream: the subscriber re-reads everything
                    data = json.dumps({"experiment_id": change.experiment_id})
                    # what the stream holds now is all new: follow it from its start
                    cursor.finished(change.experiment_id, FIRST_CHANGE)
                    yield f"id: {cursor.text()}\nevent: reset\ndata: {data}\n\n"
                    continue
                starts = [start for stored, start in change.buckets if stored == resolution.value]
                for index, start in enumerate(starts):
                    if cursor.skips(change.experiment_id, change.id, index):
                        continue
                    update = await snapshots.read(context, change, resolution, start, wanted)
                    cursor.sent(change.experiment_id, change.id, index + 1, len(starts))
                    data = update.model_dump_json(exclude_none=True)
                    yield f"id: {cursor.text()}\nevent: bucket\ndata: {data}\n\n"
                    beat = time.monotonic()
                cursor.finished(change.experiment_id, change.id)
            if time.monotonic() - beat >= HEARTBEAT_S:
                yield ": heartbeat\n\n"
                beat = time.monotonic()
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class Snapshots:
    """Bucket values read once per change and shared by every subscriber that asks for the
    same metrics: a hundred dashboards on one experiment cost one read per change, not a
    hundred. Belongs to one event loop (the API server's)."""

    def __init__(self, kept: int = 4096) -> None:
        self._kept = kept
        self._reads: OrderedDict[tuple[object, ...], asyncio.Task[BucketUpdate]] = OrderedDict()

    async def read(
        self,
        context: Context,
        change: Change,
        resolution: Resolution,
        start: int,
        wanted: list[str],
    ) -> BucketUpdate:
        key = (change.experiment_id, change.id, resolution, start, tuple(sorted(wanted)))
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(
                asyncio.to_thread(
                    _snapshot,
                    context,
                    change.experiment_id,
                    resolution,
                    start,
                    change.watermark_ms,
                    wanted,
                )
            )
            self._reads[key] = task
            while len(self._reads) > self._kept:
                self._reads.popitem(last=False)
        try:
            return await asyncio.shield(task)  # one subscriber leaving does not cancel it
        except Exception:
            if self._reads.get(key) is task:  # a failed read is tried again, not shared
                del self._reads[key]
            raise


def _snapshot(
    context: Context,
    experiment: str,
    resolution: Resolution,
    start: int,
    watermark: int,
    wanted: list[str],
) -> BucketUpdate:
    counts = Figures(context.store.read_hash(keys.bucket(experiment, resolution, start)))
    update = BucketUpdate(experiment_id=experiment, time_bucket=start, watermark=watermark)
    if "volume" in wanted:
        update.volume = volume_counts(counts)
    if "errors" in wanted:
        update.errors = error_stats(counts)
    if "latency" in wanted:
        [blobs] = context.store.read_blob_hashes(
            [keys.digests(experiment, resolution, start, "latency")]
        )
        digest = sketch.merged(blobs) if blobs else None
        update.latency = latency_stats(counts, digest)
    if "tokens" in wanted:
        update.tokens = token_counts(counts)
    if "cost" in wanted:
        update.cost = cost_figures(counts)
    if "tools" in wanted:
        tools = by_subject(counts, fields.parse_tool)
        update.tools = [
            ToolCount(tool_name=tool, count=int(c["calls"]), error_count=int(c["errors"]))
            for tool, c in sorted(tools.items())
        ]
    return update


class _Cursor:
    """Where a subscriber is: per experiment the last change fully sent (``done``), and the
    change being sent with how many of its buckets went out (``partial``) — so an event id
    resumes exactly after that event, even in the middle of a change."""

    def __init__(self, done: dict[str, str], partial: tuple[str, str, int] | None) -> None:
        self.done = done
        self.partial = partial

    @classmethod
    def parse(cls, text: str) -> "_Cursor":
        try:
            state = json.loads(base64.urlsafe_b64decode(text.encode()))
            done = {str(k): str(v) for k, v in state["d"].items()}
            partial = tuple(state["p"]) if state.get("p") else None
            if partial is not None and len(partial) != 3:
                raise ValueError
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
            raise invalid("invalid Last-Event-ID: not an id this feed sent") from None
        return cls(done, partial)

    def skips(self, experiment: str, change_id: str, index: int) -> bool:
        """Already sent before the reconnect."""
        return (
            self.partial is not None
            and self.partial[:2] == (experiment, change_id)
            and (index < self.partial[2])
        )

    def sent(self, experiment: str, change_id: str, count: int, of: int) -> None:
        if count == of:
            self.finished(experiment, change_id)
        else:
            self.partial = (experiment, change_id, count)

    def finished(self, experiment: str, change_id: str) -> None:
        self.done[experiment] = change_id
        if self.partial is not None and self.partial[:2] == (experiment, change_id):
            self.partial = None

    def text(self) -> str:
        state = {"d": self.done, "p": list(self.partial) if self.partial else None}
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
