"""The export stage: artifact → ONNX FP32 (+ variants) → parity gate → INT8 + gate → TensorRT.

``run_export`` is what ``pipeline/`` calls for the DVC ``export`` stage. Everything it produces
goes to ``out_dir``:

* ``model.onnx`` — FP32 graph with the ``head`` (default ``lowres``: the head's logits, which
  the runtime upsamples exactly) and input (``fold_preprocess``: uint8 frames) of the config;
* ``variants/<name>.onnx`` for each extra variant in ``cfg["variants"]`` (argmax / folded
  preprocessing / the other head: ``head_agreement`` in the metrics is its argmax agreement
  with ``model.onnx`` on each backend); the folder always exists (one DVC output);
* ``model_int8.onnx`` — onnxruntime static INT8 (QDQ) of ``model.onnx``;
* ``openvino/`` (always created, one DVC output): ``model_int8.xml`` + ``.bin`` — OpenVINO INT8
  by NNCF post-training quantisation on the same calibration frames, with the same mIoU gate
  (:mod:`rdd.export.openvino`; only where the ``[openvino]`` extra is installed);
* ``trt/`` (always created, one DVC output): ``model_fp16.engine`` / ``model_int8.engine`` —
  TensorRT engines (only where TensorRT runs), each with its sidecar ``model_<prec>.engine.json``
  (rdd_meta + optimisation profile + precision; read by :class:`rdd.runtime.TrtBackend`); INT8 is
  built explicitly from ``model_int8_qdq.onnx`` (symmetric Q/DQ, same calibration frames; the
  entropy calibration cache ``trt_int8_calib_<sha256(model.onnx)[:16]>.cache`` only when INT8
  quantisation is disabled), ``trt_timing.cache``, and
  ``status.json`` (what was built or why it was skipped);
* ``export_metrics.json`` — sizes, parity figures, mIoU per precision, latencies.

Configuration (``cfg``): the ``export`` section of ``params.yaml``, an
:class:`rdd.config.export.ExportConfig` (keys, defaults and ranges: ``docs/PARAMS.md``); a plain
mapping is checked against it first.

Resolution. The export size is ``input_size`` (default: the artifact's ``input_size``, which the
training engine sets to the size it evaluated at: the native validation size, or
``data.eval_size``). It is written into the ONNX ``rdd_meta.input_size`` and is the size
``deploy/infer.py`` runs at by default, and the TensorRT profile's default min = opt = max.

mIoU scoring. Every mIoU in the metrics (torch, ORT FP32/INT8) is scored the same way as the
training evaluation (:class:`rdd.data.EvalTransform` with ``size=input_size``): each validation
frame is resized to ``input_size`` (image bilinear, mask ``INTER_NEAREST_EXACT``; no resize when
the frame already has that size) and the confusion matrix is accumulated at ``input_size``. When
``input_size`` equals the training ``eval_size`` (the default) the figures are directly comparable
to the training stage's validation mIoU; with another ``input_size`` they are that size's mIoU
(``metrics["eval"]`` records the size and how masks were resized). Values are fractions in
[0, 1] on ``parity.frames`` evenly spaced validation frames (``null`` = all of them). Latencies
are milliseconds at batch 1 on the machine that runs the stage, with ``benchmark.threads``
threads for every backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rdd.export.parity import ParityError
from rdd.runtime.measure.frames import load_frames
from rdd.runtime.provenance import device_info
from rdd.spec import ClassInfo, Normalization, as_hw, write_json_atomic

__all__ = ["run_export", "export_config"]


def export_config(cfg: Any = None) -> dict[str, Any]:
    """``cfg`` (an :class:`~rdd.config.export.ExportConfig`, a mapping of some of its keys, or
    ``None``) as the checked, defaults-filled plain dict ``run_export`` reads. A bad mapping
    raises ``ValueError`` naming ``export.<key>``."""
    from rdd.config.export import ExportConfig
    from rdd.config.walker import as_dict, build

    if not isinstance(cfg, ExportConfig):
        cfg = build(ExportConfig, cfg, "export")
    return as_dict(cfg)


def run_export(
    artifact_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    calib_dataset: Any,
    val_dataset: Any,
    cfg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the student artifact, gate it, quantise it, build engines and measure everything.

    Args:
        artifact_path: ``model.pt`` / ``model.json`` written by :func:`rdd.artifacts.save_artifact`.
        out_dir: stage folder (created).
        calib_dataset: training frames for INT8 calibration (dataset with ``load`` or images).
        val_dataset: validation frames with masks for the parity / mIoU gates.
        cfg: see the module docstring.

    Returns:
        the metrics dict, also written to ``out_dir/export_metrics.json``.

    Raises:
        ParityError: the FP32 parity gate or the INT8 mIoU gate failed (the metrics file is
            still written, with ``"passed": false``, so the failure can be inspected).
    """
    from rdd.artifacts import load_artifact
    from rdd.contract import file_sha256
    from rdd.export.onnx import export_onnx
    from rdd.export.parity import agreement, compare_parity
    from rdd.export.quantize import quantize_int8
    from rdd.export.tensorrt import build_engine
    from rdd.runtime.backends import available, open_build

    c = export_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, ameta = load_artifact(artifact_path)
    classes = ClassInfo.from_dict(ameta["classes"])
    norm = Normalization.from_dict(ameta["normalization"])
    size = as_hw(c["input_size"] or ameta["input_size"])
    export_kw = dict(
        classes=classes,
        normalization=norm,
        input_size=size,
        opset=c["opset"],
        dynamic_batch=c["dynamic_batch"],
        dynamic_spatial=c["dynamic_spatial"],
        simplify=c["simplify"],
        model_name=ameta["model"],
        source_sha256=file_sha256(artifact_path),
    )
    thresholds = {k: v for k, v in c["parity"].items() if k != "frames"}
    val = load_frames(val_dataset, size=size, limit=c["parity"]["frames"])
    metrics: dict[str, Any] = {
        "model": ameta["model"],
        "model_kwargs": ameta["model_kwargs"],
        "input_size": list(size),
        "val_frames": len(val),
        "eval": {"size": list(size), "image_resize": "bilinear", "mask_resize": "nearest_exact"},
        "files": {},
        "miou": {},
        "gates": {},
        "passed": True,
        "device": device_info(),
    }
    metrics_path = out_dir / "export_metrics.json"

    def fail(err: ParityError) -> None:
        metrics["passed"] = False
        metrics["error"] = str(err)
        write_json_atomic(metrics_path, metrics)
        raise err

    # ---- FP32 ONNX + parity gate
    fp32 = export_onnx(
        model, out_dir / "model.onnx", **export_kw, head=c["head"], fold_preprocess=c["fold_preprocess"]
    )
    metrics["files"]["onnx_fp32"] = _file(fp32, out_dir)
    metrics["onnx"] = {
        k: fp32[k] for k in ("opset", "simplified", "simplify_error", "num_nodes", "export_seconds")
    }
    rep = compare_parity(model, fp32["path"], val, thresholds=thresholds)
    metrics["parity"] = _slim(rep)
    metrics["gates"]["parity_fp32"] = rep["passed"]
    metrics["miou"].update(torch=rep["miou_torch"], ort_fp32=rep["miou_onnx"])
    if not rep["passed"]:
        fail(ParityError(f"ONNX parity gate failed for {fp32['path']}", rep))

    # ---- extra variants (argmax / folded preprocessing), each gated
    variants_dir = out_dir / "variants"
    variants_dir.mkdir(parents=True, exist_ok=True)
    for var in c["variants"]:
        info = export_onnx(
            model,
            variants_dir / f"{var['name']}.onnx",
            **export_kw,
            argmax=bool(var.get("argmax")),
            head=var["head"],
            fold_preprocess=bool(var.get("fold_preprocess")),
        )
        metrics["files"][var["name"]] = _file(info, out_dir)
        vrep = compare_parity(model, info["path"], val, thresholds=thresholds)
        metrics.setdefault("parity_variants", {})[var["name"]] = _slim(vrep)
        metrics["gates"][f"parity_{var['name']}"] = vrep["passed"]
        if not vrep["passed"]:
            fail(ParityError(f"ONNX parity gate failed for {info['path']}", vrep))
        if var["head"] != c["head"] and not var.get("argmax"):
            # one head against the other, on each backend here (the lowres head's claim: the
            # same labels as the full one's, on every pixel)
            metrics.setdefault("head_agreement", {})[var["name"]] = {
                be: agreement(open_build(fp32["path"], backend=be), open_build(info["path"], backend=be), val)
                for be in ("ort", "openvino")
                if available(be) is None
            }

    # ---- INT8 (onnxruntime static QDQ) + mIoU gate
    int8_path = None
    ov_dir = out_dir / "openvino"  # always created: one DVC output (NNCF INT8 IR when installed)
    ov_dir.mkdir(parents=True, exist_ok=True)
    if c["int8"]["enabled"]:
        q = c["int8"]
        ev_frames = (
            val if q["eval_frames"] is None else load_frames(val_dataset, size=size, limit=q["eval_frames"])
        )
        miou32 = rep["miou_onnx"] if q["eval_frames"] is None else None
        try:
            block = int8_step(
                fp32["path"],
                out_dir / "model_int8.onnx",
                q,
                calib=calib_dataset,
                eval_frames=ev_frames,
                miou_fp32=miou32,
            )
        except ParityError as e:
            metrics["gates"]["int8_miou"] = False
            metrics["int8"] = e.block
            fail(e)
        int8_path = str(out_dir / "model_int8.onnx")
        metrics["files"]["onnx_int8"] = block.pop("file")
        metrics["miou"]["ort_int8"] = block["miou_int8"]
        metrics["int8"] = block
        metrics["gates"]["int8_miou"] = True
        ev32 = {"miou": block["miou_fp32"]}
        if q["openvino"]:  # NNCF INT8 for OpenVINO: same calibration frames, same gate
            from rdd.export.openvino import openvino_int8_stage

            try:
                metrics["openvino_int8"] = openvino_int8_stage(
                    fp32["path"],
                    ov_dir,
                    calib_frames=calib_dataset,
                    calib_limit=q["calib_frames"],
                    eval_frames=ev_frames,
                    miou_fp32=ev32["miou"],
                    max_miou_drop=q["max_miou_drop"],
                )
            except ParityError as e:
                metrics["openvino_int8"] = e.block
                metrics["gates"]["openvino_int8_miou"] = False
                fail(e)
            if metrics["openvino_int8"]["status"] == "ok":
                metrics["gates"]["openvino_int8_miou"] = metrics["openvino_int8"]["gate"]

    # ---- TensorRT (skipped cleanly without it)
    trt_dir = out_dir / "trt"
    trt_dir.mkdir(parents=True, exist_ok=True)
    if c["tensorrt"]["enabled"]:
        from rdd.export.tensorrt import TRT_QDQ_OPTIONS, int8_calib_cache_path, tensorrt_available

        t = c["tensorrt"]
        metrics["tensorrt"] = {}
        calib_cache = int8_calib_cache_path(fp32["path"], trt_dir) if "int8" in t["precisions"] else None
        for prec in t["precisions"]:
            try:
                src = fp32["path"]
                if prec == "int8" and c["int8"]["enabled"] and tensorrt_available():
                    # explicit quantisation: a symmetric Q/DQ graph from the same calibration frames
                    src = quantize_int8(
                        fp32["path"],
                        trt_dir / "model_int8_qdq.onnx",
                        calib_frames=calib_dataset,
                        calib_limit=c["int8"]["calib_frames"],
                        keep_float=c["int8"]["keep_float"],
                        **TRT_QDQ_OPTIONS,
                    )["path"]
                metrics["tensorrt"][prec] = build_engine(
                    src,
                    trt_dir / f"model_{prec}.engine",
                    precision=prec,
                    min_size=t["min_size"],
                    opt_size=t["opt_size"],
                    max_size=t["max_size"],
                    calib_frames=calib_dataset if prec == "int8" else None,
                    calib_limit=t["calib_frames"],
                    workspace_gb=t["workspace_gb"],
                    calib_cache=calib_cache,
                    timing_cache=trt_dir / "trt_timing.cache",
                )
            except Exception as e:  # noqa: BLE001 — a TensorRT failure must not hide ONNX results
                metrics["tensorrt"][prec] = {"status": f"failed: {type(e).__name__}: {e}"}
    write_json_atomic(trt_dir / "status.json", metrics.get("tensorrt", {"status": "disabled"}))

    # ---- latency at batch 1 on this machine
    if c["benchmark"]["enabled"]:
        b = c["benchmark"]
        metrics["latency_ms"] = _latencies(
            artifact_path, fp32["path"], int8_path, size, b["threads"], b["warmup"], b["runs"]
        )
        lat = metrics["latency_ms"]
        metrics["speedup"] = {"ort_fp32_vs_torch": lat["torch_eager"]["p50"] / lat["ort_fp32"]["p50"]}
        if int8_path:
            metrics["speedup"]["ort_int8_vs_ort_fp32"] = lat["ort_fp32"]["p50"] / lat["ort_int8"]["p50"]
            metrics["int8"]["speedup_vs_fp32"] = metrics["speedup"]["ort_int8_vs_ort_fp32"]
    write_json_atomic(metrics_path, metrics)
    return metrics


def int8_step(
    fp32: str | os.PathLike,
    out: str | os.PathLike,
    q: Any,
    *,
    calib: Any,
    eval_frames: Any,
    miou_fp32: float | None = None,
) -> dict[str, Any]:
    """ONNX Runtime static INT8 of ``fp32`` at ``out`` with the ``export.int8`` settings ``q``
    (a mapping or :class:`~rdd.config.export.Int8`), scored through the runtime on
    ``eval_frames`` and gated on the mIoU drop (labelled frames) — the export stage's step and
    ``rdd-export --to int8``'s. Returns the metrics block; raises :class:`ParityError` (its
    ``block`` set) when the gate fails."""
    from rdd.config.export import Int8
    from rdd.config.walker import as_dict
    from rdd.export.parity import agreement, evaluate_onnx, miou_gate
    from rdd.export.quantize import quantize_int8
    from rdd.runtime.backends import open_build

    q = as_dict(q) if isinstance(q, Int8) else dict(q)
    out = Path(out)
    qinfo = quantize_int8(
        fp32,
        out,
        calib_frames=calib,
        calib_limit=q["calib_frames"],
        method=q["method"],
        activation_type=q["activation_type"],
        weight_type=q["weight_type"],
        per_channel=q["per_channel"],
        reduce_range=q["reduce_range"],
        extra_options=q["extra_options"],
        keep_float=q["keep_float"],
    )
    if miou_fp32 is None:
        miou_fp32 = evaluate_onnx(fp32, eval_frames)["miou"]
    miou8 = evaluate_onnx(out, eval_frames)["miou"]
    agree = agreement(open_build(fp32, backend="ort"), open_build(out, backend="ort"), eval_frames)
    block = {
        **{
            k: qinfo[k]
            for k in (
                "calib_frames",
                "method",
                "activation_type",
                "weight_type",
                "per_channel",
                "reduce_range",
                "extra_options",
                "seconds",
                "preprocess_error",
                "float_nodes",
            )
        },
        "miou_fp32": miou_fp32,
        "miou_int8": miou8,
        "miou_drop": miou_fp32 - miou8,
        "argmax_agreement_vs_fp32": agree,
        "file": {"path": out.name, "size_bytes": qinfo["size_bytes"]},
    }
    miou_gate(
        miou_fp32,
        miou8,
        max_drop=q["max_miou_drop"],
        what=f"INT8 ({out})",
        extra={"argmax_agreement_vs_fp32": agree},
        block=block,
    )
    return block


def _file(info: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``{path relative to out_dir, size}`` of a written file."""
    return {"path": Path(info["path"]).relative_to(out_dir).as_posix(), "size_bytes": info["size_bytes"]}


def _slim(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rep.items() if k != "onnx"}


def _latencies(
    artifact: Any, fp32: str, int8: str | None, size: tuple[int, int], threads: int, warmup: int, runs: int
) -> dict[str, dict[str, float]]:
    """p50/p90/p99 (ms) at batch 1 for torch eager (the artifact), ORT FP32 and ORT INT8, each
    opened with :func:`rdd.runtime.backends.open_build` with ``threads`` threads and timed by
    the project's one harness (:func:`rdd.runtime.measure.harness.time_builds`, as ``rdd-bench``
    times them)."""
    from rdd.runtime.backends import open_build
    from rdd.runtime.measure.harness import time_builds

    builds = {
        k: open_build(p, backend=be, threads=threads)
        for k, p, be in (
            ("torch_eager", artifact, "torch"),
            ("ort_fp32", fp32, "ort"),
            ("ort_int8", int8, "ort"),
        )
        if p is not None
    }
    stats = time_builds(builds, size, rounds=min(3, runs), warmup_runs=warmup, duration_s=0.0, min_runs=runs)
    return {k: {n: v for n, v in st.items() if n != "round_p50"} for k, st in stats.items()}
