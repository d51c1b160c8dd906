"""The real-time runner's command line: ``rdd-infer``, ``python -m rdd.runtime`` and ``deploy/infer.py``.

Runs an exported student (ONNX via onnxruntime, a TensorRT engine, or a PyTorch artifact) with
decoding, inference and writing overlapped in threads, and reports end-to-end FPS, latency
percentiles, per-stage times and, given ground truth, streaming mIoU.

Needs only numpy, opencv and onnxruntime for ``--backend ort`` (no PyTorch).

Examples::

    rdd-infer --model student.onnx --video drive.mp4 --out overlay.mp4 --report r.json
    rdd-infer --model student.onnx --images ../shared/data/camvid/val \\
        --labels ../shared/data/camvid/valannot --label-map camvid --report r.json
    rdd-infer --model student.onnx --camera 0 --max-frames 300
    rdd-infer --model student.onnx --video rtsp://192.168.1.20:8554/cam --reconnect 5 --report r.json
    rdd-infer --model student.onnx --video "v4l2src ! videoconvert ! appsink"
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys

from rdd.runtime.stop import SIGNAL_EXIT_CODES, Interrupted

# Keep OpenCV/FFmpeg from printing their own warnings around our one-line errors.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

_DESCRIPTION = ("Real-time semantic segmentation on a video, a camera or an image folder."
                " See --help of each option.")

def _resize(text: str) -> str | tuple[int, int]:
    """argparse type over :func:`rdd.runtime.transforms.parse_resize` (the one resize parser)."""
    from rdd.contract import InputError
    from rdd.runtime.transforms import parse_resize
    try:
        return parse_resize(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected 'model', 'native' or HxW (e.g. 360x480), "
                                         f"got {text!r}") from None


def _int_at_least(lo: int, hi: int | None = None):
    """argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lo or (hi is not None and v > hi):
            want = (f"an integer in [{lo}, {hi}]" if hi is not None else
                    "a positive integer" if lo == 1 else f"an integer >= {lo}")
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return v
    return parse


def _finite(lo: float, hi: float, *, lo_open: bool = False):
    """argparse type: a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); no NaN/inf."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"expected a finite number in {interval}, got {text!r}")
        return v
    return parse


def _check_resize_bound(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An explicit ``--resize HxW`` may not exceed the input-size limit of the contract
    (:func:`rdd.contract.resolve_max_pixels`: ``--max-input-pixels``, ``$RDD_MAX_INPUT_PIXELS``)."""
    if not isinstance(args.resize, tuple):
        return
    from rdd.contract import InputError, resolve_max_pixels

    try:
        limit = resolve_max_pixels(args.max_input_pixels)
    except InputError as e:
        parser.error(str(e))
    h, w = args.resize
    if h * w > limit:
        parser.error(f"argument --resize: {h}x{w} is {h * w} pixels, above the limit of {limit} "
                     "(raise it with --max-input-pixels or $RDD_MAX_INPUT_PIXELS)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``error: argument --fps: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {printable(message)} (see {self.prog} --help)\n")


def printable(text: str) -> str:
    """``text`` with control characters escaped (ESC → ``\\x1b``, newline → ``\\n``, bidi overrides …).

    Model names (``rdd_meta``), file names and error messages reach the terminal only through
    this, so a crafted name cannot move the cursor, recolour or rewrite the screen.
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _ids(text: str) -> list[int]:
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids (e.g. 11), got {text!r}") from None
    if any(not 0 <= i <= 65535 for i in ids):
        raise argparse.ArgumentTypeError(f"label ids must be in [0, 65535], got {text!r}")
    return ids


def _compare_spec(text: str) -> tuple[str, str | None]:
    """'BACKEND' or 'BACKEND:MODEL' → (backend, model or None)."""
    backend, _, model = text.partition(":")
    if backend not in ("auto", "ort", "trt", "torch", "openvino"):
        raise argparse.ArgumentTypeError(f"expected BACKEND[:MODEL] with BACKEND one of auto, ort, "
                                         f"trt, torch, openvino; got {text!r}")
    return backend, model or None


def _compare_frames(args: argparse.Namespace) -> str:
    """The folder or video file ``--compare`` reads its frames from; bad input raises InputError."""
    from rdd.runtime import InputError

    frames_from = args.images or (args.video if args.video and os.path.isfile(args.video) else None)
    if frames_from is None:
        raise InputError("--compare needs --images or a video file (not a camera or stream)")
    return frames_from


def check_compare(args: argparse.Namespace) -> None:
    """``--compare`` checked before the first frame: frames it can read, its MODEL present, and
    no output (``--out``, ``--report``, ``--save-masks``) that would overwrite that model."""
    from rdd.runtime import InputError
    from rdd.runtime.outputs import check_outputs, model_files

    _compare_frames(args)
    model = args.compare[1]
    if model is None:
        return
    if not os.path.isfile(model):
        raise InputError(f"--compare: model file not found: {model}")
    check_outputs({"--out": (args.out, "file"), "--report": (args.report, "file"),
                   "--save-masks": (args.save_masks, "dir")}, {"--compare": model_files(model)})


def run_compare(args: argparse.Namespace, rep: dict) -> dict:
    """``--compare``: both builds on the same frames → :func:`rdd.runtime.accuracy.compare_builds`."""
    from rdd.runtime import create_backend
    from rdd.runtime.accuracy import compare_builds, load_labelled_frames
    from rdd.runtime.runner import resolve_ignore_ids

    frames_from = _compare_frames(args)
    backend, model = args.compare
    dev = {"openvino": "cpu", "trt": "cuda"}.get(backend, args.device)
    mp = args.max_input_pixels
    first = create_backend(args.model, backend=args.backend, device=args.device, threads=args.threads,
                           max_pixels=mp)
    second = create_backend(model or args.model, backend=backend, device=dev, threads=args.threads,
                            max_pixels=mp)
    ids = (resolve_ignore_ids(args.label_map, args.ignore_ids, first.meta.classes)
           if args.labels else ())
    frames = load_labelled_frames(frames_from, args.labels, ignore_ids=ids,
                                  ignore_index=first.meta.classes.ignore_index,
                                  limit=args.max_frames)
    size = tuple(rep["inference_size"]) if rep.get("inference_size") else args.resize
    res = compare_builds(first, second, frames, size)
    return {"backend": second.name, "model_path": str(second.path), **res}


def build_parser(prog: str = "rdd-infer") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog, description=_DESCRIPTION + " See --help of each option.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help="model file: .onnx (rdd_meta metadata), .engine/.plan (TensorRT, with a "
                        ".json sidecar) or .pt (training artifact with its .json)")
    p.add_argument("--backend", default="auto", choices=["auto", "ort", "trt", "torch", "openvino"],
                   help="inference backend; auto picks by model suffix (openvino runs the .onnx "
                        "or an OpenVINO .xml; needs the [openvino] extra)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "trt"],
                   help="ort: CPU / CUDA / TensorRT execution provider; torch: cpu or cuda")
    p.add_argument("--threads", type=_int_at_least(1, 1024), default=None,
                   help="inference threads (onnxruntime intra-op / torch); default: library default")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", metavar="FILE|URL|PIPELINE",
                     help="a video file; a stream URL (rtsp://, rtmp://, http(s)://, udp://, "
                          "file://, ...) read by OpenCV's FFmpeg backend; or a GStreamer pipeline "
                          "ending in appsink (any text containing ' ! ', needs an OpenCV built "
                          "with GStreamer). URLs and pipelines are passed to OpenCV unchanged")
    src.add_argument("--camera", metavar="INDEX|DEVICE",
                     help="live camera: an index (0) or a device path (/dev/video0)")
    src.add_argument("--images", metavar="DIR", help="folder of images, processed in file-name order")
    p.add_argument("--labels", metavar="DIR",
                   help="ground-truth masks (single-channel train ids, 255 = ignore) for streaming "
                        "mIoU: matched by file stem for --images; for --video (files and "
                        "streams) by frame index (frame_000000.png, frame_000001.png, ...). "
                        "Palette PNGs are read as indices, 16-bit PNGs as ids; an id outside the "
                        "model's classes is an error. A frame without a mask is skipped and "
                        "counted (labels_missing)")
    p.add_argument("--label-map", default="auto", choices=["auto", "none", "camvid"],
                   help="raw annotation ids to ignore: 'camvid' maps SegNet CamVid's 11 "
                        "(Unlabelled) to 255, so ../shared/data/camvid/valannot works as is; "
                        "'auto' does that when the model's classes are CamVid's; 'none' maps nothing")
    p.add_argument("--ignore-ids", type=_ids, default=[], metavar="IDS",
                   help="extra comma-separated label ids to treat as ignore (e.g. 11)")
    p.add_argument("--stream-timeout", type=_finite(0.0, 3600.0, lo_open=True), default=5.0, metavar="SECONDS",
                   help="stream URLs: give up opening, or one read, after this long (OpenCV "
                        "CAP_PROP_OPEN_TIMEOUT_MSEC / READ_TIMEOUT_MSEC); a stream that cannot "
                        "open is a one-line error, exit code 2")
    p.add_argument("--reconnect", type=_int_at_least(0), default=3, metavar="N",
                   help="live camera/stream that stops delivering frames: reopen it up to N times "
                        "in a row, waiting 0.5 s, 1 s, 2 s, ... (at most 5 s) before each try; a "
                        "frame read resets the count. When they fail the run ends with a one-line "
                        "error, exit code 2, and the report of the frames processed "
                        "(stop_reason 'stream_ended'). 0 = no reconnect")
    p.add_argument("--max-frames", type=_int_at_least(1), default=None,
                   help="stop after this many frames read from the input (with --realtime or a "
                        "live source some of them may be dropped, not processed)")
    p.add_argument("--warmup", type=_int_at_least(0), default=5, help="first frames excluded from statistics")
    p.add_argument("--resize", type=_resize, default="model", metavar="model|native|HxW",
                   help="inference size: 'model' = the model's input_size (the size it was "
                        "exported and evaluated at), 'native' = each frame's own size, or HxW "
                        "(e.g. 360x480). Fixed-size models always use their own size; TensorRT "
                        "engines clamp into their optimisation profile. Streaming mIoU is scored "
                        "at the inference size; the report records it as inference_size")
    p.add_argument("--max-input-pixels", type=_int_at_least(1), default=None, metavar="N",
                   help="largest H*W the model's metadata may ask for (a guard against tampered "
                        "rdd_meta); default: $RDD_MAX_INPUT_PIXELS or 16777216 (4096x4096)")
    p.add_argument("--out", metavar="MP4",
                   help="write the colour overlay with FPS to this .mp4 (mp4v). Every output is "
                        "checked before the first frame: its folder must exist and be writable, "
                        "and it may not be an input (video, model, its sidecars, label/image "
                        "folders and their files) or another output")
    p.add_argument("--fps", type=_finite(0.0, 1000.0, lo_open=True), default=None,
                   help="frame rate of --out (default: the video's, else 30); also the "
                        "real-time rate of --images and, when given, of a live camera/stream "
                        "(its deadline is 1/fps)")
    p.add_argument("--alpha", type=_finite(0.0, 1.0), default=0.5, help="overlay opacity of the colour mask")
    p.add_argument("--save-masks", metavar="DIR",
                   help="write one label PNG per processed frame here (train ids; uint8, uint16 "
                        "above 256 classes; at the frame's size): <image stem>.png for --images, "
                        "frame_%%06d.png (source frame index) otherwise. DIR must be new or empty; "
                        "it appears complete when the run ends, nothing is left on an error")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="throughput mode for --images and video files: N frames per inference "
                        "call (the model needs a dynamic batch axis). The report gives 'batch', "
                        "per-frame latency and per-call 'batch_inference_ms'")
    p.add_argument("--realtime", action="store_true",
                   help="run a file as a camera would deliver it: paced at its fps (--fps for "
                        "--images, else 30); a frame arriving while inference is busy replaces "
                        "the waiting one (latest-frame-wins). The report's 'realtime' block counts "
                        "dropped frames, deadline misses (latency > 1/fps) and output jitter. "
                        "Live cameras and streams are always reported this way")
    p.add_argument("--report", metavar="JSON",
                   help="write the figures as JSON here; 'completed' and 'stop_reason' say how "
                        "the run ended (also after Ctrl-C/SIGTERM, exit 130/143)")
    p.add_argument("--compare", type=_compare_spec, metavar="BACKEND[:MODEL]",
                   help="after the run, run a second build (BACKEND on MODEL, default the same "
                        "model) on the same frames (--images, or the first --max-frames of a video "
                        "file) and report argmax agreement, ΔmIoU (with --labels) and max |Δlogit| "
                        "against the first, e.g. --compare openvino or --compare ort:model_int8.onnx")
    p.add_argument("--queue-size", type=_int_at_least(1, 256), default=2, help="capacity of the inter-stage queues")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


class _Signals:
    """SIGINT/SIGTERM handlers for one :func:`main` call (restored afterwards).

    While a pipeline runs (``stop`` armed) the first signal asks it to stop after the frame in
    hand, so the overlay and report of the frames done are written; otherwise (imports, model
    loading, a second signal) it raises :class:`~rdd.runtime.stop.Interrupted`.
    """

    def __init__(self) -> None:
        from rdd.runtime.stop import StopSignal

        self.stop = StopSignal()
        self.received: str | None = None
        self._old: dict[int, object] = {}

    def install(self) -> None:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.restore()

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        reason = "sigint" if signum == signal.SIGINT else "sigterm"
        first = self.received is None
        self.received = self.received or reason
        if first and self.stop.armed:
            self.stop.request(reason)
            return
        raise Interrupted(self.received)


def _interrupted(reason: str) -> int:
    print(f"error: interrupted ({reason.upper()}); no report was written", file=sys.stderr)
    return SIGNAL_EXIT_CODES[reason]


def main(argv: list[str] | None = None, prog: str = "rdd-infer") -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run, print the summary; return the exit code.

    Exit codes (:mod:`rdd.runtime.stop`): 0 completed (or ``--max-frames`` reached); 1 unexpected
    error; 2 bad input, a video that stops decoding early, or a live stream that drops; 130
    SIGINT (Ctrl-C) and 143 SIGTERM, after writing the overlay and report of the frames done.
    """
    signals = _Signals()
    signals.install()
    try:
        return _main(argv, prog, signals)
    except Interrupted as e:
        return _interrupted(e.reason)
    except KeyboardInterrupt:
        return _interrupted("sigint")
    except ImportError as e:  # a signal inside an extension's init surfaces as ImportError
        if signals.received:
            return _interrupted(signals.received)
        print(f"error: {printable(' '.join(str(e).split()))}", file=sys.stderr)
        return 1
    finally:
        signals.restore()


def _main(argv: list[str] | None, prog: str, signals: _Signals) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_resize_bound(parser, args)
    from rdd.runtime import InputError, format_summary, run_inference

    try:
        if args.compare is not None:
            check_compare(args)
        rep = run_inference(
            args.model, backend=args.backend, device=args.device, threads=args.threads,
            video=args.video, camera=args.camera, images=args.images, labels=args.labels,
            label_map=args.label_map, ignore_ids=args.ignore_ids, max_frames=args.max_frames,
            warmup=args.warmup, resize=args.resize, out=args.out, out_fps=args.fps,
            alpha=args.alpha, report=args.report, queue_size=args.queue_size,
            progress=not args.no_progress, reconnect=args.reconnect,
            stream_timeout=args.stream_timeout, batch=args.batch, realtime=args.realtime,
            save_masks=args.save_masks, max_input_pixels=args.max_input_pixels,
            stop=signals.stop)
    except KeyboardInterrupt:
        raise
    except (InputError, FileNotFoundError) as e:
        if args.debug:
            raise
        print("error: " + printable(" ".join(str(e).split())), file=sys.stderr)
        return 2
    except Exception as e:  # anything unexpected: still one line (use --debug for the traceback)
        if args.debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(printable(f"error: {type(e).__name__}: {msg}"), file=sys.stderr)
        return 1
    print(printable(format_summary(rep)))
    if args.compare is not None and rep.get("completed", True):
        try:
            rep["compare"] = run_compare(args, rep)
        except (InputError, FileNotFoundError) as e:
            print("error: --compare: " + printable(" ".join(str(e).split())), file=sys.stderr)
            return 2
        c = rep["compare"]
        dm = "n/a" if c["delta_miou"] is None else f"{c['delta_miou']:+.2f}"
        dl = "n/a" if c["max_abs_logit_diff"] is None else f"{c['max_abs_logit_diff']:.3g}"
        print(printable(f"compare {c['backend']} {c['model_path']} vs first on {c['frames']} "
                        f"frames: argmax agreement {100 * c['argmax_agreement']:.2f}%, ΔmIoU {dm} "
                        f"points, max |Δlogit| {dl}"))
        if args.report:
            from rdd.runtime.runner import _json_safe
            from rdd.spec import write_json_atomic

            write_json_atomic(args.report, _json_safe(rep))
    where = f"; report written to {args.report}" if args.report else ""
    reason = rep.get("stop_reason")
    if reason == "stream_ended":
        print(printable(f"error: {rep['stream_error']}{where}"), file=sys.stderr)
        return 2
    if reason == "decode_error":
        print(printable(f"error: {rep.get('stop_detail')}{where}"), file=sys.stderr)
        return 2
    if reason in SIGNAL_EXIT_CODES:
        kept = f"; the overlay {args.out} holds them" if rep.get("out") else ""
        print(printable(f"error: interrupted ({reason.upper()}) after {rep['frames']} frames"
                        f"{kept}{where}"), file=sys.stderr)
        return SIGNAL_EXIT_CODES[reason]
    return 0
