"""Losses: the RDD pixel maps and re-weighted task losses, plain CE, and KD losses.

RDD (Liang et al., arXiv 2407.03719) adds no loss term; it re-weights the student's CE:

* first stage, TFE-RDD: ``w = tfe_weights(t_out, t_aux)`` → ``tfe_task_loss(s_out, y, w)``;
* second stage, TSE-RDD: ``m = tse_mask(s_out, t_out, y)`` → ``tse_task_loss(s_out, y, m)``;

alongside an unchanged general distillation loss (``pixel_kd``, optionally CWD / AT). Every task
loss (``ce_loss`` and the two above) is the one weighted cross entropy ``weighted_ce`` (weight +
``avg_factor``, as in mmsegmentation) with ``tfe_weights`` and ``tse_mask`` as weight producers.
"""

from .kd import (
    AttentionTransfer,
    ChannelWiseDistillation,
    attention_map,
    attention_transfer,
    channel_wise_distillation,
    pixel_kd,
)
from .relative_difficulty import (
    TFE_REDUCTIONS,
    TSE_MODES,
    combine_hard_masks,
    hard_pixel_mask,
    rdd_stats,
    tfe_task_loss,
    tfe_weights,
    tse_mask,
    tse_task_loss,
)
from .task import ce_loss, weighted_ce

#: ``loss.extra_kd[].type`` → its module (the configuration checks keyword arguments against it)
EXTRA_KD = {"cwd": ChannelWiseDistillation, "at": AttentionTransfer}

__all__ = [
    "tfe_weights",
    "hard_pixel_mask",
    "combine_hard_masks",
    "tse_mask",
    "pixel_kd",
    "weighted_ce",
    "tfe_task_loss",
    "tse_task_loss",
    "ce_loss",
    "rdd_stats",
    "ChannelWiseDistillation",
    "AttentionTransfer",
    "channel_wise_distillation",
    "attention_transfer",
    "attention_map",
    "TSE_MODES",
    "TFE_REDUCTIONS",
    "EXTRA_KD",
]
