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

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rdd.spec import TFE_REDUCTIONS, TSE_MODES

__all__ = [
    "TrainConfig", "ModelConfig", "TeacherConfig", "DataConfig", "OptimConfig", "KDConfig",
    "ExtraKDConfig", "RDDConfig", "LossConfig",
]

KD_TYPES = ("none", "pixel")
EXTRA_KD_TYPES = ("cwd", "at")
RDD_MODES = TSE_MODES              # one home, rdd.spec (also rdd.losses')
AMP_MODES = ("auto", "false", "fp16", "bf16")


# --------------------------------------------------------------------------- value checkers
def _fail(path: str, msg: str) -> ValueError:
    return ValueError(f"{path} {msg}")


def _check_keys(d: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    where = path or "config"
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(d).__name__}: {d!r}")
    for k in d:
        if k not in allowed:
            key = f"{path}.{k}" if path else str(k)
            raise ValueError(f"unknown key {key!r} (expected one of: {', '.join(allowed)})")
    for k in required:
        if d.get(k) is None:
            key = f"{path}.{k}" if path else k
            raise ValueError(f"missing required key {key!r}")
    return dict(d)


def _int(v: Any, path: str, *, min_value: int | None = None, allow_none: bool = False) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise _fail(path, f"must be an integer, got {v!r}")
    if min_value is not None and v < min_value:
        op = "> 0" if min_value == 1 else f">= {min_value}"
        raise _fail(path, f"must be {op}, got {v}")
    return int(v)


def _float(v: Any, path: str, *, positive: bool = False, nonneg: bool = False,
           below: float | None = None, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(path, f"must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise _fail(path, f"must be finite, got {v}")
    if positive and v <= 0:
        raise _fail(path, f"must be > 0, got {v}")
    if nonneg and v < 0:
        raise _fail(path, f"must be >= 0, got {v}")
    if below is not None and v >= below:
        raise _fail(path, f"must be < {below}, got {v}")
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(path, f"must be true or false, got {v!r}")
    return v


def _choice(v: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v not in choices:
        raise _fail(path, f"must be one of {', '.join(choices)}; got {v!r}")
    return v


def _size(v: Any, path: str, allow_none: bool = False) -> tuple[int, int] | None:
    if v is None and allow_none:
        return None
    from rdd.spec import as_hw

    try:
        if isinstance(v, bool):
            raise ValueError
        return as_hw(v)
    except (TypeError, ValueError):
        raise _fail(path, f"must be a positive size H or [H, W], got {v!r}") from None


def _check_call(fn: Any, path: str, what: str, *args: Any, **kwargs: Any) -> None:
    """Fail (naming ``path``) when ``fn(*args, **kwargs)`` would not bind to ``fn``'s signature."""
    import inspect

    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise _fail(path, f"has arguments that {what} does not accept ({e}); got {kwargs}") from None
    except ValueError:  # no introspectable signature: let the call itself check
        return


def _mapping(v: Any, path: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise _fail(path, f"must be a mapping, got {v!r}")
    return dict(v)


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelConfig:
    """``create_model(name, num_classes=K, **kwargs)``."""

    name: str
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str = "model") -> "ModelConfig":
        if isinstance(d, str):  # shorthand ``model: lraspp_mobilenetv2``
            d = {"name": d}
        d = _check_keys(d, path, ("name", "kwargs"), required=("name",))
        name = d["name"]
        from rdd.models import list_models

        known = list(list_models())
        if name not in known:
            raise _fail(f"{path}.name", f"unknown model {name!r} (known: {', '.join(known)})")
        kwargs = _mapping(d.get("kwargs"), f"{path}.kwargs")
        if "num_classes" in kwargs:
            raise _fail(f"{path}.kwargs.num_classes",
                        "must not be set: the number of classes comes from the dataset")
        from rdd.models import get_model_builder

        _check_call(get_model_builder(name), f"{path}.kwargs", f"model {name!r}",
                    num_classes=1, **kwargs)
        return cls(name=name, kwargs=kwargs)


@dataclass(frozen=True)
class TeacherConfig:
    """A frozen teacher loaded with :func:`rdd.artifacts.load_artifact`."""

    artifact: str

    @classmethod
    def from_dict(cls, d: Any, path: str = "teacher") -> "TeacherConfig | None":
        if d is None:
            return None
        if isinstance(d, str):
            d = {"artifact": d}
        d = _check_keys(d, path, ("artifact",), required=("artifact",))
        p = Path(str(d["artifact"]))
        if not p.is_file():
            raise _fail(f"{path}.artifact", f"file not found: {p}")
        return cls(artifact=str(p))


@dataclass(frozen=True)
class DataConfig:
    """``data`` section: dataset, augmentation and loader settings.

    ``crop_size`` is the training crop (after random scaling). ``eval_size`` (``[H, W]`` or
    ``null``) is the resolution validation runs at: ``null`` evaluates whole frames at their
    native size. The saved artefact records ``input_size`` = ``eval_size`` if set, else the native
    H×W of the validation images (the first one's), i.e. the size the reported mIoU was measured
    at, which export and the runtime then use; ``crop_size`` is never recorded there.
    """

    dataset: str
    root: str
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (512, 512)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    jitter: float = 0.2
    eval_size: tuple[int, int] | None = None
    num_workers: int = 2
    batch_size: int = 8
    val_batch_size: int = 1
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str = "data") -> "DataConfig":
        names = tuple(f.name for f in dataclasses.fields(cls))
        d = _check_keys(d, path, names, required=("dataset", "root"))
        from rdd.data import DATASETS

        if d["dataset"] not in DATASETS:
            raise _fail(f"{path}.dataset", f"unknown dataset {d['dataset']!r} "
                                           f"(known: {', '.join(sorted(DATASETS))})")
        root = Path(str(d["root"]))
        if not root.is_dir():
            raise _fail(f"{path}.root", f"directory not found: {root}")
        out: dict[str, Any] = {"dataset": d["dataset"], "root": str(root)}
        for k in ("train_split", "val_split"):
            if k in d:
                if not isinstance(d[k], str) or not d[k]:
                    raise _fail(f"{path}.{k}", f"must be a non-empty string, got {d[k]!r}")
                out[k] = d[k]
        if "crop_size" in d:
            out["crop_size"] = _size(d["crop_size"], f"{path}.crop_size")
        if "eval_size" in d:
            out["eval_size"] = _size(d["eval_size"], f"{path}.eval_size", allow_none=True)
        if "scale_range" in d:
            sr = d["scale_range"]
            if (not isinstance(sr, (list, tuple)) or len(sr) != 2
                    or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in sr)
                    or not 0 < sr[0] <= sr[1]):
                raise _fail(f"{path}.scale_range", f"must be [lo, hi] with 0 < lo <= hi, got {sr!r}")
            out["scale_range"] = (float(sr[0]), float(sr[1]))
        if "flip" in d:
            out["flip"] = _bool(d["flip"], f"{path}.flip")
        if "jitter" in d:
            out["jitter"] = _float(d["jitter"], f"{path}.jitter", nonneg=True)
        if "num_workers" in d:
            out["num_workers"] = _int(d["num_workers"], f"{path}.num_workers", min_value=0)
        for k in ("batch_size", "val_batch_size"):
            if k in d:
                out[k] = _int(d[k], f"{path}.{k}", min_value=1)
        out["kwargs"] = _mapping(d.get("kwargs"), f"{path}.kwargs")
        _check_call(DATASETS[d["dataset"]], f"{path}.kwargs", f"dataset {d['dataset']!r}",
                    "root", "split", None, **out["kwargs"])
        return cls(**out)


@dataclass(frozen=True)
class OptimConfig:
    """SGD + poly learning rate ``lr · (1 − t/T)^power`` after an optional linear warmup."""

    iters: int = 40000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6
    grad_clip: float | None = None

    @classmethod
    def from_dict(cls, d: Any, path: str = "optim") -> "OptimConfig":
        names = tuple(f.name for f in dataclasses.fields(cls))
        d = _check_keys(_mapping(d, path), path, names)
        out: dict[str, Any] = {}
        if "iters" in d:
            out["iters"] = _int(d["iters"], f"{path}.iters", min_value=1)
        if "lr" in d:
            out["lr"] = _float(d["lr"], f"{path}.lr", positive=True)
        if "momentum" in d:
            out["momentum"] = _float(d["momentum"], f"{path}.momentum", nonneg=True, below=1.0)
        if "weight_decay" in d:
            out["weight_decay"] = _float(d["weight_decay"], f"{path}.weight_decay", nonneg=True)
        if "power" in d:
            out["power"] = _float(d["power"], f"{path}.power", nonneg=True)
        if "warmup_iters" in d:
            out["warmup_iters"] = _int(d["warmup_iters"], f"{path}.warmup_iters", min_value=0)
        if "warmup_ratio" in d:
            out["warmup_ratio"] = _float(d["warmup_ratio"], f"{path}.warmup_ratio", nonneg=True)
            if out["warmup_ratio"] > 1:
                raise _fail(f"{path}.warmup_ratio", f"must be in [0, 1], got {out['warmup_ratio']}")
        if "grad_clip" in d:
            out["grad_clip"] = _float(d["grad_clip"], f"{path}.grad_clip", positive=True,
                                      allow_none=True)
        cfg = cls(**out)
        if cfg.warmup_iters >= cfg.iters:
            raise _fail(f"{path}.warmup_iters",
                        f"must be < optim.iters ({cfg.iters}), got {cfg.warmup_iters}")
        return cfg


@dataclass(frozen=True)
class KDConfig:
    """Logit (pixel-wise) KD: ``weight · T² · KL(softmax(t/T) ‖ softmax(s/T))``."""

    type: str = "none"
    weight: float = 1.0
    temperature: float = 1.0

    @classmethod
    def from_dict(cls, d: Any, path: str = "loss.kd") -> "KDConfig":
        if d is None or d is False:
            return cls()
        d = _check_keys(d, path, ("type", "weight", "temperature"))
        out: dict[str, Any] = {}
        if "type" in d:
            out["type"] = _choice("none" if d["type"] is None else d["type"], f"{path}.type", KD_TYPES)
        if "weight" in d:
            out["weight"] = _float(d["weight"], f"{path}.weight", nonneg=True)
        if "temperature" in d:
            out["temperature"] = _float(d["temperature"], f"{path}.temperature", positive=True)
        return cls(**out)


@dataclass(frozen=True)
class ExtraKDConfig:
    """A feature/logit KD loss module (``cwd`` or ``at``) added to the objective.

    ``feature`` picks what it compares: ``logits`` (``out``) or a key of ``out["feats"]``
    (``backbone`` / ``head``). Remaining keys are passed to the loss module's constructor.
    """

    type: str
    weight: float = 1.0
    feature: str | None = None
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> "ExtraKDConfig":
        if not isinstance(d, Mapping):
            raise _fail(path, f"must be a mapping like {{type: cwd, weight: 3.0}}, got {d!r}")
        d = dict(d)
        if d.get("type") is None:
            raise ValueError(f"missing required key '{path}.type'")
        typ = _choice(d.pop("type"), f"{path}.type", EXTRA_KD_TYPES)
        weight = _float(d.pop("weight", 1.0), f"{path}.weight", nonneg=True)
        default_feature = "logits" if typ == "cwd" else "backbone"
        feature = d.pop("feature", default_feature)
        if feature not in ("logits", "backbone", "head"):
            raise _fail(f"{path}.feature", f"must be one of logits, backbone, head; got {feature!r}")
        kwargs = _mapping(d.pop("kwargs", None), f"{path}.kwargs")
        kwargs.update(d)  # remaining keys: constructor arguments (e.g. tau for cwd, p for at)
        from rdd.losses import EXTRA_KD

        _check_call(EXTRA_KD[typ], path, f"loss {typ!r}", **kwargs)
        return cls(type=typ, weight=weight, feature=feature, kwargs=kwargs)


@dataclass(frozen=True)
class RDDConfig:
    """Relative Difficulty Distillation switches (Liang et al., arXiv 2407.03719)."""

    tfe: bool = False
    tse: bool = False
    tfe_iters: int | None = None
    threshold: float = 0.7
    min_kept: float = 0.048
    mode: str = "xor"
    reduction: str = "valid"

    @classmethod
    def from_dict(cls, d: Any, path: str = "loss.rdd") -> "RDDConfig":
        names = tuple(f.name for f in dataclasses.fields(cls))
        d = _check_keys(_mapping(d, path), path, names)
        out: dict[str, Any] = {}
        for k in ("tfe", "tse"):
            if k in d:
                out[k] = _bool(d[k], f"{path}.{k}")
        if "tfe_iters" in d:
            out["tfe_iters"] = _int(d["tfe_iters"], f"{path}.tfe_iters", min_value=0, allow_none=True)
        if "threshold" in d:
            t = _float(d["threshold"], f"{path}.threshold")
            if not 0.0 < t < 1.0:
                raise _fail(f"{path}.threshold", f"must be in (0, 1), got {t}")
            out["threshold"] = t
        if "min_kept" in d:
            m = _float(d["min_kept"], f"{path}.min_kept", nonneg=True)
            if m > 1.0:
                raise _fail(f"{path}.min_kept", f"must be a fraction in [0, 1], got {m}")
            out["min_kept"] = m
        if "mode" in d:
            out["mode"] = _choice(d["mode"], f"{path}.mode", RDD_MODES)
        if "reduction" in d:
            # TFE normaliser: "valid" = mean over labelled pixels, "all" = over all N·H·W pixels
            out["reduction"] = _choice(d["reduction"], f"{path}.reduction", TFE_REDUCTIONS)
        return cls(**out)


@dataclass(frozen=True)
class LossConfig:
    aux_weight: float = 0.4
    kd: KDConfig = field(default_factory=KDConfig)
    extra_kd: tuple[ExtraKDConfig, ...] = ()
    rdd: RDDConfig = field(default_factory=RDDConfig)

    @classmethod
    def from_dict(cls, d: Any, path: str = "loss") -> "LossConfig":
        d = _check_keys(_mapping(d, path), path, ("aux_weight", "kd", "extra_kd", "rdd"))
        out: dict[str, Any] = {}
        if "aux_weight" in d:
            out["aux_weight"] = _float(d["aux_weight"], f"{path}.aux_weight", nonneg=True)
        out["kd"] = KDConfig.from_dict(d.get("kd"), f"{path}.kd")
        extra = d.get("extra_kd") or []
        if isinstance(extra, Mapping):
            extra = [extra]
        if not isinstance(extra, (list, tuple)):
            raise _fail(f"{path}.extra_kd", f"must be a list of {{type, weight, ...}}, got {extra!r}")
        out["extra_kd"] = tuple(ExtraKDConfig.from_dict(e, f"{path}.extra_kd[{i}]")
                                for i, e in enumerate(extra))
        out["rdd"] = RDDConfig.from_dict(d.get("rdd"), f"{path}.rdd")
        return cls(**out)

    @property
    def uses_teacher(self) -> bool:
        return (self.kd.type != "none" or bool(self.extra_kd) or self.rdd.tfe or self.rdd.tse)


# --------------------------------------------------------------------------- top level
_HASH_EXCLUDE = {"out_dir", "resume", "stop_at", "eval_interval", "log_interval", "device"}
_HASH_EXCLUDE_DATA = {"num_workers", "val_batch_size"}


@dataclass(frozen=True)
class TrainConfig:
    """One training stage. Build it with :meth:`from_dict`; see ``docs/DESIGN.md``."""

    out_dir: str
    model: ModelConfig
    data: DataConfig
    teacher: TeacherConfig | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stop_at: int | None = None
    resume: str | None = None
    eval_interval: int = 0
    log_interval: int = 20
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False
    sync_bn: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Validate ``d`` (nested dicts, e.g. a stage of ``params.yaml``) → :class:`TrainConfig`.

        Raises:
            ValueError: an unknown key, a missing required key, or a bad value; the message
                names the key path (``optim.iters must be > 0, got 0``).
        """
        names = tuple(f.name for f in dataclasses.fields(cls))
        d = _check_keys(d, "", names, required=("out_dir", "model", "data"))
        d = copy.deepcopy(d)
        if not isinstance(d["out_dir"], (str, Path)) or not str(d["out_dir"]):
            raise _fail("out_dir", f"must be a non-empty path, got {d['out_dir']!r}")
        out: dict[str, Any] = {"out_dir": str(d["out_dir"])}
        out["optim"] = OptimConfig.from_dict(d.get("optim"))
        out["loss"] = LossConfig.from_dict(d.get("loss"))
        out["model"] = ModelConfig.from_dict(d["model"])
        out["data"] = DataConfig.from_dict(d["data"])
        out["teacher"] = TeacherConfig.from_dict(d.get("teacher"))
        iters = out["optim"].iters
        if "stop_at" in d and d["stop_at"] is not None:
            out["stop_at"] = _int(d["stop_at"], "stop_at", min_value=1)
            if out["stop_at"] > iters:
                raise _fail("stop_at", f"must be <= optim.iters ({iters}), got {out['stop_at']}")
        if d.get("resume") is not None:
            p = Path(str(d["resume"]))
            if not p.is_file():
                raise _fail("resume", f"checkpoint file not found: {p}")
            out["resume"] = str(p)
        if "eval_interval" in d:
            out["eval_interval"] = _int(d["eval_interval"] or 0, "eval_interval", min_value=0)
        if "log_interval" in d:
            out["log_interval"] = _int(d["log_interval"], "log_interval", min_value=1)
        if "seed" in d:
            out["seed"] = _int(d["seed"], "seed", min_value=0)
        if "device" in d:
            dev = d["device"]
            if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda")
                                                or (dev.startswith("cuda:") and dev[5:].isdigit())):
                raise _fail("device", f"must be auto, cpu, cuda or cuda:N; got {dev!r}")
            out["device"] = dev
        if "amp" in d:
            amp = d["amp"]
            amp = "false" if amp in (False, None, "none", "off") else amp
            out["amp"] = _choice(amp, "amp", AMP_MODES)
        for k in ("channels_last", "sync_bn"):
            if k in d:
                out[k] = _bool(d[k], k)

        # ---- cross-field rules
        loss: LossConfig = out["loss"]
        rdd = loss.rdd
        if loss.uses_teacher and out["teacher"] is None:
            what = ("loss.rdd.tse" if rdd.tse else "loss.rdd.tfe" if rdd.tfe else
                    "loss.kd.type" if loss.kd.type != "none" else "loss.extra_kd")
            raise _fail(what, "requires a teacher: set teacher.artifact to a teacher's model.pt")
        if rdd.tfe and rdd.tse and rdd.tfe_iters is None:
            raise _fail("loss.rdd.tfe_iters", "is required when both loss.rdd.tfe and loss.rdd.tse "
                                              "are on (the iteration where TFE hands over to TSE)")
        if rdd.tfe_iters is not None and rdd.tfe_iters > iters:
            raise _fail("loss.rdd.tfe_iters", f"must be <= optim.iters ({iters}), got {rdd.tfe_iters}")
        if (rdd.tfe or rdd.tse) and rdd.tfe_iters is None:
            # TFE only: every iteration; TSE only: from the start.
            rdd = dataclasses.replace(rdd, tfe_iters=iters if rdd.tfe else 0)
            out["loss"] = dataclasses.replace(loss, rdd=rdd)
        return cls(**out)

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``TrainConfig.from_dict(cfg.to_dict())`` round-trips."""
        def conv(o: Any) -> Any:
            if dataclasses.is_dataclass(o):
                return {f.name: conv(getattr(o, f.name)) for f in dataclasses.fields(o)}
            if isinstance(o, (list, tuple)):
                return [conv(v) for v in o]
            if isinstance(o, dict):
                return {str(k): conv(v) for k, v in o.items()}
            return o

        return conv(self)

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
