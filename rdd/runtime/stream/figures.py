"""What a run of the frame pipeline measured: per-frame stage times, end-to-end latency and the
streaming score, and the figures made of them (the running ones a live view shows, the report's
after warm-up).

:class:`RunFigures` is filled by :class:`~rdd.runtime.stream.stream.Pipeline`'s writer thread,
one finished frame at a time; times are ``time.perf_counter`` seconds, reported in ms.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from rdd.metrics import ConfusionMatrix
from rdd.runtime.timing import latency_stats

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


class RunFigures:
    """The per-frame records of one run: stage times and latency (:meth:`frame_done`), the
    streaming mIoU when the frames are labelled (:meth:`score`, ``cm`` not ``None``).

    ``t_start`` / ``t_end``: when the run's threads started and ended (set by the pipeline).
    """

    def __init__(self, warmup: int, cm: ConfusionMatrix | None = None) -> None:
        self.warmup = warmup
        self.cm = cm
        self.records: list[dict[str, float]] = []
        self.t_done: list[float] = []
        self.labelled = 0
        self.missing_labels: list[str] = []  # frames without a mask (skipped by the metric)
        self.t_start = self.t_end = time.perf_counter()

    def __len__(self) -> int:
        return len(self.records)

    def score(self, pred: np.ndarray, label: np.ndarray | None, name: str) -> None:
        """Add one frame's labels to the streaming mIoU (a frame without a mask is counted)."""
        if self.cm is None:
            return
        if label is not None:
            self.cm.update(pred, label)  # ids checked by LabelFolder.load
            self.labelled += 1
        else:
            self.missing_labels.append(name)

    def frame_done(self, times: dict[str, float], t0: float, t: float) -> None:
        """One frame finished at ``t`` (its ``times`` per stage, s; ``t0``: decode start or
        arrival)."""
        self.records.append({**times, "latency": t - t0})
        self.t_done.append(t)

    def live(self, frames_read: int | None) -> dict[str, Any]:
        """The running figures (frames, FPS, latency, dropped, mIoU so far); ``frames_read``:
        frames the paced reader delivered (``None`` when not paced: nothing is dropped)."""
        n = len(self.records)
        recent = self.t_done[-30:]
        fps = (
            (len(recent) - 1) / (recent[-1] - recent[0])
            if len(recent) >= 2 and recent[-1] > recent[0]
            else None
        )
        lat = latency_stats([1e3 * r["latency"] for r in self.records[-100:]])
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
        n = len(self.records)
        asked = max(int(self.warmup), 0)
        warm = asked if n - asked >= 2 else 0
        note = (
            f"warm-up of {asked} frames not applied: only {n} frames were processed, so "
            "every frame is measured (warm-up effects included)"
            if n and warm < asked
            else None
        )
        return warm, note

    def timing(self, warm: int) -> dict[str, Any]:
        """The report's frame counts, FPS, latency and stage times after ``warm`` frames."""
        n = len(self.records)
        recs = self.records[warm:]
        if warm > 0:
            t_begin = self.t_done[warm - 1]
            counted = n - warm
        else:
            t_begin, counted = self.t_start, n
        span = (self.t_done[-1] - t_begin) if n else float("nan")
        fps = counted / span if n and span > 0 else float("nan")
        stages = {s: summarize_times([r[s] for r in recs]) for s in STAGES}
        steps = {s: 1e3 * float(np.mean([r[s] for r in recs])) if recs else float("nan") for s in STEPS}
        inf_mean = stages["inference"]["mean"]
        inference_fps = 1e3 / inf_mean if inf_mean and not math.isnan(inf_mean) else float("nan")
        return {
            "frames": n,
            "warmup": warm,
            "warmup_asked": int(self.warmup),
            "measured_frames": len(recs),
            "fps": fps,
            "inference_fps": inference_fps,
            "fps_ratio": fps / inference_fps
            if inference_fps == inference_fps and inference_fps
            else float("nan"),
            "latency_ms": summarize_times([r["latency"] for r in recs]),
            "stages_ms": stages,
            "stage_ms": steps,
            "wall_s": self.t_end - self.t_start,
        }

    def scores(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The streaming mIoU block of the report (``names``: the classes, for ``iou``)."""
        res = self.cm.compute()
        return {
            "labelled_frames": self.labelled,
            "labels_missing": len(self.missing_labels),
            "labels_missing_first": self.missing_labels[:10],
            "miou": res["miou"],
            "miou_scored_at": "inference_size",
            "pixel_acc": res["pixel_acc"],
            "mean_acc": res["mean_acc"],
            "iou": {names[i]: v for i, v in enumerate(res["iou"])},
        }
