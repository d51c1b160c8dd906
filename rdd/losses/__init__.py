"""Losses: the RDD pixel maps and re-weighted task losses, plain CE, and KD losses.

RDD (Liang et al., arXiv 2407.03719) adds no loss term; it re-weights the student's CE:

* first stage, TFE-RDD: ``w = tfe_weights(t_out, t_aux)`` → ``tfe_task_loss(s_out, y, w)``;
* second stage, TSE-RDD: ``m = tse_mask(s_out, t_out, y)`` → ``tse_task_loss(s_out, y, m)``;

alongside an unchanged general distillation loss (``pixel_kd``, optionally CWD / AT).
"""
from .kd import (AttentionTransfer, ChannelWiseDistillation, PixelKD, attention_map,
                 attention_transfer, channel_wise_distillation, pixel_kd)
from .relative_difficulty import (TFE_REDUCTIONS, TSE_MODES, hard_pixel_mask, rdd_stats,
                                  tfe_task_loss, tfe_weights, tse_mask, tse_task_loss)
from .task import ce_loss

__all__ = [
    "tfe_weights", "hard_pixel_mask", "tse_mask", "pixel_kd", "tfe_task_loss", "tse_task_loss",
    "ce_loss", "rdd_stats", "ChannelWiseDistillation", "AttentionTransfer", "PixelKD",
    "channel_wise_distillation", "attention_transfer", "attention_map", "TSE_MODES",
    "TFE_REDUCTIONS",
]
