"""The project's one latency helper: trtexec's measurement protocol and latency statistics.

Every latency figure of the project (``evaluate``'s CPU latency, the export stage's
``latency_ms``, the runner's per-frame statistics, ``rdd-bench`` and ``benchmarks/``) comes from
here, so one model on one backend has one number.

Protocol (as NVIDIA's ``trtexec``): call the function untimed for at least ``warmup_s`` seconds
(200 ms) and at least ``warmup_runs`` times; then time calls until both at least ``duration_s``
seconds and at least ``min_runs`` calls have passed (``max_runs`` caps it). Report the mean and the
50/90/99th percentiles of the per-call latency in milliseconds, and the throughput
(``batch × runs / total timed seconds``, inferences per second).

:func:`measure_interleaved` runs several callables in rounds — warm-up each, then per round a
share of each one's runs, in a rotated order — so a load change on a shared machine hits every row
alike instead of whichever row happened to be running.

The clock is injectable (``clock=``, default :func:`time.perf_counter`), so the protocol is tested
on a deterministic fake clock. numpy only; no torch.
"""

from __future__ import annotations

import math
import random
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Reservoir",
    "SAMPLE_CAP",
    "WARMUP_S",
    "DURATION_S",
    "MIN_RUNS",
    "latency_stats",
    "summarize",
    "warm_up",
    "measure",
    "measure_interleaved",
    "protocol",
]

WARMUP_S = 0.2  # trtexec --warmUp=200 (ms)
DURATION_S = 3.0  # trtexec --duration=3 (s)
MIN_RUNS = 10  # trtexec --iterations=10

Clock = Callable[[], float]


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """Per-call latencies (ms, length R) → ``{"mean", "p50", "p90", "p99"}`` in ms.

    Percentiles interpolate linearly between order statistics (``numpy.percentile``'s default).
    An empty sequence gives NaN for every key.
    """
    a = np.asarray(times_ms, dtype=np.float64).reshape(-1)
    if not a.size:
        return {"mean": math.nan, "p50": math.nan, "p90": math.nan, "p99": math.nan}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def summarize(times_ms: Sequence[float], *, batch: int = 1) -> dict[str, float]:
    """:func:`latency_stats` plus ``runs``, ``min``, ``max`` (ms) and ``throughput``.

    ``throughput`` = ``batch × runs / (sum of latencies in s)``: inferences per second of
    back-to-back calls (NaN without runs).
    """
    a = np.asarray(times_ms, dtype=np.float64).reshape(-1)
    out: dict[str, Any] = {**latency_stats(a), "runs": int(a.size)}
    total_s = float(a.sum()) / 1e3
    out["min"] = float(a.min()) if a.size else math.nan
    out["max"] = float(a.max()) if a.size else math.nan
    out["throughput"] = batch * a.size / total_s if a.size and total_s > 0 else math.nan
    return out


def _check(
    warmup_s: float, warmup_runs: int, duration_s: float, min_runs: int, max_runs: int | None, batch: int
) -> None:
    if warmup_s < 0 or warmup_runs < 0 or duration_s < 0:
        raise ValueError(
            f"timing: warmup_s, warmup_runs and duration_s must be >= 0, got "
            f"{warmup_s}, {warmup_runs}, {duration_s}"
        )
    if min_runs < 1:
        raise ValueError(f"timing: min_runs must be >= 1, got {min_runs}")
    if max_runs is not None and max_runs < min_runs:
        raise ValueError(f"timing: max_runs must be >= min_runs ({min_runs}), got {max_runs}")
    if batch < 1:
        raise ValueError(f"timing: batch must be >= 1, got {batch}")


def warm_up(
    fn: Callable[[], Any], *, seconds: float = WARMUP_S, min_runs: int = 1, clock: Clock = time.perf_counter
) -> dict[str, float]:
    """Call ``fn`` untimed until ``seconds`` have passed and ``min_runs`` calls were made.

    Returns ``{"runs", "ms"}`` of the warm-up (reported, never part of the statistics).
    """
    t0 = clock()
    runs = 0
    while runs < min_runs or clock() - t0 < seconds:
        fn()
        runs += 1
    return {"runs": runs, "ms": (clock() - t0) * 1e3}


def _timed(fn: Callable[[], Any], clock: Clock, n_min: int, seconds: float, cap: int | None) -> list[float]:
    """Time calls of ``fn`` until ``n_min`` calls and ``seconds`` seconds (``cap`` calls at most)."""
    out: list[float] = []
    start = clock()
    while len(out) < n_min or (clock() - start < seconds and (cap is None or len(out) < cap)):
        t0 = clock()
        fn()
        out.append((clock() - t0) * 1e3)
        if cap is not None and len(out) >= cap:
            break
    return out


def measure(
    fn: Callable[[], Any],
    *,
    warmup_s: float = WARMUP_S,
    warmup_runs: int = 1,
    duration_s: float = DURATION_S,
    min_runs: int = MIN_RUNS,
    max_runs: int | None = None,
    batch: int = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, float]:
    """Latency of ``fn()`` under the protocol (module docstring): :func:`summarize` of the timed
    calls plus ``warmup_runs`` / ``warmup_ms`` (the excluded warm-up)."""
    return measure_interleaved(
        {"fn": fn},
        rounds=1,
        warmup_s=warmup_s,
        warmup_runs=warmup_runs,
        duration_s=duration_s,
        min_runs=min_runs,
        max_runs=max_runs,
        batch=batch,
        clock=clock,
    )["fn"]


def measure_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = 5,
    warmup_s: float = WARMUP_S,
    warmup_runs: int = 1,
    duration_s: float = DURATION_S,
    min_runs: int = MIN_RUNS,
    max_runs: int | None = None,
    batch: int | Mapping[str, int] = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, dict[str, Any]]:
    """Each callable of ``fns`` under the protocol, timed in ``rounds`` interleaved rounds.

    Every callable is warmed up first (in order). Round ``r`` then runs the callables starting
    at index ``r mod len(fns)`` (rotation: no row is always first after another's run); in a round
    each callable gets ``ceil(min_runs / rounds)`` calls and ``duration_s / rounds`` seconds
    (``ceil(max_runs / rounds)`` calls at most). Totals per callable are therefore at least
    ``min_runs`` calls and about ``duration_s`` seconds.

    Returns ``{name: summarize(...) + {"warmup_runs", "warmup_ms", "round_p50"}}``; ``batch`` may
    be one int or one per name (for ``throughput``).
    """
    if rounds < 1:
        raise ValueError(f"timing: rounds must be >= 1, got {rounds}")
    batches = {k: int(batch[k] if isinstance(batch, Mapping) else batch) for k in fns}
    for b in batches.values():
        _check(warmup_s, warmup_runs, duration_s, min_runs, max_runs, b)
    names = list(fns)
    warm = {k: warm_up(fns[k], seconds=warmup_s, min_runs=warmup_runs, clock=clock) for k in names}
    n_round = math.ceil(min_runs / rounds)
    cap = math.ceil(max_runs / rounds) if max_runs is not None else None
    times: dict[str, list[float]] = {k: [] for k in names}
    per_round: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for k in order:
            t = _timed(fns[k], clock, n_round, duration_s / rounds, cap)
            times[k].extend(t)
            per_round[k].append(latency_stats(t)["p50"])
    return {
        k: {
            **summarize(times[k], batch=batches[k]),
            "warmup_runs": warm[k]["runs"],
            "warmup_ms": warm[k]["ms"],
            "round_p50": per_round[k],
        }
        for k in names
    }


def protocol(
    *,
    warmup_s: float = WARMUP_S,
    duration_s: float = DURATION_S,
    min_runs: int = MIN_RUNS,
    rounds: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """The protocol's settings as a dict, for reports (``"stat"`` names what is reported)."""
    return {
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "min_runs": min_runs,
        "rounds": rounds,
        "stat": "per-call latency percentiles (ms) after warm-up; throughput = batch*runs/s",
        **extra,
    }


#: values a :class:`Reservoir` keeps (8 bytes each): percentiles of a longer stream come from a
#: uniform sample of this many
SAMPLE_CAP = 100_000


class Reservoir:
    """The values of an unbounded stream (per-frame latencies of a camera that runs for days) in
    bounded memory: every value up to ``cap``, then a uniform random sample of ``cap`` of them
    (Vitter's algorithm R, seeded, so a run is reproducible). ``count`` and ``total`` stay exact,
    so means and counts are exact and only percentiles come from the sample past ``cap``."""

    def __init__(self, cap: int = SAMPLE_CAP, seed: int = 0) -> None:
        if cap < 1:
            raise ValueError(f"Reservoir: cap must be >= 1, got {cap}")
        self.cap = int(cap)
        self.count = 0
        self.total = 0.0
        self._v = array("d")
        self._rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if len(self._v) < self.cap:
            self._v.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.cap:
                self._v[j] = value

    def values(self) -> np.ndarray:
        """The kept values (all of them while ``count <= cap``, in arrival order)."""
        return np.frombuffer(self._v, dtype=np.float64).copy()

    @property
    def sampled(self) -> bool:
        """Whether :meth:`values` is a sample (more values came than it keeps)."""
        return self.count > len(self._v)
