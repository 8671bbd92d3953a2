"""What a long-running process (aggregator, API, collector, ``up``) settles once its start-up is
done: its garbage collection and its BLAS threads.

Start-up builds much that lives as long as the process (modules, connection pools, the price
table's models): it is frozen out of every later full collection, which would otherwise walk
it all. And the young generation is collected after 50,000 allocations rather than 700: the
aggregator allocates tens of objects per span that reference counting frees, and at the
default thresholds it spent 14 % of its CPU in collections that found little to free
(docs/benchmarks.md). Cycles are still collected, a little later.

numpy's OpenBLAS starts a thread per core, and after each product its idle threads spin,
waiting for the next: the aggregator's products are small (one co-occurrence Gram matrix per
bucket and batch, ``aggregator/deltas.py``), so the spinning cost more CPU than the products
(a third of the aggregator's CPU per span, docs/benchmarks.md). One thread does them; processes
scale by Kafka partitions, not threads.
"""

import gc

import numpy  # noqa: F401  (loaded before its BLAS is limited: threadpoolctl limits what is)
from threadpoolctl import threadpool_limits

THRESHOLDS = (50_000, 20, 20)


def settle() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    threadpool_limits(limits=1, user_api="blas")
