"""The export stage: artifact → ONNX FP32 (+ variants) → parity gate → INT8 + gate → TensorRT.

``run_export`` is what ``pipeline/`` calls for the DVC ``export`` stage. Everything it produces
goes to ``out_dir``:

* ``model.onnx`` — FP32 logits graph (float32 ``N×3×H×W`` normalised input);
* ``variants/<name>.onnx`` for each extra variant in ``cfg["variants"]`` (argmax / folded
  preprocessing); the folder always exists (one DVC output however many variants there are);
* ``model_int8.onnx`` — onnxruntime static INT8 (QDQ) of ``model.onnx``;
* ``openvino/`` (always created, one DVC output): ``model_int8.xml`` + ``.bin`` — OpenVINO INT8
  by NNCF post-training quantisation on the same calibration frames, with the same mIoU gate
  (:mod:`rdd.export.openvino`; only where the ``[openvino]`` extra is installed);
* ``trt/`` (always created, one DVC output): ``model_fp16.engine`` / ``model_int8.engine`` —
  TensorRT engines (only where TensorRT runs), each with its sidecar ``model_<prec>.engine.json``
  (rdd_meta + optimisation profile + precision; read by :class:`rdd.runtime.TrtBackend`), the INT8
  calibration cache ``trt_int8_calib_<sha256(model.onnx)[:16]>.cache``, ``trt_timing.cache``, and
  ``status.json`` (what was built or why it was skipped);
* ``export_metrics.json`` — sizes, parity figures, mIoU per precision, latencies.

Configuration (``cfg``; every key optional, defaults below)::

    input_size: null            # [H, W]; default: the artifact's input_size
    opset: 17
    dynamic_batch: true
    dynamic_spatial: true
    simplify: true
    variants: []                # e.g. [{name: model_labels, argmax: true, fold_preprocess: true}]
    parity:  {frames: 32, max_abs_logit_diff: 2.0e-3, min_argmax_agreement: 0.999,
              max_miou_delta: 0.0005}          # mIoU fractions: 0.0005 = 0.05 points
    int8:    {enabled: true, calib_frames: 64, method: minmax, activation_type: quint8,
              weight_type: qint8, per_channel: true, reduce_range: true,
              extra_options: {CalibMovingAverage: true},
              max_miou_drop: 0.01, eval_frames: null,   # 0.01 = 1.0 mIoU point
              keep_float: [input_conv, output_resize],  # stem conv + logits upsampling in float
              openvino: true}           # + NNCF INT8 for OpenVINO where the [openvino] extra is
    tensorrt: {enabled: true, precisions: [fp16, int8], min_size: null, opt_size: null,
               max_size: null, calib_frames: 64, workspace_gb: 2.0}
    benchmark: {enabled: true, threads: 2, warmup: 5, runs: 30, spin: false}

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

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np

from rdd.export.frames import ParityError, load_frames
from rdd.export.quantize import KEEP_FLOAT
from rdd.runtime.backends import make_session
from rdd.runtime.provenance import device_info
from rdd.spec import ClassInfo, Normalization, as_hw, write_json_atomic

__all__ = ["run_export", "validate_export_config", "DEFAULT_CONFIG"]

DEFAULT_CONFIG: dict[str, Any] = {
    "input_size": None,
    "opset": 17,
    "dynamic_batch": True,
    "dynamic_spatial": True,
    "simplify": True,
    "variants": [],
    "parity": {"frames": 32, "max_abs_logit_diff": 2e-3, "min_argmax_agreement": 0.999,
               "max_miou_delta": 0.0005},
    "int8": {"enabled": True, "calib_frames": 64, "method": "minmax",
             "activation_type": "quint8", "weight_type": "qint8", "per_channel": True,
             "reduce_range": True, "extra_options": {"CalibMovingAverage": True},
             "max_miou_drop": 0.01,
             "eval_frames": None, "keep_float": ["input_conv", "output_resize"], "openvino": True},
    "tensorrt": {"enabled": True, "precisions": ["fp16", "int8"], "min_size": None,
                 "opt_size": None, "max_size": None, "calib_frames": 64, "workspace_gb": 2.0},
    "benchmark": {"enabled": True, "threads": 2, "warmup": 5, "runs": 30, "spin": False},
}


def _merge_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_CONFIG`` updated with ``cfg``; unknown keys raise ``ValueError`` naming them."""
    out = copy.deepcopy(DEFAULT_CONFIG)
    for k, v in (cfg or {}).items():
        if k not in out:
            raise ValueError(f"export config: unknown key {k!r}; expected one of {sorted(out)}")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ValueError(f"export config: {k!r} must be a mapping, got {v!r}")
            bad = set(v) - set(out[k])
            if bad:
                raise ValueError(f"export config: unknown key(s) {sorted(bad)} in {k!r}; "
                                 f"expected {sorted(out[k])}")
            out[k].update(v)
        else:
            out[k] = v
    for i, var in enumerate(out["variants"]):
        if not isinstance(var, dict) or "name" not in var or set(var) - {"name", "argmax",
                                                                         "fold_preprocess"}:
            raise ValueError(f"export config: variants[{i}] must be {{name, argmax, "
                             f"fold_preprocess}}, got {var!r}")
    return out


def _bad(key: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"export.{key} must be {expected}, got {got!r}")


def validate_export_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``cfg`` (the ``export`` section of ``params.yaml``) merged with :data:`DEFAULT_CONFIG`
    and checked, before any work.

    Returns:
        the merged configuration (a new dict; ``cfg`` is not modified).

    Raises:
        ValueError: an unknown key or a bad value; the message names the key as
            ``export.<key>`` (e.g. ``export.opset must be an integer >= 17, got 0``).
    """
    from rdd.export.onnx import MIN_OPSET
    from rdd.export.quantize import CALIB_METHODS

    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ValueError(f"export must be a mapping of export options, got {cfg!r}")
    for k, v in cfg.items():
        if k not in DEFAULT_CONFIG:
            raise ValueError(f"unknown key 'export.{k}' "
                             f"(expected one of: {', '.join(sorted(DEFAULT_CONFIG))})")
        if isinstance(DEFAULT_CONFIG[k], dict):
            if not isinstance(v, dict):
                raise _bad(k, "a mapping", v)
            bad = sorted(set(v) - set(DEFAULT_CONFIG[k]))
            if bad:
                raise ValueError(f"unknown key 'export.{k}.{bad[0]}' "
                                 f"(expected one of: {', '.join(sorted(DEFAULT_CONFIG[k]))})")
    c = _merge_config(cfg)

    def integer(key: str, v: Any, lo: int, *, null: bool = False) -> None:
        if v is None and null:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _bad(key, f"an integer >= {lo}" + (" or null" if null else ""), v)

    def number(key: str, v: Any, *, lo: float = 0.0, hi: float | None = None,
               positive: bool = False) -> None:
        ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and np.isfinite(v)
              and (v > lo if positive else v >= lo) and (hi is None or v <= hi))
        if not ok:
            rng = f"{'>' if positive else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
            raise _bad(key, f"a number {rng}", v)

    def flag(key: str, v: Any) -> None:
        if not isinstance(v, bool):
            raise _bad(key, "true or false", v)

    def size(key: str, v: Any) -> None:
        if v is None:
            return
        items = v if isinstance(v, (list, tuple)) else [v]
        try:
            if any(isinstance(x, bool) or not isinstance(x, int) for x in items):
                raise ValueError
            as_hw(v)
        except (TypeError, ValueError):
            raise _bad(key, "a positive size [H, W] (or H) or null", v) from None

    size("input_size", c["input_size"])
    integer("opset", c["opset"], MIN_OPSET)
    for k in ("dynamic_batch", "dynamic_spatial", "simplify"):
        flag(k, c[k])
    if not isinstance(c["variants"], list):
        raise _bad("variants", "a list of {name, argmax, fold_preprocess}", c["variants"])
    names: set[str] = set()
    for i, var in enumerate(c["variants"]):
        name = var.get("name")
        if (not isinstance(name, str) or not name or "/" in name or "\\" in name
                or name in ("model", "model_int8") or name in names):
            raise _bad(f"variants[{i}].name", "a unique file stem other than model / model_int8",
                       name)
        names.add(name)
        for k in ("argmax", "fold_preprocess"):
            if k in var:
                flag(f"variants[{i}].{k}", var[k])
    p = c["parity"]
    integer("parity.frames", p["frames"], 1, null=True)
    number("parity.max_abs_logit_diff", p["max_abs_logit_diff"])
    number("parity.min_argmax_agreement", p["min_argmax_agreement"])
    number("parity.max_miou_delta", p["max_miou_delta"], hi=1.0)
    q = c["int8"]
    flag("int8.enabled", q["enabled"])
    integer("int8.calib_frames", q["calib_frames"], 1, null=True)
    integer("int8.eval_frames", q["eval_frames"], 1, null=True)
    if q["method"] not in CALIB_METHODS:
        raise _bad("int8.method", f"one of {', '.join(CALIB_METHODS)}", q["method"])
    for k in ("activation_type", "weight_type"):
        if q[k] not in ("quint8", "qint8"):
            raise _bad(f"int8.{k}", "quint8 or qint8", q[k])
    flag("int8.per_channel", q["per_channel"])
    flag("int8.reduce_range", q["reduce_range"])
    if not isinstance(q["extra_options"], dict):
        raise _bad("int8.extra_options", "a mapping", q["extra_options"])
    number("int8.max_miou_drop", q["max_miou_drop"], hi=1.0)
    flag("int8.openvino", q["openvino"])
    if (not isinstance(q["keep_float"], (list, tuple))
            or not set(q["keep_float"]) <= set(KEEP_FLOAT)):
        raise _bad("int8.keep_float", f"a list of some of {', '.join(KEEP_FLOAT)}", q["keep_float"])
    t = c["tensorrt"]
    flag("tensorrt.enabled", t["enabled"])
    precs = t["precisions"]
    if (not isinstance(precs, list) or not precs
            or any(pr not in ("fp32", "fp16", "int8") for pr in precs)):
        raise _bad("tensorrt.precisions", "a non-empty list of fp32 / fp16 / int8", precs)
    for k in ("min_size", "opt_size", "max_size"):
        size(f"tensorrt.{k}", t[k])
    integer("tensorrt.calib_frames", t["calib_frames"], 1, null=True)
    number("tensorrt.workspace_gb", t["workspace_gb"], positive=True)
    b = c["benchmark"]
    flag("benchmark.enabled", b["enabled"])
    integer("benchmark.threads", b["threads"], 1)
    integer("benchmark.warmup", b["warmup"], 0)
    integer("benchmark.runs", b["runs"], 1)
    flag("benchmark.spin", b["spin"])
    return c


def run_export(artifact_path: str | os.PathLike, out_dir: str | os.PathLike, *,
               calib_dataset: Any, val_dataset: Any,
               cfg: dict[str, Any] | None = None) -> dict[str, Any]:
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
    import torch

    from rdd.artifacts import load_artifact
    from rdd.export.onnx import export_onnx
    from rdd.export.parity import compare_parity, evaluate_onnx, miou_gate
    from rdd.export.quantize import quantize_int8
    from rdd.export.tensorrt import build_engine

    c = validate_export_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, ameta = load_artifact(artifact_path)
    classes = ClassInfo.from_dict(ameta["classes"])
    norm = Normalization.from_dict(ameta["normalization"])
    size = as_hw(c["input_size"] or ameta["input_size"])
    export_kw = dict(classes=classes, normalization=norm, input_size=size, opset=c["opset"],
                     dynamic_batch=c["dynamic_batch"], dynamic_spatial=c["dynamic_spatial"],
                     simplify=c["simplify"], model_name=ameta["model"])
    thresholds = {k: v for k, v in c["parity"].items() if k != "frames"}
    val = load_frames(val_dataset, size=size, limit=c["parity"]["frames"])
    metrics: dict[str, Any] = {"model": ameta["model"], "model_kwargs": ameta["model_kwargs"],
                               "input_size": list(size), "val_frames": len(val),
                               "eval": {"size": list(size), "image_resize": "bilinear",
                                        "mask_resize": "nearest_exact"},
                               "files": {},
                               "miou": {}, "gates": {}, "passed": True,
                               "device": device_info()}
    metrics_path = out_dir / "export_metrics.json"

    def fail(err: ParityError) -> None:
        metrics["passed"] = False
        metrics["error"] = str(err)
        write_json_atomic(metrics_path, metrics)
        raise err

    # ---- FP32 ONNX + parity gate
    fp32 = export_onnx(model, out_dir / "model.onnx", **export_kw)
    metrics["files"]["onnx_fp32"] = _file(fp32, out_dir)
    metrics["onnx"] = {k: fp32[k] for k in ("opset", "simplified", "simplify_error", "num_nodes",
                                            "export_seconds")}
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
        info = export_onnx(model, variants_dir / f"{var['name']}.onnx", **export_kw,
                           argmax=bool(var.get("argmax")),
                           fold_preprocess=bool(var.get("fold_preprocess")))
        metrics["files"][var["name"]] = _file(info, out_dir)
        vrep = compare_parity(model, info["path"], val, thresholds=thresholds)
        metrics.setdefault("parity_variants", {})[var["name"]] = _slim(vrep)
        metrics["gates"][f"parity_{var['name']}"] = vrep["passed"]
        if not vrep["passed"]:
            fail(ParityError(f"ONNX parity gate failed for {info['path']}", vrep))

    # ---- INT8 (onnxruntime static QDQ) + mIoU gate
    int8_path = None
    ov_dir = out_dir / "openvino"   # always created: one DVC output (NNCF INT8 IR when installed)
    ov_dir.mkdir(parents=True, exist_ok=True)
    if c["int8"]["enabled"]:
        q = c["int8"]
        qinfo = quantize_int8(fp32["path"], out_dir / "model_int8.onnx", calib_frames=calib_dataset,
                              calib_limit=q["calib_frames"], method=q["method"],
                              activation_type=q["activation_type"], weight_type=q["weight_type"],
                              per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                              extra_options=q["extra_options"], keep_float=q["keep_float"])
        int8_path = qinfo["path"]
        metrics["files"]["onnx_int8"] = _file(qinfo, out_dir)
        ev_frames = val if q["eval_frames"] is None else load_frames(val_dataset, size=size,
                                                                     limit=q["eval_frames"])
        ev32 = (evaluate_onnx(fp32["path"], ev_frames) if q["eval_frames"] is not None
                else {"miou": rep["miou_onnx"]})
        ev8 = evaluate_onnx(int8_path, ev_frames)
        agree = _agreement(fp32["path"], int8_path, ev_frames)
        metrics["miou"]["ort_int8"] = ev8["miou"]
        metrics["int8"] = {**{k: qinfo[k] for k in ("calib_frames", "method", "activation_type",
                                                    "weight_type", "per_channel", "reduce_range",
                                                    "extra_options", "seconds",
                                                    "preprocess_error", "float_nodes")},
                           "miou_fp32": ev32["miou"], "miou_int8": ev8["miou"],
                           "miou_drop": ev32["miou"] - ev8["miou"],
                           "argmax_agreement_vs_fp32": agree}
        try:
            gate = miou_gate(ev32["miou"], ev8["miou"], max_drop=q["max_miou_drop"],
                             what=f"INT8 ({int8_path})", extra={"argmax_agreement_vs_fp32": agree})
            metrics["gates"]["int8_miou"] = gate["passed"]
        except ParityError as e:
            metrics["gates"]["int8_miou"] = False
            fail(e)
        if q["openvino"]:  # NNCF INT8 for OpenVINO: same calibration frames, same gate
            from rdd.export.openvino import openvino_int8_stage

            try:
                metrics["openvino_int8"] = openvino_int8_stage(
                    fp32["path"], ov_dir, calib_frames=calib_dataset, calib_limit=q["calib_frames"],
                    eval_frames=ev_frames, miou_fp32=ev32["miou"], max_miou_drop=q["max_miou_drop"])
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
        from rdd.export.tensorrt import int8_calib_cache_path

        t = c["tensorrt"]
        metrics["tensorrt"] = {}
        calib_cache = (int8_calib_cache_path(fp32["path"], trt_dir) if "int8" in t["precisions"]
                       else None)
        for prec in t["precisions"]:
            try:
                metrics["tensorrt"][prec] = build_engine(
                    fp32["path"], trt_dir / f"model_{prec}.engine", precision=prec,
                    min_size=t["min_size"], opt_size=t["opt_size"], max_size=t["max_size"],
                    calib_frames=calib_dataset if prec == "int8" else None,
                    calib_limit=t["calib_frames"], workspace_gb=t["workspace_gb"],
                    calib_cache=calib_cache,
                    timing_cache=trt_dir / "trt_timing.cache")
            except Exception as e:  # noqa: BLE001 — a TensorRT failure must not hide ONNX results
                metrics["tensorrt"][prec] = {"status": f"failed: {type(e).__name__}: {e}"}
    write_json_atomic(trt_dir / "status.json", metrics.get("tensorrt", {"status": "disabled"}))

    # ---- latency at batch 1 on this machine
    if c["benchmark"]["enabled"]:
        b = c["benchmark"]
        metrics["latency_ms"] = _latencies(model, fp32["path"], int8_path, size, b["threads"],
                                           b["warmup"], b["runs"], b["spin"], torch)
        lat = metrics["latency_ms"]
        metrics["speedup"] = {"ort_fp32_vs_torch": lat["torch_eager"]["p50"] / lat["ort_fp32"]["p50"]}
        if int8_path:
            metrics["speedup"]["ort_int8_vs_ort_fp32"] = (lat["ort_fp32"]["p50"]
                                                          / lat["ort_int8"]["p50"])
            metrics["int8"]["speedup_vs_fp32"] = metrics["speedup"]["ort_int8_vs_ort_fp32"]
    write_json_atomic(metrics_path, metrics)
    return metrics


def _file(info: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``{path relative to out_dir, size}`` of a written file."""
    return {"path": Path(info["path"]).relative_to(out_dir).as_posix(),
            "size_bytes": info["size_bytes"]}


def _slim(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rep.items() if k != "onnx"}


def _agreement(a: str, b: str, frames: list) -> float:
    """Fraction of pixels where graphs ``a`` and ``b`` predict the same class (via the runtime)."""
    from rdd.export.parity import run_backend
    from rdd.runtime import OrtBackend

    ba, bb = OrtBackend(a, spin=False), OrtBackend(b, spin=False)
    same = total = 0
    for f in frames:
        la = run_backend(ba, f.image[None])[1]
        lb = run_backend(bb, f.image[None])[1]
        same += int((la == lb).sum())
        total += la.size
    return same / total


def _latencies(model: Any, fp32: str, int8: str | None, size: tuple[int, int], threads: int,
               warmup: int, runs: int, spin: bool, torch: Any) -> dict[str, dict[str, float]]:
    """p50/p90/p99 (ms) at batch 1 for torch eager, ORT FP32 and ORT INT8 (same thread count).

    Timed with :func:`rdd.runtime.timing.measure_interleaved` (warm-up >= 200 ms and ``warmup``
    calls, then ``runs`` calls each, in interleaved rounds so load changes hit every row alike).
    ORT threads do not busy-wait by default (``spin``): on a shared CPU spinning threads of one
    session starve everything else (measured: eager 0.58 s → 2.5 s next to a spinning session).
    """
    from rdd.runtime.timing import measure_interleaved

    h, w = size
    x = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
    xt = torch.from_numpy(x)
    model.eval()

    def eager() -> None:
        with torch.inference_mode():
            model(xt)

    fns: dict[str, Any] = {"torch_eager": eager}
    for key, path in (("ort_fp32", fp32), ("ort_int8", int8)):
        if path is None:
            continue
        sess = make_session(path, threads=threads, spin=spin)
        name = sess.get_inputs()[0].name
        fns[key] = (lambda s, n: (lambda: s.run(None, {n: x})))(sess, name)
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stats = measure_interleaved(fns, rounds=min(3, runs), warmup_runs=warmup,
                                    duration_s=0.0, min_runs=runs)
    finally:
        torch.set_num_threads(prev)
    return {k: {n: v for n, v in st.items() if n != "round_p50"} for k, st in stats.items()}
