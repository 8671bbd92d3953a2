"""The benchmarks' loader (bench/synthetic.py) keeps up with the aggregator's code: benchmarks
run by hand, so without this a change there breaks them unseen. Loads a few traces into SQLite
and the memory store and reads them back as the API would."""

import sys
import time

import sqlalchemy as sa

from tests.support import ROOT
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.stores.memory import MemoryStore
from trace_insights.truth.database import create_engine, migrate
from trace_insights.truth.models import Trace

sys.path.insert(0, str(ROOT / "bench"))
from synthetic import DAY, load


def test_the_loader_writes_rows_and_aggregates_that_agree(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'bench.db'}")
    migrate(engine)
    store = MemoryStore()
    load(engine, store, "bench", 60)
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Trace)) == 60
    today = int(time.time() * 1000) // DAY * DAY
    days = [keys.bucket("bench", Resolution.DAY, today - i * DAY) for i in range(9)]
    assert sum(store.read_hash(day).get(keys.fields.TRACES, 0) for day in days) == 60
