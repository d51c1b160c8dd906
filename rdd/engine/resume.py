"""Where a training run starts, and the checkpoint it saves to go on from there.

:class:`RunCheckpoint` works beside :class:`~rdd.engine.trainer.Trainer` on the run's
``out_dir/checkpoint.pt`` (format: :mod:`rdd.engine.checkpoint`). :meth:`~RunCheckpoint.resume`
picks the start point (the run's own checkpoint when it can continue it, else ``resume:``, else
scratch: :func:`~rdd.engine.checkpoint.own_checkpoint_verdict`) and restores model, optimizer,
LR scheduler, grad scaler and every rank's RNG state from it, so that a run killed at any point
(``kill -9`` included) continues bit for bit; :meth:`~RunCheckpoint.save` writes that state
(rank 0). The current ``optim`` config wins over the checkpoint's (:func:`apply_optim_config`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from . import distributed as D
from .checkpoint import (
    check_config_hash,
    checkpoint_identity,
    get_rng_state,
    load_checkpoint,
    own_checkpoint_verdict,
    save_checkpoint,
    set_rng_state,
)
from .config import OptimConfig, TrainConfig
from .schedule import rebase_scheduler

__all__ = ["RunCheckpoint", "apply_optim_config", "seed_all"]

log = logging.getLogger("rdd.engine")


def seed_all(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and CUDA) with ``seed``."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_optim_config(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, o: OptimConfig
) -> None:
    """After restoring optimizer + scheduler state: the *current* ``optim`` values win.

    ``load_state_dict`` brings back the checkpoint's lr / initial_lr / momentum /
    weight_decay and its :class:`~rdd.engine.schedule.PolyWarmup` (``total_iters``...);
    re-apply the config's (the step count, momentum buffers and scaler state are kept), so a
    resume with a changed ``optim.iters`` / ``optim.lr`` follows the new poly schedule from
    the current step, and an unchanged config continues bit for bit.
    """
    for g in optimizer.param_groups:
        g["momentum"] = o.momentum
        g["weight_decay"] = o.weight_decay
    rebase_scheduler(
        scheduler,
        base_lr=o.lr,
        total_iters=o.iters,
        power=o.power,
        warmup_iters=o.warmup_iters,
        warmup_ratio=o.warmup_ratio,
    )


class RunCheckpoint:
    """The training state of one run in ``out_dir/checkpoint.pt``: :meth:`resume`, :meth:`save`.

    ``origin`` is the identity of the ``resume:`` checkpoint the run descends from
    (:func:`~rdd.engine.checkpoint.checkpoint_identity`, its lineage); ``resumed_from`` the path
    the run started from (``None``: from scratch). Both are set by :meth:`resume`.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        info: D.DistInfo,
        out_dir: Path,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        self.cfg, self.info = cfg, info
        self.path = Path(out_dir) / "checkpoint.pt"
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.origin: str | None = None
        self.resumed_from: str | None = None

    def choose(self) -> tuple[str | None, dict[str, Any] | None]:
        """Where this run starts: its own ``checkpoint.pt`` when it can continue it (see
        :func:`~rdd.engine.checkpoint.own_checkpoint_verdict`), else ``resume:``, else scratch.
        Returns ``(path or None, the loaded checkpoint or None)``; sets ``self.origin``."""
        cfg = self.cfg
        external = load_checkpoint(cfg.resume) if cfg.resume is not None else None
        self.origin = checkpoint_identity(external) if external is not None else None
        own = self.path
        if not own.is_file() or (cfg.resume is not None and Path(cfg.resume).resolve() == own.resolve()):
            return cfg.resume, external
        ckpt, why = own_checkpoint_verdict(
            own,
            config_hash=cfg.config_hash(),
            config=cfg.to_dict(),
            end_iter=cfg.end_iter,
            origin=self.origin,
        )
        if ckpt is not None:
            return str(own), ckpt
        if self.info.is_main:
            log.warning(
                "%s: not continuing it: %s; %s",
                own,
                why,
                f"starting from {cfg.resume}" if cfg.resume else "training from scratch",
            )
        return cfg.resume, external

    def resume(self) -> tuple[int, float]:
        """Restore the state :meth:`choose` picks (or seed a run from scratch with ``seed +
        rank``) → ``(step, training time so far in s)``."""
        cfg = self.cfg
        path, ckpt = self.choose()
        self.resumed_from = path
        if path is None:
            seed_all(cfg.seed + self.info.rank)
            return 0, 0.0
        if path == cfg.resume:
            check_config_hash(ckpt, cfg.config_hash(), config=cfg.to_dict(), path=path)
        else:
            self.origin = ckpt.get("origin")  # own checkpoint: same hash, same origin
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        apply_optim_config(self.optimizer, self.scheduler, cfg.optim)
        if ckpt.get("scaler") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        step = int(ckpt["step"])
        train_time = float(ckpt.get("extra", {}).get("train_time_s", 0.0))
        if step >= cfg.end_iter:
            raise ValueError(
                f"resume: {path} is at iteration {step}, nothing left to "
                f"do up to {'stop_at' if cfg.stop_at else 'optim.iters'} = "
                f"{cfg.end_iter}"
            )
        rngs = ckpt["rng"]
        if len(rngs) == self.info.world_size:
            set_rng_state(rngs[self.info.rank])
        else:
            log.warning(
                "resume: checkpoint has RNG states of %d ranks, this run has %d; reseeding from seed + step",
                len(rngs),
                self.info.world_size,
            )
            seed_all(cfg.seed + self.info.rank + step)
        if self.info.is_main:
            log.info("resumed %s at iteration %d (lr %.3g)", path, step, self.optimizer.param_groups[0]["lr"])
        return step, train_time

    def save(self, step: int, extra: dict[str, Any], rngs: list[dict[str, Any]] | None = None) -> None:
        """Write the training state at ``step`` (rank 0; every rank's RNG state, gathered now
        unless given as ``rngs``); all ranks wait for it."""
        rngs = rngs if rngs is not None else D.all_gather_object(get_rng_state())
        if self.info.is_main:
            save_checkpoint(
                self.path,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                step=step,
                config_hash=self.cfg.config_hash(),
                config=self.cfg.to_dict(),
                rng_states=rngs,
                extra=extra,
                origin=self.origin,
            )
        D.barrier()
