"""Accuracy of a build on labelled frames, and its agreement with another build (numpy + OpenCV).

One scorer for every number the project publishes about a build's accuracy: export's parity and
INT8 gates, ``rdd-bench``'s mIoU / agreement / Δlogit columns, ``rdd-infer --compare`` and the
study diagnostics. Frames go through the runtime exactly as the runner feeds them
(:func:`~rdd.runtime.stream.transforms.preprocess`), labels are scored at the inference size
(masks resized with ``INTER_NEAREST_EXACT``).

Units: every mIoU, accuracy, agreement and mIoU difference here is a **fraction** in ``[0, 1]``;
the tools print points (and the two report fields documented in points, ``rdd-bench``'s
``miou_loss`` and ``--compare``'s ``delta_miou``, are converted where the reports are written).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rdd.metrics import ConfusionMatrix
from rdd.runtime.backends.base import Backend, output_labels
from rdd.runtime.errors import InputError, OptionError
from rdd.runtime.measure.frames import Frames
from rdd.runtime.stream.transforms import inference_size, preprocess, resize_labels

__all__ = ["predict", "score", "Agreement", "compare_predictions", "compare_builds", "check_labels"]


def predict(
    backend: Backend, frames: Frames, size: Any = "model", *, keep_logits: bool | int = False
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Run ``backend`` on every frame at ``size`` → (labels ``h×w`` per frame, logits ``K×h×w``
    per frame when ``keep_logits`` and the model outputs logits, else ``None``). An int
    ``keep_logits`` keeps the logits of that many first frames only (a CamVid frame's
    11×360×480 float logits are 7.6 MB)."""
    keep = keep_logits and backend.meta.output_kind == "logits"
    preds, logits = [], ([] if keep else None)
    for f in frames:
        x = preprocess(f.image, backend.meta, size)
        if keep and (keep_logits is True or len(logits) < keep_logits):
            out = np.asarray(backend.forward(x), dtype=np.float32)
            logits.append(out[0])
            preds.append(output_labels(out, backend.meta, backend.input_hw(x))[0])
        else:
            preds.append(backend.infer(x)[0])
    return preds, logits


def check_labels(lab: np.ndarray, num_classes: int, ignore_index: int) -> None:
    """An id outside ``[0, num_classes)`` ∪ {ignore} is a one-line :class:`InputError`."""
    bad = (lab != ignore_index) & (lab >= num_classes)
    if bad.any():
        raise OptionError(
            None,
            f"labels hold ids {np.unique(lab[bad])[:8].tolist()} outside the "
            f"model's {num_classes} classes; map them to ignore ({{label_map}} / {{ignore_ids}})",
        )


def score(preds: Sequence[np.ndarray], frames: Frames, num_classes: int) -> dict[str, Any]:
    """mIoU / pixel accuracy of ``preds`` against the frames' labels, at the prediction size."""
    if frames.labels is None:
        return {"miou": None, "pixel_acc": None, "labelled_frames": 0}
    cm = ConfusionMatrix(num_classes, ignore_index=frames.ignore_index)
    for p, f in zip(preds, frames):
        lab = resize_labels(f.mask, p.shape)
        check_labels(lab, num_classes, frames.ignore_index)
        cm.update(p, lab)
    res = cm.compute()
    return {
        "miou": float(res["miou"]),
        "pixel_acc": float(res["pixel_acc"]),
        "labelled_frames": len(preds),
        "iou": [None if v is None else float(v) for v in res["iou"]],
    }


class Agreement:
    """Running argmax agreement (share of pixels of the same class) of one build with a
    reference, and the max (and mean, :attr:`mean_logit`) ``|Δlogit|`` where both logits are
    given with the same shape; a prediction of another size is compared at the reference's
    (nearest-exact)."""

    def __init__(self) -> None:
        self.same = self.total = 0
        self.max_logit = None
        self._sum_logit, self._n_logit = 0.0, 0

    def update(
        self,
        pred: np.ndarray,
        ref: np.ndarray,
        logits: np.ndarray | None = None,
        ref_logits: np.ndarray | None = None,
    ) -> None:
        if pred.shape != ref.shape:
            pred = resize_labels(pred, ref.shape)
        self.same += int(np.count_nonzero(pred == ref))
        self.total += ref.size
        if logits is not None and ref_logits is not None and logits.shape == ref_logits.shape:
            diff = np.abs(logits - ref_logits)
            d = float(diff.max())
            self.max_logit = d if self.max_logit is None else max(self.max_logit, d)
            self._sum_logit += float(diff.sum(dtype=np.float64))
            self._n_logit += diff.size

    @property
    def mean_logit(self) -> float | None:
        """Mean ``|Δlogit|`` over every compared logit (``None``: no logits compared)."""
        return self._sum_logit / self._n_logit if self._n_logit else None

    def result(self) -> dict[str, Any]:
        return {
            "argmax_agreement": self.same / self.total if self.total else None,
            "max_abs_logit_diff": self.max_logit,
        }


def compare_predictions(
    preds: Sequence[np.ndarray],
    ref_preds: Sequence[np.ndarray],
    logits: Sequence[np.ndarray] | None = None,
    ref_logits: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """:class:`Agreement` of two lists of predictions (and logits, where both have them)."""
    a = Agreement()
    logits, ref_logits = list(logits or []), list(ref_logits or [])
    for i, (p, r) in enumerate(zip(preds, ref_preds)):
        a.update(p, r, logits[i] if i < len(logits) else None, ref_logits[i] if i < len(ref_logits) else None)
    return a.result()


def compare_builds(
    first: Backend, second: Backend, frames: Iterable[Any], size: Any = "model", *, ignore_index: int = 255
) -> dict[str, Any]:
    """Parity of ``second`` against ``first`` on the same frames, one frame at a time (memory
    does not grow with the input): ``frames`` yields :class:`~rdd.runtime.measure.frames.Frame`
    objects or ``(name, image[, mask])`` tuples (a source, with its masks).

    Returns ``{"frames", "argmax_agreement", "max_abs_logit_diff", "miou_first",
    "miou_second", "miou_delta"}`` (fractions; ``miou_delta`` = second − first, ``None``
    without labels)."""
    k = first.meta.num_classes
    if second.meta.num_classes != k:
        raise InputError(f"the second build has {second.meta.num_classes} classes, the first {k}")
    agree = Agreement()
    cms = [ConfusionMatrix(k, ignore_index=ignore_index) for _ in range(2)]
    n = labelled = 0
    for f in frames:
        image, mask = (f.image, f.mask) if hasattr(f, "image") else (f[1], f[2] if len(f) > 2 else None)
        hw = inference_size(image.shape[:2], first.meta, size)
        outs = []
        for be in (first, second):
            x = preprocess(image, be.meta, hw)
            z = np.asarray(be.forward(x), dtype=np.float32)
            outs.append((output_labels(z, be.meta, hw)[0], z[0] if be.meta.output_kind == "logits" else None))
        (p1, z1), (p2, z2) = outs
        agree.update(p2, p1, z2, z1)
        if mask is not None:
            lab = resize_labels(mask, p1.shape)
            check_labels(lab, k, ignore_index)
            cms[0].update(p1, lab)
            cms[1].update(p2, lab)
            labelled += 1
        n += 1
    m1, m2 = (float(cm.compute()["miou"]) if labelled else None for cm in cms)
    return {
        "frames": n,
        **agree.result(),
        "miou_first": m1,
        "miou_second": m2,
        "miou_delta": None if m1 is None else m2 - m1,
    }
