"""The one training loop: teacher, student baseline, KD, TFE-RDD, TSE-RDD, CWD/AT (+ RDD).

Per iteration ``t`` (0-based, global; ``T`` = ``optim.iters``):

1. batch ``t`` (a function of ``(seed, t)``, see :mod:`rdd.engine.data`);
2. frozen teacher forward under ``torch.no_grad()`` (``with_aux`` in TFE iterations,
   ``with_feats`` when a feature KD is configured), skipped in iterations where no loss term
   uses it (:meth:`Objective.needs_teacher`, e.g. TFE-only after ``tfe_iters`` without KD);
3. student forward (``with_aux`` when it has an aux head and ``loss.aux_weight > 0``);
4. task loss (RDD, arXiv 2407.03719, re-weights the student's CE and adds no term):

   * ``loss.rdd.tfe`` and ``t < tfe_iters``: ``tfe_task_loss(s, y, tfe_weights(t_main, t_aux))``;
   * ``loss.rdd.tse`` and ``t ≥ tfe_iters``: ``tse_task_loss(s, y, tse_mask(s_out, t_out, y))``;
   * otherwise ``ce_loss(s, y)`` (CE + ``aux_weight`` × aux CE);

5. + ``loss.kd.weight · pixel_kd`` + Σ ``extra_kd[i].weight · {CWD, AT}`` in every iteration;
6. non-finite check (all ranks agree) → backward (AMP grad scaler) → optional grad clipping →
   SGD step → poly LR step.

Rank 0 alone writes files: ``checkpoint.pt`` (at every validation and at the end / ``stop_at``),
``model.pt`` + ``model.json`` (:func:`rdd.artifacts.save_artifact`), ``metrics.json``,
``train.log`` and ``dvclive/``. Logged scalars (``train/*`` loss terms and the ``rdd/*`` statistics)
are averages over the global batch of all ranks, not rank 0's share.

The artefact's ``input_size`` is the resolution validation ran at: ``data.eval_size`` when set,
else the native size of the validation images (the first one's H×W), so that export and the
runtime use the size the reported mIoU was measured at.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from rdd.spec import Normalization, write_json_atomic

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
from .config import TrainConfig
from .data import InfiniteLoader, SeededTrainSet
from .objective import Objective
from .progress import RunProgress
from .schedule import build_scheduler, rebase_scheduler

__all__ = ["train", "Trainer", "NonFiniteLossError"]

log = logging.getLogger("rdd.engine")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; the message names the iteration and every loss term."""


def train(cfg: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run one training stage; returns the final metrics (also written to ``metrics.json``).

    Under ``torchrun`` every rank calls it; the process group is created (and destroyed) here
    unless the caller already initialised one.
    """
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg)
    info = D.init_distributed(cfg.device)
    try:
        return Trainer(cfg, info).run()
    finally:
        D.cleanup_distributed(info)


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer(RunProgress):
    """Builds everything from a :class:`TrainConfig` and runs :meth:`run`. Use :func:`train`."""

    def __init__(self, cfg: TrainConfig, info: D.DistInfo) -> None:
        self.cfg = cfg
        self.info = info
        self.device = info.device
        self.out_dir = Path(cfg.out_dir)
        self.is_main = info.is_main
        self._log_handler: logging.Handler | None = None
        self.origin: str | None = None  # identity of the resume: checkpoint (lineage)
        self.resumed_from: str | None = None
        self._old_level = log.level
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # a fresh run starts a fresh log; a resumed one (or a re-run) continues it
            again = cfg.resume or (self.out_dir / "checkpoint.pt").is_file()
            self._log_handler = logging.FileHandler(self.out_dir / "train.log", mode="a" if again else "w")
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(self._log_handler)
            if log.level == logging.NOTSET or log.level > logging.INFO:
                log.setLevel(logging.INFO)
        self.amp_dtype = self._resolve_amp()

    # ------------------------------------------------------------------ setup
    def _resolve_amp(self) -> torch.dtype | None:
        amp = self.cfg.amp
        if amp == "auto":
            if self.device.type != "cuda":
                return None
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if amp == "false":
            return None
        return torch.float16 if amp == "fp16" else torch.bfloat16

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _build_data(self) -> None:
        from rdd.data import EvalTransform, TrainTransform, build_dataset

        c = self.cfg.data
        self.normalization = Normalization()
        raw_train = build_dataset(c.dataset, root=c.root, split=c.train_split, transform=None, **c.kwargs)
        self.classes = raw_train.classes
        self.num_classes = self.classes.num_classes
        self.ignore_index = self.classes.ignore_index
        tf = TrainTransform(
            c.crop_size,
            scale_range=c.scale_range,
            flip=c.flip,
            jitter=c.jitter,
            normalization=self.normalization,
            ignore_index=self.ignore_index,
        )
        self.train_set = SeededTrainSet(raw_train, tf)
        self.val_set = build_dataset(
            c.dataset,
            root=c.root,
            split=c.val_split,
            transform=EvalTransform(
                c.eval_size, normalization=self.normalization, ignore_index=self.ignore_index
            ),
            **c.kwargs,
        )
        if self.val_set.classes.num_classes != self.num_classes:
            raise ValueError(
                f"data: split {c.val_split!r} has {self.val_set.classes.num_classes} "
                f"classes but {c.train_split!r} has {self.num_classes}"
            )

    def _build_models(self) -> None:
        from rdd.models import create_model

        cfg = self.cfg
        _seed_all(cfg.seed)  # identical initial weights on every rank
        student = create_model(cfg.model.name, num_classes=self.num_classes, **cfg.model.kwargs)
        self.use_student_aux = bool(student.has_aux and cfg.loss.aux_weight > 0)
        if student.has_aux and not self.use_student_aux:
            # not trained (aux_weight 0): keep it out of the optimizer and of DDP's reducer
            student.aux_head.requires_grad_(False)
        if cfg.sync_bn and self.info.distributed:
            if self.device.type != "cuda":
                raise ValueError(
                    f"sync_bn: SyncBatchNorm needs CUDA devices, but this run uses "
                    f"{self.device}; set sync_bn: false for CPU (gloo) training"
                )
            student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
        student.to(self.device)
        if cfg.channels_last:
            student.to(memory_format=torch.channels_last)
        self.student = student
        self.teacher = None
        self.teacher_meta: dict[str, Any] = {}
        if cfg.teacher is not None:
            self._load_teacher()
        self.objective = Objective(
            cfg.loss, ignore_index=self.ignore_index, student_aux=self.use_student_aux, device=self.device
        )
        self.need_feats = self.objective.needs_feats

    def _load_teacher(self) -> None:
        from rdd.artifacts import load_artifact

        cfg = self.cfg
        path = cfg.teacher.artifact
        teacher, meta = load_artifact(path, map_location="cpu")
        k_teacher = getattr(teacher, "num_classes", None)
        if k_teacher != self.num_classes:
            raise ValueError(
                f"teacher.artifact: {path} predicts {k_teacher} classes but dataset "
                f"{cfg.data.dataset!r} has {self.num_classes}"
            )
        norm = meta.get("normalization")
        if norm is not None and Normalization.from_dict(norm) != self.normalization:
            raise ValueError(
                f"teacher.artifact: {path} expects normalization {norm} but the "
                f"student is trained with {self.normalization.to_dict()}"
            )
        if cfg.loss.rdd.tfe and not getattr(teacher, "has_aux", False):
            raise ValueError(
                f"loss.rdd.tfe needs a teacher with an auxiliary head (TFE weights compare the "
                f"teacher's aux and main predictions), but teacher.artifact {path} "
                f"({meta.get('model')}) has none; train the teacher with model.kwargs.aux: true"
            )
        teacher.eval().requires_grad_(False).to(self.device)
        if cfg.channels_last:
            teacher.to(memory_format=torch.channels_last)
        self.teacher, self.teacher_meta = teacher, meta

    def _build_optim(self) -> None:
        o = self.cfg.optim
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        self.scheduler = build_scheduler(
            self.optimizer,
            total_iters=o.iters,
            power=o.power,
            warmup_iters=o.warmup_iters,
            warmup_ratio=o.warmup_ratio,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def _apply_optim_config(self) -> None:
        """After restoring optimizer + scheduler state: the *current* ``optim`` values win.

        ``load_state_dict`` brings back the checkpoint's lr / initial_lr / momentum /
        weight_decay and its :class:`~rdd.engine.schedule.PolyWarmup` (``total_iters``...);
        re-apply the config's (the step count, momentum buffers and scaler state are kept), so a
        resume with a changed ``optim.iters`` / ``optim.lr`` follows the new poly schedule from
        the current step, and an unchanged config continues bit for bit.
        """
        o = self.cfg.optim
        for g in self.optimizer.param_groups:
            g["momentum"] = o.momentum
            g["weight_decay"] = o.weight_decay
        rebase_scheduler(
            self.scheduler,
            base_lr=o.lr,
            total_iters=o.iters,
            power=o.power,
            warmup_iters=o.warmup_iters,
            warmup_ratio=o.warmup_ratio,
        )

    def _choose_resume(self) -> tuple[str | None, dict[str, Any] | None]:
        """Where this run starts: its own ``checkpoint.pt`` when it can continue it (see
        :func:`~rdd.engine.checkpoint.own_checkpoint_verdict`), else ``resume:``, else scratch.
        Returns ``(path or None, the loaded checkpoint or None)``; sets ``self.origin``."""
        cfg = self.cfg
        external = load_checkpoint(cfg.resume) if cfg.resume is not None else None
        self.origin = checkpoint_identity(external) if external is not None else None
        own = self.out_dir / "checkpoint.pt"
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
        if self.is_main:
            log.warning(
                "%s: not continuing it: %s; %s",
                own,
                why,
                f"starting from {cfg.resume}" if cfg.resume else "training from scratch",
            )
        return cfg.resume, external

    def _resume(self) -> None:
        cfg = self.cfg
        self.step = 0
        self.train_time = 0.0
        path, ckpt = self._choose_resume()
        self.resumed_from = path
        if path is None:
            _seed_all(cfg.seed + self.info.rank)
            return
        if path == cfg.resume:
            check_config_hash(ckpt, cfg.config_hash(), config=cfg.to_dict(), path=path)
        else:
            self.origin = ckpt.get("origin")  # own checkpoint: same hash, same origin
        self.student.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self._apply_optim_config()
        if ckpt.get("scaler") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.train_time = float(ckpt.get("extra", {}).get("train_time_s", 0.0))
        if self.step >= cfg.end_iter:
            raise ValueError(
                f"resume: {path} is at iteration {self.step}, nothing left to "
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
            _seed_all(cfg.seed + self.info.rank + self.step)
        if self.is_main:
            log.info(
                "resumed %s at iteration %d (lr %.3g)", path, self.step, self.optimizer.param_groups[0]["lr"]
            )

    # ------------------------------------------------------------------ evaluation
    def validate(self) -> dict[str, Any]:
        """mIoU etc. of the student on the validation split (sharded over ranks, merged with
        ``ConfusionMatrix.all_reduce`` inside :func:`rdd.evaluation.evaluate`)."""
        from rdd.evaluation import evaluate

        self._sync_buffers()
        shard = Subset(self.val_set, list(range(self.info.rank, len(self.val_set), self.info.world_size)))
        # A private generator so that evaluation never draws from the global (checkpointed) RNG.
        loader = DataLoader(
            shard,
            batch_size=self.cfg.data.val_batch_size,
            shuffle=False,
            num_workers=min(self.cfg.data.num_workers, 2),
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(0),
        )
        res = evaluate(
            self.student,
            loader,
            self.num_classes,
            self.ignore_index,
            mode="whole",
            device=self.device,
            all_reduce=self.info.distributed,
        )
        return {k: res[k] for k in ("miou", "pixel_acc", "mean_acc", "iou")}

    def _sync_buffers(self) -> None:
        """Make BN running statistics identical on all ranks (rank 0's)."""
        if self.info.distributed:
            for b in self.student.buffers():
                torch.distributed.broadcast(b, src=0)

    # ------------------------------------------------------------------ output
    def _save_checkpoint(self, extra: dict[str, Any], rngs: list[dict[str, Any]] | None = None) -> None:
        rngs = rngs if rngs is not None else D.all_gather_object(get_rng_state())
        if self.is_main:
            save_checkpoint(
                self.out_dir / "checkpoint.pt",
                model=self.student,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                step=self.step,
                config_hash=self.cfg.config_hash(),
                config=self.cfg.to_dict(),
                rng_states=rngs,
                extra=extra,
                origin=self.origin,
            )
        D.barrier()

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            if self._log_handler is not None:
                log.removeHandler(self._log_handler)
                self._log_handler.close()
                log.setLevel(self._old_level)

    def _run(self) -> dict[str, Any]:
        from rdd.models import count_params

        cfg = self.cfg
        self._build_data()
        self._build_models()
        self._build_optim()
        self._resume()
        ws = self.info.world_size
        self.global_batch_size = cfg.data.batch_size * ws
        loader = InfiniteLoader(
            self.train_set,
            batch_size=cfg.data.batch_size,
            rank=self.info.rank,
            world_size=ws,
            seed=cfg.seed,
            start_iter=self.step,
            num_workers=cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        model: nn.Module = self.student
        if self.info.distributed:
            dev_ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=dev_ids)
        n_params = count_params(self.student)
        if self.is_main:
            log.info(
                "training %s (%s, %.2fM params) on %s: method %s, iterations %d→%d of %d, "
                "global batch size %d (%d × %d rank%s), amp %s, %d train / %d val images",
                cfg.model.name,
                cfg.data.dataset,
                n_params / 1e6,
                self.device,
                cfg.method_name(),
                self.step,
                cfg.end_iter,
                cfg.optim.iters,
                self.global_batch_size,
                cfg.data.batch_size,
                ws,
                "s" if ws > 1 else "",
                str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
                len(self.train_set),
                len(self.val_set),
            )
        live = self._open_live()
        bar = None
        if self.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=cfg.end_iter, initial=self.step, desc=cfg.method_name(), dynamic_ncols=True)

        model.train()
        start_step = self.step
        run_time = 0.0  # training time of this process (excl. validation)
        last_val: dict[str, Any] = {}
        last_terms: dict[str, float] = {}
        tick = time.perf_counter()
        try:
            while self.step < cfg.end_iter:
                it = self.step
                x, y = next(loader)
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                phase = self.objective.phase(it)
                t_out = None
                if self.teacher is not None and self.objective.needs_teacher(it):
                    with torch.no_grad(), self._autocast():
                        t_out = self.teacher(
                            x, with_aux=self.objective.teacher_aux(it), with_feats=self.need_feats
                        )
                with self._autocast():
                    s_out = model(x, with_aux=self.use_student_aux, with_feats=self.need_feats)
                terms, maps = self.objective(it, s_out, t_out, y)
                loss = sum(terms.values())
                self._check_finite(it, loss, terms)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if cfg.optim.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.grad_clip)
                lr = self.optimizer.param_groups[0]["lr"]
                self.scaler.step(self.optimizer)
                self.scaler.update()
                with warnings.catch_warnings():
                    # fp16: the scaler skips steps with inf gradients; the schedule still advances
                    warnings.filterwarnings(
                        "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
                    )
                    self.scheduler.step()
                self.step += 1

                log_now = self.step % cfg.log_interval == 0 or self.step == cfg.end_iter
                if log_now:
                    last_terms = self._log_train(
                        live,
                        bar,
                        terms,
                        loss,
                        maps,
                        y,
                        lr,
                        phase,
                        time.perf_counter() - tick + run_time,
                        self.step - start_step,
                    )
                if bar is not None:
                    bar.update(1)
                eval_now = (
                    cfg.eval_interval and self.step % cfg.eval_interval == 0 and self.step < cfg.end_iter
                )
                if eval_now:
                    run_time += time.perf_counter() - tick
                    rngs = D.all_gather_object(get_rng_state())
                    last_val = self.validate()
                    self._log_val(live, last_val)
                    self._save_checkpoint({"train_time_s": self.train_time + run_time}, rngs)
                    tick = time.perf_counter()
            run_time += time.perf_counter() - tick
        finally:
            if bar is not None:
                bar.close()

        self.train_time += run_time
        iters_run = self.step - start_step
        rngs = D.all_gather_object(get_rng_state())  # the state right after the last step
        last_val = self.validate()
        self._log_val(live, last_val)
        self._save_checkpoint({"train_time_s": self.train_time}, rngs)
        metrics = {
            "method": cfg.method_name(),
            "model": cfg.model.name,
            "step": self.step,
            "iters": cfg.optim.iters,
            "completed": self.step >= cfg.optim.iters,
            "miou": last_val["miou"],
            "pixel_acc": last_val["pixel_acc"],
            "mean_acc": last_val["mean_acc"],
            "iou": last_val["iou"],
            "train_loss": last_terms.get("loss"),
            "train_time_s": self.train_time,
            "time_per_iter_s": run_time / iters_run if iters_run else None,
            "params": n_params,
            "teacher": cfg.teacher.artifact if cfg.teacher else None,
            "teacher_params": count_params(self.teacher) if self.teacher is not None else None,
            "world_size": ws,
            "global_batch_size": self.global_batch_size,
            "config_hash": cfg.config_hash(),
        }
        if self.is_main:
            from rdd.artifacts import save_artifact

            input_size = self.artifact_input_size()
            save_artifact(
                self.out_dir / "model.pt",
                self.student,
                classes=self.classes,
                normalization=self.normalization,
                input_size=input_size,
                metrics={k: metrics[k] for k in ("miou", "pixel_acc", "mean_acc", "iou", "step", "method")},
            )
            write_json_atomic(self.out_dir / "metrics.json", metrics)
            if live is not None:
                live.end()
            log.info(
                "done: iteration %d/%d, val mIoU %.2f%%, %.1f s (%.3f s/iter)",
                self.step,
                cfg.optim.iters,
                100 * metrics["miou"],
                self.train_time,
                metrics["time_per_iter_s"] or float("nan"),
            )
        D.barrier()
        return metrics

    def artifact_input_size(self) -> list[int]:
        """``[H, W]`` the student was validated at: ``data.eval_size``, else the native size of
        the first validation image (``data.crop_size`` only for an empty validation split)."""
        c = self.cfg.data
        if c.eval_size is not None:
            return list(c.eval_size)
        if len(self.val_set) == 0:
            return list(c.crop_size)
        image, _ = self.val_set.load(0)  # H×W×3
        return [int(image.shape[0]), int(image.shape[1])]

    def _check_finite(self, it: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        bad = D.all_reduce_max(bad)
        if bad.item() > 0:
            vals = ", ".join(f"{k}={float(v.detach()):.6g}" for k, v in terms.items())
            raise NonFiniteLossError(
                f"non-finite loss at iteration {it + 1}/{self.cfg.optim.iters} (rank "
                f"{self.info.rank} or another): total={float(loss.detach()):.6g} ({vals}); "
                f"lr={self.optimizer.param_groups[0]['lr']:.3g}. Lower optim.lr, set "
                f"optim.grad_clip, try amp: false, or check the input data"
            )
