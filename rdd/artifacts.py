"""A stage's deliverable: ``NAME.pt`` (state dict only) + ``NAME.json`` (how to rebuild and use it).

Sidecar (DESIGN.md, "Artifacts")::

    {"model": name, "model_kwargs": {...}, "classes": ClassInfo.to_dict(),
     "normalization": Normalization.to_dict(), "input_size": [H, W], "metrics": {...}}

Both files are written atomically (:func:`rdd.spec.atomic_path`); the weights first, then the
sidecar, so a sidecar never points at half-written weights. The weights are byte-reproducible
(:func:`rdd.serialization.save_torch_file`: the same weights give the same ``NAME.pt`` bytes) and
read with ``weights_only=True`` (:func:`rdd.serialization.load_torch_file`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rdd.models import SegmentationModel, create_model, unwrap_model
from rdd.serialization import load_torch_file, save_torch_file
from rdd.spec import ClassInfo, Normalization, as_hw, loads_json, write_json_atomic

__all__ = ["save_artifact", "load_artifact", "artifact_paths", "read_artifact_meta"]

FORMAT = "rdd-edge-artifact/1"
_REQUIRED = ("model", "model_kwargs", "classes", "normalization", "input_size")


def artifact_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``out/model``, ``out/model.pt`` or ``out/model.json`` → ``(out/model.pt, out/model.json)``."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".pt", ".json", ".pth") else p
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def _jsonable(obj: Any, where: str) -> Any:
    """Validate (and normalise tuples → lists) that ``obj`` survives a JSON round trip."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # strict JSON has no NaN / Infinity
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return _jsonable(obj.item(), where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise ValueError(f"artifact: {where} = {obj!r} ({type(obj).__name__}) is not JSON-serialisable")


def save_artifact(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    classes: ClassInfo | Mapping[str, Any],
    normalization: Normalization | Mapping[str, Any],
    input_size,
    metrics: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``NAME.pt`` (the model's ``state_dict``) and ``NAME.json``; return both paths.

    ``model`` may be wrapped (DDP, ``torch.compile``); it must come from
    :func:`rdd.models.create_model` so that ``model_name``/``model_kwargs`` rebuild it.
    """
    m = unwrap_model(model)
    classes = classes if isinstance(classes, ClassInfo) else ClassInfo.from_dict(dict(classes))
    normalization = (
        normalization
        if isinstance(normalization, Normalization)
        else Normalization.from_dict(dict(normalization))
    )
    if classes.num_classes != m.num_classes:
        raise ValueError(
            f"artifact: classes has {classes.num_classes} names but the model "
            f"predicts {m.num_classes} classes"
        )
    meta = {
        "format": FORMAT,
        "model": m.model_name,
        "model_kwargs": _jsonable(dict(m.model_kwargs), "model_kwargs"),
        "classes": classes.to_dict(),
        "normalization": normalization.to_dict(),
        "input_size": list(as_hw(input_size)),
        "metrics": _jsonable(dict(metrics or {}), "metrics"),
    }
    pt, js = artifact_paths(path)
    state = {k: v.detach().cpu() for k, v in m.state_dict().items()}
    save_torch_file(state, pt)  # the same weights give the same bytes (DVC sees no change)
    write_json_atomic(js, meta)
    return pt, js


def read_artifact_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the JSON sidecar of an artifact (no torch model is built)."""
    pt, js = artifact_paths(path)
    if not js.is_file():
        raise FileNotFoundError(
            f"artifact sidecar not found: {js} (expected next to {pt}; "
            "artifacts are written by rdd.artifacts.save_artifact)"
        )
    try:
        meta = loads_json(js.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"artifact sidecar {js} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"artifact sidecar {js}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"artifact sidecar {js} is missing keys {missing}")
    if not isinstance(meta["model_kwargs"], dict):
        raise ValueError(f"artifact sidecar {js}: 'model_kwargs' must be an object")
    try:
        ClassInfo.from_dict(meta["classes"])  # names unique, palette and ignore index valid
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"artifact sidecar {js}: classes: {e}") from None
    return meta


def load_artifact(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[SegmentationModel, dict]:
    """Rebuild the model from ``NAME.json``, load ``NAME.pt`` strictly; return ``(model.eval(), meta)``.

    Nothing is fetched: ``model_kwargs.backbone_weights`` is ignored (the weights are ``NAME.pt``),
    and the other kwargs must lie within :data:`rdd.models.registry.KWARG_LIMITS`.

    ``meta`` is the sidecar dict as written (use ``ClassInfo.from_dict(meta["classes"])`` and
    ``Normalization.from_dict(meta["normalization"])`` for typed access).
    """
    pt, js = artifact_paths(path)
    meta = read_artifact_meta(path)
    if not pt.is_file():
        raise FileNotFoundError(f"artifact weights not found: {pt} (sidecar {js} exists)")
    kwargs = dict(meta["model_kwargs"])
    num_classes = kwargs.pop("num_classes", None)
    if num_classes is None:
        num_classes = len(meta["classes"].get("names", []))
    if "backbone_weights" in kwargs:  # the weights are NAME.pt: no pretrained source is read,
        kwargs["backbone_weights"] = None  # fetched or copied, whatever the sidecar names
    try:
        model = create_model(meta["model"], num_classes, **kwargs)
    except (ValueError, TypeError) as e:
        raise ValueError(f"artifact sidecar {js}: cannot rebuild model: {e}") from None
    state = load_torch_file(pt, what="artifact weights")  # weights_only: nothing in it runs
    if not isinstance(state, Mapping):
        raise ValueError(f"artifact weights {pt}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"artifact weights {pt} do not match {meta['model']} {kwargs} from {js}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), meta
