"""The real-time frame pipeline: decode → preprocess → infer → postprocess/write, overlapped.

Three threads, joined by bounded queues so memory stays flat and a slow stage applies
back-pressure::

    [reader]  decode + BGR→RGB + preprocess (+ read the label)  ──q_in──▶
    [caller]  backend.infer                                       ──q_out─▶
    [writer]  labels → frame size, metric, colour overlay, video write

OpenCV, numpy and onnxruntime release the GIL in their heavy loops, so decoding and
post-processing of neighbouring frames overlap with inference. Per-frame stage times and the
end-to-end latency (decode start → frame written; in real-time mode, arrival → written) are
recorded; statistics skip the first ``warmup`` frames. Real-time mode keeps at most one frame
waiting for inference (latest-frame-wins); ``batch`` groups frames per inference call.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from rdd.contract import InputError
from rdd.metrics import ConfusionMatrix
from rdd.runtime.backends import Backend
from rdd.runtime.sources import FrameSource, LabelFolder
from rdd.runtime.stop import COMPLETE_REASONS, STOP_REASONS, StopSignal, stop_reason
from rdd.runtime.provenance import device_info
from rdd.runtime.modes import END as _END, IoModes
from rdd.runtime.temporal import stream_summary
from rdd.runtime.timing import latency_stats
from rdd.runtime.transforms import (RESIZE_MODES, OverlayRenderer, draw_text, inference_size,
                                    parse_resize, preprocess, resize_labels)
from rdd.spec import atomic_path

__all__ = ["PipelineConfig", "Pipeline", "preprocess", "OverlayRenderer",
           "summarize_times", "format_summary", "STAGES", "inference_size", "resize_labels",
           "parse_resize", "RESIZE_MODES", "StopSignal", "STOP_REASONS"]

STAGES = ("decode", "preprocess", "inference", "postprocess")


class _NothingWritten(Exception):
    """No frame reached the overlay writer (aborts the atomic write)."""


@dataclass
class PipelineConfig:
    """Knobs of :class:`Pipeline`.

    Attributes:
        warmup: first frames left out of every statistic (model warm-up, caches).
        max_frames: stop after this many frames (``None`` = until the source ends).
        resize: inference size (:func:`inference_size`): ``"model"`` (default; ``None`` is the
            same) = the model's ``input_size``, the size it was exported and evaluated at;
            ``"native"`` = each frame's own size; ``(H, W)`` explicit. Fixed-size models always
            use their own size. Streaming mIoU is scored at the inference size (labels resized
            with ``INTER_NEAREST_EXACT``, like :class:`rdd.data.EvalTransform`).
        queue_size: capacity of each inter-thread queue.
        out: overlay video path (``.mp4``, mp4v), written to a temp file then renamed.
        out_fps: frame rate written into the video (default: the source's, else 30).
        alpha: overlay opacity of the colour mask.
        draw_fps: draw the running end-to-end FPS on the overlay.
        progress: callable ``progress(n_done)`` invoked after each frame (or ``None``).
        batch: frames per inference call (throughput mode, files and image folders only; the
            model needs a dynamic batch axis). Frames of one batch share one inference size.
        realtime: account the run as a camera would deliver it (always on for live sources):
            a file is paced at its fps (``pace_fps`` when given, else the source's, else 30);
            a frame that arrives while the previous one waits for inference replaces it
            (latest-frame-wins, the replaced one counts as dropped); latency runs from arrival.
        pace_fps: arrival rate for ``realtime`` when a file has none (image folders); for a
            live source, whose claimed rate may be a guess, it sets the deadline when given.
        save_masks: folder for one label PNG per processed frame (:mod:`rdd.runtime.masks`).
        stop: a :class:`StopSignal` a signal handler may trigger to end the run early (or ``None``;
            a ``KeyboardInterrupt`` during the run is taken as ``"sigint"`` either way).
    """

    warmup: int = 5
    max_frames: int | None = None
    resize: str | tuple[int, int] | None = "model"
    queue_size: int = 2
    out: Path | None = None
    out_fps: float | None = None
    alpha: float = 0.5
    draw_fps: bool = True
    progress: Callable[[int], None] | None = None
    batch: int = 1
    realtime: bool = False
    pace_fps: float | None = None
    save_masks: Path | None = None
    stop: StopSignal | None = None


@dataclass
class _Item:
    index: int
    name: str
    image: np.ndarray                      # RGB H×W×3 uint8 frame
    x: np.ndarray | None                   # model input 1×…
    label: np.ndarray | None = None        # h×w ids at the inference size (after ignore mapping)
    label_path: Path | None = None
    t0: float = 0.0                        # perf_counter at decode start (real time: arrival)
    times: dict[str, float] = field(default_factory=dict)
    pred: np.ndarray | None = None         # model-resolution labels h×w


def summarize_times(values_s: list[float]) -> dict[str, float]:
    """Seconds → ``{"mean", "p50", "p90", "p99"}`` in milliseconds (:func:`rdd.runtime.timing.latency_stats`)."""
    return latency_stats(np.asarray(values_s, dtype=np.float64) * 1e3)


class Pipeline(IoModes):
    """Runs ``backend`` over ``source`` and measures it.

    Args:
        backend: any :class:`~rdd.runtime.backends.Backend`.
        source: a :class:`~rdd.runtime.sources.FrameSource`.
        labels: optional :class:`~rdd.runtime.sources.LabelFolder` for streaming mIoU.
        config: :class:`PipelineConfig`.
    """

    def __init__(self, backend: Backend, source: FrameSource, *, labels: LabelFolder | None = None,
                 config: PipelineConfig | None = None) -> None:
        self.backend = backend
        self.source = source
        self.labels = labels
        self.cfg = config or PipelineConfig()
        self.meta = backend.meta
        k = self.meta.num_classes
        self.cm = ConfusionMatrix(k, ignore_index=self.meta.classes.ignore_index) if labels else None
        if labels is not None:  # ids are validated against the model's classes as masks are read
            if labels.num_classes is None:
                labels.set_num_classes(k)
            elif labels.num_classes != k:
                raise InputError(f"labels in {labels.root} were set up for {labels.num_classes} "
                                 f"classes but the model has {k}")
            if labels.ignore_index != self.meta.classes.ignore_index:
                raise InputError(f"labels in {labels.root} use ignore index {labels.ignore_index} "
                                 f"but the model's is {self.meta.classes.ignore_index}")
        self._overlay = OverlayRenderer(self.meta.classes, self.cfg.alpha)
        self._resize = parse_resize(self.cfg.resize)
        if isinstance(self._resize, tuple):  # fail before any thread starts
            inference_size(self._resize, self.meta, self._resize)
        self._stop = threading.Event()
        self._stop_request: str | None = None  # "sigint" / "sigterm": stop after the frame in hand
        self._hit_max_frames = False
        self._errors: list[BaseException] = []
        self._records: list[dict[str, float]] = []
        self._t_done: list[float] = []
        self._labelled = 0
        self._missing_labels: list[str] = []   # frames without a mask (skipped by the metric)
        self._writer: cv2.VideoWriter | None = None
        self._writer_size: tuple[int, int] | None = None
        self._infer_hw: tuple[int, int] | None = None
        self._frame_hw: tuple[int, int] | None = None
        self._setup_io()

    # ------------------------------------------------------------------ queue helpers
    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() and (self._errors or self._stop_request):
                    return _END

    # ------------------------------------------------------------------ stages
    def _reader(self, q_in: queue.Queue) -> None:
        try:
            it = iter(self.source)
            index = 0
            while not self._stop.is_set():
                if self.cfg.max_frames is not None and index >= self.cfg.max_frames:
                    self._hit_max_frames = True
                    break
                t0 = time.perf_counter()
                try:
                    name, image = next(it)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                arrival = self._arrival(index, t0, t1)  # real time: waits for a paced file
                t_pre = time.perf_counter()
                hw = inference_size(image.shape[:2], self.meta, self._resize)
                x = preprocess(image, self.meta, hw)
                t2 = time.perf_counter()
                item = _Item(index, name, image, x, t0=arrival,
                             times={"decode": t1 - t0, "preprocess": t2 - t_pre})
                if self.labels is not None:
                    path = self.labels.path_for(index, name)
                    if path is not None:  # validated at native size, then scored at the
                        # inference size like EvalTransform
                        item.label = resize_labels(self.labels.load(path, image.shape[:2]), hw)
                        item.label_path = path
                if not (self._put_latest(q_in, item) if self._realtime else self._put(q_in, item)):
                    break
                index += 1
                self._frames_read = index
        except BaseException as e:  # forwarded to the caller's thread
            self._errors.append(e)
            self._stop.set()
        finally:
            self._put_end(q_in)

    def _put_end(self, q: queue.Queue) -> None:
        while True:
            try:
                q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    try:  # make room: the consumer is gone or will stop anyway
                        q.get_nowait()
                    except queue.Empty:
                        pass

    def _writer_loop(self, q_out: queue.Queue, out_tmp: Path | None) -> None:
        recent: deque[float] = deque(maxlen=30)
        try:
            while True:
                item = self._get(q_out)
                if item is _END:
                    break
                t0 = time.perf_counter()
                if self.cm is not None and item.label is not None:
                    self._update_metric(item.pred, item)
                elif self.cm is not None:
                    self._missing_labels.append(item.name)
                if self._flicker is not None:
                    self._flicker.update(item.pred, item.label)
                if self._masks is not None or out_tmp is not None:  # labels at the frame's size
                    pred = resize_labels(item.pred, item.image.shape[:2])
                if self._masks is not None:
                    self._masks.write(item.name, pred)
                if out_tmp is not None:
                    vis = self._overlay(item.image, pred)
                    vis = cv2.cvtColor(vis, cv2.COLOR_RGB2BGR)
                    if self.cfg.draw_fps and len(recent) >= 2:
                        fps = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)
                        draw_text(vis, f"{fps:5.1f} FPS")
                    self._write(vis, out_tmp)
                t1 = time.perf_counter()
                item.times["postprocess"] = t1 - t0
                rec = dict(item.times)
                rec["latency"] = t1 - item.t0
                self._records.append(rec)
                self._t_done.append(t1)
                recent.append(t1)
                if self.cfg.progress is not None:
                    self.cfg.progress(len(self._records))
        except BaseException as e:
            self._errors.append(e)
            self._stop.set()
            while self._get(q_out) is not _END:  # drain so the producer can finish
                pass

    def _update_metric(self, pred: np.ndarray, item: _Item) -> None:
        self.cm.update(pred, item.label)  # ids checked by LabelFolder.load (rdd.labels)
        self._labelled += 1

    def _write(self, bgr: np.ndarray, out_tmp: Path) -> None:
        h, w = bgr.shape[:2]
        if self._writer is None:
            fps = self.cfg.out_fps or self.source.fps or 30.0
            self._writer = cv2.VideoWriter(str(out_tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                           (w, h))
            if not self._writer.isOpened():
                raise InputError(f"cannot open a video writer for {self.cfg.out} (mp4v, {w}×{h})")
            self._writer_size = (w, h)
        if (w, h) != self._writer_size:
            bgr = cv2.resize(bgr, self._writer_size, interpolation=cv2.INTER_LINEAR)
        self._writer.write(bgr)

    # ------------------------------------------------------------------ driver
    def request_stop(self, reason: str = "sigint") -> None:
        """Stop after the frame in hand, keeping what is done (safe to call from a signal handler)."""
        if self._stop_request is None:
            self._stop_request = reason
        self._stop.set()

    def run(self) -> dict[str, Any]:
        """Process the source; returns the report dict (see :meth:`report`).

        An early end (:mod:`rdd.runtime.stop`) still finalises the overlay and saved masks of
        the frames done, under their final names; an exception leaves no output behind.
        """
        if self._masks is not None:
            with self._masks:
                return self._run_out()
        return self._run_out()

    def _run_out(self) -> dict[str, Any]:
        if self.cfg.out is not None:
            out = Path(self.cfg.out)
            if out.suffix.lower() != ".mp4":
                raise InputError(f"--out must be an .mp4 file, got {out}")
            try:
                with atomic_path(out) as tmp:
                    self._run(tmp)
                    if self._writer is None:
                        raise _NothingWritten
            except _NothingWritten:
                if self._stop_request is None:
                    raise InputError(f"no frame was processed; {out} not written") from None
        else:
            self._run(None)
        return self.report()

    def _run(self, out_tmp: Path | None) -> None:
        qs = max(1, int(self.cfg.queue_size))
        # real time: one waiting frame at most (latest wins); batches: room for a whole batch
        q_in: queue.Queue = queue.Queue(maxsize=1 if self._realtime else max(qs, self._batch))
        q_out: queue.Queue = queue.Queue(maxsize=qs)
        reader = threading.Thread(target=self._reader, args=(q_in,), name="rdd-reader", daemon=True)
        writer = threading.Thread(target=self._writer_loop, args=(q_out, out_tmp), name="rdd-writer",
                                  daemon=True)
        stop = self.cfg.stop
        if stop is not None:
            stop._listener = lambda: self.request_stop(stop.reason or "sigint")
            if stop.reason is not None:  # requested before the run began
                self.request_stop(stop.reason)
        self._t_start = time.perf_counter()
        reader.start()
        writer.start()
        try:
            while self._stop_request is None and (items := self._next_batch(q_in)):
                x = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
                t0 = time.perf_counter()
                preds = self.backend.infer(x)
                dt = time.perf_counter() - t0
                self._batches.append((dt, len(items)))
                self._infer_hw = tuple(x.shape[1:3] if self.meta.input_layout == "NHWC"
                                       else x.shape[2:4])
                self._frame_hw = items[-1].image.shape[:2]
                for item, pred in zip(items, preds):
                    item.times["inference"] = dt / len(items)  # per-frame share of the call
                    item.x, item.pred = None, pred
                    if not self._put(q_out, item):
                        break
                else:
                    continue
                break
        except KeyboardInterrupt as e:  # Ctrl-C without a StopSignal handler: keep what we have
            self.request_stop(getattr(e, "reason", "sigint"))
        except BaseException as e:
            self._errors.append(e)
            self._stop.set()
        finally:
            # Normal end: the reader has finished. Early stop: `_stop` makes a blocked reader give up.
            self._put_end(q_out)
            self.source.interrupt()  # a live source waiting to reconnect gives up too
            reader.join()
            writer.join()
            if self._writer is not None:
                self._writer.release()  # finalises the mp4 (also after an early stop)
            if stop is not None:
                stop._listener = None
        self._t_end = time.perf_counter()
        if self._errors:
            raise self._errors[0]

    def stop_reason(self) -> tuple[str, str | None]:
        """``(stop_reason, detail)`` of a finished run (:func:`rdd.runtime.stop.stop_reason`)."""
        return stop_reason(self._stop_request, self._hit_max_frames,
                           getattr(self.source, "end_reason", None),
                           getattr(self.source, "end_message", None))

    # ------------------------------------------------------------------ results
    def report(self) -> dict[str, Any]:
        """Figures after warm-up: FPS, latency percentiles, per-stage times, mIoU when labelled."""
        n = len(self._records)
        warm = min(max(int(self.cfg.warmup), 0), max(n - 1, 0))
        recs = self._records[warm:]
        if warm > 0:
            t_begin = self._t_done[warm - 1]
            counted = n - warm
        else:
            t_begin, counted = self._t_start, n
        span = (self._t_done[-1] - t_begin) if n else float("nan")
        fps = counted / span if n and span > 0 else float("nan")
        stages = {s: summarize_times([r[s] for r in recs]) for s in STAGES}
        inf_mean = stages["inference"]["mean"]
        inference_fps = 1e3 / inf_mean if inf_mean and not math.isnan(inf_mean) else float("nan")
        rep: dict[str, Any] = {
            **self.backend.describe(),
            "source": self.source.describe(),
            "inference_size": list(self._infer_hw) if self._infer_hw else None,
            "frame_size": list(self._frame_hw) if self._frame_hw else None,
            "resize": (self._resize if isinstance(self._resize, str)
                       else f"{self._resize[0]}x{self._resize[1]}"),
            "model_input_size": list(self.meta.input_size) if self.meta.input_size else None,
            "frames": n,
            "warmup": warm,
            "measured_frames": len(recs),
            "fps": fps,
            "inference_fps": inference_fps,
            "fps_ratio": fps / inference_fps if inference_fps == inference_fps and inference_fps else
            float("nan"),
            "latency_ms": summarize_times([r["latency"] for r in recs]),
            "stages_ms": stages,
            "wall_s": self._t_end - self._t_start,
            "out": str(self.cfg.out) if self.cfg.out and self._writer is not None else None,
            "device": device_info(),
        }
        reason, detail = self.stop_reason()
        rep.update(completed=reason in COMPLETE_REASONS, stop_reason=reason)
        if detail:
            rep["stop_detail"] = detail
        if self.cm is not None:
            res = self.cm.compute()
            names = self.meta.classes.names
            rep.update({"labelled_frames": self._labelled,
                        "labels_missing": len(self._missing_labels),
                        "labels_missing_first": self._missing_labels[:10],
                        "miou": res["miou"],
                        "miou_scored_at": "inference_size",
                        "pixel_acc": res["pixel_acc"], "mean_acc": res["mean_acc"],
                        "iou": {names[i]: v for i, v in enumerate(res["iou"])}})
        rep.update(self._io_report(warm))
        return rep



def format_summary(rep: dict[str, Any]) -> str:
    """One human line: model, backend, frames, FPS, latency, mIoU (``None`` prints as nan)."""
    rep = {**rep, **{k: (float("nan") if rep.get(k) is None else rep[k])
                     for k in ("fps", "inference_fps", "miou") if k in rep}}
    rep["latency_ms"] = {k: (float("nan") if v is None else v)
                         for k, v in rep["latency_ms"].items()}
    size = "×".join(str(v) for v in rep["inference_size"]) if rep.get("inference_size") else "?"
    if rep.get("resize"):
        size += f" ({rep['resize']})"
    s = (f"{rep.get('model', '?')} [{rep.get('backend')}/{rep.get('backend_device', '?')}] {rep['frames']} frames "
         f"@ {size}: {rep['fps']:.1f} FPS end-to-end (inference {rep['inference_fps']:.1f} FPS), "
         f"latency p50 {rep['latency_ms']['p50']:.1f} ms p99 {rep['latency_ms']['p99']:.1f} ms")
    if "miou" in rep:
        s += f", mIoU {100 * rep['miou']:.2f}% over {rep['labelled_frames']} labelled frames"
        if rep.get("labels_missing"):
            s += f" ({rep['labels_missing']} without a mask, skipped)"
    s += stream_summary(rep)
    if rep.get("out"):
        s += f" → {rep['out']}"
    return s

