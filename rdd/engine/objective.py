"""The training objective of every method, as configuration (``loss`` section).

:class:`Objective` turns the outputs of one iteration into named, already weighted loss terms:

* task term (RDD, Liang et al., arXiv 2407.03719, re-weights the student's CE, no extra term):

  - ``rdd.tfe`` and ``it < rdd.tfe_iters``:  ``tfe_task_loss(s, y, tfe_weights(t_main, t_aux))``
  - ``rdd.tse`` and ``it ≥ rdd.tfe_iters``:  ``tse_task_loss(s, y, tse_mask(s_out, t_out, y))``
  - otherwise ``ce_loss(s, y)``;

  each with ``aux_weight`` × the same loss on the student's auxiliary head when it has one;
* ``kd``: ``kd.weight · pixel_kd(s_out, t_out, T)`` (every iteration, unchanged by RDD);
* ``cwd`` / ``at``: ``weight · CWD/AT`` on logits or on ``feats[backbone|head]``.

:func:`global_rdd_stats` reduces the logging statistics of the RDD maps an iteration returns
over all ranks, so the trainer itself knows nothing about RDD's map names.

Shapes: ``s``/``t`` are model output dicts (``out``/``aux`` ``N×K×H×W``, ``feats``), ``y`` is
``N×H×W`` int64 with ``ignore_index``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed as D
from .config import LossConfig

__all__ = ["Objective", "global_rdd_stats"]


class Objective:
    """Loss terms for iteration ``it``; see the module docstring.

    Args:
        cfg: the validated ``loss`` section (``rdd.tfe_iters`` filled in by ``TrainConfig``).
        ignore_index: label value without supervision.
        student_aux: whether the student's aux head is trained (has one and ``aux_weight > 0``).
    """

    def __init__(
        self,
        cfg: LossConfig,
        *,
        ignore_index: int = 255,
        student_aux: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        from rdd.losses import EXTRA_KD

        self.cfg = cfg
        self.ignore_index = int(ignore_index)
        self.aux_weight = cfg.aux_weight if student_aux else 0.0
        self.extra: list[tuple[str, Any, nn.Module]] = []
        counts: dict[str, int] = {}
        for e in cfg.extra_kd:
            counts[e.type] = counts.get(e.type, 0) + 1
        for i, e in enumerate(cfg.extra_kd):
            cls = EXTRA_KD[e.type]
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
        return self.phase(it) != "ce" or self.cfg.kd.type != "none" or bool(self.extra)

    def teacher_aux(self, it: int) -> bool:
        """The teacher's aux head is needed only for the TFE weights."""
        return self.phase(it) == "tfe"

    # ------------------------------------------------------------------ terms
    def __call__(
        self, it: int, s: dict[str, Any], t: dict[str, Any] | None, y: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """→ (``{name: weighted scalar}``, RDD maps for logging: ``weights`` or ``mask``)."""
        from rdd.losses import ce_loss, pixel_kd, tfe_task_loss, tfe_weights, tse_mask, tse_task_loss

        cfg, rdd = self.cfg, self.cfg.rdd
        terms: dict[str, Tensor] = {}
        maps: dict[str, Tensor] = {}
        phase = self.phase(it)
        if phase == "tfe":
            w = tfe_weights(t["out"], t["aux"])  # N×H×W
            terms["task"] = tfe_task_loss(
                s, y, w, aux_weight=self.aux_weight, ignore_index=self.ignore_index, reduction=rdd.reduction
            )
            maps["weights"] = w
        elif phase == "tse":
            m = tse_mask(
                s["out"].detach(), t["out"], y, rdd.threshold, rdd.min_kept, self.ignore_index, rdd.mode
            )  # N×H×W bool
            terms["task"] = tse_task_loss(s, y, m, aux_weight=self.aux_weight, ignore_index=self.ignore_index)
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


# --------------------------------------------------------------------------- logging
def global_rdd_stats(
    maps: Mapping[str, torch.Tensor], y: torch.Tensor, ignore_index: int
) -> dict[str, float]:
    """:func:`rdd.losses.rdd_stats` of the *global* batch (all ranks), for logging.

    ``maps``: ``{"weights": N×H×W}`` (TFE) or ``{"mask": N×H×W bool}`` (TSE) or ``{}``;
    ``y``: N×H×W labels. Means and fractions over valid pixels are combined weighted by each
    rank's valid-pixel count ``n_r`` (``Σ m_r·n_r / Σ n_r`` = the mean over the global batch);
    ``tfe_weight_min`` is the minimum over ranks. Every rank must call it (collectives), with
    the same map key (the phase is a function of the iteration, so it is). Without a process
    group this is ``rdd_stats`` unchanged.
    """
    from rdd.losses import rdd_stats

    if "weights" in maps:
        stats = rdd_stats(target=y, weights=maps["weights"], ignore_index=ignore_index)
        mean_keys, min_keys = ("tfe_weight_mean",), ("tfe_weight_min",)
    elif "mask" in maps:
        stats = rdd_stats(target=y, mask=maps["mask"], ignore_index=ignore_index)
        mean_keys, min_keys = ("tse_selected_frac",), ()
    else:
        return {}
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stats
    n = float((y != ignore_index).sum())
    # [m_k·n_r ..., n_r, −min_k ...]; a key missing on a rank (no valid pixel) has n_r = 0
    vals = [stats.get(k, 0.0) * n for k in mean_keys] + [n] + [-stats.get(k, math.inf) for k in min_keys]
    t = torch.tensor(vals, dtype=torch.float64, device=y.device)
    k_mean = len(mean_keys) + 1
    sums = D.all_reduce_mean(t[:k_mean].clone())  # Σ/W cancels in the ratio
    mins = D.all_reduce_max(t[k_mean:].clone()) if min_keys else t[k_mean:]
    total = float(sums[-1])
    out: dict[str, float] = {}
    if total > 0:
        out.update({k: float(sums[i]) / total for i, k in enumerate(mean_keys)})
    out.update({k: -float(mins[i]) for i, k in enumerate(min_keys) if math.isfinite(float(mins[i]))})
    if "mask" in maps and total == 0:
        out["tse_selected_frac"] = 0.0
    return out
