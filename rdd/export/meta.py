"""The ``rdd_meta`` block stored in an exported ONNX file — written by export, read by the runtime.

This module is **torch-free** (numpy + ``onnx`` *or* ``onnxruntime``, imported lazily), so the edge
runtime can call :func:`read_onnx_meta` on a device that only has ``onnxruntime`` installed.

Schema (``docs/DESIGN.md``, "ONNX metadata")::

    {"format": "rdd-edge/1", "model": "lraspp_mobilenetv2",
     "input_name": "image", "input_layout": "NCHW" | "NHWC", "input_dtype": "float32" | "uint8",
     "output_name": "logits" | "labels", "output_kind": "logits" | "labels",
     "normalization": {"mean": [...], "std": [...], "color": "RGB"},
     "classes": {"names": [...], "palette": [[r, g, b], ...], "ignore_index": 255},
     "input_size": [H, W], "dynamic_batch": true, "dynamic_spatial": true}

Logits are ``float32 N×K×H×W``; labels are ``uint8 N×H×W``. With preprocessing folded into the
graph the input is ``uint8 N×H×W×3`` RGB (``NHWC``); otherwise it is ``float32 N×3×H×W``
(``NCHW``) already normalised with :meth:`rdd.spec.Normalization.apply`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from rdd.spec import ClassInfo, Normalization, as_hw

__all__ = ["META_KEY", "PRECISION_KEY", "META_FORMAT", "OnnxMetaError", "build_meta",
           "validate_meta", "read_onnx_meta", "describe_onnx_io"]

META_KEY = "rdd_meta"
#: extra ``metadata_props`` key with the numeric precision of the graph ("fp32" / "int8").
PRECISION_KEY = "rdd_precision"
META_FORMAT = "rdd-edge/1"

_REQUIRED = ("format", "model", "input_name", "input_layout", "input_dtype", "output_name",
             "output_kind", "normalization", "classes", "input_size", "dynamic_batch",
             "dynamic_spatial")


class OnnxMetaError(ValueError):
    """An ONNX file is unreadable, lacks ``rdd_meta`` or its metadata contradicts the graph."""


def build_meta(*, model: str, classes: ClassInfo, normalization: Normalization,
               input_size: Sequence[int], argmax: bool = False, fold_preprocess: bool = False,
               dynamic_batch: bool = True, dynamic_spatial: bool = True) -> dict[str, Any]:
    """The ``rdd_meta`` dict for an export with the given options (key order as in the design)."""
    h, w = as_hw(input_size)
    return {
        "format": META_FORMAT,
        "model": str(model),
        "input_name": "image",
        "input_layout": "NHWC" if fold_preprocess else "NCHW",
        "input_dtype": "uint8" if fold_preprocess else "float32",
        "output_name": "labels" if argmax else "logits",
        "output_kind": "labels" if argmax else "logits",
        "normalization": normalization.to_dict(),
        "classes": classes.to_dict(),
        "input_size": [h, w],
        "dynamic_batch": bool(dynamic_batch),
        "dynamic_spatial": bool(dynamic_spatial),
    }


# ----------------------------------------------------------------------------------- graph I/O
# A tensor description: (name, dtype string, shape) with shape entries int (static) or str/None.
IOSpec = tuple[str, str, list]

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16",
                11: "float64", 9: "bool"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
               "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(float16)": "float16",
               "tensor(double)": "float64", "tensor(bool)": "bool"}


def _io_from_onnx(model: Any) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    def spec(v: Any) -> IOSpec:
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in t.shape.dim] if t.HasField("shape") else []
        return v.name, _ONNX_DTYPES.get(t.elem_type, f"onnx:{t.elem_type}"), shape

    props = {p.key: p.value for p in model.metadata_props}
    inits = {i.name for i in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in inits]
    return props, inputs, [spec(v) for v in model.graph.output]


def _io_from_ort(path: Path) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def spec(a: Any) -> IOSpec:
        return a.name, _ORT_DTYPES.get(a.type, a.type), list(a.shape)

    props = dict(sess.get_modelmeta().custom_metadata_map)
    return props, [spec(a) for a in sess.get_inputs()], [spec(a) for a in sess.get_outputs()]


def describe_onnx_io(path: str | os.PathLike) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    """``(metadata_props, inputs, outputs)`` of an ONNX file, via ``onnx`` if installed, else ORT.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OnnxMetaError: the file is not a readable ONNX model (e.g. truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        import onnx
    except ImportError:  # edge device with onnxruntime only
        onnx = None
    try:
        if onnx is not None:
            model = onnx.load(str(path), load_external_data=False)
            if not model.graph.node and not model.graph.output:
                raise ValueError("the file parses to an empty model (no graph)")
            return _io_from_onnx(model)
        return _io_from_ort(path)
    except OnnxMetaError:
        raise
    except Exception as e:  # protobuf DecodeError, ORT InvalidProtobuf / Fail, ...
        raise OnnxMetaError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r})") from e


# ----------------------------------------------------------------------------------- validation
def validate_meta(meta: Any, inputs: Sequence[IOSpec] | None = None,
                  outputs: Sequence[IOSpec] | None = None, *, source: str = "rdd_meta") -> dict:
    """Check ``meta`` against the schema and, when given, against the graph's inputs/outputs.

    Returns ``meta`` unchanged. Raises :class:`OnnxMetaError` whose message starts with ``source``
    (the file name) and says which key or tensor is wrong and what was expected.
    """
    def fail(msg: str) -> None:
        raise OnnxMetaError(f"{source}: {msg}")

    if not isinstance(meta, dict):
        fail(f"rdd_meta must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        fail(f"rdd_meta is missing key(s) {missing}")
    if meta["format"] != META_FORMAT:
        fail(f"rdd_meta format {meta['format']!r} is not supported (expected {META_FORMAT!r})")
    layout, dtype, kind = meta["input_layout"], meta["input_dtype"], meta["output_kind"]
    if (layout, dtype) not in (("NCHW", "float32"), ("NHWC", "uint8")):
        fail(f"input_layout/input_dtype {layout!r}/{dtype!r}: expected 'NCHW'/'float32' or "
             "'NHWC'/'uint8'")
    if kind not in ("logits", "labels"):
        fail(f"output_kind {kind!r}: expected 'logits' or 'labels'")
    try:
        Normalization.from_dict(meta["normalization"])
        classes = ClassInfo.from_dict(meta["classes"])
        as_hw(meta["input_size"])
    except (ValueError, TypeError) as e:
        fail(f"bad rdd_meta value: {e}")
    for k in ("dynamic_batch", "dynamic_spatial"):
        if not isinstance(meta[k], bool):
            fail(f"{k} must be true/false, got {meta[k]!r}")
    if inputs is None or outputs is None:
        return meta

    # ---- the graph must agree with the metadata
    names = [i[0] for i in inputs]
    if len(inputs) != 1 or names[0] != meta["input_name"]:
        fail(f"rdd_meta input_name {meta['input_name']!r} but the graph's inputs are {names} "
             "(expected exactly one)")
    _, in_dtype, in_shape = inputs[0]
    if in_dtype != dtype:
        fail(f"input {names[0]!r} has dtype {in_dtype} but rdd_meta says {dtype}")
    ch_axis = 1 if layout == "NCHW" else 3
    if len(in_shape) != 4 or in_shape[ch_axis] != 3:
        fail(f"input {names[0]!r} has shape {in_shape}; expected rank 4 with 3 channels on axis "
             f"{ch_axis} ({layout})")
    out = {o[0]: o for o in outputs}
    if meta["output_name"] not in out:
        fail(f"rdd_meta output_name {meta['output_name']!r} is not a graph output "
             f"(outputs: {list(out)})")
    _, o_dtype, o_shape = out[meta["output_name"]]
    want_dtype, want_rank = ("float32", 4) if kind == "logits" else ("uint8", 3)
    if o_dtype != want_dtype or len(o_shape) != want_rank:
        fail(f"output {meta['output_name']!r} is {o_dtype} of shape {o_shape}; output_kind "
             f"{kind!r} expects {want_dtype} of rank {want_rank}")
    if kind == "logits" and isinstance(o_shape[1], int) and o_shape[1] != classes.num_classes:
        fail(f"output {meta['output_name']!r} has {o_shape[1]} channels but rdd_meta lists "
             f"{classes.num_classes} classes")
    sp_axes = (2, 3) if layout == "NCHW" else (1, 2)
    if meta["dynamic_batch"] != (not isinstance(in_shape[0], int)):
        fail(f"dynamic_batch={meta['dynamic_batch']} but input batch dim is {in_shape[0]!r}")
    in_dyn = [not isinstance(in_shape[a], int) for a in sp_axes]
    if meta["dynamic_spatial"] != all(in_dyn):
        fail(f"dynamic_spatial={meta['dynamic_spatial']} but input spatial dims are "
             f"{[in_shape[a] for a in sp_axes]}")
    if not meta["dynamic_spatial"] and [in_shape[a] for a in sp_axes] != list(meta["input_size"]):
        fail(f"static input spatial dims {[in_shape[a] for a in sp_axes]} != rdd_meta input_size "
             f"{meta['input_size']}")
    return meta


def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``metadata_props["rdd_meta"]`` of the ONNX file at ``path``.

    Works without torch (and without the ``onnx`` package: falls back to ``onnxruntime``).

    Returns:
        the ``rdd_meta`` dict (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        OnnxMetaError: not ONNX / truncated, ``rdd_meta`` missing or not JSON, or the metadata is
            inconsistent with the graph's input / output names, dtypes and shapes.
    """
    path = Path(path)
    props, inputs, outputs = describe_onnx_io(path)
    if META_KEY not in props:
        raise OnnxMetaError(f"{path}: no metadata_props[{META_KEY!r}] — not exported by rdd.export "
                            f"(keys present: {sorted(props)})")
    try:
        meta = json.loads(props[META_KEY])
    except json.JSONDecodeError as e:
        raise OnnxMetaError(f"{path}: metadata_props[{META_KEY!r}] is not valid JSON ({e})") from None
    return validate_meta(meta, inputs, outputs, source=str(path))
