"""The frame stream's queue discipline: channels between its threads, real-time pacing and
batching, as small objects :class:`~rdd.runtime.stream.stream.Pipeline` composes.

* :class:`Channel` — a bounded queue that gives up when the run stops;
* :class:`Pacer` — real time (``realtime``, always for live sources): a file is delivered at its
  fps as a camera would; at most one frame waits for inference and a newer one replaces it
  (latest-frame-wins); latency runs from arrival;
* :class:`Batcher` — up to ``batch`` frames of one input shape per inference call.

The report fields they add are described in :mod:`rdd.runtime.stream.temporal`. Standard library
+ numpy only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rdd.runtime.errors import OptionError
from rdd.runtime.stream.temporal import realtime_summary
from rdd.runtime.timing import Reservoir, latency_stats

__all__ = ["END", "Channel", "Pacer", "Batcher"]

END = object()  # end-of-stream marker on the pipeline's channels


class Channel:
    """A bounded queue between two threads of a run.

    ``put`` blocks while the queue is full until the run stops (``stop`` set: returns False);
    ``get`` blocks until an item arrives, or returns :data:`END` once the run stops early
    (``stopping()`` true: an error or a stop request, which may be a bare flag set by a signal
    handler before ``stop`` is)."""

    def __init__(self, maxsize: int, stop: threading.Event, stopping: Callable[[], bool]) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop, self._stopping = stop, stopping

    def put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def put_latest(self, item: Any) -> bool:
        """Latest-frame-wins: replace an item still waiting (it is dropped)."""
        while not self._stop.is_set():
            try:
                self.q.put_nowait(item)
                return True
            except queue.Full:
                try:
                    self.q.get_nowait()
                except queue.Empty:
                    pass
        return False

    def get(self) -> Any:
        while True:
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                if self._stopping():
                    return END

    def close(self) -> None:
        """Put :data:`END`; when the run stops and the consumer is gone, make room for it."""
        while True:
            try:
                self.q.put(END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    try:
                        self.q.get_nowait()
                    except queue.Empty:
                        pass


class Pacer:
    """Real-time accounting of a run (see the module docstring).

    Args:
        live: the source delivers frames on its own clock (camera, network stream).
        realtime: pace a file as a camera would (always on for live sources).
        source_fps / pace_fps: the source's own rate and the one asked for; a file's own rate
            wins, a live source's claimed rate (often a guess) loses to ``pace_fps``; 30 if none.
    """

    def __init__(
        self, *, live: bool, realtime: bool, source_fps: float | None, pace_fps: float | None
    ) -> None:
        self.live = bool(live)
        self.on = bool(realtime or live)
        self.fps, self.fps_from = None, None
        if self.on:
            order = [(source_fps, "source"), (pace_fps, "--fps")]
            for fps, where in (order[::-1] if live else order) + [(30.0, "default")]:
                if fps is not None and fps > 0:
                    self.fps, self.fps_from = float(fps), where
                    break
        self.frames_read = 0
        self._t_first: float | None = None

    def arrival(self, index: int, t0: float, t1: float, stop: threading.Event) -> float:
        """When frame ``index`` (decoded from ``t0`` to ``t1``) arrived; latency counts from here.

        Normal runs: ``t0`` (decode start). Live sources: ``t1`` (the capture returned it). A
        paced file: ``t_first + index / fps``, as a camera would deliver it; this waits until
        then (interrupted by ``stop``).
        """
        if not self.on:
            return t0
        if self.live:
            return t1
        if self._t_first is None:
            self._t_first = t1
        due = self._t_first + index / self.fps
        if due > t1:
            stop.wait(due - t1)
        return due

    def put(self, chan: Channel, item: Any) -> bool:
        return chan.put_latest(item) if self.on else chan.put(item)

    def report(
        self, *, frames: int, latencies_s: Sequence[float], intervals_s: Sequence[float], measured: int
    ) -> dict[str, Any]:
        """The ``realtime`` block (:func:`~rdd.runtime.stream.temporal.realtime_summary`)."""
        return (
            {
                "realtime": realtime_summary(
                    fps=self.fps,
                    fps_from=self.fps_from,
                    live=self.live,
                    frames_read=self.frames_read,
                    frames=frames,
                    latencies_s=latencies_s,
                    intervals_s=intervals_s,
                    measured=measured,
                )
            }
            if self.on
            else {}
        )


class Batcher:
    """Up to ``size`` frames of one input shape per inference call (a frame of another shape
    waits its turn); records each call's time for the report."""

    def __init__(self, size: int, *, warmup: int = 0) -> None:
        if size < 1:
            raise OptionError("batch", f"must be >= 1, got {size}")
        self.size = int(size)
        self.warmup = int(warmup)
        self._held: Any = None
        self._done = False
        # seconds per inference call: the calls of warm-up frames only, then the rest (bounded)
        self._head: list[float] = []
        self._tail = Reservoir()
        self._frames = 0
        self.first_call_s: float | None = None  # the first inference call (the report's first_inference_ms)

    def next(self, chan: Channel) -> list[Any]:
        items: list[Any] = []
        while len(items) < self.size:
            if self._held is not None:
                item, self._held = self._held, None
            elif self._done:
                break
            else:
                item = chan.get()
                if item is END:
                    self._done = True
                    break
            if items and item.x.shape != items[0].x.shape:
                self._held = item
                break
            items.append(item)
        return items

    def record(self, seconds: float, frames: int) -> None:
        if self.first_call_s is None:
            self.first_call_s = seconds
        self._frames += frames
        (self._head.append if self._frames <= self.warmup else self._tail.add)(seconds)

    def report(self, warm: int) -> dict[str, Any]:
        """``batch`` and, above 1, ``batch_calls`` / ``batch_inference_ms`` (calls holding only
        warm-up frames left out)."""
        out: dict[str, Any] = {"batch": self.size}
        if self.size > 1:  # warm: 0 or the whole warm-up (RunFigures.warm)
            calls = [*(self._head if not warm else []), *self._tail.values()]
            out["batch_inference_ms"] = latency_stats([1e3 * c for c in calls])
            out["batch_calls"] = len(self._head) + self._tail.count
        return out
