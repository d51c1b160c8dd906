"""The real-time frame pipeline: decode → preprocess → infer → labels, metric, outputs, overlapped.

Three threads, joined by bounded channels so memory stays flat and a slow stage applies
back-pressure::

    [reader]  decode + BGR→RGB + resize + model input (+ read the label)  ──in──▶
    [caller]  backend.forward (+ labels)                                    ──out─▶
    [writer]  metric, flicker, labels → frame size, colour overlay, outputs

OpenCV, numpy and the inference runtimes release the GIL in their heavy loops, so decoding and
post-processing of neighbouring frames overlap with inference. Per-frame stage times and the
end-to-end latency (decode start → frame done; in real time, arrival → done) are recorded;
statistics skip the first ``warmup`` frames (the records and the figures made of them are
:mod:`figures`'). Pacing and batching are :mod:`pacing`'s objects, outputs :mod:`writers`' staged
files (committed together when the run ends).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rdd.metrics import ConfusionMatrix
from rdd.runtime.backends.base import Backend, output_labels
from rdd.runtime.errors import InputError, OptionError
from rdd.runtime.provenance import device_info
from rdd.runtime.stream.figures import RunFigures, lap
from rdd.runtime.stream.labels import LabelFolder
from rdd.runtime.stream.masks import MaskWriter
from rdd.runtime.stream.pacing import END, Batcher, Channel, Pacer
from rdd.runtime.stream.sources import FrameSource
from rdd.runtime.stream.stop import COMPLETE_REASONS, StopSignal, stop_reason
from rdd.runtime.stream.temporal import FlickerMeter
from rdd.runtime.stream.transforms import OverlayRenderer, Resize, draw_text, fit, model_input, resize_labels
from rdd.runtime.stream.writers import OverlayFolder, OverlayVideo, commit, discard

__all__ = ["PipelineConfig", "Pipeline"]


@dataclass
class PipelineConfig:
    """Knobs of :class:`Pipeline` (the runner builds it from its options, :mod:`rdd.runtime.options`).

    Attributes:
        warmup: first frames left out of every statistic (model warm-up, caches).
        max_frames: stop after this many frames (``None`` = until the source ends).
        resize: inference size (:class:`~rdd.runtime.stream.transforms.Resize`): ``"model"``
            (default; ``None`` is the same) = the model's ``input_size``; ``"native"`` = each
            frame's own size; ``(H, W)``. Fixed-size models always use their own size.
            Streaming mIoU is scored at the inference size (labels resized with
            ``INTER_NEAREST_EXACT``, like :class:`rdd.data.EvalTransform`).
        queue_size: capacity of each inter-thread channel.
        out: overlay video path (``.mp4``, mp4v).
        out_fps: frame rate written into the video (default: the source's, else 30).
        alpha: overlay opacity of the colour mask.
        draw_fps: draw the running end-to-end FPS on the overlay video.
        progress: callable ``progress(n_done)`` invoked after each frame (or ``None``).
        batch: frames per inference call (files and image folders only; the model needs a
            dynamic batch axis). Frames of one batch share one inference size.
        realtime: account the run as a camera would deliver it (always on for live sources):
            a file is paced at its fps (``pace_fps`` when given, else the source's, else 30);
            a frame that arrives while the previous one waits for inference replaces it
            (latest-frame-wins, the replaced one counts as dropped); latency runs from arrival.
        pace_fps: arrival rate for ``realtime`` when a file has none (image folders); for a
            live source, whose claimed rate may be a guess, it sets the deadline when given.
        save_masks: folder for one label PNG per processed frame (:mod:`.masks`);
            ``palette_masks``: as palette PNGs in the classes' colours.
        save_overlays: folder for one colour overlay JPEG per processed frame.
        live: a live view (:class:`rdd.runtime.stream.live.LiveView`) the overlays and the
            running figures are published to.
        stop: a :class:`StopSignal` a signal handler may trigger to end the run early (or ``None``;
            a ``KeyboardInterrupt`` during the run is taken as ``"sigint"`` either way).
    """

    warmup: int = 5
    max_frames: int | None = None
    resize: Any = "model"
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
    palette_masks: bool = False
    save_overlays: Path | None = None
    live: Any = None
    stop: StopSignal | None = None


@dataclass
class _Item:
    index: int
    name: str
    image: np.ndarray  # RGB H×W×3 uint8 frame
    x: np.ndarray | None  # model input 1×…
    hw: tuple[int, int] = (0, 0)  # inference size
    label: np.ndarray | None = None  # h×w ids at the inference size (after ignore mapping)
    t0: float = 0.0  # perf_counter at decode start (real time: arrival)
    times: dict[str, float] = field(default_factory=dict)
    out: np.ndarray | None = None  # the model's raw output for this frame
    pred: np.ndarray | None = None  # labels h×w at the inference size


class Pipeline:
    """Runs ``backend`` over ``source`` and measures it.

    Args:
        backend: any :class:`~rdd.runtime.backends.Backend`.
        source: a :class:`~rdd.runtime.stream.sources.FrameSource`.
        labels: optional :class:`~rdd.runtime.stream.sources.LabelFolder` for streaming mIoU.
        config: :class:`PipelineConfig`.
    """

    def __init__(
        self,
        backend: Backend,
        source: FrameSource,
        *,
        labels: LabelFolder | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.labels = labels
        self.cfg = cfg = config or PipelineConfig()
        self.meta = meta = backend.meta
        k = meta.num_classes
        cm = ConfusionMatrix(k, ignore_index=meta.classes.ignore_index) if labels else None
        self.figures = RunFigures(cfg.warmup, cm)
        if labels is not None:  # ids are validated against the model's classes as masks are read
            if labels.num_classes is None:
                labels.set_num_classes(k)
            elif labels.num_classes != k:
                raise InputError(
                    f"labels in {labels.root} were set up for {labels.num_classes} "
                    f"classes but the model has {k}"
                )
            if labels.ignore_index != meta.classes.ignore_index:
                raise InputError(
                    f"labels in {labels.root} use ignore index {labels.ignore_index} "
                    f"but the model's is {meta.classes.ignore_index}"
                )
        self._resize = Resize.parse(cfg.resize)
        if self._resize.hw is not None:  # fail before any thread starts
            self._resize.size_for(self._resize.hw, meta)
        self.pacer = Pacer(
            live=source.live, realtime=cfg.realtime, source_fps=source.fps, pace_fps=cfg.pace_fps
        )
        self.batcher = Batcher(int(cfg.batch), warmup=int(cfg.warmup))
        if self.batcher.size > 1 and self.pacer.on:
            raise OptionError(
                "batch",
                "applies to {images} and video files; live cameras/streams "
                "and {realtime} runs infer one frame at a time",
            )
        if self.batcher.size > 1 and not meta.dynamic_batch:
            raise OptionError(
                "batch",
                f"{self.batcher.size}: the model {backend.path} has a fixed "
                "batch axis; export it with a dynamic batch axis or use "
                "{batch} 1",
            )
        self.flicker = FlickerMeter(meta.classes.ignore_index) if source.by_index else None
        self.video = OverlayVideo(cfg.out, cfg.out_fps or source.fps or 30.0) if cfg.out is not None else None
        self.masks = (
            MaskWriter(cfg.save_masks, k, palette=meta.classes.palette if cfg.palette_masks else None)
            if cfg.save_masks is not None
            else None
        )
        self.overlays = OverlayFolder(cfg.save_overlays) if cfg.save_overlays is not None else None
        self._renderer = OverlayRenderer(meta.classes, cfg.alpha)
        self._stop = threading.Event()
        self._stop_request: str | None = None  # "sigint" / "sigterm": stop after the frame in hand
        self._hit_max_frames = False
        self._errors: list[BaseException] = []
        self._infer_hw: tuple[int, int] | None = None
        self._frame_hw: tuple[int, int] | None = None

    @property
    def outputs(self) -> list[Any]:
        """The staged outputs of the run (committed by :meth:`run` unless asked not to)."""
        return [o for o in (self.masks, self.overlays, self.video) if o is not None]

    def _stopping(self) -> bool:
        return bool(self._errors or self._stop_request)

    # ------------------------------------------------------------------ threads
    def _reader(self, chan: Channel) -> None:
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
                arrival = self.pacer.arrival(index, t0, t1, self._stop)  # a paced file waits
                t_pre = time.perf_counter()
                hw = self._resize.size_for(image.shape[:2], self.meta)
                x = model_input(fit(image, hw), self.meta)
                t2 = time.perf_counter()
                item = _Item(
                    index, name, image, x, hw, t0=arrival, times={"decode": t1 - t0, "preprocess": t2 - t_pre}
                )
                if self.labels is not None:
                    path = self.labels.path_for(index, name)
                    if path is not None:  # validated at native size, scored at the inference size
                        item.label = resize_labels(self.labels.load(path, image.shape[:2]), hw)
                if not self.pacer.put(chan, item):
                    break
                index += 1
                self.pacer.frames_read = index
        except BaseException as e:  # forwarded to the caller's thread
            self._errors.append(e)
            self._stop.set()
        finally:
            chan.close()

    def _writer(self, chan: Channel) -> None:
        recent: deque[float] = deque(maxlen=30)
        try:
            while (item := chan.get()) is not END:
                self._finish(item, recent)
        except BaseException as e:
            self._errors.append(e)
            self._stop.set()
            while chan.get() is not END:  # drain so the producer can finish
                pass

    def _finish(self, item: _Item, recent: deque) -> None:
        """Labels, metric, flicker and outputs of one frame (the writer thread)."""
        t = time.perf_counter()
        times = item.times
        if item.pred is None:
            item.pred = output_labels(item.out[None], self.meta, item.hw)[0]
            item.out = None
        t, times["labels"] = lap(t)
        self.figures.score(item.pred, item.label, item.name)
        if self.flicker is not None:
            self.flicker.update(item.pred, item.label)
        t, times["metric"] = lap(t)
        vis = None
        if (
            self.video is not None
            or self.overlays is not None
            or self.masks is not None
            or self.cfg.live is not None
        ):
            pred = resize_labels(item.pred, item.image.shape[:2])  # labels at the frame's size
            if self.video is not None or self.overlays is not None or self.cfg.live is not None:
                vis = cv2.cvtColor(self._renderer(item.image, pred), cv2.COLOR_RGB2BGR)
        t, times["overlay"] = lap(t)
        if self.masks is not None:
            self.masks.write(item.name, pred)
        if self.overlays is not None:
            self.overlays.write(item.name, vis)
        if self.cfg.live is not None:
            self.cfg.live.publish(vis, self.live_figures(), bgr=True)
        if self.video is not None:
            if self.cfg.draw_fps and len(recent) >= 2:
                vis = vis.copy() if self.overlays is not None else vis
                draw_text(vis, f"{(len(recent) - 1) / max(recent[-1] - recent[0], 1e-9):5.1f} FPS")
            self.video.write(vis)
        t, times["write"] = lap(t)
        times["postprocess"] = sum(times[s] for s in ("labels", "metric", "overlay", "write"))
        self.figures.frame_done(times, item.t0, t)
        recent.append(t)
        if self.cfg.progress is not None:
            self.cfg.progress(len(self.figures))

    # ------------------------------------------------------------------ driver
    def request_stop(self, reason: str = "sigint") -> None:
        """Stop after the frame in hand, keeping what is done. Sets a flag and takes no lock, so
        a signal handler may call it at any moment (even one that interrupted this thread inside
        a lock); the run's threads see it within their 0.1 s polls and the driver then sets
        ``_stop`` itself."""
        if self._stop_request is None:
            self._stop_request = reason

    def run(self, *, commit_outputs: bool = True) -> dict[str, Any]:
        """Process the source; returns the report dict (see :meth:`report`).

        An early end (:mod:`rdd.runtime.stream.stop`) still finalises the outputs of the frames
        done; an exception leaves no output behind. With ``commit_outputs=False`` the outputs
        stay staged (:attr:`outputs`) for the caller to commit with its own files.
        """
        try:
            self._run()
            if self.video is not None and self.video.count == 0:
                self.video.discard()
                if self._stop_request is None:
                    raise InputError(f"no frame was processed; {self.cfg.out} not written")
                self.video = None
            rep = self.report()
            if commit_outputs:
                commit(self.outputs)
        except BaseException:
            discard(self.outputs)
            raise
        return rep

    def _run(self) -> None:
        qs = max(1, int(self.cfg.queue_size))
        # real time: one waiting frame at most (latest wins); batches: room for a whole batch
        chan_in = Channel(1 if self.pacer.on else max(qs, self.batcher.size), self._stop, self._stopping)
        chan_out = Channel(qs, self._stop, self._stopping)
        reader = threading.Thread(target=self._reader, args=(chan_in,), name="rdd-reader", daemon=True)
        writer = threading.Thread(target=self._writer, args=(chan_out,), name="rdd-writer", daemon=True)
        stop = self.cfg.stop
        if stop is not None:
            stop._listener = lambda: self.request_stop(stop.reason or "sigint")
            if stop.reason is not None:  # requested before the run began
                self.request_stop(stop.reason)
        if self._stop_request is not None:
            self._stop.set()
        self.figures.t_start = time.perf_counter()
        reader.start()
        writer.start()
        try:
            while self._stop_request is None and (items := self.batcher.next(chan_in)):
                if not self._infer(items, chan_out):
                    break
        except KeyboardInterrupt as e:  # Ctrl-C without a StopSignal handler: keep what we have
            self.request_stop(getattr(e, "reason", "sigint"))
        except BaseException as e:
            self._errors.append(e)
            self._stop.set()
        finally:
            # Normal end: the reader has finished. Early stop: `_stop` makes a blocked reader give up.
            if self._stop_request is not None:
                self._stop.set()
            chan_out.close()
            self.source.interrupt()  # a live source waiting to reconnect gives up too
            for t in (reader, writer):
                _join(t, self)
            if self.video is not None:
                self.video.close()  # finalises the mp4 (also after an early stop)
            if stop is not None:
                stop._listener = None
        self.figures.t_end = time.perf_counter()
        if self._errors:
            raise self._errors[0]

    def _infer(self, items: list[_Item], chan_out: Channel) -> bool:
        """One inference call for ``items`` (one input shape); False when the run stops."""
        be = self.backend
        x = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
        t0 = time.perf_counter()
        run = getattr(be, "forward_or_labels", None)  # any object with infer() runs too
        outs, preds = run(x) if run is not None else (None, be.infer(x))
        dt = time.perf_counter() - t0
        self.batcher.record(dt, len(items))
        self._infer_hw = items[0].hw
        self._frame_hw = items[-1].image.shape[:2]
        for i, item in enumerate(items):
            item.times["inference"] = dt / len(items)  # per-frame share of the call
            item.x = None
            if preds is not None:
                item.pred = preds[i]
            else:
                item.out = outs[i]
            if not chan_out.put(item):
                return False
        return True

    def stop_reason(self) -> tuple[str, str | None]:
        """``(stop_reason, detail)`` of a finished run (:func:`rdd.runtime.stream.stop.stop_reason`)."""
        return stop_reason(
            self._stop_request,
            self._hit_max_frames,
            getattr(self.source, "end_reason", None),
            getattr(self.source, "end_message", None),
        )

    # ------------------------------------------------------------------ results
    def live_figures(self) -> dict[str, Any]:
        """The running figures a live view shows (frames, FPS, latency, dropped, mIoU so far)."""
        return self.figures.live(self.pacer.frames_read if self.pacer.on else None)

    def report(self) -> dict[str, Any]:
        """Figures after warm-up: FPS, latency percentiles, per-stage times, mIoU when labelled."""
        figs = self.figures
        warm, note = figs.warm()
        latencies, measured, _ = figs.measured("latency", warm)
        rep: dict[str, Any] = {
            **self.backend.describe(),
            "source": self.source.describe(),
            "inference_size": list(self._infer_hw) if self._infer_hw else None,
            "frame_size": list(self._frame_hw) if self._frame_hw else None,
            "resize": str(self._resize),
            "model_input_size": list(self.meta.input_size) if self.meta.input_size else None,
            "head": self.meta.head,
            "input": "uint8" if self.meta.input_dtype == "uint8" else "float",
            **figs.timing(warm),
            "out": str(self.cfg.out) if self.video is not None else None,
            "device": device_info(),
        }
        reason, detail = self.stop_reason()
        rep.update(completed=reason in COMPLETE_REASONS, stop_reason=reason)
        if detail:
            rep["stop_detail"] = detail
        if note:
            rep["note"] = note
        if figs.cm is not None:
            rep.update(figs.scores(self.meta.classes.names))
        rep.update(self.batcher.report(warm))
        rep.update(
            self.pacer.report(
                frames=len(figs),
                latencies_s=latencies,
                intervals_s=figs.measured("interval", warm)[0],
                measured=measured,
            )
        )
        if self.flicker is not None:
            rep.update(self.flicker.summary(with_gt=self.labels is not None))
        if self.masks is not None:
            rep.update(
                masks=str(self.masks.path), masks_written=self.masks.count, masks_dtype=self.masks.dtype.name
            )
        if self.overlays is not None:
            rep.update(overlays=str(self.overlays.path), overlays_written=self.overlays.count)
        return rep


def _join(thread: threading.Thread, pipe: Pipeline) -> None:
    """Wait for one of the run's threads to end. A ``KeyboardInterrupt`` meanwhile (a library
    caller's second Ctrl-C) is taken as a stop request and the wait goes on: a thread left running
    inside OpenCV or a runtime when the interpreter exits aborts it (SIGABRT)."""
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as e:
            pipe.request_stop(getattr(e, "reason", "sigint"))
            pipe._stop.set()
