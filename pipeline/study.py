"""DVC stages of a student study (``studies/<name>/dvc.yaml``): one training run per arm × seed.

    python -m pipeline.study run ARM SEED --params studies/camvid/params.yaml --out-root outputs/camvid

(the report is :mod:`pipeline.study_report`, so that editing it leaves the runs' DVC stages alone).

A study's params file is a pipeline ``params.yaml`` (``data``, ``train``, ``teacher``, ``student``,
``kd``, ``rdd``, ``export``) plus a ``study`` section::

    study:
      title: CamVid
      seeds: [0, 1, 2]
      main_arms: [baseline, kd, rdd]        # the arms that get every seed
      arms:                                 # name → what differs from the supervised student
        baseline: {}
        kd:  {kd: true}
        rdd: {kd: true, rdd: {}}            # the ``rdd`` section as is (TFE → TSE)
        or:  {kd: true, rdd: {mode: or}}    # ``rdd`` with these keys replaced
      paper: {...}                          # optional figures quoted beside ours in the report

Every arm is the ``student`` recipe of the pipeline's ``baseline`` stage (same model, schedule,
crop, augmentation, batch) with, optionally, the ``kd`` section as its KD loss and the ``rdd``
section (with the arm's overrides) as its RDD switches; only ``train.seed`` changes per seed. RDD
runs TFE then TSE inside one run (the engine switches at ``rdd.tfe_iters``), so a run is one
DVC stage. ``run`` trains into ``<out-root>/runs/<arm>-s<seed>/`` and exports the final student
with :func:`rdd.export.run_export` (FP32 ONNX + parity gate + ONNX Runtime mIoU on every val
frame) into ``…/export/``, so each result can be re-scored without the training code.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Mapping

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import (ParamsError, dataset_root, deep_merge, load_params, params_message,
                             section, train_stage_config)
from rdd.study.aggregate import run_dir

__all__ = ["study_section", "arm_config", "run_dir", "run_arm", "export_arm", "main"]

_ARM_KEYS = ("kd", "rdd", "student")


def study_section(params: Mapping[str, Any]) -> dict[str, Any]:
    """The validated ``study`` section (``ParamsError`` names the bad key)."""
    st = section(params, "study")
    arms = st.get("arms")
    if not isinstance(arms, Mapping) or not arms:
        raise ParamsError("params.yaml: study.arms must be a non-empty mapping of arm name → "
                          f"settings, got {arms!r}")
    for name, arm in arms.items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ParamsError(f"params.yaml: study.arms: arm names must be alphanumeric "
                              f"(they name folders and DVC stages), got {name!r}")
        arm = {} if arm is None else arm
        if not isinstance(arm, Mapping):
            raise ParamsError(f"params.yaml: study.arms.{name} must be a mapping, got {arm!r}")
        bad = sorted(set(arm) - set(_ARM_KEYS))
        if bad:
            raise ParamsError(f"params.yaml: study.arms.{name}: unknown key {bad[0]!r} "
                              f"(expected: {', '.join(_ARM_KEYS)})")
        if "kd" in arm and not isinstance(arm["kd"], bool):
            raise ParamsError(f"params.yaml: study.arms.{name}.kd must be true or false, "
                              f"got {arm['kd']!r}")
        if arm.get("rdd") is not None and not isinstance(arm["rdd"], Mapping):
            raise ParamsError(f"params.yaml: study.arms.{name}.rdd must be a mapping of "
                              f"overrides of the rdd section, got {arm['rdd']!r}")
    seeds = st.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ParamsError(f"params.yaml: study.seeds must be a non-empty list of integers, "
                          f"got {seeds!r}")
    main_arms = st.get("main_arms", list(arms))
    unknown = [a for a in main_arms if a not in arms]
    if unknown:
        raise ParamsError(f"params.yaml: study.main_arms: {unknown[0]!r} is not in study.arms")
    st["arms"] = {k: dict(v or {}) for k, v in arms.items()}
    st["seeds"], st["main_arms"] = seeds, list(main_arms)
    return st


def arm_config(params: Mapping[str, Any], arm: str, seed: int, *,
               out_root: str | Path = "outputs") -> dict[str, Any]:
    """The :class:`rdd.engine.TrainConfig` dict of one arm × seed (see the module docstring)."""
    st = study_section(params)
    if arm not in st["arms"]:
        raise ParamsError(f"params.yaml: study.arms has no arm {arm!r} "
                          f"(known: {', '.join(st['arms'])})")
    spec = st["arms"][arm]
    p = dict(params)
    if spec.get("student"):
        p["student"] = deep_merge(section(params, "student"), spec["student"])
    cfg = train_stage_config(p, "baseline", out_root=out_root)
    cfg["out_dir"] = str(run_dir(out_root, arm, seed))
    cfg["seed"] = int(seed)
    loss = dict(cfg.get("loss") or {})
    if spec.get("kd") or spec.get("rdd") is not None:
        cfg["teacher"] = {"artifact": str(Path(out_root) / "teacher" / "model.pt")}
    if spec.get("kd"):
        loss["kd"] = {"type": "pixel", **section(params, "kd")}
    if spec.get("rdd") is not None:
        rdd = section(params, "rdd")
        rdd.pop("kd", None)
        rdd = {"tfe": True, "tse": True, **rdd, **copy.deepcopy(dict(spec["rdd"]))}
        iters = (cfg.get("optim") or {}).get("iters")
        frac = rdd.pop("tfe_frac", None)
        if frac is not None:  # TFE for the first p of the iterations (the paper's p)
            if not isinstance(frac, (int, float)) or not 0 <= frac <= 1 or not isinstance(iters, int):
                raise ParamsError(f"params.yaml: study.arms.{arm}.rdd.tfe_frac must be in [0, 1], "
                                  f"got {frac!r}")
            rdd["tfe_iters"] = int(round(frac * iters))
        if not rdd["tse"]:
            rdd["tfe_iters"] = None      # TFE only: every iteration
        elif not rdd["tfe"]:
            rdd["tfe_iters"] = 0         # TSE only: p = 0
        loss["rdd"] = rdd
    cfg["loss"] = loss
    return cfg


def _check(params: Mapping[str, Any], arm: str, seed: int, out_root: str | Path):
    from rdd.engine import TrainConfig

    d = arm_config(params, arm, seed, out_root=out_root)
    try:
        return TrainConfig.from_dict(d)
    except ValueError as e:
        msg = params_message(params, "tse_rdd" if "rdd" in d["loss"] else "baseline", str(e))
        raise ParamsError(msg) from None


def export_arm(params: Mapping[str, Any], arm: str, seed: int,
               out_root: str | Path = "outputs") -> dict[str, Any]:
    """Export ``<run>/model.pt`` to ``<run>/export/`` with the ``export`` section (FP32 ONNX,
    parity gate, ONNX Runtime mIoU); the metadata is the pipeline export's."""
    from rdd.data import build_dataset
    from rdd.export.pipeline import run_export, validate_export_config

    cfg = section(params, "export", required=False)
    validate_export_config(cfg)
    data = section(params, "data")
    root = dataset_root(params, out_root)
    kwargs = data.get("kwargs") or {}
    calib = build_dataset(data["dataset"], root=root, split=data.get("train_split", "train"),
                          **kwargs)
    val = build_dataset(data["dataset"], root=root, split=data.get("val_split", "val"), **kwargs)
    d = run_dir(out_root, arm, seed)
    return run_export(d / "model.pt", d / "export", calib_dataset=calib, val_dataset=val, cfg=cfg)


def run_arm(params: Mapping[str, Any], arm: str, seed: int,
            out_root: str | Path = "outputs") -> dict[str, Any]:
    """Train one arm × seed, then export it; returns ``{"train": …, "export": …}``."""
    from rdd.engine import train
    from rdd.export.pipeline import validate_export_config

    with bad_params(f"{arm}-s{seed}"):
        cfg = _check(params, arm, seed, out_root)
        validate_export_config(section(params, "export", required=False))
        if cfg.teacher is not None and not Path(cfg.teacher.artifact).is_file():
            raise FileNotFoundError(f"no teacher at {cfg.teacher.artifact} (run the study's "
                                    "teacher stage first)")
    with unloadable_files(f"{arm}-s{seed}"):
        metrics = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 exports
        return {"train": metrics, "export": None}
    return {"train": metrics, "export": export_arm(params, arm, seed, out_root)}


@click.group()
def main() -> None:
    """Student studies: train one arm × seed of a study (see studies/*/params.yaml)."""


@main.command("run")
@click.argument("arm")
@click.argument("seed", type=int)
@params_option
@out_root_option
def run_cmd(arm: str, seed: int, params_path: str, out_root: str) -> None:
    """Train ARM with SEED (as in the study section of --params), then export it to ONNX."""
    with bad_params(f"{arm}-s{seed}"):
        params = load_params(params_path)
    out = run_arm(params, arm, seed, out_root)
    if out["export"] is None:
        return
    t, e = out["train"] or {}, out["export"]
    ort = (e.get("miou") or {}).get("ort_fp32")
    click.echo(f"{arm}-s{seed}: val mIoU {100 * t.get('miou', math.nan):.2f} (training code), "
               f"{100 * (ort if ort is not None else math.nan):.2f} (ONNX Runtime), "
               f"{t.get('time_per_iter_s') or math.nan:.3f} s/iter")


if __name__ == "__main__":
    main()
