"""Accuracy of a build on labelled frames, and its agreement with a reference build (torch-free).

Used by ``rdd-bench`` (the mIoU / agreement columns of every row) and ``rdd-infer --compare``
(parity of a second build on the same frames). Frames are resized and preprocessed exactly as
the runner does it (:func:`rdd.runtime.pipeline.preprocess`, labels with
:func:`~rdd.runtime.pipeline.resize_labels`), and scored at the inference size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdd.contract import InputError
from rdd.metrics import ConfusionMatrix
from rdd.runtime.backends import Backend, logits_to_labels
from rdd.runtime.pipeline import preprocess, resize_labels
from rdd.runtime.sources import ImageFolderSource, LabelFolder, VideoSource

__all__ = ["LabelledFrames", "load_labelled_frames", "predict", "score", "compare_predictions",
           "compare_builds"]


@dataclass
class LabelledFrames:
    """Decoded RGB frames (``uint8 H×W×3``) and, when labelled, their ``H×W`` id masks
    (``ignore_ids`` already mapped to ``ignore_index``)."""

    names: list[str]
    images: list[np.ndarray]
    labels: list[np.ndarray] | None
    ignore_index: int = 255


def load_labelled_frames(images: str | os.PathLike, labels: str | os.PathLike | None = None, *,
                         ignore_ids: Sequence[int] = (), ignore_index: int = 255,
                         limit: int | None = None) -> LabelledFrames:
    """Read an image folder (file-name order; ``limit`` evenly spaced frames) and its masks
    (matched by file stem; every selected frame must have one). A video file gives its first
    ``limit`` frames, with masks matched by frame index."""
    if Path(images).is_file():
        return _video_frames(images, labels, ignore_ids, ignore_index, limit)
    src = ImageFolderSource(images)
    files = src.files
    if limit is not None and limit < len(files):
        idx = np.linspace(0, len(files) - 1, int(limit)).round().astype(int)
        files = [files[i] for i in sorted(set(idx.tolist()))]
    src.files = files                     # decode only the selected frames
    names, imgs = [], []
    for name, img in src:
        names.append(name)
        imgs.append(img)
    labs = None
    if labels is not None:
        lf = LabelFolder(labels, by_index=False, ignore_ids=ignore_ids, ignore_index=ignore_index)
        labs = []
        for name, img in zip(names, imgs):
            path = lf.path_for(0, name)
            if path is None:
                raise InputError(f"no label in {labels} for frame {name!r} of {images}")
            labs.append(lf.load(path, img.shape[:2]))
    return LabelledFrames(names, imgs, labs, ignore_index)


def _video_frames(video: str | os.PathLike, labels: str | os.PathLike | None,
                  ignore_ids: Sequence[int], ignore_index: int, limit: int | None) -> LabelledFrames:
    src = VideoSource(video)
    names, imgs = [], []
    try:
        for name, img in src:
            if limit is not None and len(imgs) >= limit:
                break
            names.append(name)
            imgs.append(img)
    finally:
        src.close()
    labs = None
    if labels is not None:
        lf = LabelFolder(labels, by_index=True, ignore_ids=ignore_ids, ignore_index=ignore_index)
        labs = []
        for i, img in enumerate(imgs):
            path = lf.path_for(i, names[i])
            if path is None:
                raise InputError(f"no label in {labels} for frame {i} of {video}")
            labs.append(lf.load(path, img.shape[:2]))
    return LabelledFrames(names, imgs, labs, ignore_index)


def predict(backend: Backend, frames: LabelledFrames, size: tuple[int, int] | str = "model",
            *, keep_logits: bool | int = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Run ``backend`` on every frame at ``size`` → (labels ``h×w`` per frame, logits
    ``K×h×w`` per frame when ``keep_logits`` and the backend exposes them (``run_raw``), else
    ``None``). An int ``keep_logits`` keeps the logits of that many first frames only (a
    CamVid frame's 11×360×480 float logits are 7.6 MB)."""
    raw = getattr(backend, "run_raw", None) if keep_logits else None
    if raw is not None and backend.meta.output_kind != "logits":
        raw = None
    preds, logits = [], ([] if raw is not None else None)
    for img in frames.images:
        x = preprocess(img, backend.meta, size)
        if raw is not None and (keep_logits is True or len(logits) < keep_logits):
            out = np.array(raw(x), dtype=np.float32)  # a copy: OpenVINO reuses its buffer
            logits.append(out[0])
            preds.append(logits_to_labels(out, "logits")[0])
        else:
            preds.append(backend.infer(x)[0])
    return preds, logits


def score(preds: Sequence[np.ndarray], frames: LabelledFrames, num_classes: int) -> dict[str, Any]:
    """mIoU / pixel accuracy of ``preds`` against the frames' labels, at the prediction size."""
    if frames.labels is None:
        return {"miou": None, "pixel_acc": None, "labelled_frames": 0}
    cm = ConfusionMatrix(num_classes, ignore_index=frames.ignore_index)
    for p, lab in zip(preds, frames.labels):
        lab = resize_labels(lab, p.shape)
        bad = (lab != frames.ignore_index) & (lab >= num_classes)
        if bad.any():
            raise InputError(f"labels hold ids {np.unique(lab[bad])[:8].tolist()} outside the "
                             f"model's {num_classes} classes; map them to ignore (--label-map / "
                             "--ignore-ids)")
        cm.update(p, lab)
    res = cm.compute()
    return {"miou": float(res["miou"]), "pixel_acc": float(res["pixel_acc"]),
            "labelled_frames": len(preds)}


def compare_predictions(preds: Sequence[np.ndarray], ref_preds: Sequence[np.ndarray],
                        logits: Sequence[np.ndarray] | None = None,
                        ref_logits: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Argmax agreement (fraction of pixels with the same class) of ``preds`` with ``ref_preds``
    and, when both have logits of the same shape, the max ``|Δlogit|``.

    Predictions of different sizes (another inference size) are compared at the reference's
    size (nearest-exact resize of ``preds``)."""
    same = total = 0
    for p, r in zip(preds, ref_preds):
        if p.shape != r.shape:
            p = resize_labels(p, r.shape)
        same += int((p == r).sum())
        total += r.size
    out: dict[str, Any] = {"argmax_agreement": same / total if total else None,
                           "max_abs_logit_diff": None}
    if logits and ref_logits and all(a.shape == b.shape for a, b in zip(logits, ref_logits)):
        out["max_abs_logit_diff"] = float(max(np.abs(a - b).max() for a, b in zip(logits, ref_logits)))
    return out


def compare_builds(first: Backend, second: Backend, frames: LabelledFrames,
                   size: tuple[int, int] | str = "model") -> dict[str, Any]:
    """Parity of ``second`` against ``first`` on the same frames (``rdd-infer --compare``).

    Returns ``{"frames", "argmax_agreement", "max_abs_logit_diff", "miou_first", "miou_second",
    "delta_miou"}``; ``delta_miou`` = second − first in mIoU *points* (``None`` without labels).
    """
    k = first.meta.num_classes
    if second.meta.num_classes != k:
        raise InputError(f"--compare: the second build has {second.meta.num_classes} classes, the "
                         f"first {k}")
    p1, l1 = predict(first, frames, size, keep_logits=True)
    p2, l2 = predict(second, frames, size, keep_logits=True)
    out: dict[str, Any] = {"frames": len(frames.images), **compare_predictions(p2, p1, l2, l1)}
    m1, m2 = score(p1, frames, k)["miou"], score(p2, frames, k)["miou"]
    out.update(miou_first=m1, miou_second=m2,
               delta_miou=None if m1 is None or m2 is None else 100 * (m2 - m1))
    return out
