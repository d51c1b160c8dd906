"""``ModelMeta``: the parsed, validated ``rdd_meta`` (see :mod:`rdd.contract`); the checks of its
fields are :mod:`rdd.contract.fields`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rdd.contract.fields import (
    COORDINATE_TRANSFORMS,
    DEFAULT_MAX_PIXELS,
    HEADS,
    MAX_PIXELS_ENV,
    UPSAMPLE_MODES,
    FieldError,
    check_choice,
    check_classes,
    check_flag,
    check_head,
    check_normalization,
    check_size,
    check_text,
    is_int,
    short,
)
from rdd.spec import ClassInfo, Normalization, loads_json

__all__ = [
    "META_KEY",
    "PRECISION_KEY",
    "META_FORMAT",
    "ENGINE_SIDECAR_FORMAT",
    "InputError",
    "ModelMeta",
    "IOSpec",
    "resolve_max_pixels",
]

META_KEY = "rdd_meta"
#: extra ``metadata_props`` key with the numeric precision of the graph ("fp32" / "int8").
PRECISION_KEY = "rdd_precision"
META_FORMAT = "rdd-edge/1"
ENGINE_SIDECAR_FORMAT = "rdd-edge-engine/1"

_REQUIRED = (
    "format",
    "model",
    "input_name",
    "input_layout",
    "input_dtype",
    "output_name",
    "output_kind",
    "normalization",
    "classes",
    "input_size",
    "dynamic_batch",
    "dynamic_spatial",
)
_OPTIONAL = ("min_size", "max_size", "head")
#: input layout → accepted input dtypes; output kind → (accepted dtypes, rank)
_LAYOUT_DTYPES = {"NCHW": ("float32", "float16"), "NHWC": ("uint8",)}
_OUTPUTS = {"logits": (("float32", "float16"), 4), "labels": (("uint8", "int32", "int64"), 3)}

#: A graph tensor: (name, dtype name, shape) with shape entries int (static) or str/None.
IOSpec = tuple[str, str, list]


class InputError(ValueError):
    """A user-facing problem with an input (model, its metadata, video, camera, images, labels).

    Its message is one line naming the file / key and what was expected; the runner CLI prints it
    as ``error: <message>`` and exits with code 2.
    """


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """``max_pixels``, else ``$RDD_MAX_INPUT_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    if max_pixels is None:
        env = os.environ.get(MAX_PIXELS_ENV)
        if env is None:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(env)
        except ValueError:
            raise InputError(f"{MAX_PIXELS_ENV} must be a positive integer, got {env!r}") from None
    if isinstance(max_pixels, bool) or int(max_pixels) < 1:
        raise InputError(f"max input pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)


# ------------------------------------------------------------------------------ the contract
@dataclass(frozen=True)
class ModelMeta:
    """Parsed, validated ``rdd_meta``.

    Attributes:
        model: architecture name (``"lraspp_mobilenetv2"``).
        input_name / output_name: graph tensor names.
        input_layout: ``"NCHW"`` (float input made by :meth:`Normalization.apply`) or ``"NHWC"``
            (uint8 RGB frames, preprocessing folded into the graph).
        input_dtype: ``"float32"`` / ``"float16"`` (NCHW) or ``"uint8"`` (NHWC).
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
    head: str = "full"
    output_stride: int | None = None

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"rdd_meta.head.kind must be one of {list(HEADS)}, got {self.head!r}")
        if self.head == "lowres" and self.output_kind != "logits":
            raise InputError("rdd_meta.head: a lowres head outputs logits (output_kind 'logits')")
        if self.input_layout not in _LAYOUT_DTYPES:
            raise InputError(
                f"rdd_meta.input_layout must be one of {list(_LAYOUT_DTYPES)}, got {self.input_layout!r}"
            )
        if self.input_dtype not in _LAYOUT_DTYPES[self.input_layout]:
            raise InputError(
                f"rdd_meta.input_dtype {self.input_dtype!r} does not fit input_layout "
                f"{self.input_layout!r}: expected one of "
                f"{list(_LAYOUT_DTYPES[self.input_layout])}"
            )
        if self.output_kind not in _OUTPUTS:
            raise InputError(
                f"rdd_meta.output_kind must be one of {list(_OUTPUTS)}, got {self.output_kind!r}"
            )
        if not self.dynamic_spatial and self.input_size is None:
            raise InputError("rdd_meta: a model without dynamic_spatial needs input_size [H, W]")
        if (
            self.min_size
            and self.max_size
            and not all(self.min_size[i] <= self.max_size[i] for i in range(2))
        ):
            raise InputError(
                f"rdd_meta: min_size {list(self.min_size)} exceeds max_size {list(self.max_size)}"
            )

    @classmethod
    def build(
        cls,
        *,
        model: str,
        classes: ClassInfo,
        normalization: Normalization,
        input_size: Sequence[int],
        argmax: bool = False,
        fold_preprocess: bool = False,
        dynamic_batch: bool = True,
        dynamic_spatial: bool = True,
        head: str = "full",
        output_stride: int | None = None,
    ) -> ModelMeta:
        """The contract of an export with the given options (what ``rdd.export`` writes)."""
        h, w = (int(v) for v in input_size)
        return cls(
            model=str(model),
            input_name="image",
            input_layout="NHWC" if fold_preprocess else "NCHW",
            input_dtype="uint8" if fold_preprocess else "float32",
            output_name="labels" if argmax else "logits",
            output_kind="labels" if argmax else "logits",
            normalization=normalization,
            classes=classes,
            input_size=(h, w),
            dynamic_batch=bool(dynamic_batch),
            dynamic_spatial=bool(dynamic_spatial),
            head=head,
            output_stride=output_stride if head == "lowres" else None,
        )

    # ------------------------------------------------------------------ properties
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

    def with_(self, **changes: Any) -> ModelMeta:
        return replace(self, **changes)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The ``rdd_meta`` JSON object (key order of the schema; ``json.dumps`` of it is what
        export stores)."""
        return {
            "format": META_FORMAT,
            "model": self.model,
            "input_name": self.input_name,
            "input_layout": self.input_layout,
            "input_dtype": self.input_dtype,
            "output_name": self.output_name,
            "output_kind": self.output_kind,
            "normalization": self.normalization.to_dict(),
            "classes": self.classes.to_dict(),
            "input_size": list(self.input_size) if self.input_size else None,
            "dynamic_batch": self.dynamic_batch,
            "dynamic_spatial": self.dynamic_spatial,
            **({"min_size": list(self.min_size)} if self.min_size else {}),
            **({"max_size": list(self.max_size)} if self.max_size else {}),
            **({"head": self.head_dict()} if self.head != "full" else {}),
        }

    def head_dict(self) -> dict[str, Any]:
        """``rdd_meta.head``: ``{"kind", "upsample", "coordinate_transformation",
        "output_stride"}`` (``{"kind": "full"}`` for a graph that ends at input-size logits)."""
        if self.head == "full":
            return {"kind": "full"}
        return {
            "kind": self.head,
            "upsample": UPSAMPLE_MODES[0],
            "coordinate_transformation": COORDINATE_TRANSFORMS[0],
            "output_stride": self.output_stride,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "rdd_meta", max_pixels: int | None = None) -> ModelMeta:
        """Parse and validate an ``rdd_meta`` dict (see the module docstring).

        Raises:
            InputError: one line, ``"<source>: rdd_meta.<key> ..."``, for a missing, unknown or
                bad key (wrong type, out of range, NaN, input size above ``max_pixels``).
        """
        limit = resolve_max_pixels(max_pixels)
        if not isinstance(d, dict):
            raise InputError(f"{source}: rdd_meta must be a JSON object, got {type(d).__name__}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise InputError(f"{source}: rdd_meta is missing key(s) {missing}")
        unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise InputError(f"{source}: rdd_meta has unknown key(s) {unknown}")
        if d["format"] != META_FORMAT:
            raise InputError(
                f"{source}: rdd_meta format {short(d['format'])} is not supported (expected {META_FORMAT!r})"
            )
        try:
            layout = check_choice(d["input_layout"], "input_layout", tuple(_LAYOUT_DTYPES))
            dyn_spatial = check_flag(d["dynamic_spatial"], "dynamic_spatial")
            size = d["input_size"]
            if size is None and not dyn_spatial:
                raise FieldError("input_size", "must be [H, W] when dynamic_spatial is false, got null")
            opt = {k: check_size(d[k], k, limit) for k in ("min_size", "max_size") if d.get(k) is not None}
            if d.get("head") is not None:
                opt.update(check_head(d["head"], "head"))
            kw = dict(
                model=check_text(d["model"], "model"),
                input_name=check_text(d["input_name"], "input_name"),
                input_layout=layout,
                input_dtype=check_choice(d["input_dtype"], "input_dtype", _LAYOUT_DTYPES[layout]),
                output_name=check_text(d["output_name"], "output_name"),
                output_kind=check_choice(d["output_kind"], "output_kind", tuple(_OUTPUTS)),
                normalization=check_normalization(d["normalization"], "normalization"),
                classes=check_classes(d["classes"], "classes"),
                input_size=None if size is None else check_size(size, "input_size", limit),
                dynamic_batch=check_flag(d["dynamic_batch"], "dynamic_batch"),
                dynamic_spatial=dyn_spatial,
                **opt,
            )
        except FieldError as e:
            raise InputError(f"{source}: rdd_meta.{e.key} {e.msg}") from None
        try:
            return cls(**kw)
        except InputError as e:
            raise InputError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "rdd_meta", max_pixels: int | None = None) -> ModelMeta:
        try:
            d = loads_json(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise InputError(f"{source}: rdd_meta is not valid JSON ({e})") from None
        return cls.from_dict(d, source=source, max_pixels=max_pixels)

    @classmethod
    def from_artifact_json(
        cls, d: dict[str, Any], *, source: str = "artifact", max_pixels: int | None = None
    ) -> ModelMeta:
        """Meta of a training artifact sidecar (``rdd.artifacts``): NCHW float32 in, logits out."""
        missing = [k for k in ("classes", "normalization") if k not in d]
        if missing:
            raise InputError(f"{source}: artifact metadata is missing key {missing[0]!r}")
        return cls.from_dict(
            {
                "format": META_FORMAT,
                "model": d.get("model", "unknown"),
                "input_name": "image",
                "input_layout": "NCHW",
                "input_dtype": "float32",
                "output_name": "logits",
                "output_kind": "logits",
                "normalization": d["normalization"],
                "classes": d["classes"],
                "input_size": d.get("input_size"),
                "dynamic_batch": True,
                "dynamic_spatial": True,
            },
            source=source,
            max_pixels=max_pixels,
        )

    # ------------------------------------------------------------------ against the graph
    def check_graph(
        self, inputs: Sequence[IOSpec], outputs: Sequence[IOSpec], *, source: str = "model"
    ) -> ModelMeta:
        """Check that the graph's ``inputs`` / ``outputs`` are what this metadata says.

        One image input named ``input_name`` of ``input_dtype``, rank 4 with 3 channels on the
        layout's channel axis; ``output_name`` among the outputs, of the kind's dtype and rank,
        with ``num_classes`` channels for logits; batch / spatial axes dynamic exactly as the
        flags say, and static spatial dims equal to ``input_size``. Returns ``self``.
        """

        def fail(msg: str) -> None:
            raise InputError(f"{source}: {msg}")

        names = [i[0] for i in inputs]
        if len(inputs) != 1 or names[0] != self.input_name:
            fail(
                f"rdd_meta.input_name {self.input_name!r} but the graph's inputs are {names} "
                "(expected exactly one image input)"
            )
        _, in_dtype, in_shape = inputs[0]
        in_shape = list(in_shape)
        if in_dtype != self.input_dtype:
            fail(f"input {names[0]!r} has dtype {in_dtype} but rdd_meta says {self.input_dtype}")
        ch_axis = 1 if self.input_layout == "NCHW" else 3
        if len(in_shape) != 4:
            fail(
                f"input {names[0]!r} has shape {in_shape} (rank {len(in_shape)}); expected an "
                f"image batch {self.input_layout} of rank 4"
            )
        if in_shape[ch_axis] != 3:
            fail(
                f"input {names[0]!r} has shape {in_shape}: {in_shape[ch_axis]} channels on axis "
                f"{ch_axis}, expected 3 ({self.input_layout} RGB)"
            )
        self.check_output(outputs, source=source)
        if self.dynamic_batch != (not _static(in_shape[0])):
            fail(f"rdd_meta.dynamic_batch={self.dynamic_batch} but the input batch dim is {in_shape[0]!r}")
        sp = [in_shape[a] for a in ((2, 3) if self.input_layout == "NCHW" else (1, 2))]
        if self.dynamic_spatial != (not any(_static(s) for s in sp)):
            fail(f"rdd_meta.dynamic_spatial={self.dynamic_spatial} but the input spatial dims are {sp}")
        if not self.dynamic_spatial and tuple(sp) != tuple(self.input_size or ()):
            fail(f"static input spatial dims {sp} != rdd_meta.input_size {list(self.input_size or [])}")
        return self

    def check_output(
        self, outputs: Sequence[IOSpec], *, source: str = "model", dtypes: bool = True
    ) -> ModelMeta:
        """``output_name`` among ``outputs``, of the kind's dtype (unless ``dtypes=False``, for a
        TensorRT engine's own I/O types) and rank, with ``num_classes`` channels for logits."""
        out = {o[0]: o for o in outputs}
        if self.output_name not in out:
            raise InputError(
                f"{source}: rdd_meta.output_name {self.output_name!r} is not a graph "
                f"output (outputs: {list(out)})"
            )
        _, o_dtype, o_shape = out[self.output_name]
        want_dtypes, want_rank = _OUTPUTS[self.output_kind]
        if (dtypes and o_dtype not in want_dtypes) or len(o_shape) != want_rank:
            raise InputError(
                f"{source}: output {self.output_name!r} is {o_dtype} of shape "
                f"{list(o_shape)}; output_kind {self.output_kind!r} expects "
                f"{'/'.join(want_dtypes)} of rank {want_rank}"
            )
        if self.output_kind == "logits" and o_shape[1] != self.num_classes:
            raise InputError(
                f"{source}: output {self.output_name!r} has {o_shape[1]} channels but "
                f"rdd_meta lists {self.num_classes} classes (rdd_meta.classes.names)"
            )
        return self


def _static(d: Any) -> bool:
    return is_int(d) and d > 0
