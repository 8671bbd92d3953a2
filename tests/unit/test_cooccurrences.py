"""Co-occurrence counts from the Gram matrix equal a pair-by-pair count of the same sets."""

import itertools
import random
from collections import Counter

from trace_insights.aggregator.deltas import co_occurrences


def test_the_gram_matrix_counts_every_ordered_pair_with_its_sign():
    rnd = random.Random(7)
    names = [f"d{n}" for n in range(12)]
    for _ in range(50):
        sets = [
            (rnd.sample(names, rnd.randint(0, 6)), rnd.choice((1, 1, -1)))
            for _ in range(rnd.randint(0, 30))
        ]
        expected: Counter[tuple[str, str]] = Counter()
        for dims, sign in sets:
            for first, second in itertools.permutations(dims, 2):
                expected[(f"p:{first}", second)] += sign
        pairs, hashes = co_occurrences(sets, "p:")
        assert pairs == {pair: n for pair, n in expected.items() if n}
        assert sorted(hashes) == sorted({first for first, _ in pairs})
