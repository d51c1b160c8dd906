"""What a deployed model expects and predicts, read from the model's own metadata (torch-free).

The exporter (``rdd.export``) stores a JSON dict under ONNX ``metadata_props["rdd_meta"]``
(see ``docs/DESIGN.md``); a training artifact (``rdd.artifacts``) stores an equivalent JSON
sidecar. :class:`ModelMeta` is the runtime's parsed, validated view of either.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rdd.spec import ClassInfo, Normalization, as_hw

__all__ = ["InputError", "ModelMeta", "RDD_META_KEY", "ENGINE_SIDECAR_FORMAT", "engine_sidecar_path",
           "read_engine_sidecar", "apply_profile", "sidecar_meta"]

RDD_META_KEY = "rdd_meta"
ENGINE_SIDECAR_FORMAT = "rdd-edge-engine/1"
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("float32", "float16", "uint8")
_KINDS = ("logits", "labels")


class InputError(ValueError):
    """A user-facing problem with an input (model, video, camera, images, labels).

    Its message is one line naming the file / device and what was expected; ``deploy/infer.py``
    prints it as ``error: <message>`` and exits non-zero.
    """


@dataclass(frozen=True)
class ModelMeta:
    """Parsed ``rdd_meta``.

    Attributes:
        model: architecture name (``"lraspp_mobilenetv2"``) or ``"unknown"``.
        input_name / output_name: graph tensor names.
        input_layout: ``"NCHW"`` (float input made by :meth:`Normalization.apply`) or ``"NHWC"``
            (uint8 RGB frames, preprocessing folded into the graph).
        input_dtype: ``"float32"``, ``"float16"`` or ``"uint8"``.
        output_kind: ``"logits"`` (``N×K×H×W``) or ``"labels"`` (``N×H×W`` ids).
        normalization / classes: see :mod:`rdd.spec`.
        input_size: ``(H, W)`` the model was exported / evaluated at, or ``None``.
        dynamic_batch / dynamic_spatial: whether those axes accept any size.
        min_size / max_size: ``(H, W)`` range a spatially dynamic model accepts (a TensorRT
            optimisation profile), ``None`` = unbounded. ``min_size == max_size`` is a fixed size.
    """

    model: str
    input_name: str
    input_layout: str
    input_dtype: str
    output_name: str
    output_kind: str
    normalization: Normalization
    classes: ClassInfo
    input_size: tuple[int, int] | None
    dynamic_batch: bool = True
    dynamic_spatial: bool = True
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.input_layout not in _LAYOUTS:
            raise InputError(f"rdd_meta.input_layout must be one of {_LAYOUTS}, got {self.input_layout!r}")
        if self.input_dtype not in _DTYPES:
            raise InputError(f"rdd_meta.input_dtype must be one of {_DTYPES}, got {self.input_dtype!r}")
        if self.output_kind not in _KINDS:
            raise InputError(f"rdd_meta.output_kind must be one of {_KINDS}, got {self.output_kind!r}")
        if not self.dynamic_spatial and self.input_size is None:
            raise InputError("rdd_meta: a model without dynamic_spatial needs input_size [H, W]")
        if self.min_size and self.max_size and not all(
                self.min_size[i] <= self.max_size[i] for i in range(2)):
            raise InputError(f"rdd_meta: min_size {list(self.min_size)} exceeds max_size "
                             f"{list(self.max_size)}")

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(H, W)`` every input must have, or ``None`` when the spatial axes are dynamic."""
        if not self.dynamic_spatial:
            return self.input_size
        if self.min_size is not None and self.min_size == self.max_size:
            return self.min_size
        return None

    def clamp_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """``hw`` clamped per axis into ``[min_size, max_size]`` (the fixed size if there is one)."""
        if self.fixed_size is not None:
            return tuple(self.fixed_size)
        h, w = int(hw[0]), int(hw[1])
        if self.min_size is not None:
            h, w = max(h, self.min_size[0]), max(w, self.min_size[1])
        if self.max_size is not None:
            h, w = min(h, self.max_size[0]), min(w, self.max_size[1])
        return h, w

    def with_(self, **changes: Any) -> "ModelMeta":
        return replace(self, **changes)

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "model") -> "ModelMeta":
        """Parse an ``rdd_meta`` dict; :class:`InputError` names ``source`` and the bad key."""
        if not isinstance(d, dict):
            raise InputError(f"{source}: rdd_meta must be a JSON object, got {type(d).__name__}")
        try:
            size = d.get("input_size")
            return cls(
                model=str(d.get("model", "unknown")),
                input_name=str(d.get("input_name", "image")),
                input_layout=str(d.get("input_layout", "NCHW")).upper(),
                input_dtype=str(d.get("input_dtype", "float32")),
                output_name=str(d.get("output_name", "logits")),
                output_kind=str(d.get("output_kind", "logits")),
                normalization=Normalization.from_dict(d["normalization"]),
                classes=ClassInfo.from_dict(d["classes"]),
                input_size=as_hw(size) if size else None,
                dynamic_batch=bool(d.get("dynamic_batch", True)),
                dynamic_spatial=bool(d.get("dynamic_spatial", True)),
                min_size=as_hw(d["min_size"]) if d.get("min_size") else None,
                max_size=as_hw(d["max_size"]) if d.get("max_size") else None,
            )
        except KeyError as e:
            raise InputError(f"{source}: rdd_meta is missing key {e.args[0]!r}") from None
        except InputError as e:
            raise InputError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"{source}: invalid rdd_meta ({e})") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "model") -> "ModelMeta":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}: rdd_meta is not valid JSON ({e})") from None
        return cls.from_dict(d, source=source)

    @classmethod
    def from_artifact_json(cls, d: dict[str, Any], *, source: str = "artifact") -> "ModelMeta":
        """Meta of a training artifact sidecar (``rdd.artifacts``): NCHW float32 in, logits out."""
        missing = [k for k in ("classes", "normalization") if k not in d]
        if missing:
            raise InputError(f"{source}: artifact metadata is missing key {missing[0]!r}")
        return cls.from_dict({
            "model": d.get("model", "unknown"), "input_name": "image", "input_layout": "NCHW",
            "input_dtype": "float32", "output_name": "logits", "output_kind": "logits",
            "normalization": d["normalization"], "classes": d["classes"],
            "input_size": d.get("input_size"), "dynamic_batch": True, "dynamic_spatial": True,
        }, source=source)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "rdd-edge/1", "model": self.model, "input_name": self.input_name,
                "input_layout": self.input_layout, "input_dtype": self.input_dtype,
                "output_name": self.output_name, "output_kind": self.output_kind,
                "normalization": self.normalization.to_dict(), "classes": self.classes.to_dict(),
                "input_size": list(self.input_size) if self.input_size else None,
                "dynamic_batch": self.dynamic_batch, "dynamic_spatial": self.dynamic_spatial,
                **({"min_size": list(self.min_size)} if self.min_size else {}),
                **({"max_size": list(self.max_size)} if self.max_size else {})}


def engine_sidecar_path(engine_path: str | Path) -> Path:
    """``<engine file name>.json`` (``model_fp16.engine`` → ``model_fp16.engine.json``).

    The full file name is kept so an engine's sidecar never collides with the ``.json`` of an
    ONNX model of the same stem (``model_int8.engine`` vs ``model_int8.onnx``).
    """
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def _profile_hw(shape: Any, layout: str, where: str) -> tuple[int, int]:
    try:
        dims = [int(v) for v in shape]
    except (TypeError, ValueError):
        raise InputError(f"{where}: profile shape must be a list of 4 ints, got {shape!r}") from None
    if len(dims) != 4 or min(dims) <= 0:
        raise InputError(f"{where}: profile shape must be 4 positive ints ({layout}), got {dims}")
    return (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])


def apply_profile(meta: ModelMeta, min_shape: Any, max_shape: Any, *,
                  source: str = "engine") -> ModelMeta:
    """``meta`` restricted to the input shapes of a TensorRT optimisation profile.

    ``min_shape`` / ``max_shape`` are full input shapes (``N×3×H×W`` or ``N×H×W×3``). Equal
    spatial bounds make the model fixed-size (``dynamic_spatial=False``, ``input_size`` = that
    size); otherwise ``min_size`` / ``max_size`` bound what the runtime feeds it. Equal batch
    bounds make the batch static.
    """
    lo = _profile_hw(min_shape, meta.input_layout, source)
    hi = _profile_hw(max_shape, meta.input_layout, source)
    if not (lo[0] <= hi[0] and lo[1] <= hi[1]):
        raise InputError(f"{source}: profile min {list(min_shape)} exceeds max {list(max_shape)}")
    dyn_batch = meta.dynamic_batch and int(min_shape[0]) != int(max_shape[0])
    if lo == hi:
        return meta.with_(input_size=lo, dynamic_spatial=False, min_size=None, max_size=None,
                          dynamic_batch=dyn_batch)
    return meta.with_(min_size=lo, max_size=hi, dynamic_batch=dyn_batch)


def read_engine_sidecar(engine_path: str | Path) -> tuple[ModelMeta, dict[str, Any]] | None:
    """``(ModelMeta, sidecar dict)`` from :func:`engine_sidecar_path`, or ``None`` if absent.

    The sidecar (written by :func:`rdd.export.tensorrt.write_engine_sidecar`) is
    ``{"format": "rdd-edge-engine/1", "rdd_meta": {...}, "precision": ..., "profile":
    {"input": name, "min": [...], "opt": [...], "max": [...]}, ...}``; the returned meta already
    has the profile applied (:func:`apply_profile`).
    """
    side = engine_sidecar_path(engine_path)
    if not side.is_file():
        return None
    try:
        d = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{side}: cannot read engine metadata ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get(RDD_META_KEY), dict):
        raise InputError(f"{side}: expected a JSON object with an '{RDD_META_KEY}' object "
                         f"(format {ENGINE_SIDECAR_FORMAT})")
    meta = ModelMeta.from_dict(d[RDD_META_KEY], source=str(side))
    prof = d.get("profile")
    if prof is not None:
        if not isinstance(prof, dict) or not {"min", "max"} <= set(prof):
            raise InputError(f"{side}: 'profile' must be {{input, min, opt, max}}, got {prof!r}")
        meta = apply_profile(meta, prof["min"], prof["max"], source=str(side))
    return meta, d


def sidecar_meta(path: Path) -> ModelMeta | None:
    """``ModelMeta`` from ``<path>.json`` next to a model file (bare rdd_meta or ``{"rdd_meta": …}``)."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        d = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{side}: cannot read model metadata ({e})") from None
    if isinstance(d, dict) and isinstance(d.get(RDD_META_KEY), dict):
        d = d[RDD_META_KEY]
    if isinstance(d, dict) and "input_layout" not in d and "model_kwargs" in d:
        return ModelMeta.from_artifact_json(d, source=str(side))
    return ModelMeta.from_dict(d, source=str(side))
