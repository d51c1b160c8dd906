"""``rdd-export``: a user's own model to the builds the runtime runs, with the export stage's gates.

    rdd-export model.pt --to onnx int8 openvino --input-size 360x480 --calib train/ \\
        --val val/ --val-labels valannot/ --out export/
    rdd-export model.onnx --to int8 --calib train/ --val val/ --val-labels valannot/ \\
        --out export/                                 # torch-free: [cpu] + onnx

``MODEL`` is a training artifact (``NAME.pt`` + ``NAME.json``; needs torch) or an ONNX graph
carrying ``rdd_meta`` (or a ``NAME.json`` sidecar with it). ``--to`` lists what to build, into
``--out`` (never an input, checked first):

* ``onnx`` → ``model.onnx``: from a ``.pt``, exported as the export stage does
  (:func:`rdd.export.onnx.export_onnx`) and checked by the FP32 parity gate against PyTorch; from
  an ``.onnx``, edited without PyTorch (:mod:`rdd.export.graph`: ``--head lowres``,
  ``--fold-preprocess``, ``--input-size``) and checked against the graph it came from through the
  runtime (the same thresholds);
* ``int8`` → ``model_int8.onnx``: ONNX Runtime static INT8 on ``--calib`` frames, gated on the
  mIoU drop against FP32 on ``--val`` / ``--val-labels`` (:func:`rdd.export.run.int8_step`, the
  export stage's step);
* ``openvino`` → ``openvino/model_int8.xml``: NNCF INT8 on the same frames, the same gate;
* ``engine`` → ``trt/model_<precision>.engine`` with its sidecar (where TensorRT runs).

Every build carries the same ``rdd_meta`` as the export stage's and records the build it was made
from (``rdd_source_sha256``); ``export_metrics.json`` in ``--out`` has every gate's figures.
Exit codes: 0 built, 2 bad input or a gate failed (the metrics say which), 1 other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

TARGETS = ("onnx", "int8", "openvino", "engine")


def build_parser(prog: str = "rdd-export") -> argparse.ArgumentParser:
    from rdd import __version__
    from rdd.config.export import ExportConfig
    from rdd.runtime.options import LABEL_MAPS

    d = ExportConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"{prog} {__version__}")
    p.add_argument("model", help="a .pt training artifact (with its .json) or an .onnx with rdd_meta")
    p.add_argument("--to", nargs="+", choices=TARGETS, default=["onnx"], help="what to build (default: onnx)")
    p.add_argument("--out", required=True, help="output folder (created; never an input)")
    p.add_argument("--input-size", metavar="HxW", help="deployment size (default: the model's)")
    p.add_argument(
        "--opset", type=int, default=d.opset, help=f"ONNX opset of a .pt export (default: {d.opset})"
    )
    p.add_argument(
        "--head",
        choices=("full", "lowres"),
        default=d.head,
        help=f"full: input-size logits | lowres: the head's logits, upsampled exactly "
        f"by the runtime (default: {d.head})",
    )
    p.add_argument(
        "--fold-preprocess", action="store_true", help="take uint8 NHWC frames, normalisation in the graph"
    )
    p.add_argument("--calib", metavar="DIR|GLOB", help="calibration images (int8, openvino, engine int8)")
    p.add_argument(
        "--calib-frames",
        type=int,
        default=d.int8.calib_frames,
        help=f"calibration frames, evenly spaced (default: {d.int8.calib_frames})",
    )
    p.add_argument(
        "--val", metavar="DIR|GLOB", help="validation images for the gates (default: the calibration images)"
    )
    p.add_argument("--val-labels", metavar="DIR", help="their masks: mIoU in the gates")
    p.add_argument("--val-frames", type=int, default=32, help="gate frames (default: 32)")
    p.add_argument("--label-map", default="auto", choices=LABEL_MAPS, help="as rdd-infer's")
    p.add_argument(
        "--max-miou-drop",
        type=float,
        default=d.int8.max_miou_drop,
        help=f"INT8 gate, fraction (default: {d.int8.max_miou_drop} = {100 * d.int8.max_miou_drop:g} point)",
    )
    p.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit INT8 weights (VNNI / Arm dot-product CPUs); default 7-bit (reduce_range), safe on AVX2",
    )
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["fp16"],
        choices=("fp32", "fp16", "int8"),
        help="TensorRT engine precisions (default: fp16)",
    )
    return p


def main(argv: list[str] | None = None, prog: str = "rdd-export") -> int:
    from rdd.runtime.errors import InputError, one_line, printable

    args = build_parser(prog).parse_args(argv)
    try:
        metrics = export(args)
    except InputError as e:
        print("error: " + one_line(e), file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 — one line; a gate failure says which gate
        from rdd.export.parity import ParityError

        if isinstance(e, ParityError):
            print(f"error: {str(e).splitlines()[0]} (see {args.out}/export_metrics.json)", file=sys.stderr)
            return 2
        print(f"error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    built = ", ".join(f["path"] for f in metrics["files"].values())
    print(f"built {built} in {args.out}")
    for prec, eng in (metrics.get("tensorrt") or {}).items():  # built, skipped or failed
        print(printable(f"engine {prec}: {eng['status']}" + (f" ({eng['path']})" if eng.get("path") else "")))
    ov = metrics.get("openvino_int8") or {}
    if ov and ov.get("status") != "ok":
        print(printable(f"openvino int8: {ov.get('status')}"))
    return 0


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Build what ``args.to`` asks; returns (and writes) the metrics."""
    from rdd.config.export import Int8
    from rdd.export.parity import ParityError
    from rdd.runtime.errors import InputError, OptionError
    from rdd.runtime.measure.frames import Frames
    from rdd.runtime.provenance import device_info
    from rdd.runtime.stream.outputs import check_outputs, model_files
    from rdd.runtime.stream.transforms import parse_resize
    from rdd.spec import write_json_atomic

    src = Path(args.model)
    if src.suffix.lower() not in (".pt", ".onnx"):
        raise OptionError("model", f"{src}: expected a .pt artifact or an .onnx graph")
    if not src.is_file():
        raise OptionError("model", f"{src}: no such file")
    out = Path(args.out)
    planned = {
        "model.onnx": "onnx",
        "model_int8.onnx": "int8",
        "openvino/model_int8.xml": "openvino",
        "openvino/model_int8.bin": "openvino",
    }
    inputs = {"model": model_files(src), "calib": args.calib, "val": args.val, "val_labels": args.val_labels}
    check_outputs({"out": (out, "dir")}, {k: v for k, v in inputs.items() if k != "model"})
    if out.is_dir():  # the files it would write there may not be an input (model.onnx ...)
        check_outputs(
            {
                "out": (out / "export_metrics.json", "file"),
                **{
                    f"out/{f}": (out / f, "file")
                    for f, t in planned.items()
                    if t in args.to and (out / f).parent.is_dir()
                },
            },
            inputs,
        )
    needs_calib = {"int8", "openvino"} & set(args.to) or "int8" in args.precisions and "engine" in args.to
    if needs_calib and not args.calib:
        raise OptionError("calib", "is needed for {to} int8 / openvino (calibration images)")
    size = None
    if args.input_size:
        size = parse_resize(args.input_size)
        if isinstance(size, str):
            raise OptionError("input_size", f"must be HxW, got {args.input_size!r}")
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {
        "source": src.name,
        "targets": list(args.to),
        "files": {},
        "gates": {},
        "passed": True,
        "device": device_info(),
    }
    path = out / "export_metrics.json"

    def frames(spec: str | None, labels: str | None, limit: int) -> Frames | None:
        if spec is None:
            return None
        return Frames.from_folder(spec, labels, limit=limit)

    try:
        fp32 = _fp32(args, src, out, size, metrics)
        from rdd.offline import installed
        from rdd.runtime.backends import open_build
        from rdd.runtime.runner import resolve_ignore_ids

        meta = open_build(fp32, backend="ort" if installed("onnxruntime") else "auto").meta
        calib = frames(args.calib, None, args.calib_frames)
        ids = resolve_ignore_ids(args.label_map, (), meta.classes) if args.val_labels else ()
        val = (
            Frames.from_folder(
                args.val or args.calib,
                args.val_labels,
                ignore_ids=ids,
                ignore_index=meta.classes.ignore_index,
                limit=args.val_frames,
            )
            if (args.val or args.calib)
            else None
        )
        if val is not None:
            val = val.resized(meta.input_size)
        if "onnx" in args.to and metrics.get("parity") is None and val is not None:
            metrics["parity"] = _onnx_parity(src, fp32, val)
            metrics["gates"]["parity_fp32"] = metrics["parity"]["passed"]
            if not metrics["parity"]["passed"]:
                raise ParityError(f"ONNX parity gate failed for {fp32}", metrics["parity"])
        q = Int8(
            calib_frames=args.calib_frames,
            reduce_range=not args.full_range,
            max_miou_drop=args.max_miou_drop,
            keep_float=["input_conv"] + ([] if meta.head == "lowres" else ["output_resize"]),
        )
        if "int8" in args.to:
            from rdd.export.run import int8_step

            if val is None or val.labels is None:
                raise OptionError(
                    "val_labels",
                    "are needed for the INT8 mIoU gate ({val} and "
                    "{val_labels}, or {calib} images with labels)",
                )
            block = int8_step(fp32, out / "model_int8.onnx", q, calib=calib, eval_frames=val)
            metrics["files"]["onnx_int8"] = block.pop("file")
            metrics["int8"], metrics["gates"]["int8_miou"] = block, True
        if "openvino" in args.to:
            from rdd.export.openvino import openvino_int8_stage

            if val is None or val.labels is None:
                raise OptionError("val_labels", "are needed for the OpenVINO INT8 gate")
            from rdd.export.parity import evaluate_onnx

            (out / "openvino").mkdir(exist_ok=True)
            block = openvino_int8_stage(
                fp32,
                out / "openvino",
                calib_frames=calib,
                calib_limit=args.calib_frames,
                eval_frames=val,
                miou_fp32=evaluate_onnx(fp32, val)["miou"],
                max_miou_drop=args.max_miou_drop,
            )
            metrics["openvino_int8"] = block
            if block["status"] == "ok":
                metrics["files"]["openvino_int8"] = {"path": f"openvino/{block['path']}"}
                metrics["gates"]["openvino_int8_miou"] = block["gate"]
        if "engine" in args.to:
            from rdd.export.tensorrt import build_engine

            (out / "trt").mkdir(exist_ok=True)
            metrics["tensorrt"] = {
                prec: build_engine(
                    fp32,
                    out / "trt" / f"model_{prec}.engine",
                    precision=prec,
                    calib_frames=calib if prec == "int8" else None,
                    calib_limit=args.calib_frames,
                )
                for prec in args.precisions
            }
    except ParityError as e:
        metrics["passed"], metrics["error"] = False, str(e)
        write_json_atomic(path, metrics)
        raise
    except InputError:
        write_json_atomic(path, {**metrics, "passed": False})
        raise
    write_json_atomic(path, metrics)
    return metrics


def _fp32(args: argparse.Namespace, src: Path, out: Path, size: Any, metrics: dict[str, Any]) -> str:
    """``model.onnx`` in ``out``: exported from a ``.pt`` (parity vs PyTorch recorded in
    ``metrics``) or edited from an ``.onnx`` (checked later against its source)."""
    target = out / "model.onnx"
    if src.suffix.lower() == ".pt":
        from rdd.runtime.errors import InputError

        try:
            from rdd.artifacts import load_artifact
            from rdd.export.onnx import export_onnx
        except ImportError:
            raise InputError(
                "a .pt artifact needs PyTorch (pip install 'rdd-edge[train]'); an .onnx converts without it"
            ) from None
        from rdd.contract import file_sha256
        from rdd.spec import ClassInfo, Normalization, as_hw

        model, ameta = load_artifact(src)
        info = export_onnx(
            model,
            target,
            classes=ClassInfo.from_dict(ameta["classes"]),
            normalization=Normalization.from_dict(ameta["normalization"]),
            input_size=as_hw(size or ameta["input_size"]),
            opset=args.opset,
            head=args.head,
            fold_preprocess=args.fold_preprocess,
            model_name=ameta["model"],
            source_sha256=file_sha256(src),
        )
        metrics["files"]["onnx_fp32"] = {"path": target.name, "size_bytes": info["size_bytes"]}
        metrics["parity"] = None  # against PyTorch, on the gate frames (below)
        return str(target)
    from rdd.export import graph as G

    proto = G.load(src)
    if size is not None:
        proto = G.with_input_size(proto, size, source=str(src))
    if args.head == "lowres":
        proto = G.to_lowres(proto, source=str(src))
    if args.fold_preprocess:
        proto = G.fold_preprocess(proto, source=str(src))
    from rdd.contract import file_sha256

    G.save(proto, target, source_sha256=file_sha256(src))
    metrics["files"]["onnx_fp32"] = {"path": target.name, "size_bytes": target.stat().st_size}
    return str(target)


def _onnx_parity(src: Path, fp32: str, val: Any) -> dict[str, Any]:
    """The FP32 gate of a new ``model.onnx``: against PyTorch for a ``.pt`` (the export stage's
    :func:`rdd.export.parity.compare_parity`), against the source graph for an ``.onnx``
    (:func:`rdd.runtime.measure.score.compare_builds` with the same thresholds)."""
    from rdd.export.parity import DEFAULT_THRESHOLDS, parity_failures

    if src.suffix.lower() == ".pt":
        from rdd.artifacts import load_artifact
        from rdd.export.parity import compare_parity

        model, _ = load_artifact(src)
        rep = compare_parity(model, fp32, val)
        return {k: v for k, v in rep.items() if k != "onnx"}
    from rdd.runtime.backends import open_build
    from rdd.runtime.measure.score import compare_builds

    a, b = open_build(src), open_build(fp32)
    c = compare_builds(a, b, val, a.meta.input_size or "native", ignore_index=a.meta.classes.ignore_index)
    th = DEFAULT_THRESHOLDS
    failures = parity_failures(c, th)
    return {"against": src.name, **c, "thresholds": th, "failures": failures, "passed": not failures}


if __name__ == "__main__":
    raise SystemExit(main(prog="python -m rdd.export.cli"))
