"""``rdd-bench``: the benchmark's command line (:mod:`rdd.runtime.measure.bench` measures).

Options: :class:`rdd.runtime.options.BenchOptions` (declared once). Everything that can be
checked is checked before the first build runs: the options, the output folder (never an input,
writable), the frames and labels; a build that cannot be read is a ``failed`` row, not the end of
the run. Ctrl-C / SIGTERM end the run after the row in hand and still write what was measured
(``completed: false``), exit 130 / 143.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rdd.runtime.stream.stop import SIGNAL_EXIT_CODES, Interrupted

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__all__ = ["main", "build_parser", "bench"]

EXAMPLES = """examples:
  rdd-bench --model outputs/export --images camvid/val --labels camvid/valannot --recommend 1.0
  rdd-bench --model a.onnx b.onnx --images camvid/val --labels camvid/valannot --out bench/
  rdd-bench --model outputs/export --threads 1 --clock cpu --format csv
"""


def build_parser(prog: str = "rdd-bench"):
    from rdd.runtime.flags import build_parser as build
    from rdd.runtime.options import BenchOptions
    from rdd.runtime.runner import version

    return build(
        BenchOptions,
        prog,
        description=(
            "Every build x backend this device runs: latency (trtexec's protocol), end-to-end FPS, "
            "mIoU and agreement with each model's own FP32 build; the skipped rows with the reason."
        ),
        epilog=EXAMPLES,
        version=version(),
    )


def _handler(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # one interruption is enough
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted("sigint" if signum == signal.SIGINT else "sigterm")


def bench(cfg: Any, *, argv: list[str] | None = None, results: list | None = None) -> dict:
    """Run ``rdd-bench`` for a checked :class:`~rdd.runtime.options.BenchOptions`; returns the
    report (rows are appended to ``results`` as they are measured)."""
    from rdd.runtime.backends import discover_builds, open_build
    from rdd.runtime.errors import InputError, OptionError, literal
    from rdd.runtime.measure.bench import run_bench
    from rdd.runtime.measure.frames import Frames
    from rdd.runtime.runner import resolve_ignore_ids
    from rdd.runtime.zoo import resolve_model

    try:
        builds = discover_builds([resolve_model(m) for m in cfg.model], strict=False)
    except InputError as e:
        raise OptionError("model", literal(e)) from None
    frames = None
    if cfg.images:
        classes = None
        why = []
        for b in builds:
            if b.error is None:
                try:
                    classes = open_build(b, max_pixels=cfg.max_input_pixels).meta.classes
                    break
                except InputError as e:
                    why.append(" ".join(str(e).split()))
        if classes is None:
            first = f" (first: {why[0] if why else builds[0].error})" if builds else ""
            raise InputError(f"no given model can be opened on this device{first}; nothing to benchmark")
        ids = resolve_ignore_ids(cfg.label_map, cfg.ignore_ids, classes) if cfg.labels else ()
        frames = Frames.from_folder(
            cfg.images,
            cfg.labels,
            ignore_ids=ids,
            ignore_index=classes.ignore_index,
            limit=cfg.frames,
            max_pixels=cfg.max_input_pixels,
        )
    timing = {
        "warmup_s": cfg.warmup_ms / 1e3,
        "duration_s": cfg.duration,
        "min_runs": cfg.min_runs,
        "rounds": cfg.rounds,
        "clock": time.process_time if cfg.clock == "cpu" else time.perf_counter,
    }
    return run_bench(
        builds,
        frames=frames,
        clip=cfg.clip or cfg.images,
        sizes=cfg.sizes,
        threads=cfg.threads or [os.cpu_count() or 1],
        batches=cfg.batch,
        kinds=cfg.rows,
        e2e_frames=cfg.e2e_frames,
        timing=timing,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        max_pixels=cfg.max_input_pixels,
        results=results,
    )


def main(argv: list[str] | None = None, prog: str = "rdd-bench") -> int:
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv, prog)
    except Interrupted as e:
        print(
            f"error: interrupted ({e.reason.upper()}) before a row was measured; nothing written",
            file=sys.stderr,
        )
        return SIGNAL_EXIT_CODES[e.reason]
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _main(argv: list[str] | None, prog: str) -> int:
    from rdd.runtime.flags import parse_options
    from rdd.runtime.options import BenchOptions

    cfg = parse_options(build_parser(prog), BenchOptions, argv)
    from rdd.runtime.errors import InputError, one_line
    from rdd.runtime.stream.outputs import check_outputs

    results: list[dict] = []
    stop = None
    try:
        if cfg.out:
            check_outputs(
                {"out": (cfg.out, "dir")},
                {"model": cfg.model, "images": cfg.images, "labels": cfg.labels, "clip": cfg.clip},
            )
            _not_a_model_folder(cfg.out, cfg.model)
        try:
            rep = bench(cfg, argv=argv, results=results)
        except Interrupted as e:  # what was measured is kept
            stop = e.reason
            from rdd.runtime.provenance import device_info

            rep = {"device": device_info(), "protocol": None, "results": results}
    except (InputError, FileNotFoundError) as e:
        print("error: " + one_line(e), file=sys.stderr)
        return 2
    rep.update(
        completed=stop is None,
        stop_reason=stop or "end_of_input",
        command=" ".join(["rdd-bench", *(argv if argv is not None else sys.argv[1:])]),
    )
    _write(cfg, rep)
    if stop is not None:
        print(
            f"error: interrupted ({stop.upper()}) after {len(results)} rows"
            + (f"; {cfg.out} holds them" if cfg.out else ""),
            file=sys.stderr,
        )
        return SIGNAL_EXIT_CODES[stop]
    return 0


def _not_a_model_folder(out: str, models: list[str]) -> None:
    """``out`` may not be the folder a ``model`` file sits in (its ``bench.json`` would land
    beside the model, or replace a model named ``bench.onnx``'s metadata sidecar)."""
    from rdd.runtime.errors import OptionError, literal

    real = os.path.realpath(out)
    for m in models:
        if os.path.isfile(m) and real == os.path.dirname(os.path.realpath(m)):
            raise OptionError(
                "out",
                f"{literal(out)} is the folder of the {{model}} input {literal(m)}; write outputs elsewhere",
            )


def _write(cfg: Any, rep: dict) -> None:
    """Print the chosen format; write ``bench.json``, ``bench.csv``, ``bench.md`` and
    ``bench.png`` into ``out`` (all at once: staged, then committed)."""
    from rdd.runtime.errors import printable
    from rdd.runtime.measure.bench_report import csv_table, markdown_table, recommend, save_plot
    from rdd.runtime.runner import json_safe
    from rdd.runtime.stream.writers import StagedFile, commit, discard

    if cfg.recommend is not None:
        rep["recommendation"] = recommend(rep["results"], cfg.recommend)
    d = rep["device"]
    head = (
        f"Device: {d['cpu']} ({d['cores']} cores; {d['isa'] or 'ISA unknown'}), GPU: {d['gpu']}; "
        f"onnxruntime {d['onnxruntime']}, openvino {d['openvino']}, tensorrt {d['tensorrt']}"
    )
    text = head + "\n\n" + markdown_table(rep["results"])
    if cfg.recommend is not None:
        rec = rep["recommendation"]
        text += "\n\n" + (
            f"Recommended (fastest within {cfg.recommend} mIoU points of the best "
            f"model's FP32 row): {rec['row']} ({rec['model']}), p50 "
            f"{rec['latency_ms_p50']:.2f} ms, mIoU {100 * rec['miou']:.2f}%"
            if rec
            else f"No measured row within {cfg.recommend} mIoU points of the best model's FP32 row."
        )
    rep = json.loads(json.dumps(json_safe(rep), default=str))
    print(
        printable(text, lines=True)
        if cfg.format == "md"
        else json.dumps(rep, indent=2)
        if cfg.format == "json"
        else csv_table(rep["results"]),
        end="\n" if cfg.format != "csv" else "",
    )
    if not cfg.out:
        return
    out = Path(cfg.out)
    out.mkdir(exist_ok=True)
    files = {name: StagedFile(out / name) for name in ("bench.json", "bench.csv", "bench.md")}
    try:
        files["bench.json"].write_text(json.dumps(rep, indent=2) + "\n")
        files["bench.csv"].write_text(csv_table(rep["results"]))
        files["bench.md"].write_text(text + "\n")
        commit(list(files.values()))
    except BaseException:
        discard(list(files.values()))
        raise
    why = save_plot(rep["results"], out / "bench.png", title=cfg.title or head[:200])
    if why:
        print(f"bench.png not written: {why}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main(prog="python -m rdd.runtime.bench_cli"))
