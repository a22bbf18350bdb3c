"""Compiled interval kernels against slow, obvious oracles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xprof_core._fast.intervals import priority_union


def naive_priority_union(start, end, cat, group, n_groups, n_cats):  # type: ignore[no-untyped-def]
    out = np.zeros((n_cats, n_groups), dtype=np.int64)
    for k in range(n_cats):
        for g in range(n_groups):
            covered: set[int] = set()
            for s, e, c, gg in zip(start, end, cat, group, strict=True):
                if gg == g and c <= k:
                    covered.update(range(s, e))
            out[k, g] = len(covered)
    return out


intervals = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 40), st.integers(0, 3), st.integers(0, 2)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(intervals)
def test_priority_union_matches_naive(items: list[tuple[int, int, int, int]]) -> None:
    start = np.array([s for s, _, _, _ in items], dtype=np.int64)
    end = np.array([s + d for s, d, _, _ in items], dtype=np.int64)
    cat = np.array([c for _, _, c, _ in items], dtype=np.int64)
    group = np.array([g for _, _, _, g in items], dtype=np.int64)
    order = np.lexsort((start, group)).astype(np.int64)
    got = priority_union(start, end, cat, group, order, 3, 4)
    np.testing.assert_array_equal(got, naive_priority_union(start, end, cat, group, 3, 4))
    # The time each category wins adds up to the union of everything.
    wins = np.diff(np.vstack([np.zeros((1, 3), np.int64), got]), axis=0)
    assert (wins >= 0).all()
    np.testing.assert_array_equal(wins.sum(axis=0), got[-1])


def test_priority_union_skips_empty_and_out_of_range() -> None:
    start = np.array([0, 5, 10], dtype=np.int64)
    end = np.array([0, 8, 20], dtype=np.int64)  # the first is empty
    cat = np.array([0, 9, 1], dtype=np.int64)  # category 9 is out of range: ignored
    group = np.array([0, 0, 0], dtype=np.int64)
    got = priority_union(start, end, cat, group, np.arange(3, dtype=np.int64), 1, 2)
    assert got[:, 0].tolist() == [0, 10]
