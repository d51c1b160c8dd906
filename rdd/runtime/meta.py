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

__all__ = ["InputError", "ModelMeta", "RDD_META_KEY"]

RDD_META_KEY = "rdd_meta"
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

    def __post_init__(self) -> None:
        if self.input_layout not in _LAYOUTS:
            raise InputError(f"rdd_meta.input_layout must be one of {_LAYOUTS}, got {self.input_layout!r}")
        if self.input_dtype not in _DTYPES:
            raise InputError(f"rdd_meta.input_dtype must be one of {_DTYPES}, got {self.input_dtype!r}")
        if self.output_kind not in _KINDS:
            raise InputError(f"rdd_meta.output_kind must be one of {_KINDS}, got {self.output_kind!r}")
        if not self.dynamic_spatial and self.input_size is None:
            raise InputError("rdd_meta: a model without dynamic_spatial needs input_size [H, W]")

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(H, W)`` every input must have, or ``None`` when the spatial axes are dynamic."""
        return None if self.dynamic_spatial else self.input_size

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
                "dynamic_batch": self.dynamic_batch, "dynamic_spatial": self.dynamic_spatial}


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
