"""What a run of the frame pipeline measured: per-frame stage times, end-to-end latency and the
streaming score, and the figures made of them (the running ones a live view shows, the report's
after warm-up).

:class:`RunFigures` is filled by :class:`~rdd.runtime.stream.stream.Pipeline`'s writer thread,
one finished frame at a time; times are ``time.perf_counter`` seconds, reported in ms.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np

from rdd.metrics import ConfusionMatrix
from rdd.runtime.timing import SAMPLE_CAP, Reservoir, latency_stats

__all__ = ["RunFigures", "summarize_times", "lap", "STAGES", "STEPS"]

#: per-frame stages of ``stages_ms`` (percentiles; ``postprocess`` is the writer thread's work)
STAGES = ("decode", "preprocess", "inference", "postprocess")
#: the frame's path in finer steps, ``stage_ms`` (mean ms per frame): where a frame's time goes
STEPS = ("decode", "preprocess", "inference", "labels", "metric", "overlay", "write")


def summarize_times(values_s: list[float]) -> dict[str, float]:
    """Seconds → ``{"mean", "p50", "p90", "p99"}`` in milliseconds
    (:func:`rdd.runtime.timing.latency_stats`)."""
    return latency_stats(np.asarray(values_s, dtype=np.float64) * 1e3)


def lap(t: float) -> tuple[float, float]:
    """``(now, now - t)``."""
    now = time.perf_counter()
    return now, now - t


#: every per-frame value :class:`RunFigures` keeps: the stage and step times, the latency and the
#: interval since the previous frame was written
FIELDS = tuple(dict.fromkeys((*STAGES, *STEPS, "latency", "interval")))
#: first frames whose missing mask is named in the report
MISSING_NAMED = 10


class RunFigures:
    """The per-frame records of one run: stage times and latency (:meth:`frame_done`), the
    streaming mIoU when the frames are labelled (:meth:`score`, ``cm`` not ``None``).

    Memory is bounded by the settings, not by the length of the input: the first ``warmup``
    frames' records are kept whole (the warm-up is decided at the end, :meth:`warm`), the measured
    frames' values go to one :class:`~rdd.runtime.timing.Reservoir` per field (``cap`` values
    each; means and counts exact, percentiles from a uniform sample past ``cap`` frames).

    ``t_start`` / ``t_end``: when the run's threads started and ended (set by the pipeline).
    """

    def __init__(self, warmup: int, cm: ConfusionMatrix | None = None, *, cap: int = SAMPLE_CAP) -> None:
        self.warmup = warmup
        self.cm = cm
        self.n = 0
        self._head: list[dict[str, float]] = []  # the first `warmup` frames (+ "done": time written)
        self._tail = {f: Reservoir(cap) for f in FIELDS}  # the frames after them
        self._boundary = math.nan  # interval between the last warm-up frame and the next
        self._recent_t: deque[float] = deque(maxlen=30)
        self._recent_lat: deque[float] = deque(maxlen=100)
        self._t_prev: float | None = None
        self.t_last = math.nan
        self.labelled = 0
        self.missing = 0  # frames without a mask (skipped by the metric)
        self.missing_first: list[str] = []
        self.t_start = self.t_end = time.perf_counter()

    def __len__(self) -> int:
        return self.n

    def score(self, pred: np.ndarray, label: np.ndarray | None, name: str) -> None:
        """Add one frame's labels to the streaming mIoU (a frame without a mask is counted)."""
        if self.cm is None:
            return
        if label is not None:
            self.cm.update(pred, label)  # ids checked by LabelFolder.load
            self.labelled += 1
        else:
            self.missing += 1
            if len(self.missing_first) < MISSING_NAMED:
                self.missing_first.append(name)

    def frame_done(self, times: dict[str, float], t0: float, t: float) -> None:
        """One frame finished at ``t`` (its ``times`` per stage, s; ``t0``: decode start or
        arrival)."""
        interval = t - self._t_prev if self._t_prev is not None else math.nan
        rec = {**{f: times[f] for f in FIELDS[:-2]}, "latency": t - t0, "interval": interval}
        if self.n < self.warmup:
            self._head.append({**rec, "done": t})
        else:
            if self.n == self.warmup:  # its interval reaches back into the warm-up
                self._boundary, rec["interval"] = interval, math.nan
            for f in FIELDS:
                if not (f == "interval" and math.isnan(rec[f])):
                    self._tail[f].add(rec[f])
        self.n += 1
        self._t_prev = self.t_last = t
        self._recent_t.append(t)
        self._recent_lat.append(t - t0)

    def live(self, frames_read: int | None) -> dict[str, Any]:
        """The running figures (frames, FPS, latency, dropped, mIoU so far); ``frames_read``:
        frames the paced reader delivered (``None`` when not paced: nothing is dropped)."""
        n = self.n
        recent = self._recent_t
        fps = (
            (len(recent) - 1) / (recent[-1] - recent[0])
            if len(recent) >= 2 and recent[-1] > recent[0]
            else None
        )
        lat = latency_stats([1e3 * v for v in self._recent_lat])
        out = {
            "frames": n,
            "fps": fps,
            "latency_ms": {"p50": lat["p50"], "p99": lat["p99"]},
            "dropped": max(frames_read - n, 0) if frames_read is not None else 0,
        }
        if self.cm is not None and self.labelled:
            out["miou"] = float(self.cm.compute()["miou"])
        return out

    def warm(self) -> tuple[int, str | None]:
        """``(frames of warm-up applied, note)``: a rate needs two measured frames, so a warm-up
        that leaves fewer is not applied at all (the note says so)."""
        n = self.n
        asked = max(int(self.warmup), 0)
        warm = asked if n - asked >= 2 else 0
        note = (
            f"warm-up of {asked} frames not applied: only {n} frames were processed, so "
            "every frame is measured (warm-up effects included)"
            if n and warm < asked
            else None
        )
        return warm, note

    def measured(self, field: str, warm: int) -> tuple[np.ndarray, int, float]:
        """``(values, count, total)`` of ``field`` over the frames measured after ``warm``
        (:meth:`warm`: 0 or the whole warm-up): the values may be a sample of ``count``."""
        tail = self._tail[field]
        if warm:
            return tail.values(), tail.count, tail.total
        head = [r[field] for r in self._head]
        if field == "interval":
            head = head[1:] + ([self._boundary] if not math.isnan(self._boundary) else [])
        return (
            np.concatenate([np.asarray(head, np.float64), tail.values()]),
            len(head) + tail.count,
            (float(np.sum(head)) + tail.total),
        )

    def stats_ms(self, field: str, warm: int) -> dict[str, float]:
        """:func:`summarize_times` of a measured field, its mean exact even from a sample."""
        values, count, total = self.measured(field, warm)
        out = summarize_times(values)
        if count:
            out["mean"] = 1e3 * total / count
        return out

    def timing(self, warm: int) -> dict[str, Any]:
        """The report's frame counts, FPS, latency and stage times after ``warm`` frames."""
        n = self.n
        if warm > 0:
            t_begin = self._head[warm - 1]["done"]
            counted = n - warm
        else:
            t_begin, counted = self.t_start, n
        span = (self.t_last - t_begin) if n else float("nan")
        fps = counted / span if n and span > 0 else float("nan")
        stages = {s: self.stats_ms(s, warm) for s in STAGES}
        steps = {}
        for s in STEPS:
            _, count, total = self.measured(s, warm)
            steps[s] = 1e3 * total / count if count else float("nan")
        inf_mean = stages["inference"]["mean"]
        inference_fps = 1e3 / inf_mean if inf_mean and not math.isnan(inf_mean) else float("nan")
        sample = self._tail["latency"]  # a short run (warm 0) is never sampled
        return {
            "frames": n,
            "warmup": warm,
            "warmup_asked": int(self.warmup),
            "measured_frames": counted,
            "fps": fps,
            "inference_fps": inference_fps,
            "fps_ratio": fps / inference_fps
            if inference_fps == inference_fps and inference_fps
            else float("nan"),
            "latency_ms": self.stats_ms("latency", warm),
            "stages_ms": stages,
            "stage_ms": steps,
            "percentiles_from": sample.cap if sample.sampled else None,
            "wall_s": self.t_end - self.t_start,
        }

    def scores(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The streaming mIoU block of the report (``names``: the classes, for ``iou``)."""
        res = self.cm.compute()
        return {
            "labelled_frames": self.labelled,
            "labels_missing": self.missing,
            "labels_missing_first": list(self.missing_first),
            "miou": res["miou"],
            "miou_scored_at": "inference_size",
            "pixel_acc": res["pixel_acc"],
            "mean_acc": res["mean_acc"],
            "iou": {names[i]: v for i, v in enumerate(res["iou"])},
        }
