"""The one bound on every model-builder argument (:data:`KWARG_LIMITS`, checked by
:func:`check_model_kwargs` on every build), so that a ``model.json`` or a params file cannot ask
for a network of hundreds of gigabytes (``width_mult: 1000``) or smuggle in a value of another
type. :func:`rdd.models.registry.register_model` refuses a builder argument missing here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "KWARG_LIMITS",
    "check_model_kwargs",
    "MAX_WIDTH_MULT",
    "MAX_NUM_CLASSES",
    "OUTPUT_STRIDES",
]

MAX_WIDTH_MULT = 2.0
MAX_NUM_CLASSES = 255  # train ids are uint8 below the ignore index (rdd.spec.ClassInfo)
OUTPUT_STRIDES = (8, 16, 32)  # rdd.models.backbones and heads support these


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num_classes(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_NUM_CLASSES
    return None if ok else f"must be an integer in [1, {MAX_NUM_CLASSES}]"


def _width_mult(v: Any) -> str | None:
    if not _real(v):
        return f"must be a number in (0, {MAX_WIDTH_MULT:g}]"
    if not v > 0:
        return "must be > 0"
    return None if v <= MAX_WIDTH_MULT else f"must be <= {MAX_WIDTH_MULT:g}"


def _source(v: Any) -> str | None:
    ok = v is None or isinstance(v, os.PathLike) or (isinstance(v, str) and 0 < len(v) <= 4096)
    return None if ok else "must be null or a path or URL (at most 4096 characters)"


#: Builder argument → check (an error text, or ``None`` when the value is fine).
KWARG_LIMITS: dict[str, Callable[[Any], str | None]] = {
    "num_classes": _num_classes,
    "width_mult": _width_mult,
    "output_stride": lambda v: (
        None if not isinstance(v, bool) and v in OUTPUT_STRIDES else "must be 8, 16 or 32"
    ),
    "aux": lambda v: None if isinstance(v, bool) else "must be true or false",
    "backbone_weights": _source,
    "norm_layer": lambda v: (
        None
        if v is None or v in ("batchnorm", "syncbatchnorm") or callable(v)
        else "must be null, batchnorm, syncbatchnorm or (in code) a callable"
    ),
}


def check_model_kwargs(kwargs: dict[str, Any]) -> None:
    """``ValueError`` naming the first builder argument outside :data:`KWARG_LIMITS`."""
    for k, v in kwargs.items():
        msg = KWARG_LIMITS[k](v)
        if msg:
            r = repr(v)
            raise ValueError(f"{k} {msg}, got {r if len(r) <= 60 else r[:57] + '...'}")
