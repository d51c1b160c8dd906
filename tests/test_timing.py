"""rdd.runtime.timing: the protocol on a deterministic fake clock (no timed assertions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdd.runtime.timing import latency_stats, measure, measure_interleaved, summarize, warm_up


class FakeClock:
    """A clock that only moves when a fake workload says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def work(self, durations_s):
        """A callable whose i-th call takes ``durations_s[i]`` seconds (the last one repeats)."""
        it = iter(durations_s)
        last = [durations_s[-1]]

        def fn():
            try:
                last[0] = next(it)
            except StopIteration:
                pass
            self.t += last[0]

        return fn


def test_latency_stats_golden():
    st = latency_stats([1.0, 2.0, 3.0, 4.0, 10.0])
    assert st == {"mean": 4.0, "p50": 3.0, "p90": pytest.approx(7.6), "p99": pytest.approx(9.76)}
    assert all(math.isnan(v) for v in latency_stats([]).values())


def test_summarize_throughput_counts_batch():
    st = summarize([10.0, 10.0, 20.0, 20.0], batch=4)  # 4 calls, 60 ms → 16 images / 0.06 s
    assert st["runs"] == 4 and st["min"] == 10.0 and st["max"] == 20.0
    assert st["throughput"] == pytest.approx(16 / 0.06)
    empty = summarize([])
    assert empty["runs"] == 0 and math.isnan(empty["throughput"])


def test_warm_up_runs_until_time_and_count():
    clk = FakeClock()
    assert warm_up(clk.work([0.05]), seconds=0.2, min_runs=1, clock=clk)["runs"] == 4
    clk = FakeClock()
    assert warm_up(clk.work([0.05]), seconds=0.2, min_runs=7, clock=clk)["runs"] == 7


def test_measure_excludes_warmup():
    """Slow first calls (a cold cache) are warm-up: none of them reaches the statistics."""
    clk = FakeClock()
    # 3 × 100 ms cold calls cover the 200 ms warm-up; then steady 1,2,3,4,5 ms repeating.
    steady = [0.001, 0.002, 0.003, 0.004, 0.005] * 4
    fn = clk.work([0.1, 0.1, 0.1] + steady)
    st = measure(fn, warmup_s=0.2, duration_s=0.0, min_runs=20, clock=clk)
    assert st["warmup_runs"] == 2 and st["warmup_ms"] == pytest.approx(200.0)
    # the third cold call (100 ms) is the first timed one: it must show up as the max
    assert st["runs"] == 20 and st["max"] == pytest.approx(100.0)
    clk = FakeClock()
    st = measure(clk.work([0.1, 0.1] + steady), warmup_s=0.2, duration_s=0.0, min_runs=20, clock=clk)
    assert st["warmup_runs"] == 2 and st["max"] == pytest.approx(5.0)
    assert st["p50"] == pytest.approx(3.0) and st["mean"] == pytest.approx(3.0)
    assert st["p90"] == pytest.approx(5.0) and st["throughput"] == pytest.approx(1000 / 3.0)


def test_measure_runs_for_duration_and_min_runs():
    clk = FakeClock()
    st = measure(clk.work([0.01]), warmup_s=0.0, duration_s=1.0, min_runs=10, clock=clk)
    assert st["runs"] == 100  # 1 s of 10 ms calls > 10 runs
    clk = FakeClock()
    st = measure(clk.work([0.5]), warmup_s=0.0, duration_s=1.0, min_runs=10, clock=clk)
    assert st["runs"] == 10  # 10 runs > 1 s
    clk = FakeClock()
    st = measure(clk.work([0.01]), warmup_s=0.0, duration_s=1.0, min_runs=10, max_runs=30, clock=clk)
    assert st["runs"] == 30


def test_interleaved_rounds_rotate_and_share_noise():
    """A load spike during one round hits every callable, not just the one running."""
    clk = FakeClock()
    order: list[str] = []

    def make(name, base_s):
        def fn():
            order.append(name)
            clk.t += base_s

        return fn

    fns = {"a": make("a", 0.001), "b": make("b", 0.002), "c": make("c", 0.004)}
    res = measure_interleaved(
        fns, rounds=3, warmup_s=0.0, warmup_runs=1, duration_s=0.0, min_runs=3, clock=clk
    )
    timed = order[3:]  # after the three warm-up calls a, b, c
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: v["runs"] for k, v in res.items()} == {"a": 3, "b": 3, "c": 3}
    assert res["c"]["p50"] == pytest.approx(4.0) and len(res["a"]["round_p50"]) == 3


def test_interleaved_load_change_hits_all_rows():
    clk = FakeClock()
    state = {"calls": 0}

    def make(base_s):
        def fn():
            state["calls"] += 1
            slow = 10.0 if 11 <= state["calls"] <= 14 else 1.0  # spike in round 3
            clk.t += base_s * slow

        return fn

    res = measure_interleaved(
        {"x": make(0.001), "y": make(0.002)},
        rounds=3,
        warmup_s=0.0,
        warmup_runs=1,
        duration_s=0.0,
        min_runs=6,
        clock=clk,
    )
    # every row saw the spike in the same round; the ratio of the rows survives
    assert res["y"]["p50"] / res["x"]["p50"] == pytest.approx(2.0)
    assert np.argmax(res["x"]["round_p50"]) == np.argmax(res["y"]["round_p50"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_runs must be >= 1"):
        measure(lambda: None, min_runs=0)
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        measure_interleaved({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="max_runs"):
        measure(lambda: None, min_runs=5, max_runs=2)
