r"""Relative Difficulty Distillation (RDD; Liang et al., arXiv 2407.03719).

RDD adds **no loss term**. It re-weights the student's ordinary task loss (cross entropy on the
labels) per pixel, from how *difficult* each pixel is relative to the teacher (and the student);
a general distillation loss (e.g. :func:`rdd.losses.pixel_kd`) runs alongside unchanged.

Two stages:

**TFE-RDD** (teacher-full evaluated, first stage). The frozen teacher's auxiliary head and main
head disagree most on the pixels the teacher itself finds hard. Per pixel ``i``

.. math::  d_i = \mathrm{KL}(p^{aux}_i \,\|\, p^{main}_i)
               = \sum_c p^{aux}_{i,c}\,(\log p^{aux}_{i,c} - \log p^{main}_{i,c}),
           \qquad w_i = \exp(-d_i) \in (0, 1],

and the student's loss is :math:`\frac{1}{D}\sum_i w_i\,\mathrm{CE}_i` (+ ``aux_weight`` × the
same for its auxiliary head): easy pixels (teacher heads agree, ``w≈1``) keep their full weight,
pixels the teacher is unsure of are down-weighted.

**TSE-RDD** (teacher-student evaluated, second stage). Teacher and student each mark their hard
pixels (probability of the ground-truth class ``q ≤ τ``, OHEM-style with a minimum number kept);
the student's CE is taken only on pixels hard for *exactly one* of them (XOR) — pixels both find
hard are likely label noise / genuinely ambiguous, pixels both find easy carry no signal.

All difficulty maps are computed under ``torch.no_grad()`` (the teacher is frozen; the student's
own hardness only *selects* pixels): gradients reach the student only through its CE.

Shapes: logits ``N×K×H×W``; labels ``N×H×W`` int64 with ``ignore_index``; maps ``N×H×W``.
Logits of a different resolution are resized bilinearly (``align_corners=False``) to the label
size inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rdd.spec import TFE_REDUCTIONS, TSE_MODES

from ._common import check_logits, check_target, resize, resize_map, split_output
from .task import weighted_ce

__all__ = [
    "tfe_weights",
    "hard_pixel_mask",
    "combine_hard_masks",
    "tse_mask",
    "tfe_task_loss",
    "tse_task_loss",
    "rdd_stats",
    "TSE_MODES",
    "TFE_REDUCTIONS",
]


# --------------------------------------------------------------------------- TFE-RDD
@torch.no_grad()
def tfe_weights(teacher_main: Tensor, teacher_aux: Tensor) -> Tensor:
    r"""TFE-RDD pixel weights ``w = exp(-KL(p_aux ‖ p_main))`` (paper, Sec. TFE-RDD).

    Args:
        teacher_main: teacher main-head logits ``N×K×H×W``.
        teacher_aux: teacher auxiliary-head logits ``N×K×h×w``; resized to ``H×W`` if different.

    Returns:
        float32 ``N×H×W`` weights in ``(0, 1]`` (detached); exactly 1 where both heads agree.
        (In float32 ``exp(-d)`` underflows to 0 only for a divergence ``d > ~87`` nats.)
    """
    if teacher_aux is None:
        raise ValueError(
            "tfe_weights: TFE-RDD needs the teacher's auxiliary-head logits; build the "
            "teacher with aux=True and call it with with_aux=True"
        )
    check_logits(teacher_main, "tfe_weights: teacher_main")
    check_logits(teacher_aux, "tfe_weights: teacher_aux")
    if teacher_aux.shape[:2] != teacher_main.shape[:2]:
        raise ValueError(
            f"tfe_weights: teacher_aux N×K {tuple(teacher_aux.shape[:2])} != teacher_main "
            f"N×K {tuple(teacher_main.shape[:2])}"
        )
    log_main = F.log_softmax(teacher_main.float(), dim=1)  # N×K×H×W
    log_aux = F.log_softmax(resize(teacher_aux.float(), teacher_main.shape[-2:]), dim=1)
    d = (log_aux.exp() * (log_aux - log_main)).sum(dim=1)  # N×H×W, KL ≥ 0
    return torch.exp(-d.clamp_min(0.0))


def tfe_task_loss(
    student_out: Tensor | Mapping[str, Tensor],
    target: Tensor,
    weights: Tensor,
    *,
    student_aux: Tensor | None = None,
    aux_weight: float = 0.4,
    ignore_index: int = 255,
    reduction: str = "valid",
) -> Tensor:
    r"""TFE-RDD re-weighted task loss :math:`\frac1D\sum_i w_i\,\mathrm{CE}_i` (+ aux): the
    :func:`rdd.losses.weighted_ce` of the weights ``w`` (the producer is :func:`tfe_weights`).

    Args:
        student_out: student main logits ``N×K×h×w``, or the model's output dict (``"out"`` and,
            if present, ``"aux"``).
        target: labels ``N×H×W``; the logits are resized to this size.
        weights: ``N×H'×W'`` from :func:`tfe_weights`; resized bilinearly to ``H×W`` if different.
            Treated as constants (detached).
        student_aux: the student's auxiliary logits; its weighted CE is added × ``aux_weight``.
        reduction: the denominator ``D``:

            * ``"valid"`` (default): the number of non-ignored pixels. The loss is then a weighted
              *mean* per labelled pixel, independent of how much of the image is ignored (crops
              with large padded / void areas are not down-scaled), so the learning rate means the
              same thing as for the plain CE baseline.
            * ``"all"``: all ``N·H·W`` pixels, ignored ones included — what the authors' code does.

    Returns:
        scalar loss (0, still attached to the graph, when every pixel is ignored).
    """
    main, aux = split_output(student_out, student_aux, "tfe_task_loss")
    check_target(target, main)
    if reduction not in TFE_REDUCTIONS:
        raise ValueError(f"tfe_task_loss: reduction must be one of {TFE_REDUCTIONS}, got {reduction!r}")
    if weights.ndim != 3 or weights.shape[0] != target.shape[0]:
        raise ValueError(
            f"tfe_task_loss: weights must be N×H×W with N={target.shape[0]}, got {tuple(weights.shape)}"
        )
    w = resize_map(weights.detach().float(), target.shape[-2:])
    valid = target != ignore_index
    denom = valid.sum() if reduction == "valid" else torch.tensor(float(target.numel()))
    denom = denom.to(w.device, torch.float32).clamp_min(1.0)
    return _main_aux_ce(main, aux, target, w, denom, aux_weight, ignore_index)


# --------------------------------------------------------------------------- TSE-RDD
@torch.no_grad()
def hard_pixel_mask(
    logits: Tensor,
    target: Tensor,
    threshold: float = 0.7,
    min_kept: float = 0.0,
    ignore_index: int = 255,
    *,
    per_image: bool = False,
) -> Tensor:
    r"""OHEM-style hard pixels: valid pixels whose ground-truth-class probability ``q ≤ τ``.

    ``τ`` starts at ``threshold``; if fewer than ``k = ceil(min_kept · n_valid)`` pixels would be
    hard, ``τ`` is raised to the ``k``-th smallest ``q`` so that at least ``k`` pixels are kept
    (more on ties). ``min_kept`` is a *fraction* in ``[0, 1]`` of the valid pixels.

    The count is **per batch** by default (one ``τ`` for the whole batch, like the authors' OHEM
    sampler): images the model already gets right give their share of hard pixels to harder ones.
    ``per_image=True`` applies the rule to each image separately (the mask of an image then does
    not depend on the rest of the batch). Under DDP "the batch" is each rank's local batch.

    Args:
        logits: ``N×K×h×w``; resized to the target size if different.
        target: ``N×H×W`` labels with ``ignore_index``.

    Returns:
        bool ``N×H×W``; ``False`` on ignored pixels.
    """
    check_logits(logits, "hard_pixel_mask: logits")
    check_target(target, logits, "hard_pixel_mask: target")
    if not 0.0 <= float(min_kept) <= 1.0:
        raise ValueError(
            f"hard_pixel_mask: min_kept is a fraction of the valid pixels in [0, 1], got {min_kept}"
        )
    k_cls = logits.shape[1]
    valid = target != ignore_index
    if bool(((target[valid] < 0) | (target[valid] >= k_cls)).any()):
        raise ValueError(
            f"hard_pixel_mask: target holds ids outside [0, {k_cls}) that are not ignore_index={ignore_index}"
        )
    prob = F.softmax(resize(logits.float(), target.shape[-2:]), dim=1)  # N×K×H×W
    gt = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    q = prob.gather(1, gt.unsqueeze(1)).squeeze(1)  # N×H×W
    q = torch.where(valid, q, torch.full_like(q, math.inf))  # never hard
    groups = [q[i : i + 1] for i in range(q.shape[0])] if per_image else [q]
    masks = [_ohem_group(g, float(threshold), float(min_kept)) for g in groups]
    return torch.cat(masks, dim=0) if per_image else masks[0]


def _ohem_group(q: Tensor, threshold: float, min_kept: float) -> Tensor:
    """``q``: GT-class probabilities with ``inf`` at ignored pixels → bool mask of hard pixels."""
    flat = q.reshape(-1)
    n_valid = int(torch.isfinite(flat).sum())
    tau = torch.tensor(threshold, dtype=q.dtype, device=q.device)
    k = min(math.ceil(min_kept * n_valid), n_valid)
    if k > 0:
        kth = torch.kthvalue(flat, k).values  # k-th smallest q (finite since k ≤ n_valid)
        tau = torch.maximum(tau, kth)
    return q <= tau  # inf (ignored) is never ≤ a finite τ


def combine_hard_masks(student_hard: Any, teacher_hard: Any, mode: str) -> Any:
    """TSE's selection from the two hardness masks (bool tensors or arrays of one shape).

    ``"xor"``: hard for exactly one; ``"or"``: for either; ``"and"``: for both; ``"student"``:
    ``student_hard`` as is (``teacher_hard`` unused). The one place the combination is written:
    :func:`tse_mask` and the study diagnostics (:mod:`rdd.study.diagnostics`) both call it.
    """
    if mode == "xor":
        return student_hard ^ teacher_hard
    if mode == "or":
        return student_hard | teacher_hard
    if mode == "and":
        return student_hard & teacher_hard
    if mode == "student":
        return student_hard
    raise ValueError(f"combine_hard_masks: mode must be one of {TSE_MODES}, got {mode!r}")


@torch.no_grad()
def tse_mask(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor,
    threshold: float = 0.7,
    min_kept: float = 0.0,
    ignore_index: int = 255,
    mode: str = "xor",
    *,
    per_image: bool = False,
) -> Tensor:
    """TSE-RDD pixel selection (paper, Sec. TSE-RDD).

    ``mode``:
      * ``"xor"`` (the method): pixels hard for exactly one of teacher and student;
      * ``"or"``: hard for either; ``"and"``: hard for both;
      * ``"student"``: the student's own hard pixels (plain OHEM, a baseline).

    Both hardness masks use :func:`hard_pixel_mask` with the same ``threshold``/``min_kept``.
    Returns a bool ``N×H×W`` mask at the target's size (never selects ignored pixels).
    """
    if mode not in TSE_MODES:
        raise ValueError(f"tse_mask: mode must be one of {TSE_MODES}, got {mode!r}")
    s = hard_pixel_mask(student_logits, target, threshold, min_kept, ignore_index, per_image=per_image)
    if mode == "student":
        return s
    t = hard_pixel_mask(teacher_logits, target, threshold, min_kept, ignore_index, per_image=per_image)
    return combine_hard_masks(s, t, mode)


def tse_task_loss(
    student_out: Tensor | Mapping[str, Tensor],
    target: Tensor,
    mask: Tensor,
    *,
    student_aux: Tensor | None = None,
    aux_weight: float = 0.4,
    ignore_index: int = 255,
) -> Tensor:
    r"""TSE-RDD task loss: the student's CE averaged over the selected pixels only (+ aux).

    :math:`\frac{1}{|M|}\sum_{i\in M}\mathrm{CE}_i` with ``M = mask`` (from :func:`tse_mask`, at
    the target's size): the :func:`rdd.losses.weighted_ce` of the 0/1 weights ``M`` with
    ``avg_factor = |M|``. The same mask is used for the auxiliary head. An empty mask gives a
    zero loss that is still attached to the graph (zero, finite gradients), never NaN.
    """
    main, aux = split_output(student_out, student_aux, "tse_task_loss")
    check_target(target, main)
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(target.shape):
        raise ValueError(
            f"tse_task_loss: mask must be a bool tensor of the target's shape "
            f"{tuple(target.shape)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    sel = (mask.detach() & (target != ignore_index)).float()
    return _main_aux_ce(main, aux, target, sel, sel.sum().clamp_min(1.0), aux_weight, ignore_index)


def _main_aux_ce(
    main: Tensor,
    aux: Tensor | None,
    target: Tensor,
    weight: Tensor,
    denom: Tensor,
    aux_weight: float,
    ignore_index: int,
) -> Tensor:
    """:func:`weighted_ce` of the main head, plus the same for aux with ``loss_weight=aux_weight``."""
    loss = weighted_ce(main, target, weight, avg_factor=denom, ignore_index=ignore_index)
    if aux is not None and aux_weight:
        loss = loss + weighted_ce(
            aux, target, weight, avg_factor=denom, loss_weight=aux_weight, ignore_index=ignore_index
        )
    return loss


# --------------------------------------------------------------------------- logging
@torch.no_grad()
def rdd_stats(
    *,
    target: Tensor | None = None,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    teacher_hard: Tensor | None = None,
    student_hard: Tensor | None = None,
    ignore_index: int = 255,
) -> dict[str, float]:
    """Scalars for logging what RDD is doing this step (all optional inputs, ``N×H×W``).

    Returns a subset of (keys present only for the inputs given):

    * ``tfe_weight_mean`` / ``tfe_weight_min``: over valid pixels (all pixels without a target);
    * ``tse_selected_frac``: fraction of valid pixels selected by the TSE mask;
    * ``teacher_hard_frac`` / ``student_hard_frac``: fractions of valid pixels that are hard.

    Maps at another resolution than the target are compared at their own size (weights are
    resized; masks must match the target's size).
    """
    out: dict[str, float] = {}

    def valid_for(x: Tensor) -> Tensor:
        if target is None:
            return torch.ones_like(x, dtype=torch.bool)
        if tuple(x.shape) != tuple(target.shape):
            raise ValueError(f"rdd_stats: map shape {tuple(x.shape)} != target shape {tuple(target.shape)}")
        return target != ignore_index

    if weights is not None:
        w = weights.float()
        if target is not None:
            w = resize_map(w, target.shape[-2:])
        v = valid_for(w)
        if bool(v.any()):
            out["tfe_weight_mean"] = float(w[v].mean())
            out["tfe_weight_min"] = float(w[v].min())
    for key, m in (
        ("tse_selected_frac", mask),
        ("teacher_hard_frac", teacher_hard),
        ("student_hard_frac", student_hard),
    ):
        if m is not None:
            v = valid_for(m)
            n = int(v.sum())
            out[key] = float((m.bool() & v).sum()) / n if n else 0.0
    return out
