"""The alert worker of an API process: rules are evaluated when the aggregator applies an
update to one of their experiments (followed on the change streams), and every ``SWEEP_S``
anyway, since a window slides even when nothing arrives; due webhooks are sent in between."""

import logging
import threading
import time

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from trace_insights.api.alerts import targets
from trace_insights.api.alerts.delivery import deliver_due
from trace_insights.api.alerts.engine import evaluate
from trace_insights.api.context import Context
from trace_insights.core.logs import Throttled
from trace_insights.stores.base import FIRST_CHANGE
from trace_insights.truth.models import AlertRule, Experiment

log = logging.getLogger(__name__)
_throttled = Throttled(log)  # it steps every 250 ms: an outage is one line a minute

TICK_S = 0.25
SWEEP_S = 30.0


class AlertWorker:
    def __init__(self, context: Context) -> None:
        self.context = context
        self._cursors: dict[str, str] = {}
        self._last_sweep = 0.0
        self._client = targets.client(context.settings.webhook_allow_private)
        self._threads = [
            threading.Thread(
                target=self._loop, args=(self.evaluate_once,), name="alert-rules", daemon=True
            ),
            threading.Thread(
                target=self._loop, args=(self.deliver_once,), name="alert-webhooks", daemon=True
            ),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.context.closing.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._client.close()

    def evaluate_once(self) -> list[str]:
        """Evaluate the rules that are due; returns the transitions notified."""
        with self.context.engine.connect() as connection:
            rules = list(connection.execute(sa.select(AlertRule)))
        experiments = self._whole({e for rule in rules for e in rule.experiment_ids})
        touched = experiments - self._cursors.keys()  # new here: evaluate from now on
        for experiment in touched:
            self._cursors[experiment] = self.context.store.last_change(experiment)
        if experiments:
            cursors = {e: self._cursors[e] for e in experiments}
            for change in self.context.store.changes(cursors):
                touched.add(change.experiment_id)
                # after a lost stretch, what the stream holds is all new: follow it from its start
                self._cursors[change.experiment_id] = FIRST_CHANGE if change.lost else change.id
        sweep = time.monotonic() - self._last_sweep >= SWEEP_S
        if sweep:
            self._last_sweep = time.monotonic()
        notified = []
        for rule in rules:
            if not experiments.issuperset(rule.experiment_ids):
                continue
            if sweep or rule.last_evaluated_ms is None or touched & set(rule.experiment_ids):
                event = evaluate(self.context, rule)
                if event is not None:
                    notified.append(event)
        return notified

    def _whole(self, named: set[str]) -> set[str]:
        """The experiments whose aggregates are whole, or that the truth does not hold (so
        there is nothing to lose). Aggregates being rebuilt would fire false alerts: rules
        over them wait, and their changes stay unread until the rebuild is done."""
        ordered = sorted(named)
        generations = self.context.store.generations(ordered)
        missing = [e for e, g in zip(ordered, generations, strict=True) if g is None]
        if not missing:
            return named
        with self.context.engine.connect() as connection:
            known = set(
                connection.scalars(
                    sa.select(Experiment.experiment_id).where(Experiment.experiment_id.in_(missing))
                )
            )
        return named - known

    def deliver_once(self) -> int:
        return deliver_due(self.context.engine, self._client)

    def _loop(self, step) -> None:
        while not self.context.closing.wait(TICK_S):
            try:
                step()
            except (SQLAlchemyError, RedisError, OSError) as exc:
                _throttled.log(
                    logging.WARNING,
                    type(exc).__name__,
                    "alert worker step failed",
                    {"error": str(exc)},
                )
