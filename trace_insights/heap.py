"""Garbage collection for the long-running processes, set once their start-up is done.

Start-up builds much that lives as long as the process (modules, connection pools, the price
table's models): it is frozen out of every later full collection, which would otherwise walk
it all. And the young generation is collected after 50,000 allocations rather than 700: the
aggregator allocates tens of objects per span that reference counting frees, and at the
default thresholds it spent 14 % of its CPU in collections that found little to free
(docs/benchmarks.md). Cycles are still collected, a little later.
"""

import gc

THRESHOLDS = (50_000, 20, 20)


def settle() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
