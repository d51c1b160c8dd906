"""Torch-free frame helpers shared by the parity gate, INT8 calibration and the benchmarks.

* :func:`load_frames` turns a dataset, a list of images or ``(image, mask)`` pairs into a list of
  raw ``uint8 H×W×3`` RGB frames (+ masks), resized exactly like the edge runtime does it
  (``cv2.resize``, bilinear for images, nearest-exact for masks);
* :func:`iter_batches` groups frames of one size (timing is :mod:`rdd.runtime.timing`).

The model input is made by the runtime's own :func:`rdd.runtime.preprocess` and run by
:class:`rdd.runtime.OrtBackend` (:mod:`rdd.export.parity`), so the gates certify the code path
``rdd-infer`` runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from rdd.spec import as_hw

__all__ = ["Frame", "ParityError", "load_frames", "iter_batches"]


class ParityError(RuntimeError):
    """An accuracy gate failed. ``.report`` holds the full report dict."""

    def __init__(self, title: str, report: dict[str, Any]) -> None:
        self.report = report
        lines = [title]
        for f in report.get("failures", []):
            lines.append(f"  FAILED: {f}")
        shown = {k: v for k, v in report.items() if k not in ("failures", "iou_torch", "iou_onnx",
                                                               "iou_fp32", "iou_int8")}
        lines.append("  report: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
        super().__init__("\n".join(lines))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


@dataclass
class Frame:
    """A raw frame: ``image`` uint8 ``H×W×3`` RGB, ``mask`` integer ``H×W`` (or ``None``)."""

    image: np.ndarray
    mask: np.ndarray | None = None
    name: str = ""


def _resize(image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None):
    if size is None or image.shape[:2] == tuple(size):
        return image, mask
    import cv2

    h, w = size
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if mask is not None:
        mask = cv2.resize(np.asarray(mask, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return image, mask


def _check_image(img: Any, where: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{where}: expected a uint8 H×W×3 RGB image, got {img.dtype} {img.shape}")
    return img


def load_frames(source: Any, *, size: int | Sequence[int] | None = None,
                limit: int | None = None) -> list[Frame]:
    """Raw frames from ``source``, optionally resized to ``size`` = ``(H, W)``.

    Args:
        source: one of
            * a dataset with ``load(i) -> (image, mask)`` and ``len`` (``rdd.data``); when
              ``size`` is ``None`` the size of its transform (``EvalTransform(size=...)``) is used;
            * a sequence of uint8 ``H×W×3`` RGB images, of ``(image, mask)`` pairs, of
              :class:`Frame`, or of image file paths (read with OpenCV, BGR → RGB).
        size: ``(H, W)`` to resize to (bilinear images, nearest masks, like the runtime).
        limit: keep at most this many frames, evenly spaced over the source (deterministic).
    """
    hw = as_hw(size) if size is not None else None
    if hasattr(source, "load") and hasattr(source, "__len__"):
        n = len(source)
        if hw is None:
            t_size = getattr(getattr(source, "transform", None), "size", None)
            hw = as_hw(t_size) if t_size is not None else None
        idx = _subset(n, limit)
        frames = []
        for i in idx:
            img, mask = source.load(i)
            files = getattr(source, "files", None)
            name = str(files[i][0]) if files is not None else str(i)
            img, mask = _resize(_check_image(img, f"dataset item {i} ({name})"), mask, hw)
            frames.append(Frame(img, None if mask is None else np.asarray(mask), name))
        return frames
    if isinstance(source, (str, os.PathLike)) or isinstance(source, np.ndarray) and source.ndim == 3:
        source = [source]
    items = list(source)
    frames = []
    for k in _subset(len(items), limit):
        it = items[k]
        mask, name = None, str(k)
        if isinstance(it, Frame):
            img, mask, name = it.image, it.mask, it.name or name
        elif isinstance(it, (tuple, list)) and len(it) == 2:
            img, mask = it
        elif isinstance(it, (str, os.PathLike)):
            import cv2

            bgr = cv2.imread(str(it), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"load_frames: cannot read image {it}")
            img, name = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), str(it)
        else:
            img = it
        img, mask = _resize(_check_image(img, f"frame {name}"), mask, hw)
        frames.append(Frame(img, None if mask is None else np.asarray(mask), name))
    if not frames:
        raise ValueError("load_frames: no frames in source")
    return frames


def _subset(n: int, limit: int | None) -> list[int]:
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        raise ValueError(f"load_frames: limit must be positive, got {limit}")
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, limit)})


def iter_batches(frames: Sequence[Frame], batch_size: int) -> Iterable[list[Frame]]:
    """Consecutive batches of frames of equal size (a size change starts a new batch)."""
    batch: list[Frame] = []
    for f in frames:
        if batch and (len(batch) == batch_size or f.image.shape != batch[0].image.shape):
            yield batch
            batch = []
        batch.append(f)
    if batch:
        yield batch
