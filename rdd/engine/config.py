"""Typed, validated training configuration (one stage's section of ``params.yaml``).

:meth:`TrainConfig.from_dict` turns a nested dict into frozen dataclasses and validates *every*
value before any work starts. Errors are :class:`ValueError` naming the key path, e.g.
``"optim.iters must be > 0, got 0"`` or ``"unknown key 'optim.lrr' (expected one of: ...)"``.

The *method* (teacher training, student baseline, plain KD, TFE-RDD, TSE-RDD, CWD/AT + RDD) is
configuration only:

============================  ==============================================================
stage                         keys
============================  ==============================================================
teacher / student baseline    ``teacher: null``, ``loss.aux_weight`` (0.4 / 1.0)
plain KD                      ``teacher.artifact``, ``loss.kd.type: pixel``
TFE-RDD                       ``+ loss.rdd.tfe: true`` (``tfe_iters`` defaults to ``optim.iters``)
TSE-RDD                       ``+ loss.rdd.tse: true`` (from ``tfe_iters``, default 0)
TFE→TSE in two DVC stages     same config, ``stop_at: tfe_iters`` then ``resume: .../checkpoint.pt``
any KD loss + RDD             ``loss.extra_kd: [{type: cwd|at, weight, ...}]``
============================  ==============================================================

:meth:`TrainConfig.config_hash` is the sha256 of the canonical JSON of the *training-relevant*
part of the config (everything except ``out_dir``, ``resume``, ``stop_at``, ``eval_interval``,
``log_interval``, ``device``, ``data.num_workers`` and ``data.val_batch_size``): it is stored in
checkpoints so that resuming with a different recipe is detected (a warning, see
:func:`rdd.engine.checkpoint.check_config_hash`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdd.config.sections import (
    AMP_MODES,
    EXTRA_KD_TYPES,
    KD_TYPES,
    RDD_MODES,
    TFE_REDUCTIONS,
    DataConfig,
    EngineSettings,
    ExtraKDConfig,
    KDConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RDDConfig,
    TeacherConfig,
)
from rdd.config.walker import ConfigError, as_dict, build, param

__all__ = [
    "TrainConfig",
    "ModelConfig",
    "TeacherConfig",
    "DataConfig",
    "OptimConfig",
    "KDConfig",
    "ExtraKDConfig",
    "RDDConfig",
    "LossConfig",
    "EngineSettings",
    "KD_TYPES",
    "EXTRA_KD_TYPES",
    "RDD_MODES",
    "AMP_MODES",
    "TFE_REDUCTIONS",
]


# --------------------------------------------------------------------------- top level
_HASH_EXCLUDE = {"out_dir", "resume", "stop_at", "eval_interval", "log_interval", "device"}
_HASH_EXCLUDE_DATA = {"num_workers", "val_batch_size"}


@dataclass(frozen=True, kw_only=True)
class TrainConfig(EngineSettings):
    """One training stage. Build it with :meth:`from_dict` (or from checked sections, as
    :mod:`pipeline.config` does); see ``docs/DESIGN.md`` and ``docs/PARAMS.md``."""

    out_dir: str = param(doc="where the run writes (model.pt, checkpoint.pt, metrics.json, ...)")
    model: ModelConfig = param(doc="the student (or the teacher being trained)")
    data: DataConfig = param(doc="dataset, augmentation and loader")
    teacher: TeacherConfig | None = param(None, doc="a trained teacher (KD / RDD)")
    optim: OptimConfig = param(factory=OptimConfig, doc="optimiser and schedule")
    loss: LossConfig = param(factory=LossConfig, doc="loss terms")
    stop_at: int | None = param(None, gt=0, doc="stop after this iteration (a stage split)")
    resume: str | None = param(None, doc="checkpoint to resume from")

    def __post_init__(self) -> None:
        rdd = self.loss.rdd
        if (rdd.tfe != rdd.tse) and rdd.tfe_iters is None:
            # TFE only: every iteration; TSE only: from the start.
            rdd = dataclasses.replace(rdd, tfe_iters=self.optim.iters if rdd.tfe else 0)
            object.__setattr__(self, "loss", dataclasses.replace(self.loss, rdd=rdd))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Validate ``d`` (nested dicts) → :class:`TrainConfig`, with the one config walker.

        Raises:
            ValueError: an unknown key, a missing required key, a bad value or a missing file;
                the message names the key path (``optim.iters must be > 0, got 0``).
        """
        cfg = build(cls, d)
        cfg.check_files()
        cfg.check_device()
        return cfg

    def _validate(self) -> None:
        """Cross-section rules (the sections check their own values)."""
        loss, rdd, iters = self.loss, self.loss.rdd, self.optim.iters
        if self.data.root is None:
            raise ConfigError("missing required key 'data.root'")
        if loss.uses_teacher and self.teacher is None:
            what = (
                "loss.rdd.tse"
                if rdd.tse
                else "loss.rdd.tfe"
                if rdd.tfe
                else "loss.kd.type"
                if loss.kd.type != "none"
                else "loss.extra_kd"
            )
            raise ConfigError(f"{what} requires a teacher: set teacher.artifact to a teacher's model.pt")
        if rdd.tfe and rdd.tse and rdd.tfe_iters is None:
            raise ConfigError(
                "loss.rdd.tfe_iters is required when both loss.rdd.tfe and "
                "loss.rdd.tse are on (the iteration where TFE hands over to TSE)"
            )
        if rdd.tfe_iters is not None and rdd.tfe_iters > iters:
            raise ConfigError(f"loss.rdd.tfe_iters must be <= optim.iters ({iters}), got {rdd.tfe_iters}")
        if self.stop_at is not None and self.stop_at > iters:
            raise ConfigError(f"stop_at must be <= optim.iters ({iters}), got {self.stop_at}")

    def check_device(self, key: str = "device") -> None:
        """A CUDA ``device`` needs CUDA here (``ValueError`` naming ``key``)."""
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(
                    f"{key} is {self.device!r} but CUDA is not available on this machine (use auto or cpu)"
                )
            index = int(self.device[5:] or 0)
            if index >= torch.cuda.device_count():
                raise ConfigError(
                    f"{key} is {self.device!r} but this machine has "
                    f"{torch.cuda.device_count()} CUDA device(s)"
                )

    def check_files(self) -> None:
        """The files and folders the run reads exist (``ValueError`` naming the key)."""
        if not Path(self.data.root).is_dir():
            raise ConfigError(f"data.root: directory not found: {self.data.root}")
        if self.teacher is not None and not Path(self.teacher.artifact).is_file():
            raise ConfigError(f"teacher.artifact: file not found: {self.teacher.artifact}")
        if self.resume is not None and not Path(self.resume).is_file():
            raise ConfigError(f"resume: checkpoint file not found: {self.resume}")

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``TrainConfig.from_dict(cfg.to_dict())`` round-trips."""
        return as_dict(self)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys) of the training-relevant config."""
        d = self.to_dict()
        for k in _HASH_EXCLUDE:
            d.pop(k, None)
        for k in _HASH_EXCLUDE_DATA:
            d["data"].pop(k, None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def end_iter(self) -> int:
        """The global iteration this run stops after (``stop_at`` or ``optim.iters``)."""
        return self.stop_at if self.stop_at is not None else self.optim.iters

    def method_name(self) -> str:
        """A short human-readable name of the method this config trains."""
        parts = []
        if self.teacher is None:
            return "supervised"
        if self.loss.kd.type != "none":
            parts.append(f"{self.loss.kd.type}-kd")
        parts += [e.type for e in self.loss.extra_kd]
        if self.loss.rdd.tfe:
            parts.append("tfe")
        if self.loss.rdd.tse:
            parts.append("tse")
        return "+".join(parts) or "supervised"
