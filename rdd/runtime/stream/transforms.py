"""Frame transforms of the runner: inference size, preprocessing, label resize, colour overlay.

Pure functions of a frame and the model's :class:`~rdd.contract.ModelMeta` (numpy + OpenCV,
no torch), used by :class:`rdd.runtime.stream.stream.Pipeline`, export's calibration and the
scorer (:mod:`rdd.runtime.measure.score`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rdd.contract import InputError, ModelMeta
from rdd.runtime.errors import OptionError, literal
from rdd.spec import ClassInfo

__all__ = [
    "RESIZE_MODES",
    "Resize",
    "parse_resize",
    "inference_size",
    "resize_labels",
    "fit",
    "model_input",
    "preprocess",
    "OverlayRenderer",
    "draw_text",
]

RESIZE_MODES = ("model", "native")


@dataclass(frozen=True)
class Resize:
    """The ``resize`` option, parsed once: ``mode`` ``"model"`` (the model's ``input_size``),
    ``"native"`` (each frame's own size) or ``"size"`` with ``hw = (H, W)``."""

    mode: str = "model"
    hw: tuple[int, int] | None = None

    @classmethod
    def parse(cls, value: Any) -> Resize:
        """``None``/``"model"``, ``"native"``, ``"HxW"``, ``"H,W"``, ``(H, W)`` or a ``Resize``."""
        if isinstance(value, Resize):
            return value
        mode = parse_resize(value)
        return cls(mode, None) if isinstance(mode, str) else cls("size", mode)

    def __str__(self) -> str:
        return self.mode if self.hw is None else f"{self.hw[0]}x{self.hw[1]}"

    def size_for(self, frame_hw: tuple[int, int], meta: ModelMeta) -> tuple[int, int]:
        """``(H, W)`` a frame of size ``frame_hw`` is fed to the model at.

        * fixed-size models (static graph, or a TensorRT profile with min == max): their size;
          an explicit different ``H×W`` is an :class:`InputError`;
        * ``model`` (default): ``meta.input_size`` — the size the model was exported and
          evaluated at — or the frame's size when the model records none;
        * ``native``: the frame's own size; ``size``: ``hw``.

        ``model``/``native`` sizes are clamped per axis into a TensorRT profile's
        ``[min_size, max_size]``; an explicit size outside it is an :class:`InputError`.
        """
        fixed = meta.fixed_size
        if fixed is not None:
            if self.hw is not None and self.hw != tuple(fixed):
                raise OptionError("resize", f"{self}: this model only accepts {fixed[0]}x{fixed[1]} inputs")
            return tuple(fixed)
        if self.hw is not None:
            if meta.clamp_size(self.hw) != self.hw:
                raise OptionError(
                    "resize",
                    f"{self} is outside the engine's profile "
                    f"{list(meta.min_size)}..{list(meta.max_size)} (H, W)",
                )
            return self.hw
        want = meta.input_size if (self.mode == "model" and meta.input_size) else frame_hw
        return meta.clamp_size((int(want[0]), int(want[1])))


def parse_resize(value: Any) -> str | tuple[int, int]:
    """``None``/``"model"`` → ``"model"``; ``"native"``; ``"HxW"``, ``"H,W"`` or ``(H, W)`` → ints."""
    if value is None:
        return "model"
    if isinstance(value, Resize):
        return value.hw or value.mode
    if isinstance(value, str):
        v = value.strip().lower()
        if v in RESIZE_MODES:
            return v
        try:
            parts = [int(t) for t in v.replace("x", ",").split(",")]
        except ValueError:
            parts = []
    else:
        try:
            parts = [int(t) for t in value]
        except (TypeError, ValueError):
            parts = []
    if len(parts) != 2 or min(parts) <= 0:
        raise OptionError(
            "resize", f"must be 'model', 'native' or H×W (e.g. 360x480), got {literal(repr(value))}"
        )
    return parts[0], parts[1]


def inference_size(frame_hw: tuple[int, int], meta: ModelMeta, resize: Any = "model") -> tuple[int, int]:
    """``(H, W)`` a frame of size ``frame_hw`` is fed to the model at under ``resize`` (any form
    :meth:`Resize.parse` takes): :meth:`Resize.size_for`."""
    return Resize.parse(resize).size_for(frame_hw, meta)


def resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Integer ``H×W`` ids → ``hw`` with ``cv2.INTER_NEAREST_EXACT``, values unchanged.

    The same resize as :class:`rdd.data.EvalTransform` and :func:`rdd.runtime.measure.frames.load_frames`
    (``INTER_NEAREST`` is off by half a pixel for non-integer ratios). ``uint8`` and ``uint16``
    keep their dtype; other integer arrays go through the smallest of the two that holds them
    (never a wrapping cast: ids beyond ``uint16`` or negative are a ``ValueError``). Validate
    ids (:class:`~rdd.runtime.stream.labels.LabelFolder`) before resizing.
    """
    if labels.shape[:2] == tuple(hw):
        return labels
    lab = labels
    if lab.dtype not in (np.uint8, np.uint16):
        lo, hi = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"resize_labels: ids must be in [0, 65535], got [{lo}, {hi}]")
        lab = lab.astype(np.uint8 if hi < 256 else np.uint16)
    return cv2.resize(lab, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_NEAREST_EXACT)


def fit(image_rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``image_rgb`` resized (bilinear) to ``hw``; the frame itself when it has that size."""
    if image_rgb.shape[:2] == tuple(hw):
        return image_rgb
    return cv2.resize(image_rgb, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)


def model_input(image_rgb: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """A frame already at the inference size → the model's ``1×…`` input: ``NCHW`` float models
    get the ``meta.normalization`` of :meth:`Normalization.apply` (``1×3×h×w``); ``NHWC`` models
    (preprocessing in the graph) get the decoded ``1×h×w×3`` uint8 RGB frame itself."""
    if meta.input_layout == "NHWC":
        x = image_rgb[None] if image_rgb.flags.c_contiguous else np.ascontiguousarray(image_rgb[None])
    else:
        x = meta.normalization.apply(image_rgb)[None]
    dt = np.dtype(meta.input_dtype)
    return x if x.dtype == dt else x.astype(dt)


def preprocess(image_rgb: np.ndarray, meta: ModelMeta, size: Any = None) -> np.ndarray:
    """uint8 ``H×W×3`` RGB frame → the model's ``1×…`` input at :func:`inference_size` of
    ``size`` (``None`` = the frame's native size, ``"model"``, ``"native"``, ``(H, W)`` or a
    :class:`Resize`; fixed-size models always get their own size): :func:`fit` then
    :func:`model_input`."""
    hw = inference_size(image_rgb.shape[:2], meta, "native" if size is None else size)
    return model_input(fit(image_rgb, hw), meta)


class OverlayRenderer:
    """Colour overlay of ``rdd.spec.overlay`` via OpenCV (``cv2.LUT`` + ``cv2.addWeighted``).

    Same palette and blend ``image·(1-α) + colour·α`` as :func:`rdd.spec.overlay`, within ±1
    grey level (OpenCV rounds ties to even); ≈10× faster, and it releases the GIL.
    """

    def __init__(self, classes: ClassInfo, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"overlay alpha must be in [0, 1], got {alpha}")
        lut = np.zeros((256, 3), np.uint8)  # ignored / out-of-range ids are black, as in colorize
        lut[: classes.num_classes] = classes.palette_array()
        self._lut = np.ascontiguousarray(lut.reshape(256, 1, 3))
        self.alpha = float(alpha)

    def __call__(self, image_rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
        lab = labels.astype(np.uint8, copy=False)
        color = cv2.LUT(cv2.merge([lab, lab, lab]), self._lut)
        return cv2.addWeighted(image_rgb, 1.0 - self.alpha, color, self.alpha, 0.0)


def draw_text(bgr: np.ndarray, text: str) -> None:
    """Write ``text`` in white on black at the top left of ``bgr`` (in place)."""
    h = bgr.shape[0]
    scale = max(0.4, h / 720.0)
    org = (int(8 * scale + 4), int(28 * scale + 6))
    thick = max(1, int(round(2 * scale)))
    cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
