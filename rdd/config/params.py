"""The schema of ``params.yaml``, section by section, and its one loader.

``params.yaml`` is organised by *what is shared*, so that the baseline, KD and RDD students are
guaranteed the same recipe:

* ``data``     – dataset, splits, augmentation, loader (every stage; :class:`DataConfig`);
* ``prepare``  – the data and video stages' own keys (checks, generated scenes, demo clip);
* ``train``    – engine settings shared by all training stages (``nproc``, device, amp, seed, …);
* ``teacher`` / ``student`` – a :class:`Recipe`: ``model`` / ``optim`` / ``loss`` (+ overrides
  of ``data`` and ``train`` keys for that network);
* ``kd``       – the plain pixel-KD loss of the ``kd`` stage;
* ``rdd``      – RDD switches, ``tfe_frac`` and the KD loss that runs alongside RDD;
* ``evaluate`` and ``export`` – the last two stages (``export``: :mod:`rdd.config.export`);
* ``study`` and ``noise`` – student studies (``studies/*/params.yaml``).

:func:`load_params` reads the file (:func:`rdd.config.yamlfile.read_yaml`: plain data, bounded,
no key given twice) and walks it once with :func:`rdd.config.walker.build`:
every type, range, choice and unknown key is checked there, and errors name the params path
(``params.yaml: student.optim.iters must be > 0, got -5``). Defaults live here and nowhere else;
``docs/PARAMS.md`` is generated from these declarations (``python -m pipeline.params --doc``).
This module imports no torch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdd.config.export import ExportConfig
from rdd.config.sections import (
    KD_TYPES,
    DataConfig,
    EngineSettings,
    ExtraKDConfig,
    KDConfig,
    ModelConfig,
    OptimConfig,
    RDDConfig,
    TaskLoss,
    TSEConfig,
)
from rdd.config.walker import ConfigError, as_dict, build, invalid, param, short

__all__ = [
    "ParamsError",
    "TRAIN_STAGES",
    "STUDENT_STAGES",
    "Params",
    "Prepare",
    "Synthetic",
    "Video",
    "TrainSection",
    "Recipe",
    "KDSection",
    "RDDSection",
    "Latency",
    "EvaluateConfig",
    "ExportConfig",
    "Arm",
    "StudyConfig",
    "NoiseConfig",
    "load_params",
    "read_params_yaml",
    "parse_params",
    "as_params",
    "arm_student",
    "deep_merge",
    "tfe_iters",
    "doc_markdown",
]

TRAIN_STAGES = ("teacher", "baseline", "kd", "tfe_rdd", "tse_rdd")
STUDENT_STAGES = ("baseline", "kd", "tfe_rdd", "tse_rdd")


class ParamsError(ConfigError):
    """A bad or missing value in a params file; the message names the file and the key."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- prepare
@dataclass(frozen=True)
class Synthetic:
    """Generated street scenes (CamVid's 11 classes; ``data.dataset: synthetic``)."""

    n_train: int = param(64, gt=0, doc="training scenes")
    n_val: int = param(16, gt=0, doc="validation scenes")
    size: tuple[int, int] = param((180, 240), doc="frame size [H, W]")
    seed: int = param(0, ge=0, doc="generator seed (the video stage uses seed + 1)")


@dataclass(frozen=True)
class Video:
    """The labelled clip for ``deploy/infer.py`` (stage ``video``)."""

    n_frames: int = param(60, gt=0, doc="frames in the clip")
    fps: float = param(10.0, gt=0, doc="frames per second")


@dataclass(frozen=True)
class Prepare:
    """The ``data`` and ``video`` stages' own keys (no training stage reads them)."""

    check: str = param(
        "full",
        choices=("full", "quick"),
        doc="data stage: full (decode every sample) | quick (first and last)",
    )
    synthetic: Synthetic = param(factory=Synthetic, doc="generated scenes")
    video: Video = param(factory=Video, doc="demo clip")


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainSection(EngineSettings):
    """Engine settings shared by every training stage."""

    nproc: int = param(1, ge=1, doc=">1: each training stage runs under torchrun --nproc_per_node=N")


@dataclass(frozen=True)
class Recipe:
    """One network's recipe (``teacher`` or ``student``); other keys override ``train`` keys
    (``eval_interval: 40``) and ``data`` keys (``data: {batch_size: 4}``) for this network."""

    _EXTRA = ("overrides", EngineSettings)

    model: ModelConfig = param(doc="the network")
    optim: OptimConfig = param(factory=OptimConfig, doc="optimiser and schedule")
    loss: TaskLoss = param(factory=TaskLoss, doc="task-loss settings (KD / RDD: sections kd, rdd)")
    data: dict = param({}, partial_of=DataConfig, doc="overrides of `data` for this network")
    overrides: dict = param({}, doc="overrides of `train` keys (given at the recipe's top level)")

    def raw(self) -> dict[str, Any]:
        """This recipe as a params mapping (``build(Recipe, r.raw()) == r``)."""
        d = as_dict(self)
        d.update(d.pop("overrides"))
        return d


@dataclass(frozen=True)
class KDSection(KDConfig):
    """Stage ``kd``: plain pixel-wise KD (Hinton) on the logits."""

    type: str = param(
        "pixel", choices=KD_TYPES, coerce=lambda v: "none" if v is None else v, doc="none | pixel"
    )

    def to_engine(self) -> KDConfig:
        """The engine's :class:`KDConfig` of this section: every field of ``KDConfig``, by name."""
        return _engine(KDConfig, self)


@dataclass(frozen=True)
class RDDSection(TSEConfig):
    """Stages ``tfe_rdd`` (the first ``tfe_frac`` of the iterations) then ``tse_rdd``."""

    tfe: bool = param(True, doc="TFE-RDD on (the pipeline's tfe_rdd stage needs it)")
    tse: bool = param(True, doc="TSE-RDD on (the pipeline's tse_rdd stage needs it)")
    tfe_frac: float = param(
        0.1, ge=0, le=1, doc="TFE-RDD for the first p of the iterations (the paper: 0.1), TSE-RDD after"
    )
    kd: KDConfig = param(factory=KDConfig, doc="KD running alongside RDD (same keys as `kd`)")
    extra_kd: tuple[ExtraKDConfig, ...] = param((), doc="feature KD terms alongside RDD")

    def to_engine(self, iters: int) -> RDDConfig:
        """The engine's :class:`RDDConfig` for a run of ``iters`` iterations: every field of
        ``RDDConfig`` taken from this section by name, and ``tfe_iters`` from ``tfe_frac``
        (:func:`tfe_iters`). A field added to ``RDDConfig`` without a source here is an error."""
        return _engine(RDDConfig, self, tfe_iters=tfe_iters(self, iters))


def _engine(cls: type, section: Any, **given: Any) -> Any:
    """``cls`` built from the same-named fields of ``section`` (plus ``given``): the one way a
    params section crosses into an engine config, so a new knob cannot be dropped on the way."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in given and not hasattr(section, n)]
    if missing:
        raise TypeError(f"{type(section).__name__} has no field for {cls.__name__}.{missing[0]}")
    return cls(**{n: given[n] if n in given else getattr(section, n) for n in names})


def tfe_iters(rdd: RDDSection, iters: int) -> int | None:
    """The iteration where TFE hands over to TSE: ``round(tfe_frac · iters)``; ``None`` (every
    iteration) for TFE alone, 0 for TSE alone."""
    if not rdd.tse:
        return None
    if not rdd.tfe:
        return 0
    return int(round(rdd.tfe_frac * iters))


# --------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class Latency:
    """CPU latency, batch 1, at the evaluated frame size."""

    runs: int = param(10, gt=0, doc="timed runs")
    warmup: int = param(3, ge=0, doc="untimed runs first")
    threads: int = param(
        2, gt=0, doc="torch threads (as export.benchmark.threads: one model, one thread count, one latency)"
    )


@dataclass(frozen=True)
class EvaluateConfig:
    """Stage ``evaluate``: the trained models side by side on the validation split."""

    models: list[str] = param(
        ["teacher", "baseline", "kd", "tse_rdd"], choices=TRAIN_STAGES, ge=1, doc="trained stages to compare"
    )
    latency: Latency = param(factory=Latency, doc="CPU latency")
    vis_frames: int = param(4, ge=0, doc="validation frames rendered with the TFE map and TSE mask")
    mode: str = param("whole", choices=("whole", "slide", "msflip"), doc="inference mode")
    crop_size: tuple[int, int] | None = param(None, doc="window of `slide` inference")
    batch_size: int = param(1, gt=0, doc="evaluation batch")

    def _validate(self) -> None:
        if self.mode == "slide" and self.crop_size is None:
            raise invalid("crop_size", "is required (a positive [H, W]) when evaluate.mode is slide")


# --------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class Arm:
    """One arm of a student study: the baseline recipe plus KD and/or RDD."""

    kd: bool = param(False, doc="add the `kd` section's pixel KD")
    rdd: dict | None = param(
        None, partial_of=RDDSection, doc="RDD with these overrides of the `rdd` section (null: no RDD)"
    )
    extra_kd: tuple[ExtraKDConfig, ...] = param(
        (), doc="feature KD terms of this arm [{type: at|cwd, weight, feature}]"
    )
    student: dict = param({}, doc="overrides of the `student` recipe")


def _alnum(name: str) -> bool:
    return isinstance(name, str) and bool(name) and name.replace("_", "").isalnum()


@dataclass(frozen=True)
class StudyConfig:
    """A student study (``studies/*/params.yaml``): arms × seeds, each one run."""

    arms: dict[str, Arm] = param(doc="arm name → settings (names are folder and stage names)")
    title: str | None = param(None, doc="report title (null: the report's own)")
    seeds: list[int] = param([0], ge=1, doc="seeds of the main arms")
    main_arms: list[str] | None = param(None, doc="arms of the main comparison (null: all)")
    ablation_seeds: list[int] = param([], doc="seeds of the other arms")
    notes: str | None = param(None, doc="prose for the report")
    paper: dict = param({}, doc="the paper's figures, for the report")

    def _validate(self) -> None:
        if not self.arms:
            raise invalid("arms", "must be a non-empty mapping of arm name → settings, got {}")
        for name in self.arms:
            if not _alnum(name):
                raise invalid(
                    "arms",
                    f": arm names must be alphanumeric (they name folders and DVC stages), got {short(name)}",
                )
        for a in self.main_arms or []:
            if a not in self.arms:
                raise invalid("main_arms", f": {short(a)} is not in study.arms")

    @property
    def main(self) -> list[str]:
        return list(self.main_arms) if self.main_arms is not None else list(self.arms)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the report code: ``main_arms`` filled in, unset keys left out."""
        d = {k: v for k, v in as_dict(self).items() if v is not None}
        return {**d, "main_arms": self.main}


@dataclass(frozen=True)
class NoiseConfig:
    """Label noise of the ``noisy_data`` stage (``studies/label_noise``)."""

    seed: int = param(0, ge=0, doc="noise generator seed (separate from prepare.synthetic.seed)")
    boundary_share: float = param(0.5, ge=0, le=1, doc="share of the budget spent on boundaries")
    radius: int = param(3, ge=1, le=32, doc="boundary band width (px, Chebyshev)")
    patch: int = param(5, ge=1, le=256, doc="side of the wrong-class blobs (px)")


# --------------------------------------------------------------------------- the file
@dataclass(frozen=True)
class Params:
    """A whole params file."""

    data: DataConfig = param(doc="dataset, augmentation and loader (every stage)")
    prepare: Prepare = param(factory=Prepare, doc="data and video stages")
    train: TrainSection = param(factory=TrainSection, doc="engine settings of every training stage")
    teacher: Recipe | None = param(None, doc="the teacher's recipe")
    student: Recipe | None = param(None, doc="the students' recipe")
    kd: KDSection = param(factory=KDSection, doc="stage kd")
    rdd: RDDSection = param(factory=RDDSection, doc="stages tfe_rdd, tse_rdd")
    evaluate: EvaluateConfig = param(factory=EvaluateConfig, doc="stage evaluate")
    export: ExportConfig = param(factory=ExportConfig, doc="stage export")
    study: StudyConfig | None = param(None, doc="student study (studies/*/params.yaml)")
    noise: NoiseConfig = param(factory=NoiseConfig, doc="label noise (studies/label_noise)")
    source: str = dataclasses.field(default="params.yaml", init=False, compare=False, repr=False)

    def _validate(self) -> None:
        if self.student is not None and self.rdd.tfe and self.rdd.tse:
            iters = self.student.optim.iters
            n = tfe_iters(self.rdd, iters)
            if not 1 <= n < iters:
                raise invalid(
                    "rdd.tfe_frac",
                    f"must hand over to TSE-RDD inside the run: "
                    f"round({self.rdd.tfe_frac:g} · student.optim.iters "
                    f"({iters})) = {n}, expected 1 .. {iters - 1}",
                )

    def need(self, section: str) -> Any:
        """A section that this stage requires (``ParamsError`` when the file lacks it)."""
        value = getattr(self, section)
        if value is None:
            raise self.error(f"missing section {section!r}")
        return value

    def error(self, msg: str) -> ParamsError:
        """A :class:`ParamsError` about this file: ``"<file>: <msg>"``."""
        return ParamsError(f"{self.source}: {msg}")

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


def arm_student(params: Params, arm: str) -> Recipe:
    """The ``student`` recipe of study arm ``arm`` (its ``student`` overrides deep-merged)."""
    spec = params.need("study").arms[arm]
    student = params.need("student")
    if not spec.student:
        return student
    return build(Recipe, deep_merge(student.raw(), spec.student), f"study.arms.{arm}.student")


def parse_params(raw: Any, name: str = "params.yaml") -> Params:
    """Walk a params mapping; ``ParamsError`` (``"<name>: <key path> ..."``) on the first problem."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{name}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = build(Params, raw)
        study = params.study
        if study is not None:
            for arm in study.arms:
                arm_student(params, arm)
    except ConfigError as e:
        raise ParamsError(f"{name}: {e}") from None
    object.__setattr__(params, "source", name)
    return params


def as_params(params: Params | Mapping[str, Any]) -> Params:
    """``params`` itself, or a raw params mapping checked with :func:`parse_params`."""
    return params if isinstance(params, Params) else parse_params(params)


def read_params_yaml(path: str | Path) -> Any:
    """The params file as written (:func:`rdd.config.yamlfile.read_yaml`: plain data, bounded
    size and depth, no duplicate key); ``FileNotFoundError`` / ``ParamsError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    try:
        from rdd.config.yamlfile import read_yaml  # PyYAML: only to read a file

        return read_yaml(path)
    except ConfigError as e:
        raise ParamsError(str(e)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check a params file (``FileNotFoundError`` / ``ParamsError``)."""
    return parse_params(read_params_yaml(path), Path(path).name)


def doc_markdown() -> str:
    """The parameter reference (``docs/PARAMS.md``), generated from the declarations above."""
    from rdd.config.walker import doc_rows

    lines = [
        "# params.yaml reference",
        "",
        "Generated from `rdd/config/params.py`, `rdd/config/sections.py` and `rdd/config/export.py` by "
        "`python -m pipeline.params --doc > docs/PARAMS.md`; do not edit by hand. "
        "Every key is optional unless its default says *required*; a missing key takes the "
        "default below.",
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for key, typ, default, allowed, doc in doc_rows(Params):
        cells = [f"`{key}`", typ, f"`{default}`" if default else "", allowed, doc]
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|") if c is not allowed else c for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"
