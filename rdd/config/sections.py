"""The training recipe's sections: model, data, optimiser, losses and engine settings.

Each is a frozen dataclass declared with :func:`rdd.config.walker.param` (default, range,
choices, doc); :func:`rdd.config.walker.build` checks a mapping against it. They are the
engine's configuration (:class:`rdd.engine.TrainConfig` is built from them) *and* the
``params.yaml`` sections ``data``, ``train`` and ``teacher``/``student`` (:mod:`rdd.config.params`),
so every default is stated here once. Registry-backed choices (model and dataset names) and the
checks that bind keyword arguments to a builder's signature import the registries lazily: this
module imports no torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rdd.config.walker import Names, clip, invalid, param, short
from rdd.spec import TFE_REDUCTIONS, TSE_MODES

__all__ = [
    "KD_TYPES",
    "EXTRA_KD_TYPES",
    "RDD_MODES",
    "AMP_MODES",
    "TFE_REDUCTIONS",
    "ModelConfig",
    "TeacherConfig",
    "DataConfig",
    "OptimConfig",
    "KDConfig",
    "ExtraKDConfig",
    "TSEConfig",
    "RDDConfig",
    "TaskLoss",
    "LossConfig",
    "EngineSettings",
]

KD_TYPES = ("none", "pixel")
EXTRA_KD_TYPES = ("cwd", "at")
RDD_MODES = TSE_MODES  # one home: rdd.spec (also rdd.losses')
AMP_MODES = ("auto", "false", "fp16", "bf16")

EXTRA_KD_FEATURES = ("logits", "backbone", "head")


def _model_names() -> list[str]:
    from rdd.models import list_models

    return list(list_models())


def _dataset_names() -> list[str]:
    from rdd.data import DATASETS

    return list(DATASETS)


def _binds(key: str, fn: Callable, what: str, *args: Any, **kwargs: Any) -> None:
    """``invalid(key)`` when ``fn(*args, **kwargs)`` would not bind to ``fn``'s signature."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        shown = {k: v for k, v in kwargs.items() if k != "num_classes"}
        raise invalid(
            key, f"has arguments that {what} does not accept ({clip(str(e), 160)}); got {short(shown)}"
        ) from None
    except ValueError:  # no introspectable signature: the call itself checks
        return


# --------------------------------------------------------------------------- model, teacher
@dataclass(frozen=True)
class ModelConfig:
    """``create_model(name, num_classes=K, **kwargs)`` (``model: NAME`` is short for ``{name}``)."""

    name: str = param(
        doc="registered model name (`rdd.models.list_models()`)", choices=Names("model", _model_names)
    )
    kwargs: dict = param({}, doc="builder arguments, e.g. {width_mult: 0.5, aux: true}")

    @classmethod
    def _coerce(cls, d: Any) -> Any:
        return {"name": d} if isinstance(d, str) else d

    def _validate(self) -> None:
        if "num_classes" in self.kwargs:
            raise invalid(
                "kwargs.num_classes", "must not be set: the number of classes comes from the dataset"
            )
        from rdd.models import get_model_builder

        _binds("kwargs", get_model_builder(self.name), f"model {self.name!r}", num_classes=1, **self.kwargs)
        _dry_build(self.name, self.kwargs)


def _dry_build(name: str, kwargs: Mapping[str, Any]) -> None:
    """Build the model on torch's ``meta`` device (no memory, no weights fetched), so that a bad
    value the builder rejects (``width_mult: -1``) is a one-line ``kwargs`` error up front."""
    import torch

    from rdd.models import create_model

    kw = {**kwargs, "backbone_weights": None} if "backbone_weights" in kwargs else dict(kwargs)
    try:
        with torch.device("meta"):
            create_model(name, num_classes=2, **kw)
    except (ValueError, TypeError, AssertionError) as e:
        raise invalid("kwargs", f": {clip(str(e))}") from None


@dataclass(frozen=True)
class TeacherConfig:
    """A frozen teacher loaded with :func:`rdd.artifacts.load_artifact` (``teacher: PATH``)."""

    artifact: str = param(doc="the teacher's model.pt")

    @classmethod
    def _coerce(cls, d: Any) -> Any:
        return {"artifact": str(d)} if isinstance(d, str) else d


# --------------------------------------------------------------------------- data
def _scale_range(v: tuple[float, float]) -> str | None:
    return None if 0 < v[0] <= v[1] else "must be [lo, hi] with 0 < lo <= hi"


@dataclass(frozen=True)
class DataConfig:
    """Dataset, augmentation and loader settings (``params.yaml``: ``data``).

    ``crop_size`` is the training crop (after random scaling). ``eval_size`` is the resolution
    validation runs at (``null``: whole frames at their native size). The saved artefact records
    ``input_size`` = ``eval_size`` if set, else the native H×W of the validation images, i.e. the
    size the reported mIoU was measured at, which export and the runtime then use.
    """

    dataset: str = param(
        doc="synthetic | camvid | cityscapes | voc | ade20k | folder",
        choices=Names("dataset", _dataset_names),
    )
    root: str | None = param(
        None, doc="local dataset folder (synthetic: generated under outputs/data/synthetic)"
    )
    train_split: str = param("train", doc="split trained on (and calibrated on by export)")
    val_split: str = param("val", doc="split validated / evaluated on")
    crop_size: tuple[int, int] = param((512, 512), doc="training crop after random scaling")
    scale_range: tuple[float, float] = param(
        (0.5, 2.0), doc="random scale [lo, hi] before cropping", check=_scale_range
    )
    flip: bool = param(True, doc="random horizontal flip")
    jitter: float = param(0.2, ge=0, doc="colour jitter strength")
    eval_size: tuple[int, int] | None = param(None, doc="validation size (null: native frames)")
    num_workers: int = param(2, ge=0, doc="loader processes")
    batch_size: int = param(8, gt=0, doc="training batch per process")
    val_batch_size: int = param(1, gt=0, doc="validation batch")
    kwargs: dict = param({}, doc="extra dataset arguments (e.g. {label_type: labelTrainIds})")

    def _validate(self) -> None:
        from rdd.data import DATASETS

        _binds(
            "kwargs",
            DATASETS[self.dataset],
            f"dataset {self.dataset!r}",
            "root",
            "split",
            None,
            **self.kwargs,
        )


# --------------------------------------------------------------------------- optimiser
@dataclass(frozen=True)
class OptimConfig:
    """SGD + poly learning rate ``lr · (1 − t/T)^power`` after an optional linear warmup."""

    iters: int = param(40000, gt=0, doc="training iterations T")
    lr: float = param(0.01, gt=0, doc="base learning rate")
    momentum: float = param(0.9, ge=0, lt=1, doc="SGD momentum")
    weight_decay: float = param(5e-4, ge=0, doc="L2 weight decay")
    power: float = param(0.9, ge=0, doc="poly exponent")
    warmup_iters: int = param(0, ge=0, doc="linear warmup iterations (< iters)")
    warmup_ratio: float = param(1e-6, ge=0, le=1, doc="warmup starts at lr · warmup_ratio")
    grad_clip: float | None = param(None, gt=0, doc="max gradient norm (null: off)")

    def _validate(self) -> None:
        if self.warmup_iters >= self.iters:
            raise invalid("warmup_iters", f"must be < optim.iters ({self.iters}), got {self.warmup_iters}")


# --------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class KDConfig:
    """Logit (pixel-wise) KD: ``weight · T² · KL(softmax(t/T) ‖ softmax(s/T))``."""

    type: str = param(
        "none", choices=KD_TYPES, coerce=lambda v: "none" if v is None else v, doc="none | pixel"
    )
    weight: float = param(1.0, ge=0, doc="KD loss weight")
    temperature: float = param(1.0, gt=0, doc="softmax temperature T")

    @classmethod
    def _coerce(cls, d: Any) -> Any:
        return {} if d is None or d is False else d


@dataclass(frozen=True)
class ExtraKDConfig:
    """A feature/logit KD loss module (``cwd`` or ``at``) added to the objective.

    ``feature`` picks what it compares: ``logits`` (default for ``cwd``) or a key of
    ``out["feats"]`` (``backbone``, default for ``at``; ``head``). Other keys are passed to the
    loss module's constructor (e.g. ``tau`` for cwd, ``p`` for at)."""

    type: str = param(doc="cwd | at", choices=EXTRA_KD_TYPES)
    weight: float = param(1.0, ge=0, doc="loss weight")
    feature: str | None = param(
        None, choices=EXTRA_KD_FEATURES, doc="logits | backbone | head (null: the type's default)"
    )
    kwargs: dict = param({}, doc="constructor arguments of the loss module")

    @classmethod
    def _coerce(cls, d: Any) -> Any:
        if not isinstance(d, Mapping):
            return d
        d = dict(d)
        known = ("type", "weight", "feature", "kwargs")
        extra = {k: d.pop(k) for k in list(d) if k not in known}
        if extra:
            d["kwargs"] = {**(d.get("kwargs") or {}), **extra}
        if d.get("feature") is None and d.get("type") in EXTRA_KD_TYPES:
            d["feature"] = "logits" if d["type"] == "cwd" else "backbone"
        return d

    def _validate(self) -> None:
        from rdd.losses import EXTRA_KD

        _binds("", EXTRA_KD[self.type], f"loss {self.type!r}", **self.kwargs)


@dataclass(frozen=True)
class TSEConfig:
    """The TSE hard-pixel selection, shared by training, evaluate's figures and the studies."""

    threshold: float = param(0.7, gt=0, lt=1, doc="TSE hard-pixel confidence threshold")
    min_kept: float = param(0.048, ge=0, le=1, doc="TSE: keep at least this fraction of pixels hard")
    mode: str = param("xor", choices=RDD_MODES, doc="xor (RDD) | or | and | student (OHEM)")
    reduction: str = param(
        "valid", choices=TFE_REDUCTIONS, doc="TFE normaliser: valid (labelled pixels) | all (N·H·W)"
    )


@dataclass(frozen=True)
class RDDConfig(TSEConfig):
    """Relative Difficulty Distillation switches (Liang et al., arXiv 2407.03719)."""

    tfe: bool = param(False, doc="TFE-RDD: teacher-feedback weights on the task loss")
    tse: bool = param(False, doc="TSE-RDD: hard-pixel mask on the task loss")
    tfe_iters: int | None = param(None, ge=0, doc="iteration where TFE hands over to TSE")


@dataclass(frozen=True)
class TaskLoss:
    """The supervised part of a recipe's loss (``params.yaml``: ``teacher.loss``, ``student.loss``;
    the KD and RDD terms come from the ``kd`` and ``rdd`` sections)."""

    aux_weight: float = param(0.4, ge=0, doc="weight of the auxiliary head's CE")


@dataclass(frozen=True)
class LossConfig(TaskLoss):
    """Every loss term of a run (the engine's ``loss``)."""

    kd: KDConfig = param(factory=KDConfig, doc="logit KD")
    extra_kd: tuple[ExtraKDConfig, ...] = param((), doc="feature KD terms [{type: cwd|at, ...}]")
    rdd: RDDConfig = param(factory=RDDConfig, doc="RDD switches")

    @property
    def uses_teacher(self) -> bool:
        return self.kd.type != "none" or bool(self.extra_kd) or self.rdd.tfe or self.rdd.tse


# --------------------------------------------------------------------------- engine settings
def _device(v: str) -> str | None:
    ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else "must be auto, cpu, cuda or cuda:N"


def _amp(v: Any) -> Any:
    return "false" if v in (False, None, "none", "off") else v


@dataclass(frozen=True)
class EngineSettings:
    """How a run executes (shared by every training stage: ``params.yaml`` ``train``)."""

    eval_interval: int = param(
        0,
        ge=0,
        coerce=lambda v: 0 if v is None else v,
        doc="validation every N iterations (0: once at the end)",
    )
    log_interval: int = param(20, gt=0, doc="log every N iterations")
    seed: int = param(0, ge=0, doc="seed of weights, crops and batch order")
    device: str = param("auto", check=_device, doc="auto | cpu | cuda | cuda:N")
    amp: str = param(
        "auto",
        choices=AMP_MODES,
        coerce=_amp,
        doc="auto (bf16/fp16 on GPU, off on CPU) | false | fp16 | bf16",
    )
    channels_last: bool = param(False, doc="channels-last memory format")
    sync_bn: bool = param(False, doc="SyncBatchNorm under DDP")
