r"""The task loss: **one** weighted cross entropy, and the plain CE of the teacher and baseline.

:func:`weighted_ce` is the package's single cross-entropy primitive, in mmsegmentation's form
(a per-pixel ``weight`` and an ``avg_factor`` denominator):

.. math::  L = \lambda\,\frac{\sum_i w_i\,\mathrm{CE}_i}{D}.

Every task loss is this primitive with a weight producer: :func:`ce_loss` (``w = 1``, ``D`` = the
labelled pixels), TFE-RDD (``w`` = :func:`rdd.losses.tfe_weights`, see
:func:`rdd.losses.tfe_task_loss`) and TSE-RDD (``w`` = the 0/1 :func:`rdd.losses.tse_mask`, ``D`` =
its size, see :func:`rdd.losses.tse_task_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ._common import check_target, pixel_ce, split_output

__all__ = ["weighted_ce", "ce_loss"]


def weighted_ce(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    avg_factor: Tensor | float | None = None,
    loss_weight: float = 1.0,
    ignore_index: int = 255,
) -> Tensor:
    r"""``loss_weight · Σ_i weight_i · CE_i / avg_factor`` over the pixels of ``target``.

    Args:
        logits: ``N×K×h×w``; resized (bilinear) to the target's size.
        target: ``N×H×W`` labels; ignored pixels contribute 0 whatever their weight.
        weight: ``N×H×W`` per-pixel weights at the target's size (``None``: 1 everywhere),
            treated as given (detach them first if they must not carry gradients).
        avg_factor: the denominator ``D`` (``None``: the number of non-ignored pixels, at
            least 1, so an all-ignored batch gives 0 attached to the graph, not NaN).
        loss_weight: ``λ``, applied to the sum before the division.

    Returns:
        a float32 scalar.
    """
    ce = pixel_ce(logits, target, ignore_index)  # N×H×W
    if weight is not None:
        ce = ce * weight
    if avg_factor is None:
        avg_factor = (target != ignore_index).sum().clamp_min(1).float()
    total = ce.sum()
    if loss_weight != 1.0:
        total = loss_weight * total
    return total / avg_factor


def ce_loss(
    student_out: Tensor | Mapping[str, Tensor],
    target: Tensor,
    *,
    student_aux: Tensor | None = None,
    aux_weight: float = 0.4,
    ignore_index: int = 255,
) -> Tensor:
    r"""``CE(out) + aux_weight · CE(aux)``, each averaged over the non-ignored pixels.

    Args:
        student_out: main logits ``N×K×h×w`` or a model output dict (``"out"``, optional ``"aux"``).
        target: ``N×H×W`` labels; logits are resized (bilinear) to this size.

    Equals ``F.cross_entropy(..., ignore_index=...)`` but returns 0 (attached to the graph) rather
    than NaN when every pixel is ignored. (The aux term is weighted after its average,
    ``aux_weight · (Σ CE / D)``, as it always was here; the RDD losses weight it before,
    :func:`rdd.losses.tfe_task_loss`. The two agree up to float rounding; each keeps its own order
    so that trained numbers stay bit-identical.)
    """
    main, aux = split_output(student_out, student_aux, "ce_loss")
    check_target(target, main)
    denom = (target != ignore_index).sum().clamp_min(1).float()
    loss = weighted_ce(main, target, avg_factor=denom, ignore_index=ignore_index)
    if aux is not None and aux_weight:
        loss = loss + aux_weight * weighted_ce(aux, target, avg_factor=denom, ignore_index=ignore_index)
    return loss
