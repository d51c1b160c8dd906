"""One call from command-line options to a finished run: what ``deploy/infer.py`` uses."""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2

from rdd.runtime.backends import Backend, create_backend
from rdd.contract import InputError
from rdd.runtime.outputs import check_outputs, model_files
from rdd.runtime.pipeline import Pipeline, PipelineConfig
from rdd.runtime.stop import StopSignal
from rdd.runtime.sources import (CAMVID_UNLABELLED, CameraSource, FrameSource, ImageFolderSource,
                                 LabelFolder, StreamSource, VideoSource, is_gstreamer_pipeline,
                                 stream_scheme)
from rdd.spec import CAMVID_CLASSES, ClassInfo, write_json_atomic

__all__ = ["open_source", "resolve_ignore_ids", "run_inference", "LABEL_MAPS", "StderrProgress"]

LABEL_MAPS = ("auto", "none", "camvid")


def open_source(*, video: str | os.PathLike | None = None, camera: int | str | None = None,
                images: str | os.PathLike | None = None, fps: float | None = None,
                reconnect: int = 3, stream_timeout: float = 5.0) -> FrameSource:
    """Exactly one of ``video`` / ``camera`` / ``images`` → a :class:`FrameSource`.

    ``video``: a file path, a stream URL (``rtsp://``, ``http(s)://``, ``file://`` …) or a
    GStreamer pipeline string (contains ``' ! '``); URLs and pipelines reach OpenCV unchanged
    (:class:`StreamSource`, with ``stream_timeout`` seconds to open and per read). ``camera``: an
    index or a device path. ``reconnect``: reopen attempts of a live source that drops.
    """
    given = [k for k, v in (("video", video), ("camera", camera), ("images", images)) if v is not None]
    if len(given) != 1:
        raise InputError(f"give exactly one input (--video, --camera or --images), got {given or 'none'}")
    if reconnect < 0:
        raise InputError(f"--reconnect must be >= 0, got {reconnect}")
    if video is not None:
        if (isinstance(video, str) and not os.path.isfile(video)
                and (is_gstreamer_pipeline(video) or stream_scheme(video))):
            return StreamSource(video, timeout_s=stream_timeout, reconnect=reconnect)
        return VideoSource(video)
    if camera is not None:
        return CameraSource(camera, reconnect=reconnect)
    return ImageFolderSource(images, fps=fps)


def _video_file(video: str | os.PathLike | None) -> str | os.PathLike | None:
    """The local file behind ``--video`` (a path or a ``file://`` URL); None for live streams."""
    if not isinstance(video, str):
        return video
    if is_gstreamer_pipeline(video):
        return None
    scheme = stream_scheme(video)
    if scheme is None:
        return video
    if scheme == "file":
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(video).path)
    return None


def _is_camvid(classes: ClassInfo) -> bool:
    return tuple(n.lower() for n in classes.names) == CAMVID_CLASSES.names


def resolve_ignore_ids(label_map: str, ignore_ids: Sequence[int], classes: ClassInfo) -> tuple[int, ...]:
    """Raw label ids to treat as ``ignore`` in the ground truth.

    ``camvid``: the SegNet CamVid annotation id 11 ("Unlabelled"). ``auto``: the same when the
    model's classes are CamVid's 11 classes, nothing otherwise. ``none``: nothing. Explicit
    ``ignore_ids`` are always added.
    """
    if label_map not in LABEL_MAPS:
        raise InputError(f"--label-map must be one of {LABEL_MAPS}, got {label_map!r}")
    ids = set(int(i) for i in ignore_ids)
    if label_map == "camvid" or (label_map == "auto" and _is_camvid(classes)):
        ids.add(CAMVID_UNLABELLED)
    bad = sorted(i for i in ids if 0 <= i < classes.num_classes)
    if bad and label_map != "camvid":
        raise InputError(f"--ignore-ids {bad} are class ids of this model ({classes.num_classes} classes)")
    if bad:
        raise InputError(f"--label-map camvid maps id 11 to ignore, but this model has "
                         f"{classes.num_classes} classes (11 is one of them)")
    return tuple(sorted(ids))


def _progress(total: int | None, enabled: bool) -> tuple[Any, Any]:
    if not enabled:
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        bar = StderrProgress(total)
        return bar, bar
    bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)

    def update(n: int) -> None:
        bar.update(n - bar.n)

    return update, bar


def run_inference(model: str | os.PathLike, *, backend: str | Backend = "auto", device: str = "cpu",
                  threads: int | None = None, video: str | None = None,
                  camera: int | str | None = None,
                  images: str | None = None, labels: str | None = None, label_map: str = "auto",
                  ignore_ids: Sequence[int] = (), max_frames: int | None = None, warmup: int = 5,
                  resize: str | tuple[int, int] | None = "model", out: str | None = None,
                  out_fps: float | None = None, alpha: float = 0.5, report: str | None = None,
                  queue_size: int = 2, progress: bool = True,
                  opencv_threads: int | None = 1, reconnect: int = 3,
                  stream_timeout: float = 5.0, batch: int = 1, realtime: bool = False,
                  save_masks: str | os.PathLike | None = None,
                  max_input_pixels: int | None = None,
                  stop: StopSignal | None = None) -> dict[str, Any]:
    """Open the model and the input, run the :class:`Pipeline`, write ``out``/``report``.

    ``opencv_threads``: size of OpenCV's own worker pool (``cv2.setNumThreads``; ``None`` leaves
    it alone). The pipeline already overlaps decode, inference and post-processing in its own
    threads; on a small CPU OpenCV's pool only competes with the inference threads (measured on
    2 cores, CamVid val: end-to-end / pure-inference FPS 0.79 → 0.81).

    ``resize``: ``"model"`` (default: the model's ``input_size``, the size it was exported and
    evaluated at), ``"native"`` (each frame's own size) or ``(H, W)``; see
    :func:`rdd.runtime.pipeline.inference_size`. The report's ``inference_size`` says what ran.

    ``batch``, ``realtime`` (paced at the source fps, else ``out_fps``, else 30) and
    ``save_masks``: see :class:`rdd.runtime.pipeline.PipelineConfig`.

    ``reconnect`` / ``stream_timeout``: see :func:`open_source`. A live source that drops and
    cannot be reopened ends the run early: the report (still written) has ``completed: false``,
    ``stop_reason: "stream_ended"`` and the one-line ``stream_error``.

    ``stop``: a :class:`~rdd.runtime.stop.StopSignal` (the CLI's SIGINT/SIGTERM handlers
    trigger it): the run ends after the frame in hand; the overlay, masks and report of the
    frames done are written and the report says ``completed: false`` and ``stop_reason``
    (``"sigint"`` / ``"sigterm"``). A video that stops decoding before its declared length ends
    with ``stop_reason: "decode_error"`` (and ``stop_detail``) the same way.

    Before anything is opened, the outputs are checked (:func:`rdd.runtime.outputs.check_outputs`):
    ``out`` / ``report`` that resolve to an input (video, model or a sidecar, a label or image
    folder or a file in it) or to each other, or that cannot be written, are refused.

    ``max_input_pixels``: largest ``H·W`` the model's metadata may ask for
    (:func:`rdd.contract.resolve_max_pixels`: default ``$RDD_MAX_INPUT_PIXELS`` or 4096×4096).

    Returns the report dict (also written as JSON to ``report`` when given). Problems with the
    inputs raise :class:`InputError` with a one-line message.
    """
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {max_frames}")
    if warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {warmup}")
    check_outputs({"--out": (out, "file"), "--report": (report, "file"),
                   "--save-masks": (save_masks, "dir")},
                  {"--video": _video_file(video), "--model": model_files(model),
                   "--labels": labels, "--images": images})
    if opencv_threads is not None:
        cv2.setNumThreads(int(opencv_threads))
    # out_fps reaches the pipeline as the overlay's rate and the --realtime rate of images
    source = open_source(video=video, camera=camera, images=images, reconnect=reconnect,
                         stream_timeout=stream_timeout)
    try:
        be = backend if isinstance(backend, Backend) else create_backend(
            model, backend=backend, device=device, threads=threads, max_pixels=max_input_pixels)
        label_folder = None
        if labels is not None:
            if isinstance(source, CameraSource):
                raise InputError("--labels cannot be used with --camera")
            ids = resolve_ignore_ids(label_map, ignore_ids, be.meta.classes)
            label_folder = LabelFolder(labels, by_index=source.by_index, ignore_ids=ids,
                                       ignore_index=be.meta.classes.ignore_index,
                                       num_classes=be.meta.num_classes)
            if isinstance(source, ImageFolderSource):
                label_folder.check_matches([p.stem for p in source.files])
        total = len(source) or None
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        update, bar = _progress(total, progress)
        cfg = PipelineConfig(warmup=warmup, max_frames=max_frames, resize=resize,
                             queue_size=queue_size, out=Path(out) if out else None, out_fps=out_fps,
                             alpha=alpha, progress=update, batch=batch, realtime=realtime,
                             pace_fps=out_fps, save_masks=Path(save_masks) if save_masks else None,
                             stop=stop)
        try:
            rep = Pipeline(be, source, labels=label_folder, config=cfg).run()
        finally:
            if bar is not None:
                bar.close()
    finally:
        source.close()
    if labels is not None:
        rep["labels"] = str(labels)
        rep["ignore_ids"] = list(label_folder.ignore_ids)
    if rep.get("stop_reason") == "stream_ended":  # completed/stop_reason: Pipeline.report
        rep["stream_error"] = source.end_message
    rep = _json_safe(rep)
    if report:
        write_json_atomic(report, rep)
    return rep


def _json_safe(obj: Any) -> Any:
    """NaN/inf (e.g. FPS of an empty run, mIoU without labelled pixels) → ``None`` (valid JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


class StderrProgress:
    """A dependency-free progress line on stderr (used when tqdm is not installed)."""

    def __init__(self, total: int | None) -> None:
        self.total, self.n = total, 0
        self._t0 = self._last = time.perf_counter()
        self._open = False

    def __call__(self, n: int) -> None:
        self.n = n
        now = time.perf_counter()
        if now - self._last < 0.25 and (self.total is None or n < self.total):
            return
        self._last = now
        rate = n / max(now - self._t0, 1e-9)
        tot = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{n}{tot} frames  {rate:5.1f} fps")
        sys.stderr.flush()
        self._open = True

    def close(self) -> None:
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False
