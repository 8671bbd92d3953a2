"""Repairs aggregates the store no longer holds whole, without an operator.

A Redis that restarted empty (or lost an experiment's hash slot) refuses live updates of the
experiments it lost (``Incomplete``); so does a new experiment, whose aggregates start as a
rebuild of the little the truth holds. The loop asks for a rebuild and retries the batch; a
scan of the truth's experiments every few seconds finds those no traffic reaches. Rebuilds run
in a thread of their own, so the loop keeps polling Kafka (and its group membership) meanwhile;
the store's rebuild claim makes sure one aggregator of the group rebuilds each experiment.
"""

import logging
import threading
import time

import sqlalchemy as sa

from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.rebuild import Busy, rebuild_experiment
from trace_insights.stores.base import AggregateStore
from trace_insights.truth.models import Experiment

log = logging.getLogger(__name__)


class Repairer:
    def __init__(self, engine: sa.Engine, store: AggregateStore, policy: Policy) -> None:
        self._engine = engine
        self._store = store
        self._policy = policy
        self._wanted: dict[str, threading.Event] = {}
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def request(self, experiment_id: str) -> threading.Event:
        """Ask for a rebuild of the experiment; the event is set once it was tried (by this
        process, or found under way in another)."""
        with self._condition:
            done = self._wanted.get(experiment_id)
            if done is None:
                done = self._wanted[experiment_id] = threading.Event()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="repair", daemon=True)
                self._thread.start()
            self._condition.notify()
            return done

    def scan(self) -> list[str]:
        """Ask for a rebuild of every experiment of the truth whose aggregates are not whole;
        returns them."""
        with self._engine.connect() as connection:
            experiments = list(connection.scalars(sa.select(Experiment.experiment_id)))
        missing = [
            e
            for e, generation in zip(experiments, self._store.generations(experiments), strict=True)
            if generation is None
        ]
        for experiment_id in missing:
            self.request(experiment_id)
        return missing

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._wanted and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                experiment_id = next(iter(self._wanted))
                done = self._wanted[experiment_id]
            try:
                self._repair(experiment_id)
            finally:
                with self._condition:
                    del self._wanted[experiment_id]
                done.set()

    def _repair(self, experiment_id: str) -> None:
        if self._store.generations([experiment_id])[0] is not None:
            return  # repaired meanwhile (by another aggregator, say)
        started = time.perf_counter()
        try:
            traces = rebuild_experiment(self._engine, self._store, self._policy, experiment_id)
        except Busy:
            return  # another aggregator rebuilds it
        except Exception as exc:  # an outage, most likely: the next request tries again
            log.warning(
                "rebuild failed",
                extra={"fields": {"experiment": experiment_id, "error": str(exc)}},
            )
            return
        log.info(
            "aggregates rebuilt from the source of truth",
            extra={
                "fields": {
                    "experiment": experiment_id,
                    "traces": traces,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            },
        )
