"""Input/output modes of the runner's :class:`~rdd.runtime.pipeline.Pipeline`.

:class:`IoModes` (a mixin of ``Pipeline``) holds the state and queue discipline of

* **batches** (``batch > 1``): up to ``batch`` frames of one input shape per inference call;
* **real time** (``realtime``, always for live sources): a file is delivered at its fps as a
  camera would; at most one frame waits for inference and a newer one replaces it
  (latest-frame-wins); latency runs from arrival;
* **flicker** of frame sequences and **saved masks**.

The report fields they add are described in :mod:`rdd.runtime.temporal`. numpy/OpenCV only.
"""
from __future__ import annotations

import queue
from typing import Any

from rdd.contract import InputError
from rdd.runtime.masks import MaskWriter
from rdd.runtime.temporal import FlickerMeter, realtime_summary
from rdd.runtime.timing import latency_stats

__all__ = ["IoModes", "END"]

END = object()  # end-of-stream marker on the pipeline's queues


class IoModes:
    """Mixin of :class:`~rdd.runtime.pipeline.Pipeline` (uses its ``cfg``, ``source``, ``meta``,
    ``backend``, ``labels``, ``_stop``, ``_get``, ``_records`` and ``_t_done``)."""

    def _setup_io(self) -> None:
        """Batching, real-time pacing, flicker and saved masks; bad combinations fail here."""
        cfg, src = self.cfg, self.source
        self._batch = int(cfg.batch)
        self._realtime = bool(cfg.realtime or src.live)
        if self._batch < 1:
            raise InputError(f"--batch must be >= 1, got {self._batch}")
        if self._batch > 1 and self._realtime:
            raise InputError("--batch applies to --images and video files; live cameras/streams "
                             "and --realtime runs infer one frame at a time")
        if self._batch > 1 and not self.meta.dynamic_batch:
            raise InputError(f"--batch {self._batch}: the model {self.backend.path} has a fixed batch "
                             "axis; export it with a dynamic batch axis or use --batch 1")
        self._pace_fps, self._fps_from = None, None
        if self._realtime:  # a file's own rate first; a live source's claimed rate last
            order = [(src.fps, "source"), (cfg.pace_fps, "--fps")]
            for fps, where in (order[::-1] if src.live else order) + [(30.0, "default")]:
                if fps is not None and fps > 0:
                    self._pace_fps, self._fps_from = float(fps), where
                    break
        self._flicker = FlickerMeter(self.meta.classes.ignore_index) if src.by_index else None
        self._masks = (MaskWriter(cfg.save_masks, self.meta.num_classes)
                       if cfg.save_masks is not None else None)
        self._frames_read = 0
        self._batches: list[tuple[float, int]] = []  # (seconds, frames) per inference call
        self._held: Any = None  # a frame of another shape, first of the next batch
        self._t_first: float | None = None  # arrival of a paced file's first frame
        self._in_done = False

    def _arrival(self, index: int, t0: float, t1: float) -> float:
        """When frame ``index`` (decoded from ``t0`` to ``t1``) arrived; latency counts from here.

        Normal runs: ``t0`` (decode start). Live sources: ``t1`` (the capture returned it). A
        paced file: ``t_first + index / fps``, as a camera would deliver it; the reader waits
        until then (interrupted by a stop).
        """
        if not self._realtime:
            return t0
        if self.source.live:
            return t1
        if self._t_first is None:
            self._t_first = t1
        due = self._t_first + index / self._pace_fps
        if due > t1:
            self._stop.wait(due - t1)
        return due

    def _put_latest(self, q: queue.Queue, item: Any) -> bool:
        """Latest-frame-wins: replace a frame still waiting for inference (it is dropped)."""
        while not self._stop.is_set():
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass
        return False

    def _next_batch(self, q_in: queue.Queue) -> list[Any]:
        """Up to ``batch`` frames of one input shape (a frame of another shape waits its turn)."""
        items: list[Any] = []
        while len(items) < self._batch:
            if self._held is not None:
                item, self._held = self._held, None
            elif self._in_done:
                break
            else:
                item = self._get(q_in)
                if item is END:
                    self._in_done = True
                    break
            if items and item.x.shape != items[0].x.shape:
                self._held = item
                break
            items.append(item)
        return items

    def _io_report(self, warm: int) -> dict[str, Any]:
        """``batch``, ``realtime``, ``flicker*`` and ``masks`` fields: see :mod:`rdd.runtime.temporal`."""
        out: dict[str, Any] = {"batch": self._batch}
        if self._batch > 1:  # calls holding only warm-up frames are left out
            done, calls = 0, []
            for dt, k in self._batches:
                done += k
                if done > warm:
                    calls.append(dt)
            out["batch_inference_ms"] = latency_stats([1e3 * c for c in calls])
            out["batch_calls"] = len(self._batches)
        if self._realtime:
            recs = self._records[warm:]
            out["realtime"] = realtime_summary(
                fps=self._pace_fps, fps_from=self._fps_from, live=self.source.live,
                frames_read=self._frames_read, frames=len(self._records),
                latencies_s=[r["latency"] for r in recs], done_s=self._t_done[warm:])
        if self._flicker is not None:
            out.update(self._flicker.summary(with_gt=self.labels is not None))
        if self._masks is not None:
            out.update(masks=str(self._masks.root), masks_written=self._masks.count,
                       masks_dtype=self._masks.dtype.name)
        return out
