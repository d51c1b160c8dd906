"""``rdd-bench`` / ``python -m rdd.runtime.bench``: every build × backend this device runs, measured.

Which build of the student to ship on this device, how fast it is and what it costs in mIoU:

* **Rows**: every backend × precision found automatically (:func:`runtime_status`,
  :func:`plan_rows`): ORT CPU FP32/INT8, ORT CUDA, ORT TensorRT EP, TensorRT FP16/INT8 engines,
  OpenVINO CPU FP32/INT8, torch eager (a ``.pt`` artifact, when torch is installed). A row that
  cannot run here is listed with the reason (``skipped: TensorRT unavailable``).
* **Columns** per row × input size × threads (× batch): latency p50/p90/p99 and throughput under
  trtexec's protocol with interleaved rounds (:mod:`rdd.runtime.timing`), end-to-end FPS through
  the runner's threaded :class:`~rdd.runtime.pipeline.Pipeline` (interleaved rounds too, median), mIoU on the same labelled frames
  for every row, argmax agreement (all frames) and max |Δlogit| (first :data:`LOGIT_FRAMES`)
  against the reference FP32 row, model file size, peak RSS added by loading the build and three
  inferences, and the device block (:func:`rdd.runtime.provenance.device_info`).
* **Output**: JSON, a markdown table and a plot (latency vs mIoU, Pareto front);
  ``--recommend LOSS`` names the fastest row within LOSS mIoU points of the reference.

Torch-free: torch is imported only for a ``.pt`` row. Example::

    rdd-bench --model outputs/export --images camvid/val --labels camvid/valannot \\
        --threads 2 --out bench/ --recommend 1.0
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdd.contract import InputError

__all__ = ["Build", "ROW_KINDS", "runtime_status", "discover_builds", "plan_rows", "run_bench", "main"]

# kind → (label, model formats it runs)
ROW_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ort_cpu": ("ORT CPU", ("onnx",)),
    "ort_cuda": ("ORT CUDA", ("onnx",)),
    "ort_trt": ("ORT TensorRT EP", ("onnx",)),
    "tensorrt": ("TensorRT", ("engine",)),
    "openvino_cpu": ("OpenVINO CPU", ("onnx", "ir")),
    "torch": ("torch eager", ("artifact",)),
}
# (kind, precision) rows every report lists, measured or with the reason they are not
EXPECTED = [("ort_cpu", "fp32"), ("ort_cpu", "int8"), ("ort_cuda", "fp32"), ("ort_trt", "fp32"),
            ("tensorrt", "fp16"), ("tensorrt", "int8"), ("openvino_cpu", "fp32"),
            ("openvino_cpu", "int8"), ("torch", "fp32")]
LOGIT_FRAMES = 8  # max |Δlogit| is taken over the first frames only (logits are large)
_FORMATS = {".onnx": "onnx", ".xml": "ir", ".engine": "engine", ".plan": "engine", ".pt": "artifact"}


def _importable(name: str) -> bool:
    """Whether ``import name`` would find a module, without importing it (``sys.modules[name] =
    None`` — how tests hide a package — counts as absent)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def runtime_status() -> dict[str, str | None]:
    """Row kind → ``None`` when this device can run it, else ``"skipped: <reason>"``."""
    out: dict[str, str | None] = {k: None for k in ROW_KINDS}
    providers: list[str] = []
    if _importable("onnxruntime"):
        import onnxruntime as ort

        providers = list(ort.get_available_providers())
    else:
        for k in ("ort_cpu", "ort_cuda", "ort_trt"):
            out[k] = "skipped: onnxruntime unavailable"
    for k, prov in (("ort_cuda", "CUDAExecutionProvider"), ("ort_trt", "TensorrtExecutionProvider")):
        if out[k] is None and prov not in providers:
            out[k] = f"skipped: onnxruntime has no {prov}"
    if not _importable("tensorrt"):
        out["tensorrt"] = "skipped: TensorRT unavailable"
    if not _importable("openvino"):
        out["openvino_cpu"] = "skipped: OpenVINO unavailable (pip install 'rdd-edge[openvino]')"
    if not _importable("torch"):
        out["torch"] = "skipped: torch unavailable"
    return out


@dataclass(frozen=True)
class Build:
    """One model file: its format (``onnx``/``ir``/``engine``/``artifact``) and precision."""

    path: Path
    fmt: str
    precision: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size_bytes(self) -> int:
        extra = self.path.with_suffix(".bin") if self.fmt == "ir" else None
        return self.path.stat().st_size + (extra.stat().st_size if extra and extra.is_file() else 0)


def _onnx_precision(path: Path) -> str:
    """``metadata_props["rdd_precision"]`` of an ONNX (``fp32`` when absent)."""
    try:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except ImportError:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        props = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]) \
            .get_modelmeta().custom_metadata_map
    except Exception as e:  # noqa: BLE001 — onnx's DecodeError etc.
        raise InputError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    return str(props.get("rdd_precision", "fp32")).lower()


def _precision(path: Path, fmt: str) -> str:
    if fmt == "onnx":
        return _onnx_precision(path)
    if fmt == "engine":
        from rdd.contract import read_engine_sidecar

        side = read_engine_sidecar(path)
        return str(side[1].get("precision", "unknown")).lower() if side else "unknown"
    if fmt == "ir":
        text = path.read_text(errors="replace")
        return "int8" if "FakeQuantize" in text or '"int8"' in text else "fp32"
    return "fp32"


def discover_builds(paths: Sequence[str | os.PathLike]) -> list[Build]:
    """Model files (``.onnx``, OpenVINO ``.xml``, TensorRT ``.engine``/``.plan``, ``.pt``) given
    directly or found in the given folders (an export folder: ``*.onnx``, ``*.xml``, ``trt/``)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in [*p.glob("*"), *p.glob("trt/*")]
                           if f.suffix.lower() in _FORMATS and f.is_file())
            if not found:
                raise InputError(f"--model {p}: no .onnx/.xml/.engine/.pt model in this folder")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in _FORMATS:
                raise InputError(f"--model {p}: expected .onnx, .xml, .engine, .plan or .pt")
            files.append(p)
        else:
            raise InputError(f"--model {p}: no such file or folder")
    return [Build(f, _FORMATS[f.suffix.lower()], _precision(f, _FORMATS[f.suffix.lower()]))
            for f in dict.fromkeys(files)]


def plan_rows(builds: Sequence[Build], status: dict[str, str | None]) -> list[dict[str, Any]]:
    """Every (kind, build) pair that fits, plus the :data:`EXPECTED` rows no build covers.

    Each row: ``{"row", "kind", "precision", "build" (or None), "status"}`` with status ``None``
    (to run) or the skip reason."""
    rows: list[dict[str, Any]] = []
    for kind, (label, fmts) in ROW_KINDS.items():
        for b in builds:
            if b.fmt in fmts:
                rows.append({"row": f"{label} {b.precision.upper()}", "kind": kind,
                             "precision": b.precision, "build": b, "status": status[kind]})
    covered = {(r["kind"], r["precision"]) for r in rows}
    for kind, prec in EXPECTED:
        if (kind, prec) not in covered:
            label, fmts = ROW_KINDS[kind]
            what = {"engine": "TensorRT engine", "artifact": ".pt artifact", "ir": "model",
                    "onnx": "ONNX"}[fmts[0]]
            rows.append({"row": f"{label} {prec.upper()}", "kind": kind, "precision": prec,
                         "build": None,
                         "status": status[kind] or f"skipped: no {prec.upper()} {what} given"})
    return rows


def open_backend(row: dict[str, Any], threads: int | None) -> Any:
    """The runtime backend a row runs on."""
    from rdd.runtime.backends import OrtBackend, TorchBackend, TrtBackend

    b: Build = row["build"]
    kind = row["kind"]
    if kind.startswith("ort_"):
        dev = {"ort_cpu": "cpu", "ort_cuda": "cuda", "ort_trt": "trt"}[kind]
        return OrtBackend(b.path, device=dev, intra_op_threads=threads)
    if kind == "openvino_cpu":
        from rdd.runtime.openvino import OpenVinoBackend

        return OpenVinoBackend(b.path, threads=threads,
                               precision_hint="f32" if b.precision == "fp32" else None)
    if kind == "tensorrt":
        return TrtBackend(b.path)
    return TorchBackend(b.path, threads=threads)


def _rss_reset() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_bench(builds: Sequence[Build], *, frames: Any = None, clip: str | None = None,
              sizes: Sequence[tuple[int, int] | str] = ("model",), threads: Sequence[int | None] = (None,),
              batches: Sequence[int] = (1,), kinds: Sequence[str] | None = None,
              e2e_frames: int = 60, timing: dict[str, Any] | None = None,
              status: dict[str, str | None] | None = None, log: Any = None) -> dict[str, Any]:
    """Measure every runnable row (see the module docstring); returns the JSON-ready report.

    ``frames``: :class:`~rdd.runtime.accuracy.LabelledFrames` (accuracy columns and the latency
    input; random frames when ``None``). ``clip``: video or image folder for end-to-end FPS
    (``None``/``e2e_frames=0``: no e2e column). ``timing``: keyword arguments of
    :func:`rdd.runtime.timing.measure_interleaved`.
    """
    from rdd.runtime.accuracy import compare_predictions, predict, score
    from rdd.runtime.provenance import device_info
    from rdd.runtime.timing import measure_interleaved, protocol

    timing = {"rounds": 5, **(timing or {})}
    rows = plan_rows(builds, status or runtime_status())
    if kinds:
        rows = [r for r in rows if r["kind"] in kinds]
    say = log or (lambda *_: None)
    results: list[dict[str, Any]] = []
    runnable = [r for r in rows if r["status"] is None]
    for r in rows:
        if r["status"] is not None:
            results.append({"row": r["row"], "kind": r["kind"], "precision": r["precision"],
                            "model": r["build"].name if r["build"] else None, "size": None,
                            "status": r["status"]})
    for size in sizes:
        preds: dict[int, tuple] = {}
        for ti, t in enumerate(threads):
            open_: dict[int, Any] = {}
            for i, r in enumerate(runnable):
                base = {"row": r["row"], "kind": r["kind"], "precision": r["precision"],
                        "model": r["build"].name, "model_path": str(r["build"].path),
                        "model_bytes": r["build"].size_bytes, "threads": t}
                tracked = _rss_reset()
                rss0 = _status_kb("VmRSS")
                try:  # peak RSS: loading the build and three inferences
                    be = open_backend(r, t)
                    hw = _size_of(be, size, frames)
                    x1 = _input(be, hw, frames, 1)
                    for _ in range(3):
                        be.infer(x1)
                    peak = _status_kb("VmHWM") if tracked else None
                    if i not in preds and frames is not None:
                        preds[i] = predict(be, frames, hw, keep_logits=LOGIT_FRAMES)
                except (InputError, ValueError, RuntimeError, ImportError) as e:
                    results.append({**base, "size": None, "status": f"failed: {e}".split("\n")[0]})
                    continue
                base["peak_rss_mb"] = (peak - rss0) / 1024 if peak and rss0 else None
                base["size"] = list(hw)
                open_[i] = (be, hw, base)
                say(f"opened {r['row']} ({r['build'].name}) @ {hw[0]}x{hw[1]} threads {t}")
            ref = next((i for i in open_ if runnable[i]["precision"] == "fp32"
                        and runnable[i]["kind"] in ("ort_cpu", "torch")), None)
            ref = ref if ref is not None else next(iter(open_), None)
            for b in batches:
                fns, bases = {}, {}
                for i, (be, hw, base) in open_.items():
                    x = _input(be, hw, frames, b)
                    if x is None:
                        results.append({**base, "batch": b, "status": "skipped: fixed batch 1"})
                        continue
                    fns[str(i)] = (lambda be_, x_: (lambda: be_.infer(x_)))(be, x)
                    bases[str(i)] = base
                say(f"timing {len(fns)} rows @ batch {b} ...")
                stats = measure_interleaved(fns, batch=b, **timing) if fns else {}
                e2e = (_e2e_interleaved({k: open_[int(k)] for k in stats}, clip, e2e_frames,
                                        int(timing.get("rounds", 1)))
                       if b == 1 and clip and e2e_frames else {})
                for k, st in stats.items():
                    i = int(k)
                    row = {**bases[k], "batch": b, "status": "ok",
                           "latency_ms": {q: st[q] for q in ("p50", "p90", "p99", "mean", "min")},
                           "throughput": st["throughput"], "runs": st["runs"]}
                    if frames is not None and i in preds:
                        row.update(score(preds[i][0], frames, open_[i][0].meta.num_classes))
                        if ref is not None and ref in preds:
                            row.update(compare_predictions(preds[i][0], preds[ref][0], preds[i][1],
                                                           preds[ref][1]))
                            ref_miou = score(preds[ref][0], frames, open_[ref][0].meta.num_classes)["miou"]
                            row["reference"] = runnable[ref]["row"]
                            row["miou_loss"] = (100 * (ref_miou - row["miou"])
                                                if row.get("miou") is not None and ref_miou is not None
                                                else None)
                    if k in e2e:
                        row["e2e_fps"] = e2e[k]
                    results.append(row)
            if ti == len(threads) - 1:
                preds.clear()
    clock = getattr(timing.get("clock"), "__name__", "perf_counter")
    return {"device": device_info(),
            "protocol": protocol(clock=clock, **{k: v for k, v in timing.items()
                                                 if k in ("warmup_s", "duration_s", "min_runs", "rounds")}),
            "results": results}


def _size_of(be: Any, size: Any, frames: Any) -> tuple[int, int]:
    from rdd.runtime.pipeline import inference_size

    hw = frames.images[0].shape[:2] if frames is not None else (be.meta.input_size or (360, 480))
    return inference_size(tuple(hw), be.meta, size)


def _input(be: Any, hw: tuple[int, int], frames: Any, batch: int) -> np.ndarray | None:
    from rdd.runtime.pipeline import preprocess

    if batch > 1 and not be.meta.dynamic_batch:
        return None
    img = (frames.images[0] if frames is not None
           else np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8))
    x = preprocess(img, be.meta, hw)
    return np.ascontiguousarray(np.repeat(x, batch, axis=0)) if batch > 1 else x


def _e2e_interleaved(rows: dict[str, tuple], clip: str, frames: int,
                     rounds: int) -> dict[str, float | None]:
    """End-to-end FPS per row: ``rounds`` short pipeline runs each (``frames / rounds`` frames,
    rotated order, like the latency rounds), the median of the runs."""
    rounds = max(1, min(rounds, frames // 8))
    keys = list(rows)
    fps: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)] if keys else []:
            be, hw, _ = rows[k]
            v = _e2e_fps(be, clip, hw, max(2, frames // rounds))
            if v is not None:
                fps[k].append(v)
    return {k: float(np.median(v)) if v else None for k, v in fps.items()}


def _e2e_fps(be: Any, clip: str, hw: tuple[int, int], n: int) -> float | None:
    from rdd.runtime.pipeline import Pipeline, PipelineConfig
    from rdd.runtime.sources import ImageFolderSource, VideoSource

    src = ImageFolderSource(clip) if Path(clip).is_dir() else VideoSource(clip)
    try:
        rep = Pipeline(be, src, config=PipelineConfig(warmup=min(3, n - 1), max_frames=n,
                                                      resize=hw)).run()
    finally:
        src.close()
    fps = rep.get("fps")
    return float(fps) if fps is not None and np.isfinite(fps) else None


def build_parser(prog: str = "rdd-bench") -> argparse.ArgumentParser:
    from rdd.runtime.cli import _ids, _resize

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, metavar="PATH",
                   help="exported students: .onnx (FP32 or INT8 QDQ), OpenVINO .xml, TensorRT "
                        ".engine (with sidecar), .pt artifact, or export folders holding them")
    p.add_argument("--images", metavar="DIR", help="frames for accuracy and the latency input")
    p.add_argument("--labels", metavar="DIR", help="masks for --images (mIoU columns)")
    p.add_argument("--label-map", default="auto", choices=["auto", "none", "camvid"])
    p.add_argument("--ignore-ids", type=_ids, default=[], metavar="IDS")
    p.add_argument("--frames", type=int, default=None, help="accuracy frames (evenly spaced; all)")
    p.add_argument("--clip", help="video or image folder for end-to-end FPS (default: --images)")
    p.add_argument("--e2e-frames", type=int, default=60,
                   help="frames of end-to-end runs per row, split over the interleaved rounds "
                        "(median FPS of the rounds; 0: no e2e column)")
    p.add_argument("--sizes", nargs="+", type=_resize, default=["model"], metavar="HxW")
    p.add_argument("--threads", nargs="+", type=int, default=[os.cpu_count() or 1])
    p.add_argument("--batch", nargs="+", type=int, default=[1])
    p.add_argument("--rows", nargs="+", choices=sorted(ROW_KINDS), help="only these row kinds")
    p.add_argument("--duration", type=float, default=3.0, help="timed seconds per row (trtexec)")
    p.add_argument("--warmup-ms", type=float, default=200.0)
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: time.perf_counter (the latency a user sees); cpu: this process's "
                        "CPU time (time.process_time), insensitive to other load on a shared "
                        "machine; meaningful with --threads 1 (e2e FPS stays wall-clock)")
    p.add_argument("--recommend", type=float, metavar="MAX_MIOU_LOSS",
                   help="name the fastest row within this many mIoU points of the reference")
    p.add_argument("--out", metavar="DIR", help="write bench.json, bench.md and bench.png here")
    p.add_argument("--title", default="", help="plot title")
    return p


def main(argv: list[str] | None = None, prog: str = "rdd-bench") -> int:
    from rdd.runtime.bench_report import markdown_table, recommend, save_plot
    from rdd.runtime.runner import resolve_ignore_ids
    from rdd.spec import write_json_atomic, write_text_atomic

    args = build_parser(prog).parse_args(argv)
    try:
        if args.labels and not args.images:
            raise InputError("--labels needs --images")
        if any(b < 1 for b in args.batch) or any(t < 1 for t in args.threads):
            raise InputError("--batch and --threads must be >= 1")
        builds = discover_builds(args.model)
        frames = None
        if args.images:
            from rdd.runtime.accuracy import load_labelled_frames

            classes = _classes_of(builds)
            ids = resolve_ignore_ids(args.label_map, args.ignore_ids, classes) if args.labels else ()
            frames = load_labelled_frames(args.images, args.labels, ignore_ids=ids,
                                          ignore_index=classes.ignore_index, limit=args.frames)
        timing = {"warmup_s": args.warmup_ms / 1e3, "duration_s": args.duration,
                  "min_runs": args.min_runs, "rounds": args.rounds,
                  "clock": time.process_time if args.clock == "cpu" else time.perf_counter}
        rep = run_bench(builds, frames=frames, clip=args.clip or args.images, sizes=args.sizes,
                        threads=args.threads, batches=args.batch, kinds=args.rows,
                        e2e_frames=args.e2e_frames, timing=timing,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    except InputError as e:
        print("error: " + str(e).replace("\n", " "), file=sys.stderr)
        return 2
    rep["command"] = " ".join(["rdd-bench", *(argv if argv is not None else sys.argv[1:])])
    if args.recommend is not None:
        rep["recommendation"] = recommend(rep["results"], args.recommend)
    table = markdown_table(rep["results"])
    d = rep["device"]
    head = (f"Device: {d['cpu']} ({d['cores']} cores; {d['isa'] or 'ISA unknown'}), GPU: {d['gpu']}; "
            f"onnxruntime {d['onnxruntime']}, openvino {d['openvino']}, tensorrt {d['tensorrt']}")
    text = head + "\n\n" + table
    if args.recommend is not None:
        rec = rep["recommendation"]
        text += "\n\n" + (f"Recommended (fastest within {args.recommend} mIoU points): {rec['row']} "
                          f"({rec['model']}), p50 {rec['latency_ms_p50']:.2f} ms, "
                          f"ΔmIoU {-rec['miou_loss']:+.2f}" if rec else
                          f"No measured row within {args.recommend} mIoU points of the reference.")
    print(text)
    if args.out:
        out = Path(args.out)
        write_json_atomic(out / "bench.json", _json_safe(rep))
        write_text_atomic(out / "bench.md", text + "\n")
        save_plot(rep["results"], out / "bench.png", title=args.title or head[:110])
    return 0


def _classes_of(builds: Sequence[Build]) -> Any:
    """Class list of the first build that opens (for the label map)."""
    status = runtime_status()
    why: list[str] = []
    for r in plan_rows(builds, status):
        if r["status"] is None and r["build"] is not None:
            try:
                return open_backend(r, 1).meta.classes
            except InputError as e:
                why.append(" ".join(str(e).split()))
    first = f" (first: {why[0]})" if why else ""
    raise InputError(f"no given model can be opened on this device{first}; nothing to benchmark")


def _json_safe(obj: Any) -> Any:
    from rdd.runtime.runner import _json_safe as safe

    return json.loads(json.dumps(safe(obj), default=str))


if __name__ == "__main__":
    raise SystemExit(main(prog="python -m rdd.runtime.bench"))
