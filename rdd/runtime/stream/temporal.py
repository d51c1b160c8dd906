"""Temporal figures of a frame stream: label flicker and real-time pacing statistics.

Pure numpy (no OpenCV, no torch):

* :func:`label_change_rate` / :class:`FlickerMeter` — *flicker*: the mean share of pixels whose
  label changes between consecutive output frames, for the prediction and, given ground truth,
  for the labels themselves (a model that flickers more than its labels do looks worse on a
  dashboard, whatever its mIoU);
* :func:`interval_stats` — inter-frame jitter of the output;
* :func:`realtime_summary` — dropped frames, deadline misses and jitter of a ``--realtime`` run.

Runner report fields of the input/output modes (:class:`rdd.runtime.stream.stream.Pipeline`):

* ``batch``: frames per inference call; with ``batch > 1`` also ``batch_calls`` and
  ``batch_inference_ms`` (mean/p50/p90/p99 of one call; calls holding only warm-up
  frames left out). ``stages_ms.inference`` is then each frame's share of its call and
  ``latency_ms`` includes the wait for the batch to fill.
* ``realtime`` (``--realtime`` or a live source; :func:`realtime_summary`): ``mode``
  (``live``/``paced_file``), ``fps`` and ``fps_from``, ``frames_read``,
  ``dropped_frames``/``drop_rate`` (replaced while waiting for inference), ``deadline_ms`` =
  1000/fps, ``deadline_misses``/``deadline_miss_rate`` (measured frames whose arrival → written
  latency exceeds it), ``output_interval_ms`` and ``jitter_ms`` (``std`` and ``p99`` of the
  intervals between written frames). ``latency_ms`` then runs from each frame's arrival.
* ``flicker``/``flicker_pairs`` for frame sequences (not image folders), and with labels
  ``flicker_gt``, ``flicker_at_gt``, ``flicker_gt_pairs`` (:class:`FlickerMeter`); pairs are
  consecutive *processed* frames (with drops, not always adjacent source frames).
* ``masks``, ``masks_written``, ``masks_dtype`` with ``save_masks``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rdd.runtime.timing import latency_stats

__all__ = ["label_change_rate", "FlickerMeter", "interval_stats", "realtime_summary"]


def label_change_rate(prev: np.ndarray, cur: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of pixels whose label differs between two ``H×W`` label maps.

    ``valid`` (``H×W`` bool) restricts the count to those pixels; NaN when none is valid.
    """
    if prev.shape != cur.shape:
        raise ValueError(f"label maps differ in shape: {prev.shape} vs {cur.shape}")
    changed = prev != cur
    if valid is None:
        return float(changed.mean()) if changed.size else math.nan
    n = int(valid.sum())
    return float(np.count_nonzero(changed & valid)) / n if n else math.nan


class FlickerMeter:
    """Accumulates flicker over consecutive frames.

    :meth:`update` takes each output frame's predicted labels (``h×w``) and, when it has one,
    its ground truth at the same size (``ignore_index`` = unlabelled). Reported by
    :meth:`summary`:

    * ``flicker`` — mean :func:`label_change_rate` of the prediction over all pixels of every
      consecutive pair (``flicker_pairs`` pairs);
    * ``flicker_gt`` — the same for the ground truth, over pairs where both frames are labelled,
      on pixels labelled in both (``flicker_gt_pairs``);
    * ``flicker_at_gt`` — the prediction's flicker on exactly those pairs and pixels, so it
      compares like for like with ``flicker_gt``.

    A change of frame size (or a missing label) breaks the chain: that pair is not counted.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = int(ignore_index)
        self._prev_pred: np.ndarray | None = None
        self._prev_gt: np.ndarray | None = None
        # running [sum, count] of each rate: memory does not grow with the stream
        self._pred = [0.0, 0]
        self._gt = [0.0, 0]
        self._pred_at_gt = [0.0, 0]

    def update(self, pred: np.ndarray, gt: np.ndarray | None = None) -> None:
        prev, prev_gt = self._prev_pred, self._prev_gt
        self._prev_pred, self._prev_gt = pred, gt
        if prev is None or prev.shape != pred.shape:
            return
        _add(self._pred, label_change_rate(prev, pred))
        if gt is None or prev_gt is None or prev_gt.shape != gt.shape or gt.shape != pred.shape:
            return
        valid = (prev_gt != self.ignore_index) & (gt != self.ignore_index)
        if valid.any():
            _add(self._gt, label_change_rate(prev_gt, gt, valid))
            _add(self._pred_at_gt, label_change_rate(prev, pred, valid))

    def summary(self, with_gt: bool) -> dict[str, Any]:
        def mean(v: list) -> float:
            return v[0] / v[1] if v[1] else math.nan

        out: dict[str, Any] = {"flicker": mean(self._pred), "flicker_pairs": self._pred[1]}
        if with_gt:
            out.update(
                flicker_gt=mean(self._gt),
                flicker_at_gt=mean(self._pred_at_gt),
                flicker_gt_pairs=self._gt[1],
            )
        return out


def _add(acc: list, rate: float) -> None:
    """``acc = [sum, count]`` += one rate."""
    acc[0] += rate
    acc[1] += 1


def interval_stats(
    times_s: Sequence[float] | None = None, *, intervals_s: Sequence[float] | None = None
) -> dict[str, float]:
    """Output timestamps (s, length T) → stats of the ``T-1`` intervals between them, in ms
    (or the intervals themselves, ``intervals_s``, s).

    ``{"mean", "p50", "p90", "p99"}`` (:func:`rdd.runtime.timing.latency_stats`) plus ``std``:
    the jitter. NaN when there are fewer than two timestamps.
    """
    if intervals_s is not None:
        d = np.asarray(intervals_s, dtype=np.float64) * 1e3
    else:
        d = np.diff(np.asarray(times_s, dtype=np.float64)) * 1e3
    return {**latency_stats(d), "std": float(d.std()) if d.size else math.nan}


def realtime_summary(
    *,
    fps: float,
    fps_from: str,
    live: bool,
    frames_read: int,
    frames: int,
    latencies_s: Sequence[float],
    done_s: Sequence[float] | None = None,
    intervals_s: Sequence[float] | None = None,
    measured: int | None = None,
) -> dict[str, Any]:
    """The ``realtime`` block of a report.

    Args:
        fps: the rate frames arrive at; the deadline of a frame is ``1/fps`` after its arrival.
        fps_from: where ``fps`` came from (``"source"``, ``"--fps"``, ``"default"``).
        live: a camera/stream (True) or a file paced at ``fps`` (False).
        frames_read: frames the source delivered; ``frames``: frames processed. The difference
            was dropped: they arrived while the previous one was still being processed, and only
            the latest waiting frame is kept.
        latencies_s: arrival → written of the measured (post-warm-up) frames, or a uniform
            sample of them (:class:`rdd.runtime.timing.Reservoir`) when ``measured`` is larger.
        done_s: write times of the same frames (their intervals give the jitter), or
            ``intervals_s``: those intervals (a sample like ``latencies_s``).
        measured: how many frames were measured (default ``len(latencies_s)``); from a sample,
            ``deadline_misses`` is the sample's miss rate times ``measured``.
    """
    lat = np.asarray(latencies_s, dtype=np.float64)
    deadline = 1.0 / fps
    n = lat.size if measured is None else int(measured)
    rate = float(np.count_nonzero(lat > deadline)) / lat.size if lat.size else math.nan
    misses = int(round(rate * n)) if lat.size else 0
    dropped = max(int(frames_read) - int(frames), 0)
    iv = interval_stats(done_s, intervals_s=intervals_s)
    return {
        "mode": "live" if live else "paced_file",
        "fps": float(fps),
        "fps_from": fps_from,
        "frames_read": int(frames_read),
        "dropped_frames": dropped,
        "drop_rate": dropped / frames_read if frames_read else math.nan,
        "deadline_ms": 1e3 * deadline,
        "deadline_misses": misses,
        "deadline_miss_rate": rate,
        "output_interval_ms": iv,
        "jitter_ms": {"std": iv["std"], "p99": iv["p99"]},
    }
