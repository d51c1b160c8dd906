"""Segmentation metrics from a confusion matrix (mIoU, pixel accuracy, mean class accuracy).

This module imports **numpy only**. It accepts numpy arrays or torch tensors; torch is used
(never imported at module import) only when it is handed a tensor, so the edge runtime can use
:class:`ConfusionMatrix` on a device without PyTorch.

Conventions (see ``docs/DESIGN.md``):

* the matrix is ``K×K`` with **rows = ground truth**, **columns = prediction**;
* ``IoU_c = TP_c / (TP_c + FP_c + FN_c) = M[c,c] / (Σ_j M[c,j] + Σ_i M[i,c] − M[c,c])``;
* a class absent from *both* prediction and ground truth (denominator 0) gets IoU ``None`` and is
  left out of the mean: a CamVid validation split without a "bicyclist" pixel should neither
  reward (IoU 1) nor punish (IoU 0) a model for it. A class present in one of them only gets 0;
* ``pixel_acc = Σ_c M[c,c] / Σ M`` and ``mean_acc`` = mean over classes *present in the ground
  truth* of ``M[c,c] / Σ_j M[c,j]``;
* pixels whose target is ``ignore_index`` are not counted at all (whatever the prediction);
* all values are fractions in ``[0, 1]``; reports print percentages. With nothing counted yet
  ``miou``/``pixel_acc``/``mean_acc`` are ``nan``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

__all__ = ["ConfusionMatrix"]


def _is_torch_tensor(x: Any) -> bool:
    # Only look at torch if it is already imported: a tensor cannot exist otherwise.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class ConfusionMatrix:
    """Accumulates a ``K×K`` confusion matrix over many ``update`` calls.

    Args:
        num_classes: number of classes ``K`` (train ids ``[0, K)``).
        ignore_index: target value whose pixels are not counted.

    numpy inputs are counted into an int64 numpy matrix; torch inputs are counted with
    ``torch.bincount`` on the tensor's own device into a torch accumulator (no host sync per
    update). :attr:`matrix` returns the sum of both as numpy.

    Example::

        cm = ConfusionMatrix(11)
        for x, y in loader:
            cm.update(model(x)["out"].argmax(1), y)
        cm.all_reduce()            # no-op unless torch.distributed is initialised
        cm.compute()["miou"]
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"ConfusionMatrix: ignore_index {ignore_index} collides with a class id "
                f"in [0, {self.num_classes})"
            )
        self._np = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._torch = None  # torch int64 K×K accumulator on the device of the last tensor input

    # ------------------------------------------------------------------ accumulation
    def reset(self) -> ConfusionMatrix:
        self._np[...] = 0
        self._torch = None
        return self

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Count ``pred`` against ``target``.

        Args:
            pred: integer class ids, ``N×H×W`` or ``H×W`` (numpy array or torch tensor). Take the
                ``argmax`` of logits first.
            target: integer ids of the same shape; ``ignore_index`` pixels are skipped.

        Raises:
            ValueError: shapes differ, non-integer dtypes, mixed numpy/torch inputs, a target id
                outside ``[0, K)`` that is not ``ignore_index``, or a prediction outside ``[0, K)``.
        """
        pt, tt = _is_torch_tensor(pred), _is_torch_tensor(target)
        if pt != tt:
            raise ValueError(
                "ConfusionMatrix.update: pred and target must both be numpy arrays or "
                f"both torch tensors, got {type(pred).__name__} and {type(target).__name__}"
            )
        if pt:
            self._update_torch(pred, target)
        else:
            self._update_numpy(np.asarray(pred), np.asarray(target))
        return self

    def _check(self, pred_shape, target_shape, pred_int: bool, target_int: bool) -> None:
        if tuple(pred_shape) != tuple(target_shape):
            raise ValueError(
                f"ConfusionMatrix.update: pred shape {tuple(pred_shape)} != target shape "
                f"{tuple(target_shape)} (expected both N×H×W or H×W)"
            )
        if not (pred_int and target_int):
            raise ValueError(
                "ConfusionMatrix.update: pred and target must hold integer class ids "
                "(take argmax over the class dimension of logits first)"
            )

    def _bad_values(self, bad_t: bool, bad_p: bool) -> None:
        k = self.num_classes
        if bad_t:
            raise ValueError(
                f"ConfusionMatrix.update: target holds ids outside [0, {k}) that are not "
                f"ignore_index={self.ignore_index}"
            )
        if bad_p:
            raise ValueError(f"ConfusionMatrix.update: pred holds ids outside [0, {k})")

    def _update_numpy(self, pred: np.ndarray, target: np.ndarray) -> None:
        self._check(pred.shape, target.shape, _np_is_int(pred), _np_is_int(target))
        k = self.num_classes
        t, p = target.reshape(-1), pred.reshape(-1)
        if not p.size:
            return
        ignore = t == self.ignore_index
        if p.min() < 0 or p.max() >= k:  # the rare case: out of range where not ignored?
            q = p[~ignore]
            self._bad_values(False, bool(q.size and (q.min() < 0 or q.max() >= k)))
            p = np.where(ignore, 0, p)
        # one code per pixel, t·k + p, in the narrowest integer type that holds it (the
        # runner counts every frame: no int64 copies, no boolean gather); ignored pixels get
        # the code k·k, and any other target id outside [0, k) lands at k·k or above too, so
        # the count there must equal the ignored pixels' count
        dt = np.int32 if k * k + k < 2**31 else np.int64
        codes = t.astype(dt) * dt(k)
        codes += p
        codes[ignore] = k * k
        counts = np.bincount(codes, minlength=k * k + 1)
        n_ignore = int(np.count_nonzero(ignore))
        self._bad_values(
            bool(counts[k * k :].sum() != n_ignore or (t.dtype.kind == "i" and t.min() < 0)), False
        )
        self._np += counts[: k * k].reshape(k, k)

    def _update_torch(self, pred: Any, target: Any) -> None:
        import torch

        self._check(
            pred.shape,
            target.shape,
            not (pred.is_floating_point() or pred.is_complex() or pred.dtype == torch.bool),
            not (target.is_floating_point() or target.is_complex() or target.dtype == torch.bool),
        )
        if pred.device != target.device:
            raise ValueError(f"ConfusionMatrix.update: pred on {pred.device} but target on {target.device}")
        k = self.num_classes
        t = target.reshape(-1).long()
        p = pred.reshape(-1).long()
        valid = t != self.ignore_index
        t, p = t[valid], p[valid]
        # One host sync for both checks.
        bad = torch.stack([((t < 0) | (t >= k)).any(), ((p < 0) | (p >= k)).any()]).tolist()
        self._bad_values(bool(bad[0]), bool(bad[1]))
        counts = torch.bincount(t * k + p, minlength=k * k).reshape(k, k)
        if self._torch is None:
            self._torch = counts
        else:
            self._torch = self._torch.to(counts.device) + counts

    # ------------------------------------------------------------------ combination
    @property
    def matrix(self) -> np.ndarray:
        """The ``K×K`` int64 numpy matrix (rows = ground truth, columns = prediction)."""
        m = self._np.copy()
        if self._torch is not None:
            m += self._torch.detach().cpu().numpy().astype(np.int64)
        return m

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (in place); returns ``self``."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"ConfusionMatrix.merge expects a ConfusionMatrix, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"ConfusionMatrix.merge: cannot merge K={other.num_classes}/ignore="
                f"{other.ignore_index} into K={self.num_classes}/ignore={self.ignore_index}"
            )
        self._np += other.matrix
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all ranks with ``torch.distributed`` when it is initialised.

        A no-op (and torch is not even imported) in a single process. Every rank must call it.
        """
        torch = sys.modules.get("torch")
        if torch is None:
            return self
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return self
        if self._torch is not None:
            device = self._torch.device
        elif dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
        total = torch.as_tensor(self.matrix, dtype=torch.int64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        self._torch = None
        self._np = total.cpu().numpy().astype(np.int64)
        return self

    # ------------------------------------------------------------------ results
    def compute(self, *, with_confusion: bool = False) -> dict[str, Any]:
        """Metrics from the accumulated counts.

        Returns:
            ``{"miou": float, "iou": list[float | None], "pixel_acc": float, "mean_acc": float}``
            plus ``"confusion"`` (``K×K`` list of int lists) when ``with_confusion``.
        """
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1)
        pr = m.sum(axis=0)
        union = gt + pr - tp
        iou: list[float | None] = [
            float(tp[c] / union[c]) if union[c] > 0 else None for c in range(self.num_classes)
        ]
        present = [v for v in iou if v is not None]
        miou = float(np.mean(present)) if present else math.nan
        total = m.sum()
        pixel_acc = float(tp.sum() / total) if total > 0 else math.nan
        in_gt = gt > 0
        mean_acc = float(np.mean(tp[in_gt] / gt[in_gt])) if in_gt.any() else math.nan
        out: dict[str, Any] = {"miou": miou, "iou": iou, "pixel_acc": pixel_acc, "mean_acc": mean_acc}
        if with_confusion:
            out["confusion"] = self.matrix.tolist()
        return out

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())})"
        )


def _np_is_int(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.integer)
