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

Rank 0 alone writes files: ``checkpoint.pt`` (:mod:`rdd.engine.resume`; at every validation and at
the end / ``stop_at``), ``model.pt`` + ``model.json`` and ``metrics.json`` (:mod:`rdd.engine.validation`),
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

from rdd.spec import Normalization

from . import distributed as D
from .checkpoint import get_rng_state
from .config import TrainConfig
from .data import InfiniteLoader, SeededTrainSet
from .objective import Objective
from .progress import RunProgress
from .resume import RunCheckpoint, seed_all
from .schedule import build_scheduler
from .validation import save_results, validate_student, validated_input_size

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
        seed_all(cfg.seed)  # identical initial weights on every rank
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

    def _resume(self) -> None:
        """Restore the training state (or seed a fresh run): see :class:`~rdd.engine.resume.RunCheckpoint`."""
        self.checkpoint = RunCheckpoint(
            self.cfg,
            self.info,
            self.out_dir,
            model=self.student,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
        )
        self.step, self.train_time = self.checkpoint.resume()
        self.resumed_from, self.origin = self.checkpoint.resumed_from, self.checkpoint.origin

    # ------------------------------------------------------------------ evaluation
    def validate(self) -> dict[str, Any]:
        """mIoU etc. of the student on the validation split (every rank calls it):
        :func:`~rdd.engine.validation.validate_student`."""
        return validate_student(
            self.student,
            self.val_set,
            self.cfg.data,
            self.info,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            device=self.device,
        )

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
                    self.checkpoint.save(self.step, {"train_time_s": self.train_time + run_time}, rngs)
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
        self.checkpoint.save(self.step, {"train_time_s": self.train_time}, rngs)
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
            save_results(
                self.out_dir,
                self.student,
                metrics,
                classes=self.classes,
                normalization=self.normalization,
                input_size=self.artifact_input_size(),
            )
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
        return validated_input_size(self.cfg.data, self.val_set)

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
