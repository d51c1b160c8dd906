"""The training objective of every method, as configuration (``loss`` section).

:class:`Objective` turns the outputs of one iteration into named, already weighted loss terms:

* task term (RDD, Liang et al., arXiv 2407.03719, re-weights the student's CE, no extra term):

  - ``rdd.tfe`` and ``it < rdd.tfe_iters``:  ``tfe_task_loss(s, y, tfe_weights(t_main, t_aux))``
  - ``rdd.tse`` and ``it ≥ rdd.tfe_iters``:  ``tse_task_loss(s, y, tse_mask(s_out, t_out, y))``
  - otherwise ``ce_loss(s, y)``;

  each with ``aux_weight`` × the same loss on the student's auxiliary head when it has one;
* ``kd``: ``kd.weight · pixel_kd(s_out, t_out, T)`` (every iteration, unchanged by RDD);
* ``cwd`` / ``at``: ``weight · CWD/AT`` on logits or on ``feats[backbone|head]``.

Shapes: ``s``/``t`` are model output dicts (``out``/``aux`` ``N×K×H×W``, ``feats``), ``y`` is
``N×H×W`` int64 with ``ignore_index``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .config import LossConfig

__all__ = ["Objective"]


class Objective:
    """Loss terms for iteration ``it``; see the module docstring.

    Args:
        cfg: the validated ``loss`` section (``rdd.tfe_iters`` filled in by ``TrainConfig``).
        ignore_index: label value without supervision.
        student_aux: whether the student's aux head is trained (has one and ``aux_weight > 0``).
    """

    def __init__(self, cfg: LossConfig, *, ignore_index: int = 255, student_aux: bool = True,
                 device: torch.device | str = "cpu") -> None:
        from rdd.losses import AttentionTransfer, ChannelWiseDistillation

        self.cfg = cfg
        self.ignore_index = int(ignore_index)
        self.aux_weight = cfg.aux_weight if student_aux else 0.0
        self.extra: list[tuple[str, Any, nn.Module]] = []
        counts: dict[str, int] = {}
        for e in cfg.extra_kd:
            counts[e.type] = counts.get(e.type, 0) + 1
        for i, e in enumerate(cfg.extra_kd):
            cls = ChannelWiseDistillation if e.type == "cwd" else AttentionTransfer
            try:
                mod = cls(**e.kwargs)
            except TypeError as err:
                raise ValueError(f"loss.extra_kd[{i}]: bad arguments for {cls.__name__}: {err}") from None
            name = e.type if counts[e.type] == 1 else f"{e.type}{i}"
            self.extra.append((name, e, mod.to(device)))

    # ------------------------------------------------------------------ what to compute
    def phase(self, it: int) -> str:
        """``"tfe"``, ``"tse"`` or ``"ce"`` for global iteration ``it`` (0-based)."""
        rdd = self.cfg.rdd
        if rdd.tfe and it < rdd.tfe_iters:
            return "tfe"
        if rdd.tse and it >= rdd.tfe_iters:
            return "tse"
        return "ce"

    @property
    def needs_feats(self) -> bool:
        return any(e.feature != "logits" for _, e, _ in self.extra)

    def needs_teacher(self, it: int) -> bool:
        """Whether iteration ``it`` uses the teacher's outputs at all: RDD (TFE weights / TSE
        mask), pixel KD or an ``extra_kd`` term. In the plain ``"ce"`` phase without KD (e.g.
        TFE-only after ``tfe_iters``) the trainer skips the teacher forward."""
        return (self.phase(it) != "ce" or self.cfg.kd.type != "none" or bool(self.extra))

    def teacher_aux(self, it: int) -> bool:
        """The teacher's aux head is needed only for the TFE weights."""
        return self.phase(it) == "tfe"

    # ------------------------------------------------------------------ terms
    def __call__(self, it: int, s: dict[str, Any], t: dict[str, Any] | None, y: Tensor
                 ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """→ (``{name: weighted scalar}``, RDD maps for logging: ``weights`` or ``mask``)."""
        from rdd.losses import (ce_loss, pixel_kd, tfe_task_loss, tfe_weights, tse_mask,
                                tse_task_loss)

        cfg, rdd = self.cfg, self.cfg.rdd
        terms: dict[str, Tensor] = {}
        maps: dict[str, Tensor] = {}
        phase = self.phase(it)
        if phase == "tfe":
            w = tfe_weights(t["out"], t["aux"])                                  # N×H×W
            terms["task"] = tfe_task_loss(s, y, w, aux_weight=self.aux_weight,
                                          ignore_index=self.ignore_index, reduction=rdd.reduction)
            maps["weights"] = w
        elif phase == "tse":
            m = tse_mask(s["out"].detach(), t["out"], y, rdd.threshold, rdd.min_kept,
                         self.ignore_index, rdd.mode)                            # N×H×W bool
            terms["task"] = tse_task_loss(s, y, m, aux_weight=self.aux_weight,
                                          ignore_index=self.ignore_index)
            maps["mask"] = m
        else:
            terms["task"] = ce_loss(s, y, aux_weight=self.aux_weight, ignore_index=self.ignore_index)
        if cfg.kd.type == "pixel":
            terms["kd"] = cfg.kd.weight * pixel_kd(s["out"], t["out"], cfg.kd.temperature)
        for name, e, mod in self.extra:
            if e.feature == "logits":
                a, b = s["out"], t["out"]
            else:
                a, b = s["feats"][e.feature], t["feats"][e.feature]
            terms[name] = e.weight * mod(a, b)
        return terms, maps
