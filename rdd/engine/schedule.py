"""Iteration-based learning-rate schedule: linear warmup, then poly decay.

``lr(t) = base_lr · f(t)`` with, for ``W`` warmup iterations out of ``T``:

* ``t < W``:  ``f(t) = r + (1 − r) · t / W``  (linear warmup from ``r·base_lr``; ``r`` = warmup_ratio);
* ``t ≥ W``:  ``f(t) = (1 − t / T) ^ power``    (poly, ``power = 0.9`` in DeepLab / RDD).

``t`` is the number of optimizer steps already taken (0 for the first step). The schedule is a
:class:`torch.optim.lr_scheduler.LambdaLR` driven by a picklable :class:`PolyWarmup`, so its
``state_dict`` restores exactly and the schedule is continuous across runs that ``resume``.

On resume the *current* config wins: ``LambdaLR.load_state_dict`` / ``Optimizer.load_state_dict``
restore the checkpoint's ``total_iters``, ``base_lrs`` and ``initial_lr``, so
:func:`rebase_scheduler` re-applies the current ``optim`` values while keeping the step count
(``last_epoch``). With an unchanged config this reproduces the restored LR bit for bit; with a
changed ``optim.iters`` / ``optim.lr`` the run follows the new poly curve from the current step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PolyWarmup", "build_scheduler", "rebase_scheduler"]


@dataclass(frozen=True)
class PolyWarmup:
    """Multiplicative factor ``f(t)`` of the base LR (see module docstring)."""

    total_iters: int
    power: float = 0.9
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6

    def __post_init__(self) -> None:
        if self.total_iters <= 0:
            raise ValueError(f"PolyWarmup.total_iters must be > 0, got {self.total_iters}")
        if not 0 <= self.warmup_iters < self.total_iters:
            raise ValueError(
                f"PolyWarmup.warmup_iters must be in [0, {self.total_iters}), got {self.warmup_iters}"
            )

    def __call__(self, t: int) -> float:
        if t < self.warmup_iters:
            return self.warmup_ratio + (1.0 - self.warmup_ratio) * t / self.warmup_iters
        return max(0.0, 1.0 - min(t, self.total_iters) / self.total_iters) ** self.power


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    total_iters: int,
    power: float = 0.9,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``optimizer`` following :class:`PolyWarmup`; call ``.step()`` per iter."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, PolyWarmup(total_iters, power, warmup_iters, warmup_ratio)
    )


def rebase_scheduler(
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    *,
    base_lr: float,
    total_iters: int,
    power: float = 0.9,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
) -> list[float]:
    """Point a (just restored) ``scheduler`` at a new base LR and :class:`PolyWarmup` curve.

    ``scheduler.last_epoch`` (= optimizer steps taken, ``t``) is kept; every param group gets
    ``initial_lr = base_lr`` and ``lr = base_lr · f(t)`` (the formula ``LambdaLR.get_lr`` uses, so
    an unchanged config gives exactly the restored value). Returns the new LRs.
    """
    opt = scheduler.optimizer
    fn = PolyWarmup(total_iters, power, warmup_iters, warmup_ratio)
    n = len(opt.param_groups)
    scheduler.lr_lambdas = [fn] * n
    scheduler.base_lrs = [float(base_lr)] * n
    t = scheduler.last_epoch
    lrs = [b * f(t) for f, b in zip(scheduler.lr_lambdas, scheduler.base_lrs)]
    for g, lr in zip(opt.param_groups, lrs):
        g["initial_lr"] = float(base_lr)
        g["lr"] = lr
    scheduler._last_lr = list(lrs)
    return lrs
