"""The checks of ``rdd_meta``'s fields and the values they accept (see :mod:`rdd.contract`).

Each check returns the parsed value or raises :class:`FieldError` naming the key;
:meth:`rdd.contract.ModelMeta.from_dict` turns it into a one-line ``InputError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rdd.spec import ClassInfo, Normalization

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "MEAN_RANGE",
    "STD_RANGE",
    "HEADS",
    "UPSAMPLE_MODES",
    "COORDINATE_TRANSFORMS",
    "FieldError",
    "short",
    "is_int",
    "check_text",
    "check_flag",
    "check_choice",
    "check_size",
    "check_normalization",
    "check_classes",
    "check_head",
]

#: Largest ``H·W`` accepted for ``input_size`` (and a TensorRT profile) unless raised: 4096×4096
#: (DCI 4K fits; a float32 N×3×H×W input plus 11-class logits is ~1 GB at this size).
DEFAULT_MAX_PIXELS = 4096 * 4096
MAX_PIXELS_ENV = "RDD_MAX_INPUT_PIXELS"
#: Accepted normalisation values, in [0, 1] pixel units: ``(x/255 - mean) / std``.
MEAN_RANGE = (-10.0, 10.0)
STD_RANGE = (1e-4, 1e4)
#: ``rdd_meta.head``: what turns the graph's logits into input-size labels. ``full`` (the key
#: absent, every file before it): the graph ends at input-size logits. ``lowres``: the graph ends
#: at the head's stride-``output_stride`` logits, before the final upsampling, which the runtime
#: does as the dropped op did (``upsample`` with ``coordinate_transformation``).
HEADS = ("full", "lowres")
UPSAMPLE_MODES = ("bilinear",)
COORDINATE_TRANSFORMS = ("half_pixel",)


class FieldError(Exception):
    """A bad value at ``key`` (turned into an :class:`~rdd.contract.InputError` naming source and key)."""

    def __init__(self, key: str, msg: str) -> None:
        super().__init__(key, msg)
        self.key, self.msg = key, msg


def short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_text(v: Any, key: str) -> str:
    if not isinstance(v, str) or not v or not v.isprintable():
        raise FieldError(key, f"must be a non-empty printable string, got {short(v)}")
    return v


def check_flag(v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise FieldError(key, f"must be true/false, got {short(v)}")
    return v


def check_choice(v: Any, key: str, choices: Sequence[str]) -> str:
    if v not in choices:
        raise FieldError(key, f"must be one of {list(choices)}, got {short(v)}")
    return v


def check_size(v: Any, key: str, max_pixels: int) -> tuple[int, int]:
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(is_int(s) and s > 0 for s in v):
        raise FieldError(key, f"must be [H, W] with positive integers, got {short(v)}")
    h, w = int(v[0]), int(v[1])
    if h * w > max_pixels:
        raise FieldError(
            key,
            f"{[h, w]} is {h * w} pixels, above the limit of {max_pixels} "
            f"(raise it with --max-input-pixels or {MAX_PIXELS_ENV})",
        )
    return h, w


def _floats3(v: Any, key: str, lo: float, hi: float) -> tuple[float, float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise FieldError(key, f"must be a list of 3 numbers, got {short(v)}")
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not lo <= x <= hi:
            raise FieldError(f"{key}[{i}]", f"must be a finite number in [{lo:g}, {hi:g}], got {short(x)}")
    return tuple(float(x) for x in v)  # type: ignore[return-value]


def check_normalization(d: Any, key: str) -> Normalization:
    if not isinstance(d, dict):
        raise FieldError(key, f"must be an object {{mean, std, color}}, got {short(d)}")
    for k in ("mean", "std"):
        if k not in d:
            raise FieldError(key, f"is missing key {k!r}")
    extra = sorted(set(d) - {"mean", "std", "color"})
    if extra:
        raise FieldError(key, f"has unknown key(s) {extra}; expected mean, std, color")
    return Normalization(
        mean=_floats3(d["mean"], f"{key}.mean", *MEAN_RANGE),
        std=_floats3(d["std"], f"{key}.std", *STD_RANGE),
        color=check_choice(d.get("color", "RGB"), f"{key}.color", ("RGB", "BGR")),
    )


def check_classes(d: Any, key: str) -> ClassInfo:
    if not isinstance(d, dict):
        raise FieldError(key, f"must be an object {{names, palette, ignore_index}}, got {short(d)}")
    if "names" not in d:
        raise FieldError(key, "is missing key 'names'")
    extra = sorted(set(d) - {"names", "palette", "ignore_index"})
    if extra:
        raise FieldError(key, f"has unknown key(s) {extra}; expected names, palette, ignore_index")
    names = d["names"]
    if not isinstance(names, list) or not 1 <= len(names) <= 255:
        raise FieldError(f"{key}.names", f"must be a list of 1 to 255 class names, got {short(names)}")
    for i, n in enumerate(names):
        check_text(n, f"{key}.names[{i}]")
        if n in names[:i]:
            raise FieldError(
                f"{key}.names[{i}]",
                f"repeats {key}.names[{names.index(n)}] {short(n)}; class names must be unique",
            )
    palette = d.get("palette", [])
    if not isinstance(palette, list) or palette and len(palette) != len(names):
        got = len(palette) if isinstance(palette, list) else short(palette)
        raise FieldError(
            f"{key}.palette", f"must list one [r, g, b] per class name ({len(names)}), got {got}"
        )
    for i, c in enumerate(palette):
        if not isinstance(c, (list, tuple)) or len(c) != 3 or not all(is_int(v) and 0 <= v <= 255 for v in c):
            raise FieldError(
                f"{key}.palette[{i}]", f"must be [r, g, b] with integers in 0..255, got {short(c)}"
            )
    ignore = d.get("ignore_index", 255)
    if not is_int(ignore) or not len(names) <= ignore <= 255:
        raise FieldError(
            f"{key}.ignore_index",
            f"must be an integer in [{len(names)}, 255] (at least "
            f"the number of classes), got {short(ignore)}",
        )
    return ClassInfo(names=tuple(names), palette=tuple(map(tuple, palette)), ignore_index=ignore)


def check_head(v: Any, key: str) -> dict[str, Any]:
    """``rdd_meta.head`` → ``{"head", "output_stride"}`` (see :data:`HEADS`)."""
    if not isinstance(v, dict):
        raise FieldError(
            key,
            f"must be an object {{kind, upsample, coordinate_transformation, output_stride}}, got {short(v)}",
        )
    unknown = sorted(set(v) - {"kind", "upsample", "coordinate_transformation", "output_stride"})
    if unknown:
        raise FieldError(key, f"has unknown key(s) {unknown}")
    kind = check_choice(v.get("kind"), f"{key}.kind", HEADS)
    if kind == "full":
        return {"head": "full"}
    check_choice(v.get("upsample"), f"{key}.upsample", UPSAMPLE_MODES)
    check_choice(
        v.get("coordinate_transformation"), f"{key}.coordinate_transformation", COORDINATE_TRANSFORMS
    )
    stride = v.get("output_stride")
    if not is_int(stride) or not 1 <= stride <= 64:
        raise FieldError(f"{key}.output_stride", f"must be an integer in [1, 64], got {short(stride)}")
    return {"head": kind, "output_stride": stride}
