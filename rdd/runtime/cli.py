"""The real-time runner's command line: ``rdd-infer``, ``python -m rdd.runtime`` and ``deploy/infer.py``.

The options are :class:`rdd.runtime.options.InferOptions` (declared once; the parser is built
from them); the run is :func:`rdd.runtime.runner.run_inference`. This module imports only the
standard library at load time, so the SIGINT / SIGTERM handlers are installed before numpy,
OpenCV or a runtime load, and a Ctrl-C during those imports is a one-line exit 130.
"""

from __future__ import annotations

import os
import signal
import sys

from rdd.runtime.stream.stop import SIGNAL_EXIT_CODES, Interrupted

# Keep OpenCV/FFmpeg from printing their own warnings around our one-line errors.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__all__ = ["main", "build_parser", "EXAMPLES"]

_DESCRIPTION = (
    "Real-time semantic segmentation on a video, a camera or images: FPS, latency "
    "percentiles, mIoU against labels, overlays, masks and a live view."
)
EXAMPLES = """examples:
  rdd-infer --model student.onnx --video drive.mp4 --out overlay.mp4 --report r.json
  rdd-infer --model student.onnx --images camvid/val --labels camvid/valannot --report r.json
  rdd-infer --model camvid/rdd_16x-s0 --images 'frames/*.jpg' --save-overlays overlays/
  rdd-infer --model student.onnx --camera 0 --serve 0.0.0.0:8080      # watch it in a browser
  rdd-infer --model student.onnx --video rtsp://192.168.1.20:8554/cam --reconnect 5
  rdd-infer --model model.onnx --backend openvino --precision bf16 --images camvid/val

exit codes: 0 completed, 2 bad input / a video that stops decoding / a dropped stream,
130 Ctrl-C and 143 SIGTERM (the outputs and report of the frames done are written), 1 other."""


def build_parser(prog: str = "rdd-infer"):
    """The argparse parser of :class:`~rdd.runtime.options.InferOptions`."""
    from rdd.runtime.flags import build_parser as build
    from rdd.runtime.options import InferOptions
    from rdd.runtime.runner import version

    return build(
        InferOptions,
        prog,
        description=_DESCRIPTION,
        epilog=EXAMPLES,
        groups=[("video", "camera", "images")],
        version=version(),
    )


class _Signals:
    """SIGINT/SIGTERM handlers for one :func:`main` call (restored afterwards).

    The first signal decides. While a pipeline runs (``stop`` armed) it asks it to stop after the
    frame in hand, so the outputs and report of the frames done are written; otherwise (imports,
    model loading, writing the outputs) it raises :class:`~rdd.runtime.stream.stop.Interrupted`.
    It is also recorded on ``stop``: should that exception be swallowed (raised inside an
    extension's init it becomes an ``ImportError``, which an optional import may catch), the
    pipeline stops as it starts instead of the interruption being lost. Once the run is over
    (``done``) a signal is only recorded.

    Every further signal is ignored: the command is already ending, and an exception thrown into
    its cleanup (joining the pipeline's threads, committing the outputs) would lose the frames
    done or leave a thread running inside OpenCV or a runtime at exit, which aborts the
    interpreter (SIGABRT). The handler only sets attributes: it takes no lock, so it cannot
    deadlock with the code it interrupted.
    """

    def __init__(self) -> None:
        from rdd.runtime.stream.stop import StopSignal

        self.stop = StopSignal()
        self.received: str | None = None
        self.done = False
        self._old: dict[int, object] = {}

    def install(self) -> None:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.restore()

    def restore(self, exiting: bool = False) -> None:
        """Put the previous handlers back; ``exiting`` (the program ends after an interruption):
        ignore SIGINT/SIGTERM instead, so a further Ctrl-C while the interpreter shuts down
        (onnxruntime's and OpenCV's teardown runs after Python's handlers are gone) cannot turn
        exit 130 into a death by SIGINT."""
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_IGN if exiting else old)
        self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:  # one interruption is enough
            return
        self.received = reason = "sigint" if signum == signal.SIGINT else "sigterm"
        armed = self.stop.armed
        self.stop.request(reason)  # flags only (the pipeline's listener too)
        if not armed and not self.done:
            raise Interrupted(reason)


def _interrupted(reason: str) -> int:
    print(f"error: interrupted ({reason.upper()}); no report was written", file=sys.stderr)
    return SIGNAL_EXIT_CODES[reason]


def main(argv: list[str] | None = None, prog: str = "rdd-infer") -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run, print the summary; return the exit code.

    Exit codes (:mod:`rdd.runtime.stream.stop`): 0 completed (or ``--max-frames`` reached); 1
    unexpected error; 2 bad input, a video that stops decoding early, or a live stream that
    drops; 130 SIGINT (Ctrl-C) and 143 SIGTERM, after writing the outputs and report of the
    frames done.
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
        from rdd.runtime.errors import printable

        print(f"error: {printable(' '.join(str(e).split()))}", file=sys.stderr)
        return 1
    finally:
        # argv None: this is the program (console script, python -m), ending now
        signals.restore(exiting=argv is None and signals.received is not None)


def _main(argv: list[str] | None, prog: str, signals: _Signals) -> int:
    from rdd.runtime.flags import parse_options
    from rdd.runtime.options import InferOptions

    args = cfg = parse_options(build_parser(prog), InferOptions, argv)
    from rdd.runtime.errors import InputError, one_line, printable
    from rdd.runtime.runner import run_inference
    from rdd.runtime.stream.summary import format_summary

    try:
        rep = run_inference(cfg, stop=signals.stop)
        signals.done = True  # outputs committed: a signal from here on is only recorded
    except KeyboardInterrupt:
        raise
    except (InputError, FileNotFoundError) as e:
        if args.debug:
            raise
        print("error: " + one_line(e), file=sys.stderr)
        return 2
    except Exception as e:  # anything unexpected: still one line (use --debug for the traceback)
        if args.debug:
            raise
        print(f"error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    print(printable(format_summary(rep)))
    c = rep.get("compare")
    if c is not None:
        dm = "n/a" if c["delta_miou"] is None else f"{c['delta_miou']:+.2f}"
        dl = "n/a" if c["max_abs_logit_diff"] is None else f"{c['max_abs_logit_diff']:.3g}"
        print(
            printable(
                f"compare {c['backend']} {c['model_path']} vs first on {c['frames']} "
                f"frames: argmax agreement {100 * c['argmax_agreement']:.2f}%, ΔmIoU {dm} "
                f"points, max |Δlogit| {dl}"
            )
        )
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
        print(
            printable(f"error: interrupted ({reason.upper()}) after {rep['frames']} frames{kept}{where}"),
            file=sys.stderr,
        )
        return SIGNAL_EXIT_CODES[reason]
    return 0
