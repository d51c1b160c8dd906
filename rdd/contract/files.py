"""ONNX metadata and sidecar files of the deployment contract (see :mod:`rdd.contract`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdd.contract.fields import FieldError, check_size, short
from rdd.contract.model_meta import (
    ENGINE_SIDECAR_FORMAT,
    META_KEY,
    PRECISION_KEY,
    InputError,
    IOSpec,
    ModelMeta,
    resolve_max_pixels,
)
from rdd.offline import installed
from rdd.spec import loads_json, write_json_atomic

__all__ = [
    "describe_onnx_io",
    "read_onnx_props",
    "ort_session_io",
    "meta_from_props",
    "read_onnx_meta",
    "engine_sidecar_path",
    "write_engine_sidecar",
    "read_engine_sidecar",
    "apply_profile",
    "sidecar_meta",
    "file_sha256",
]

_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    10: "float16",
    11: "float64",
    9: "bool",
}
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bool)": "bool",
}


# ------------------------------------------------------------------------------ ONNX files
def _io_from_onnx(model: Any) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    def spec(v: Any) -> IOSpec:
        t = v.type.tensor_type
        shape = (
            [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
            if t.HasField("shape")
            else []
        )
        return v.name, _ONNX_DTYPES.get(t.elem_type, f"onnx:{t.elem_type}"), shape

    props = {p.key: p.value for p in model.metadata_props}
    inits = {i.name for i in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in inits]
    return props, inputs, [spec(v) for v in model.graph.output]


def ort_session_io(session: Any) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    """``(metadata_props, inputs, outputs)`` of an ``onnxruntime.InferenceSession``."""

    def spec(a: Any) -> IOSpec:
        return a.name, _ORT_DTYPES.get(a.type, a.type), list(a.shape)

    props = dict(session.get_modelmeta().custom_metadata_map)
    return props, [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


def describe_onnx_io(path: str | os.PathLike) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    """``(metadata_props, inputs, outputs)`` of an ONNX file, read with ``onnx`` if installed,
    else onnxruntime, else OpenVINO (a device with any one runtime reads the contract).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InputError: the file is not a readable ONNX model (e.g. truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    reader = next((m for m in ("onnx", "onnxruntime", "openvino") if installed(m)), None)
    if reader is None:
        raise InputError(
            f"{path}: reading an ONNX model needs onnx, onnxruntime or openvino; "
            "install one runtime: pip install 'rdd-edge[cpu]' (or [openvino])"
        )
    try:
        if reader == "onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            if not model.graph.node and not model.graph.output:
                raise ValueError("the file parses to an empty model (no graph)")
            return _io_from_onnx(model)
        if reader == "openvino":  # a device with only the [openvino] extra
            from rdd.offline import import_openvino

            return _io_from_openvino(import_openvino().Core().read_model(str(path)))
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort_session_io(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]))
    except Exception as e:  # protobuf DecodeError, ORT InvalidProtobuf / Fail, ...
        text = str(e).strip()
        raise InputError(
            f"{path}: not a readable ONNX model ({type(e).__name__}: "
            f"{text.splitlines()[0] if text else repr(e)})"
        ) from None


def read_onnx_props(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file (through whichever of onnx / onnxruntime / OpenVINO is
    installed; errors as :func:`describe_onnx_io`)."""
    return describe_onnx_io(path)[0]


_OV_DTYPES = {
    "f32": "float32",
    "u8": "uint8",
    "i8": "int8",
    "i32": "int32",
    "i64": "int64",
    "f16": "float16",
    "f64": "float64",
    "boolean": "bool",
}


def _io_from_openvino(model: Any) -> tuple[dict[str, str], list[IOSpec], list[IOSpec]]:
    """``(metadata_props, inputs, outputs)`` of an ``openvino.Model`` read from an ONNX file (its
    ONNX frontend keeps ``metadata_props`` in ``rt_info["framework"]``)."""

    def spec(port: Any, i: int) -> IOSpec:
        names = sorted(port.get_names())
        t = port.get_element_type().get_type_name()
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        return names[0] if names else f"tensor{i}", _OV_DTYPES.get(t, f"openvino:{t}"), shape

    props = {}
    for key in (META_KEY, PRECISION_KEY):
        if model.has_rt_info(["framework", key]):
            props[key] = str(model.get_rt_info(["framework", key]).astype(str))
    return (
        props,
        [spec(p, i) for i, p in enumerate(model.inputs)],
        [spec(p, i) for i, p in enumerate(model.outputs)],
    )


def meta_from_props(props: dict[str, str], *, source: str, max_pixels: int | None = None) -> ModelMeta | None:
    """:class:`ModelMeta` from ``metadata_props`` (``None`` when there is no ``rdd_meta``)."""
    if META_KEY not in props:
        return None
    return ModelMeta.from_json(props[META_KEY], source=source, max_pixels=max_pixels)


def read_onnx_meta(path: str | os.PathLike, *, max_pixels: int | None = None) -> ModelMeta:
    """Read ``metadata_props["rdd_meta"]`` of the ONNX file at ``path``, checked against its graph.

    Works without torch (and without the ``onnx`` package: falls back to ``onnxruntime``).

    Raises:
        FileNotFoundError: no such file.
        InputError: not ONNX / truncated, ``rdd_meta`` missing, not JSON or invalid, or the
            metadata is inconsistent with the graph's input / output names, dtypes and shapes.
    """
    path = Path(path)
    props, inputs, outputs = describe_onnx_io(path)
    meta = meta_from_props(props, source=str(path), max_pixels=max_pixels)
    if meta is None:
        raise InputError(
            f"{path}: no metadata_props[{META_KEY!r}]; not exported by rdd.export "
            f"(keys present: {sorted(props)})"
        )
    return meta.check_graph(inputs, outputs, source=str(path))


# ------------------------------------------------------------------------------ sidecars
def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def engine_sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``<engine file name>.json`` (``model_fp16.engine`` → ``model_fp16.engine.json``).

    The full file name is kept so an engine's sidecar never collides with the ``.json`` of an
    ONNX model of the same stem (``model_int8.engine`` vs ``model_int8.onnx``).
    """
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_engine_sidecar(
    engine_path: str | os.PathLike,
    *,
    meta: ModelMeta,
    profile: dict[str, Sequence[int]],
    precision: str,
    onnx_path: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<engine file name>.json`` atomically; returns its path.

    Content (format ``rdd-edge-engine/1``, see docs/DESIGN.md)::

        {"format": "rdd-edge-engine/1", "rdd_meta": {...ONNX rdd_meta...},
         "precision": "fp16", "profile": {"input": "image", "min": [1,3,360,480],
         "opt": [...], "max": [...]}, "onnx": "model.onnx", "onnx_sha256": "...", ...extra}

    ``profile`` is ``{"min", "opt", "max"}`` full input shapes of optimisation profile 0.
    """
    missing = {"min", "opt", "max"} - set(profile)
    if missing:
        raise ValueError(
            f"write_engine_sidecar: profile lacks {sorted(missing)}; expected {{min, opt, max}} input shapes"
        )
    for k in ("min", "opt", "max"):
        if len(profile[k]) != 4:
            raise ValueError(
                f"write_engine_sidecar: profile[{k!r}] must be a 4-d input shape, got {list(profile[k])}"
            )
    d: dict[str, Any] = {
        "format": ENGINE_SIDECAR_FORMAT,
        META_KEY: meta.to_dict(),
        "precision": precision,
        "profile": {
            "input": meta.input_name,
            **{k: [int(v) for v in profile[k]] for k in ("min", "opt", "max")},
        },
    }
    if onnx_path is not None:
        d["onnx"] = os.path.basename(os.fspath(onnx_path))
        d["onnx_sha256"] = file_sha256(onnx_path)
    d.update(extra or {})
    side = engine_sidecar_path(engine_path)
    write_json_atomic(side, d)
    return side


def _profile_hw(shape: Any, layout: str, where: str) -> tuple[int, int]:
    try:
        dims = [int(v) for v in shape]
    except (TypeError, ValueError):
        raise InputError(f"{where}: profile shape must be a list of 4 ints, got {shape!r}") from None
    if len(dims) != 4 or min(dims) <= 0:
        raise InputError(f"{where}: profile shape must be 4 positive ints ({layout}), got {dims}")
    return (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])


def apply_profile(
    meta: ModelMeta, min_shape: Any, max_shape: Any, *, source: str = "engine", max_pixels: int | None = None
) -> ModelMeta:
    """``meta`` restricted to the input shapes of a TensorRT optimisation profile.

    ``min_shape`` / ``max_shape`` are full input shapes (``N×3×H×W`` or ``N×H×W×3``). Equal
    spatial bounds make the model fixed-size (``dynamic_spatial=False``, ``input_size`` = that
    size); otherwise ``min_size`` / ``max_size`` bound what the runtime feeds it. Equal batch
    bounds make the batch static. A size above ``max_pixels`` is an :class:`InputError`.
    """
    lo = _profile_hw(min_shape, meta.input_layout, source)
    hi = _profile_hw(max_shape, meta.input_layout, source)
    if not (lo[0] <= hi[0] and lo[1] <= hi[1]):
        raise InputError(f"{source}: profile min {list(min_shape)} exceeds max {list(max_shape)}")
    try:
        check_size(list(lo), "min", resolve_max_pixels(max_pixels))
        if lo == hi:
            check_size(list(hi), "max", resolve_max_pixels(max_pixels))
    except FieldError as e:
        raise InputError(f"{source}: profile {e.key} {e.msg}") from None
    dyn_batch = meta.dynamic_batch and int(min_shape[0]) != int(max_shape[0])
    if lo == hi:
        return meta.with_(
            input_size=lo, dynamic_spatial=False, min_size=None, max_size=None, dynamic_batch=dyn_batch
        )
    return meta.with_(min_size=lo, max_size=hi, dynamic_batch=dyn_batch)


def _read_json(path: Path, what: str) -> Any:
    try:
        return loads_json(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read {what} ({' '.join(str(e).split())})") from None


def read_engine_sidecar(
    engine_path: str | os.PathLike, *, max_pixels: int | None = None
) -> tuple[ModelMeta, dict[str, Any]] | None:
    """``(ModelMeta, sidecar dict)`` from :func:`engine_sidecar_path`, or ``None`` if absent.

    The returned meta already has the profile applied (:func:`apply_profile`).
    """
    side = engine_sidecar_path(engine_path)
    if not side.is_file():
        return None
    d = _read_json(side, "engine metadata")
    if not isinstance(d, dict) or not isinstance(d.get(META_KEY), dict):
        raise InputError(
            f"{side}: expected a JSON object with an '{META_KEY}' object (format {ENGINE_SIDECAR_FORMAT})"
        )
    meta = ModelMeta.from_dict(d[META_KEY], source=str(side), max_pixels=max_pixels)
    prof = d.get("profile")
    if prof is not None:
        if not isinstance(prof, dict) or not {"min", "max"} <= set(prof):
            raise InputError(f"{side}: 'profile' must be {{input, min, opt, max}}, got {short(prof)}")
        meta = apply_profile(meta, prof["min"], prof["max"], source=str(side), max_pixels=max_pixels)
    return meta, d


def sidecar_meta(path: str | os.PathLike, *, max_pixels: int | None = None) -> ModelMeta | None:
    """``ModelMeta`` from ``<stem>.json`` next to a model file, or ``None`` if there is none.

    The JSON is a bare ``rdd_meta``, ``{"rdd_meta": {...}}`` or a training artifact's sidecar
    (``rdd.artifacts``: ``model_kwargs`` and no ``input_layout``).
    """
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return None
    d = _read_json(side, "model metadata")
    if isinstance(d, dict) and isinstance(d.get(META_KEY), dict):
        d = d[META_KEY]
    if isinstance(d, dict) and "input_layout" not in d and "model_kwargs" in d:
        return ModelMeta.from_artifact_json(d, source=str(side), max_pixels=max_pixels)
    return ModelMeta.from_dict(d, source=str(side), max_pixels=max_pixels)
