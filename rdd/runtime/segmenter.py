"""The one-call Python API: ``Segmenter(path).predict(image) -> labels``.

    from rdd.runtime import Segmenter
    seg = Segmenter("camvid/rdd_16x-s0")          # a file or a zoo name; backend="auto"
    labels = seg.predict(image_rgb)                # uint8 H×W class ids at the image's size
    vis = seg.overlay(image_rgb)                   # uint8 H×W×3 RGB colour overlay

It runs a frame exactly as ``rdd-infer`` does: resized to the model's input size (the size it was
exported and evaluated at; ``resize="native"`` or ``(H, W)`` otherwise), preprocessed as the
model's metadata says, labels back at the image's own size. numpy + OpenCV + the runtime.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rdd.runtime.backends import open_build
from rdd.runtime.stream.transforms import OverlayRenderer, Resize, fit, model_input, resize_labels
from rdd.runtime.zoo import resolve_model

__all__ = ["Segmenter"]


class Segmenter:
    """A model opened once for per-image prediction (see the module docstring).

    Args:
        model: a model file (``.onnx``, ``.xml``, ``.engine``, ``.pt``) or a zoo name.
        backend / device / threads / precision: as ``rdd-infer``'s options.
        resize: ``"model"`` (default), ``"native"`` or ``(H, W)``.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        backend: str = "auto",
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str | None = None,
        resize: Any = "model",
        max_pixels: int | None = None,
    ) -> None:
        self.backend = open_build(
            resolve_model(model),
            backend=backend,
            device=device,
            threads=threads,
            precision=precision,
            max_pixels=max_pixels,
        )
        self.meta = self.backend.meta
        self.resize = Resize.parse(resize)
        self._renderer: OverlayRenderer | None = None

    @property
    def classes(self):
        return self.meta.classes

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """``uint8`` (``uint16`` above 256 classes) ``H×W`` class ids of an ``H×W×3`` RGB image."""
        img = np.asarray(image_rgb)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"predict: expected a uint8 H×W×3 RGB image, got {img.dtype} {img.shape}")
        hw = self.resize.size_for(img.shape[:2], self.meta)
        labels = self.backend.infer(model_input(fit(img, hw), self.meta))[0]
        return resize_labels(labels, img.shape[:2])

    def overlay(self, image_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The colour overlay (``image·(1−α) + colour·α``) of :meth:`predict`'s labels."""
        if self._renderer is None or self._renderer.alpha != alpha:
            self._renderer = OverlayRenderer(self.meta.classes, alpha)
        return self._renderer(np.asarray(image_rgb), self.predict(image_rgb))
