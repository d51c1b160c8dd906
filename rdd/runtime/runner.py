"""One call from the runner's options to a finished run: what ``rdd-infer`` does.

:func:`run_inference` takes the one checked :class:`~rdd.runtime.options.InferOptions` and

1. checks every output path before anything opens (:func:`~rdd.runtime.stream.outputs.check_outputs`);
2. opens the input, the model (:func:`~rdd.runtime.backends.open_build`) and, with ``compare``,
   the second build, whose problems (another class list, a size it cannot run, a file that does
   not load) surface here, before the first frame;
3. runs the :class:`~rdd.runtime.stream.stream.Pipeline` (outputs staged), then the comparison
   (one frame at a time, :func:`~rdd.runtime.measure.score.compare_builds`);
4. writes the report and commits every output together (:mod:`rdd.runtime.stream.writers`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdd.runtime.errors import InputError, OptionError, literal
from rdd.runtime.flags import options
from rdd.runtime.options import LABEL_MAPS, InferOptions
from rdd.runtime.stream.stop import StopSignal

__all__ = [
    "open_source",
    "resolve_ignore_ids",
    "run_inference",
    "LABEL_MAPS",
    "StderrProgress",
    "json_safe",
    "version",
]


def version() -> str:
    """This package's version (``rdd_edge`` in every report, ``--version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rdd-edge")
    except PackageNotFoundError:  # a checkout run without installing
        return "0+unknown"


def open_source(
    *,
    video: str | os.PathLike | None = None,
    camera: int | str | None = None,
    images: str | os.PathLike | None = None,
    fps: float | None = None,
    reconnect: int = 3,
    stream_timeout: float = 5.0,
    max_pixels: int | None = None,
) -> Any:
    """Exactly one of ``video`` / ``camera`` / ``images`` → a :class:`FrameSource`.

    ``video``: a file path, a stream URL (``rtsp://``, ``http(s)://``, ``file://`` …) or a
    GStreamer pipeline string (contains ``' ! '``); URLs and pipelines reach OpenCV unchanged.
    ``camera``: an index or a device path. ``reconnect``: reopen attempts of a live source that
    drops. ``max_pixels``: largest frame accepted, checked before decoding.
    """
    from rdd.runtime.stream.capture import (
        CameraSource,
        StreamSource,
        VideoSource,
        is_gstreamer_pipeline,
        stream_scheme,
    )
    from rdd.runtime.stream.sources import ImageFolderSource

    given = [k for k, v in (("video", video), ("camera", camera), ("images", images)) if v is not None]
    if len(given) != 1:
        raise OptionError(
            "video", ", {camera} or {images}: give exactly one input, got " + literal(given or "none")
        )
    if reconnect < 0:
        raise OptionError("reconnect", f"must be >= 0, got {reconnect}")
    if video is not None:
        if (
            isinstance(video, str)
            and not os.path.isfile(video)
            and (is_gstreamer_pipeline(video) or stream_scheme(video))
        ):
            return StreamSource(video, timeout_s=stream_timeout, reconnect=reconnect, max_pixels=max_pixels)
        return VideoSource(video, max_pixels=max_pixels)
    if camera is not None:
        return CameraSource(camera, reconnect=reconnect, max_pixels=max_pixels)
    return ImageFolderSource(images, fps=fps, max_pixels=max_pixels)


def _video_file(video: str | os.PathLike | None) -> str | os.PathLike | None:
    """The local file behind ``video`` (a path or a ``file://`` URL); None for live streams."""
    from rdd.runtime.stream.capture import is_gstreamer_pipeline, stream_scheme

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


def resolve_ignore_ids(label_map: str, ignore_ids: Sequence[int], classes: Any) -> tuple[int, ...]:
    """Raw label ids to treat as ``ignore`` in the ground truth.

    ``camvid``: the SegNet CamVid annotation id 11 ("Unlabelled"). ``auto``: the same when the
    model's classes are CamVid's 11 classes, nothing otherwise. ``none``: nothing. Explicit
    ``ignore_ids`` are always added.
    """
    from rdd.runtime.stream.sources import CAMVID_UNLABELLED
    from rdd.spec import CAMVID_CLASSES

    if label_map not in LABEL_MAPS:
        raise OptionError("label_map", f"must be one of {LABEL_MAPS}, got {label_map!r}")
    ids = set(int(i) for i in ignore_ids)
    camvid = tuple(n.lower() for n in classes.names) == CAMVID_CLASSES.names
    if label_map == "camvid" or (label_map == "auto" and camvid):
        ids.add(CAMVID_UNLABELLED)
    bad = sorted(i for i in ids if 0 <= i < classes.num_classes)
    if bad and label_map != "camvid":
        raise OptionError("ignore_ids", f"{bad} are class ids of this model ({classes.num_classes} classes)")
    if bad:
        raise OptionError(
            "label_map",
            f"camvid maps id 11 to ignore, but this model has "
            f"{classes.num_classes} classes (11 is one of them)",
        )
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


def _outputs(cfg: InferOptions) -> dict[str, tuple[str | None, str]]:
    return {
        "out": (cfg.out, "file"),
        "report": (cfg.report, "file"),
        "save_masks": (cfg.save_masks, "dir"),
        "save_overlays": (cfg.save_overlays, "dir"),
    }


def run_inference(
    cfg: InferOptions | None = None, *, stop: StopSignal | None = None, **values: Any
) -> dict[str, Any]:
    """Run the model of ``cfg`` on its input; returns the report (also written to ``report``).

    ``cfg`` is an :class:`~rdd.runtime.options.InferOptions` (or give its keys as keyword
    arguments: ``run_inference(model="m.onnx", images="val/")``). ``stop`` is a
    :class:`~rdd.runtime.stream.stop.StopSignal` the command line's SIGINT/SIGTERM handlers
    trigger: the run ends after the frame in hand and its outputs and report are written,
    ``completed: false``. Problems with the inputs raise :class:`InputError` (one line; an
    :class:`OptionError` names the option).
    """
    import cv2

    from rdd.runtime.backends import open_build
    from rdd.runtime.options import parse_compare
    from rdd.runtime.stream.capture import CameraSource
    from rdd.runtime.stream.labels import LabelFolder
    from rdd.runtime.stream.outputs import check_outputs, model_files
    from rdd.runtime.stream.sources import ImageFolderSource
    from rdd.runtime.stream.stream import Pipeline, PipelineConfig
    from rdd.runtime.stream.writers import StagedFile, commit, discard
    from rdd.runtime.zoo import resolve_model

    cfg = cfg if isinstance(cfg, InferOptions) else options(InferOptions, values)
    model = resolve_model(cfg.model)
    second = compare = None
    if cfg.compare is not None:
        compare = parse_compare(cfg.compare)
        second = resolve_model(compare[1]) if compare[1] else model
        if compare[1] and not os.path.isfile(second):
            raise OptionError("compare", f": model file not found: {second}")
        if cfg.images is None and _video_file(cfg.video) in (None, "") or cfg.camera is not None:
            raise OptionError("compare", "needs {images} or a video file (not a camera or stream)")
    check_outputs(
        {k: v for k, v in _outputs(cfg).items()},
        {
            "video": _video_file(cfg.video),
            "model": model_files(model),
            "labels": cfg.labels,
            "images": cfg.images,
            "compare": model_files(second) if second else None,
        },
    )
    cv2.setNumThreads(1)  # the pipeline overlaps its own threads; OpenCV's pool only competes
    source = open_source(
        video=cfg.video,
        camera=cfg.camera,
        images=cfg.images,
        reconnect=cfg.reconnect,
        stream_timeout=cfg.stream_timeout,
        max_pixels=cfg.max_input_pixels,
    )
    live = None
    try:
        t0 = time.perf_counter()
        be = open_build(
            model,
            backend=cfg.backend,
            device=cfg.device,
            threads=cfg.threads,
            precision=cfg.precision,
            max_pixels=cfg.max_input_pixels,
        )
        load_ms = 1e3 * (time.perf_counter() - t0)
        be2 = _open_second(cfg, compare[0], second, be) if second is not None else None
        label_folder = None
        if cfg.labels is not None:
            if isinstance(source, CameraSource):
                raise OptionError("labels", "cannot be used with {camera}")
            ids = resolve_ignore_ids(cfg.label_map, cfg.ignore_ids, be.meta.classes)
            label_folder = LabelFolder(
                cfg.labels,
                by_index=source.by_index,
                ignore_ids=ids,
                ignore_index=be.meta.classes.ignore_index,
                num_classes=be.meta.num_classes,
                max_pixels=cfg.max_input_pixels,
            )
            if isinstance(source, ImageFolderSource):
                label_folder.check_matches([p.stem for p in source.files])
        if cfg.serve:
            from rdd.runtime.stream.live import LiveView

            host, _, port = cfg.serve.rpartition(":")
            live = LiveView(host, int(port), title=f"rdd-edge live: {Path(model).name}")
            addr = live.start()
            print(f"live view: http://{addr[0]}:{addr[1]}/", file=sys.stderr, flush=True)
        total = len(source) or None
        if cfg.max_frames is not None:
            total = min(total, cfg.max_frames) if total else cfg.max_frames
        update, bar = _progress(total, not cfg.no_progress)
        pcfg = PipelineConfig(
            warmup=cfg.warmup,
            max_frames=cfg.max_frames,
            resize=cfg.resize,
            queue_size=cfg.queue_size,
            out=Path(cfg.out) if cfg.out else None,
            out_fps=cfg.fps,
            alpha=cfg.alpha,
            progress=update,
            batch=cfg.batch,
            realtime=cfg.realtime,
            pace_fps=cfg.fps,
            save_masks=Path(cfg.save_masks) if cfg.save_masks else None,
            palette_masks=cfg.mask_format == "palette",
            save_overlays=Path(cfg.save_overlays) if cfg.save_overlays else None,
            live=live,
            stop=stop,
        )
        pipe = Pipeline(be, source, labels=label_folder, config=pcfg)
        try:
            rep = pipe.run(commit_outputs=False)
        finally:
            if bar is not None:
                bar.close()
        staged = pipe.outputs
        try:
            rep.update(_provenance(model, be, load_ms, pipe))
            if cfg.labels is not None:
                rep["labels"] = str(cfg.labels)
                rep["ignore_ids"] = list(label_folder.ignore_ids)
            if rep.get("stop_reason") == "stream_ended":
                rep["stream_error"] = source.end_message
            if be2 is not None and rep.get("completed", True):
                rep["compare"] = _compare(cfg, be, be2, rep, label_folder)
            if live is not None:
                live.update_stats(
                    {
                        **pipe.live_figures(),
                        "completed": rep.get("completed"),
                        "stop_reason": rep.get("stop_reason"),
                    }
                )
            rep = json_safe(rep)
            if cfg.report:
                report = StagedFile(cfg.report)
                import json

                report.write_text(json.dumps(rep, indent=2) + "\n")
                staged = [*staged, report]
            commit(staged)
        except BaseException:
            discard(staged)
            raise
    finally:
        source.close()
        if live is not None:
            live.close()
    return rep


def _open_second(cfg: InferOptions, backend: str, path: str, first: Any) -> Any:
    """The ``compare`` build, opened and checked against the first before any frame runs."""
    from rdd.runtime.backends import open_build
    from rdd.runtime.stream.transforms import Resize

    device = {"openvino": "cpu", "trt": "cuda"}.get(backend, cfg.device)
    try:
        be2 = open_build(
            path, backend=backend, device=device, threads=cfg.threads, max_pixels=cfg.max_input_pixels
        )
    except InputError as e:
        raise OptionError("compare", f"{path}: {e}") from None
    k1, k2 = first.meta.num_classes, be2.meta.num_classes
    if k1 != k2 or first.meta.classes.names != be2.meta.classes.names:
        raise OptionError(
            "compare",
            f"the second build {path} predicts {k2} classes "
            f"({', '.join(be2.meta.classes.names[:4])}, ...), the first "
            f"{k1}: they cannot be compared",
        )
    r = Resize.parse(cfg.resize)
    fixed1, fixed2 = first.meta.fixed_size, be2.meta.fixed_size
    if fixed2 is not None and (fixed1 or r.hw or first.meta.input_size) != fixed2:
        want = fixed1 or r.hw or first.meta.input_size
        raise OptionError(
            "compare",
            f"the second build {path} only accepts "
            f"{fixed2[0]}x{fixed2[1]} inputs, the first runs at "
            f"{want[0] if want else '?'}x{want[1] if want else '?'}",
        )
    return be2


def _compare(cfg: InferOptions, first: Any, second: Any, rep: dict, labels: Any) -> dict:
    """Both builds on the same frames, one at a time (memory bounded by one frame)."""
    from rdd.runtime.measure.score import compare_builds

    size = tuple(rep["inference_size"]) if rep.get("inference_size") else cfg.resize
    src = open_source(
        video=_video_file(cfg.video) if cfg.video else None,
        images=cfg.images,
        max_pixels=cfg.max_input_pixels,
    )

    def frames():
        for i, (name, img) in enumerate(src):
            if cfg.max_frames is not None and i >= cfg.max_frames:
                return
            mask = None
            if labels is not None:
                path = labels.path_for(i, name)
                mask = labels.load(path, img.shape[:2]) if path is not None else None
            yield name, img, mask

    try:
        res = compare_builds(first, second, frames(), size, ignore_index=first.meta.classes.ignore_index)
    finally:
        src.close()
    delta = res.pop("miou_delta")
    return {
        "backend": second.name,
        "model_path": str(second.path),
        **res,
        "delta_miou": None if delta is None else 100 * delta,
    }  # points, as documented


def _provenance(model: str, be: Any, load_ms: float, pipe: Any) -> dict[str, Any]:
    """Tool version, the model file's SHA-256 and the start-up times of a run."""
    from rdd.contract import file_sha256

    first = pipe.batcher.first_call_s
    return {
        "rdd_edge": version(),
        "model_sha256": file_sha256(be.path),
        "load_ms": load_ms,
        "compile_ms": getattr(be, "compile_ms", None),
        "first_inference_ms": 1e3 * first if first is not None else None,
    }


def json_safe(obj: Any) -> Any:
    """NaN/inf (e.g. FPS of an empty run, mIoU without labelled pixels) → ``None`` (valid JSON);
    numpy scalars → Python numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype"):
        return json_safe(obj.item())
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
