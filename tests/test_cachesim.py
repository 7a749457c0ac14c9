"""The LRU cache model: exact on hand-worked traces, and it sees layout on block-sparse traces."""

from __future__ import annotations

import numpy as np
import pytest

from icd_core.layout.cachesim import CacheGeometry, simulate_lru
from icd_core.layout.decode_model import (
    Gather,
    count_lines,
    gather_lines,
    gathers_of,
    replay,
)


def reference_lru(lines, sets, ways):
    """A plain per-access LRU, for cross-checking."""
    cache = [[] for _ in range(sets)]
    out = []
    for line in lines:
        s = cache[line % sets]
        if line in s:
            s.remove(line)
            s.append(line)
            out.append(True)
        else:
            if len(s) == ways:
                s.pop(0)
            s.append(line)
            out.append(False)
    return np.array(out)


def test_hand_worked_traces():
    # direct-mapped, 2 sets: 0 and 2 share set 0 and evict each other; 1 lives in set 1
    assert simulate_lru([0, 1, 0, 2, 0, 1], sets=2, ways=1).tolist() == [False, False, True, False, False, True]
    # fully associative, 2 ways, LRU: 0 1 0 2 (evicts 1) 1 (evicts 0) 0 (evicts 2)
    assert simulate_lru([0, 1, 0, 2, 1, 0], sets=1, ways=2).tolist() == [False, False, True, False, False, False]
    # a loop that fits hits from the second pass on: 4 lines, 4 ways
    assert simulate_lru([0, 1, 2, 3] * 3, sets=1, ways=4).tolist() == [False] * 4 + [True] * 8


def test_matches_a_plain_lru_on_random_traces():
    rng = np.random.default_rng(0)
    for sets, ways in ((1, 4), (4, 2), (8, 8)):
        lines = rng.integers(0, 64, 500)
        assert np.array_equal(simulate_lru(lines, sets, ways), reference_lru(lines.tolist(), sets, ways))


def _mock_state(hidden=256, d_in=64, d_out=32):
    from icd_core.builtins.workload_mock import MockOptions, build_mock_state

    return build_mock_state(MockOptions(hidden=hidden, d_in=d_in, d_out=d_out, tokens=8), np.random.default_rng(0))


def _block_accesses(n, g, count, seed=1):
    rng = np.random.default_rng(seed)
    blocks = np.arange(n).reshape(-1, g)
    return [blocks[b][rng.choice(g, 8, replace=False)] for b in rng.integers(0, n // g, count)]


def test_a_blocked_layout_reads_and_misses_fewer_lines_than_a_scrambled_one():
    state = _mock_state()
    accesses = {"mlp.hidden": _block_accesses(256, 16, 200)}
    geometry = CacheGeometry(size_bytes=64 * 64, line_bytes=64, ways=4)  # 64 lines: far below the weights
    blocked = replay(state, accesses, geometry)
    scrambled = replay(state.permuted("mlp.hidden", np.random.default_rng(2).permutation(256)), accesses, geometry)
    assert blocked.misses.sum() * 4 < scrambled.misses.sum() and blocked.reads.sum() * 4 < scrambled.reads.sum()
    assert geometry.sets == 16


def test_the_cold_gather_shortcut_equals_simulating_the_streamed_weights():
    """When the weights streamed between gathers exceed the cache, counting each gather's
    distinct lines as misses is exact: the same stream through the LRU model agrees."""
    state = _mock_state(d_in=256)  # fc1 (256 × 256 fp32 = 256 KiB) streams between fc2 gathers
    accesses = {"mlp.hidden": _block_accesses(256, 16, 40)}
    geometry = CacheGeometry(size_bytes=16 * 1024, line_bytes=64, ways=4)
    fast = replay(state, accesses, geometry)
    assert fast.mode.startswith("every gather starts cold")
    gathers, dense = gathers_of(state, ["mlp.hidden"])
    top = sum(g.nbytes for g in gathers)
    dense_lines = np.arange(top, top + dense, 64) // 64
    trace, owner = [], []
    for access in accesses["mlp.hidden"]:
        lines = gather_lines(gathers[0], np.sort(access), 64)
        trace += [dense_lines, lines]
        owner += [np.full(len(dense_lines), False), np.full(len(lines), True)]
    trace, owner = np.concatenate(trace), np.concatenate(owner)
    hits = simulate_lru(trace, geometry.sets, geometry.ways)
    assert int((owner & ~hits).sum()) == int(fast.misses.sum()) == int(fast.reads.sum())


def test_a_cache_holding_everything_only_misses_first_touches():
    state = _mock_state()
    accesses = {"mlp.hidden": _block_accesses(256, 16, 100)}
    result = replay(state, accesses, CacheGeometry(size_bytes=8 * 2 ** 20, line_bytes=64, ways=16))
    assert result.mode.startswith("simulated")
    touched = np.unique(np.concatenate([gather_lines(g, np.sort(a), 64) for a in accesses["mlp.hidden"]
                                        for g in gathers_of(state, ["mlp.hidden"])[0]]))
    assert result.misses.sum() == touched.size < result.reads.sum()


def test_a_large_trace_matches_the_per_access_model_on_a_sample_of_sets():
    lines = np.random.default_rng(2).integers(0, 1 << 14, 200_000)
    hits = simulate_lru(lines, sets=256, ways=8)
    chosen = np.isin(lines % 256, [3, 77, 200])
    sub = lines[chosen]
    assert np.array_equal(hits[chosen], reference_lru(sub.tolist(), 256, 8))


def test_callgrind_totals_are_parsed():
    from icd_core.builtins.measures.cachegrind import parse_totals

    text = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfn=(1) PyArray_TakeFrom\nsummary: 10 5 2 1 4 0 0 3 0\n"
    assert parse_totals(text) == {"Ir": 10, "Dr": 5, "Dw": 2, "I1mr": 1, "D1mr": 4, "D1mw": 0, "ILmr": 0,
                                  "DLmr": 3, "DLmw": 0}


def test_rows_multiply_the_lines_of_a_column_gather():
    gather = Gather("g", rows=3, axis=32, starts=(0,), base=0, element_bytes=4)
    assert gather_lines(gather, np.array([0, 1, 17]), 64).tolist() == [0, 1, 2, 3, 4, 5]  # 2 lines per row
    assert count_lines(gather, np.array([0, 1, 17]), 64) == 6
    odd = Gather("g", rows=3, axis=20, starts=(0,), base=0, element_bytes=4)  # rows straddle lines
    assert count_lines(odd, np.array([0, 19]), 64) == len(gather_lines(odd, np.array([0, 19]), 64)) == 4


@pytest.mark.slow
def test_cachegrind_sees_the_blocked_layout_miss_less():
    import shutil

    from icd_core.builtins.measures.cachegrind import run_kernel

    if shutil.which("valgrind") is None:
        pytest.skip("valgrind not installed")
    rng = np.random.default_rng(1)
    n, g = 2048, 16
    blocks = np.arange(n).reshape(-1, g)
    accesses = [blocks[b][rng.choice(g, 8, replace=False)] for b in rng.integers(0, n // g, 64)]
    blocked = run_kernel(accesses, np.arange(n), 16, "4096,4,64", "16384,4,64")
    scrambled = run_kernel(accesses, rng.permutation(n), 16, "4096,4,64", "16384,4,64")
    assert blocked["D1mr"] < scrambled["D1mr"]
    again = run_kernel(accesses, np.arange(n), 16, "4096,4,64", "16384,4,64")
    assert again["Dr"] == blocked["Dr"]  # same work; cache counts repeat to within a few lines
    assert abs(again["D1mr"] - blocked["D1mr"]) <= 1e-3 * blocked["D1mr"]


def test_perf_stat_output_is_parsed_and_absent_counters_say_why():
    from icd_core.builtins.measures.perf import parse, unavailable

    text = "123456,,cache-references,2000,100.00,,\n7890,,cache-misses,2000,100.00,6.39,of all cache refs\n"
    assert parse(text) == {"cache-references": 123456.0, "cache-misses": 7890.0}
    assert parse("<not supported>,,cache-misses,0,100.00,,\n") == {"cache-misses": None}
    reason = unavailable()
    assert reason is None or reason.startswith(("perf (linux-perf) is not installed", "perf reads no hardware"))
