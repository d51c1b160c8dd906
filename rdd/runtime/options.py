"""The options of ``rdd-infer`` and ``rdd-bench``, declared once.

Each option is a field of :class:`InferOptions` or :class:`BenchOptions`, declared with
:func:`rdd.runtime.flags.option` (the project's schema walker, :func:`rdd.config.walker.param`:
type, range, choices, one-line doc; plus how the command line reads it). From the declarations
:mod:`rdd.runtime.flags` makes:

* the command lines (:func:`~rdd.runtime.flags.build_parser`: flag = ``--`` + key with ``-``
  for ``_``; each value checked by the walker as it is parsed, a bad one is a one-line usage
  error naming the flag);
* the one checked object :func:`rdd.runtime.runner.run_inference` and
  :func:`rdd.runtime.bench_cli.bench` take (:func:`~rdd.runtime.flags.options`);
* ``docs/DEPLOY.md``'s option tables (:func:`doc_section`, printed by
  ``python -m rdd.runtime.options``, tested).

Library errors name keys (``batch must be >= 1``); the command line spells them as flags
(:class:`rdd.runtime.errors.OptionError`). Standard library only (the walker is too), so the
torch-free, PyYAML-free base install loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rdd.config.walker import Names, invalid
from rdd.runtime.flags import doc_markdown, option

__all__ = [
    "InferOptions",
    "BenchOptions",
    "parse_ids",
    "parse_compare",
    "LABEL_MAPS",
    "MASK_FORMATS",
]

LABEL_MAPS = ("auto", "none", "camvid")
PRECISIONS = ("fp32", "fp16", "bf16")


def _table(what: str) -> Callable[[], list[str]]:
    """Choices read from the format table when a value is checked (a backend registered at run
    time is a valid ``--backend``)."""

    def names() -> list[str]:
        from rdd.runtime import backends as b

        return {
            "backend": b.backend_names,
            "device": b.device_names,
            "row kind": lambda: list(b.row_kinds()),
        }[what]()

    return names


BACKEND_CHOICES = Names("backend", _table("backend"))
DEVICE_CHOICES = Names("device", _table("device"))
MASK_FORMATS = ("ids", "palette")


# --------------------------------------------------------------------------- value parsers
def parse_ids(text: str) -> list[int]:
    """``"11,12"`` → ``[11, 12]`` (label ids in [0, 65535])."""
    try:
        ids = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated ids (e.g. 11), got {text!r}") from None
    if any(not 0 <= i <= 65535 for i in ids):
        raise ValueError(f"label ids must be in [0, 65535], got {text!r}")
    return ids


def parse_compare(text: str) -> tuple[str, str | None]:
    """``"BACKEND"`` or ``"BACKEND:MODEL"`` → ``(backend, model or None)``."""
    backend, _, model = str(text).partition(":")
    if backend not in BACKEND_CHOICES.names():
        raise ValueError(
            f"expected BACKEND[:MODEL] with BACKEND one of {', '.join(BACKEND_CHOICES.names())}; got {text!r}"
        )
    return backend, model or None


def _check_compare(v: str) -> str | None:
    try:
        parse_compare(v)
    except ValueError as e:
        return str(e)
    return None


def _resize(text: str) -> Any:
    from rdd.runtime.stream.transforms import parse_resize

    try:
        v = parse_resize(text)
    except ValueError:
        raise ValueError(f"expected 'model', 'native' or HxW (e.g. 360x480), got {text!r}") from None
    return v if isinstance(v, str) else f"{v[0]}x{v[1]}"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return v


def _check_resize(v: Any) -> str | None:
    from rdd.runtime.stream.transforms import parse_resize

    try:
        parse_resize(v)
    except ValueError:
        return "must be 'model', 'native' or HxW (e.g. 360x480)"
    return None


def _serve(text: str) -> str:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT or PORT (e.g. 127.0.0.1:8080), got {text!r}")
    return f"{host or '127.0.0.1'}:{int(port)}"


# --------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class InferOptions:
    """``rdd-infer``: real-time segmentation of a video, a camera or images."""

    model: str = option(
        metavar="MODEL",
        doc="model file (.onnx with rdd_meta, OpenVINO .xml, "
        "TensorRT .engine/.plan with its .json sidecar, .pt training artifact) "
        "or a zoo name (python -m rdd.runtime.zoo lists them, e.g. camvid/rdd_16x-s0)",
    )
    backend: str = option(
        "auto",
        choices=BACKEND_CHOICES,
        doc="inference backend; auto picks the first installed one that opens the model's format",
    )
    device: str = option(
        "cpu",
        choices=DEVICE_CHOICES,
        doc="ort: cpu / cuda / trt (TensorRT "
        "execution provider); openvino: cpu / gpu / npu / auto; trt and torch: "
        "cuda (torch also cpu)",
    )
    threads: int | None = option(
        None, ge=1, le=1024, metavar="N", doc="inference threads (intra-op); default: the runtime's"
    )
    precision: str | None = option(
        None,
        choices=PRECISIONS,
        doc="floating-point precision "
        "where the runtime offers a choice (openvino: fp32 unless told, "
        "bf16 / fp16 on CPUs and GPUs that have them); the report "
        "names the precision that ran",
    )
    video: str | None = option(
        None,
        metavar="FILE|URL|PIPELINE",
        doc="a video file; a stream URL (rtsp://, rtmp://, http(s)://, "
        "udp://, file://, ...) read by OpenCV's FFmpeg backend (a "
        "finite video behind http(s) ends at its last frame); or a "
        "GStreamer pipeline ending in appsink (text containing ' ! ')",
    )
    camera: str | None = option(
        None, metavar="INDEX|DEVICE", doc="live camera: an index (0) or a device path (/dev/video0)"
    )
    images: str | None = option(
        None,
        metavar="DIR|FILE|GLOB",
        doc="images in file-name order: a folder, one image, or a glob ('frames/*.png', quoted)",
    )
    labels: str | None = option(
        None,
        metavar="DIR",
        doc="ground-truth masks for streaming mIoU "
        "(single-channel train ids, 255 = ignore): by file stem for "
        "images, by frame index (frame_000000.png, ...) for videos. "
        "Palette PNGs are read as indices, 16-bit PNGs as ids; an id "
        "outside the model's classes is an error; a frame without a mask "
        "is skipped and counted (labels_missing)",
    )
    label_map: str = option(
        "auto",
        choices=LABEL_MAPS,
        doc="raw annotation ids to ignore: "
        "'camvid' maps SegNet CamVid's 11 (Unlabelled) to 255, so "
        "../shared/data/camvid/valannot works as is; 'auto' does that when the "
        "model's classes are CamVid's; 'none' maps nothing",
    )
    ignore_ids: list[int] = option(
        [], metavar="IDS", parse=parse_ids, doc="extra comma-separated label ids to treat as ignore (e.g. 11)"
    )
    stream_timeout: float = option(
        5.0,
        gt=0,
        le=3600,
        metavar="SECONDS",
        doc="stream URLs: give up opening, or one read, after this long",
    )
    reconnect: int = option(
        3,
        ge=0,
        metavar="N",
        doc="a live camera/stream that stops "
        "delivering frames is reopened up to N times in a row (waits 0.5 s, "
        "1 s, 2 s, ... at most 5 s); then the run ends with stop_reason "
        "'stream_ended', exit 2. 0 = no reconnect",
    )
    max_frames: int | None = option(
        None, ge=1, metavar="N", doc="stop after this many frames read from the input"
    )
    warmup: int = option(
        5,
        ge=0,
        metavar="N",
        doc="first frames excluded from statistics (none "
        "if fewer than 2 would be left: the report's 'warmup' says how many "
        "were, 'note' why)",
    )
    resize: str = option(
        "model",
        parse=_resize,
        check=_check_resize,
        metavar="model|native|HxW",
        doc="inference size: 'model' = the model's input_size (the size it was "
        "exported and evaluated at), 'native' = each frame's own size, or "
        "HxW; fixed-size models always use their own size; streaming mIoU "
        "is scored at the inference size",
    )
    max_input_pixels: int | None = option(
        None,
        ge=1,
        parse=_positive_int,
        metavar="N",
        doc="largest H*W of a frame, "
        "a label or the model's input size (a guard against "
        "huge or tampered files); default: "
        "$RDD_MAX_INPUT_PIXELS or 16777216 (4096x4096)",
    )
    out: str | None = option(None, metavar="MP4", doc="write the colour overlay with FPS to this .mp4 (mp4v)")
    fps: float | None = option(
        None,
        gt=0,
        le=1000,
        metavar="FPS",
        doc="frame rate of out "
        "(default: the video's, else 30); also the real-time rate of "
        "images and, when given, of a live camera/stream",
    )
    alpha: float = option(0.5, ge=0, le=1, metavar="A", doc="overlay opacity of the colour mask")
    save_masks: str | None = option(
        None,
        metavar="DIR",
        doc="one label PNG per processed frame "
        "(train ids, at the frame's size): <image stem>.png for "
        "images, frame_%06d.png otherwise; DIR must be new or empty",
    )
    mask_format: str = option(
        "ids",
        choices=MASK_FORMATS,
        doc="save_masks PNGs: 'ids' (grey "
        "train ids) or 'palette' (indexed PNGs in the classes' colours, "
        "still read as ids)",
    )
    save_overlays: str | None = option(
        None, metavar="DIR", doc="one colour overlay JPEG per processed frame; DIR must be new or empty"
    )
    serve: str | None = option(
        None,
        parse=_serve,
        metavar="HOST:PORT",
        doc="a live view for a "
        "headless device: an MJPEG stream of the overlay and a page with "
        "the live figures at http://HOST:PORT/ (127.0.0.1 unless a host "
        "is given; 0.0.0.0 exposes it to the network)",
    )
    batch: int = option(
        1,
        metavar="N",
        doc="throughput mode for images and video files: N "
        "frames per inference call, N >= 1 (needs a dynamic batch axis)",
    )
    realtime: bool = option(
        False,
        doc="run a file as a camera would deliver it: paced at its "
        "fps; a frame arriving while inference is busy replaces the waiting "
        "one (latest-frame-wins); live sources always run this way",
    )
    report: str | None = option(
        None,
        metavar="JSON",
        doc="write the figures as JSON here; 'completed' and 'stop_reason' say how the run ended",
    )
    compare: str | None = option(
        None,
        check=_check_compare,
        metavar="BACKEND[:MODEL]",
        doc="run a second build (BACKEND on MODEL, default the same "
        "model) on the same frames after the run and report argmax "
        "agreement, ΔmIoU and max |Δlogit| against the first",
    )
    queue_size: int = option(2, ge=1, le=256, metavar="N", doc="capacity of the inter-stage queues")
    no_progress: bool = option(False, doc="no progress bar on stderr")
    debug: bool = option(False, doc="show full tracebacks on errors")

    def _validate(self) -> None:
        given = [k for k in ("video", "camera", "images") if getattr(self, k) is not None]
        if len(given) != 1:
            raise invalid("", f": give exactly one input (video, camera or images), got {given or 'none'}")
        _check_size_bound(self.resize, self.max_input_pixels)


@dataclass(frozen=True)
class BenchOptions:
    """``rdd-bench``: every build × backend this device runs, measured."""

    model: list[str] = option(
        nargs="+",
        metavar="PATH",
        ge=1,
        doc="exported students: .onnx "
        "(FP32 or INT8 QDQ), OpenVINO .xml, TensorRT .engine (with sidecar), "
        ".pt artifact, or export folders holding them; each model is "
        "compared with its own FP32 build",
    )
    images: str | None = option(
        None, metavar="DIR|FILE|GLOB", doc="frames for accuracy and the latency input"
    )
    labels: str | None = option(None, metavar="DIR", doc="masks for images (mIoU columns)")
    label_map: str = option("auto", choices=LABEL_MAPS, doc="as rdd-infer's")
    ignore_ids: list[int] = option([], metavar="IDS", parse=parse_ids, doc="as rdd-infer's")
    frames: int | None = option(None, ge=1, metavar="N", doc="accuracy frames (evenly spaced; default all)")
    clip: str | None = option(
        None, metavar="PATH", doc="video or image folder for end-to-end FPS (default: images)"
    )
    e2e_frames: int = option(
        60,
        ge=0,
        le=100_000,
        metavar="N",
        doc="frames of end-to-end runs "
        "per row, split over the interleaved rounds (median FPS of the "
        "rounds; 0: no e2e column)",
    )
    sizes: list[str] = option(
        ["model"], nargs="+", parse=_resize, metavar="HxW", doc="inference sizes (model, native or HxW)"
    )
    threads: list[int] | None = option(
        None, nargs="+", metavar="N", ge=1, doc="thread counts (default: this machine's cores)"
    )
    batch: list[int] = option([1], nargs="+", metavar="N", ge=1, doc="batch sizes")
    rows: list[str] | None = option(
        None,
        nargs="+",
        choices=Names("row kind", _table("row kind")),
        doc="only these row kinds (ort_cpu, openvino_cpu, ...)",
    )
    duration: float = option(3.0, ge=0, le=3600, metavar="S", doc="timed seconds per row (trtexec)")
    warmup_ms: float = option(200.0, ge=0, le=600_000, metavar="MS", doc="warm-up per row")
    min_runs: int = option(10, ge=1, le=1_000_000, metavar="N", doc="timed runs per row at least")
    rounds: int = option(5, ge=1, le=1000, metavar="N", doc="interleaved rounds")
    clock: str = option(
        "wall",
        choices=("wall", "cpu"),
        doc="wall: time.perf_counter (the "
        "latency a user sees); cpu: this process's CPU time (insensitive to other "
        "load; meaningful with threads 1; e2e FPS stays wall-clock)",
    )
    max_input_pixels: int | None = option(None, ge=1, metavar="N", doc="as rdd-infer's")
    recommend: float | None = option(
        None,
        ge=0,
        le=100,
        metavar="MAX_MIOU_LOSS",
        doc="name the fastest row within this many mIoU points of "
        "the most accurate model's FP32 row (Pareto front)",
    )
    out: str | None = option(
        None, metavar="DIR", doc="write bench.json, bench.csv, bench.md and bench.png here"
    )
    format: str = option(
        "md", choices=("md", "json", "csv"), doc="what is printed on stdout: the markdown table, JSON or CSV"
    )
    title: str | None = option(None, metavar="TEXT", doc="plot title")

    def _validate(self) -> None:
        if self.labels and not self.images:
            raise invalid("labels", "needs {images}")
        for key in ("threads", "batch"):  # the walker's ge on a list means "non-empty"
            bad = [v for v in getattr(self, key) or () if v < 1]
            if bad:
                raise invalid(key, f"must be >= 1, got {bad[0]}")
        for size in self.sizes:
            _check_size_bound(size, self.max_input_pixels, "sizes")


def _check_size_bound(resize: str, max_input_pixels: int | None, key: str = "resize") -> None:
    """An explicit ``HxW`` may not exceed the input-size limit of the contract
    (:func:`rdd.contract.resolve_max_pixels`: ``max_input_pixels``, ``$RDD_MAX_INPUT_PIXELS``)."""
    from rdd.contract import InputError, resolve_max_pixels
    from rdd.runtime.stream.transforms import parse_resize

    hw = parse_resize(resize)
    if isinstance(hw, str):
        return
    try:
        limit = resolve_max_pixels(max_input_pixels)
    except InputError as e:
        raise invalid("max_input_pixels", f": {e}") from None
    if hw[0] * hw[1] > limit:
        raise invalid(
            key,
            f"{hw[0]}x{hw[1]} is {hw[0] * hw[1]} pixels, above the limit of "
            f"{limit} (raise it with {{max_input_pixels}} or $RDD_MAX_INPUT_PIXELS)",
        )


DOC_BEGIN = "<!-- options: generated by `python -m rdd.runtime.options`; do not edit by hand -->"
DOC_END = "<!-- options: end -->"


def doc_section() -> str:
    """The option tables of ``docs/DEPLOY.md`` (between :data:`DOC_BEGIN` and :data:`DOC_END`)."""
    return (
        f"{DOC_BEGIN}\n\n{doc_markdown(InferOptions, 'rdd-infer')}\n"
        f"{doc_markdown(BenchOptions, 'rdd-bench')}\n{DOC_END}\n"
    )


if __name__ == "__main__":
    print(doc_section(), end="")
