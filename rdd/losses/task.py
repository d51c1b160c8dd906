"""Plain supervised task loss (cross entropy + auxiliary head) for the teacher and the baseline."""
from __future__ import annotations

from typing import Mapping

from torch import Tensor

from ._common import check_target, pixel_ce, split_output

__all__ = ["ce_loss"]


def ce_loss(student_out: Tensor | Mapping[str, Tensor], target: Tensor, *,
            student_aux: Tensor | None = None, aux_weight: float = 0.4,
            ignore_index: int = 255) -> Tensor:
    r"""``CE(out) + aux_weight · CE(aux)``, each averaged over the non-ignored pixels.

    Args:
        student_out: main logits ``N×K×h×w`` or a model output dict (``"out"``, optional ``"aux"``).
        target: ``N×H×W`` labels; logits are resized (bilinear) to this size.

    Equals ``F.cross_entropy(..., ignore_index=...)`` but returns 0 (attached to the graph) rather
    than NaN when every pixel is ignored.
    """
    main, aux = split_output(student_out, student_aux, "ce_loss")
    check_target(target, main)
    denom = (target != ignore_index).sum().clamp_min(1).float()
    loss = pixel_ce(main, target, ignore_index).sum() / denom
    if aux is not None and aux_weight:
        loss = loss + aux_weight * (pixel_ce(aux, target, ignore_index).sum() / denom)
    return loss
