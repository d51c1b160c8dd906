"""Torch-free helpers shared by the parity gate, INT8 calibration and the benchmarks.

* :func:`load_frames` turns a dataset, a list of images or ``(image, mask)`` pairs into a list of
  raw ``uint8 H×W×3`` RGB frames (+ masks), resized exactly like the edge runtime does it
  (``cv2.resize``, bilinear for images, nearest for masks);
* :func:`preprocess_for_meta` builds the ONNX input an exported graph expects from its
  ``rdd_meta`` (normalised ``float32 N×3×H×W`` or raw ``uint8 N×H×W×3``);
* :func:`make_session` creates tuned onnxruntime CPU sessions (timed with
  :mod:`rdd.runtime.timing`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from rdd.spec import Normalization, as_hw

__all__ = ["Frame", "ParityError", "load_frames", "preprocess_for_meta", "make_session",
           "run_onnx"]


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


def preprocess_for_meta(images: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """``uint8 N×H×W×3`` (or ``H×W×3``) RGB → the input the graph described by ``meta`` takes."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if meta["input_layout"] == "NHWC":
        return np.ascontiguousarray(x, dtype=np.uint8)
    return Normalization.from_dict(meta["normalization"]).apply(x)


def make_session(path: str | os.PathLike, *, threads: int | None = None, opt_level: str = "all",
                 parallel: bool = False, spin: bool = True,
                 providers: Sequence[str] | None = None) -> Any:
    """An onnxruntime session tuned for small-batch CPU inference.

    Args:
        threads: ``intra_op_num_threads`` (``None`` → ORT default = all cores).
        opt_level: ``"disable" | "basic" | "extended" | "all"`` graph optimisation level.
        parallel: ``ORT_PARALLEL`` execution mode (rarely helps for a CNN chain).
        spin: let idle intra-op threads busy-wait (lowest latency on a dedicated CPU; turn off
            for throughput jobs on a shared machine).
    """
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if opt_level not in levels:
        raise ValueError(f"make_session: opt_level must be one of {list(levels)}, got {opt_level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[opt_level]
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if parallel
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(Path(path)), so,
                                providers=list(providers or ["CPUExecutionProvider"]))


def run_onnx(session: Any, meta: dict[str, Any], images: np.ndarray) -> tuple[np.ndarray | None,
                                                                              np.ndarray]:
    """Run an exported graph on raw uint8 RGB frames → ``(logits N×K×H×W | None, labels N×H×W)``."""
    out = session.run([meta["output_name"]], {meta["input_name"]: preprocess_for_meta(images, meta)})[0]
    if meta["output_kind"] == "labels":
        return None, out
    return out, out.argmax(1)


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
