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

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import load_params, split_datasets, train_stage_config
from rdd.config.params import Params, StudyConfig, arm_student, as_params, read_params_yaml
from rdd.config.sections import TeacherConfig
from rdd.config.walker import as_dict, check
from rdd.study.aggregate import run_dir

__all__ = ["study_section", "report_params", "arm_config", "run_dir", "run_arm", "export_arm", "main"]


def study_section(params: Params | Mapping[str, Any]) -> StudyConfig:
    """The checked ``study`` section (``ParamsError`` when the file has none or it is bad)."""
    return as_params(params).need("study")


def report_params(params: Params, path: str | Path) -> dict[str, Any]:
    """The params file as written (the reports quote it), checked first, with the keys the
    difficulty diagnostics read filled from the checked sections where the file omits them."""
    raw = read_params_yaml(path)
    rdd = dict(raw.get("rdd") or {})
    for k in ("threshold", "min_kept", "mode"):
        rdd.setdefault(k, getattr(params.rdd, k))
    prepare = dict(raw.get("prepare") or {})
    prepare["synthetic"] = {**as_dict(params.prepare.synthetic), **(prepare.get("synthetic") or {})}
    return {**raw, "rdd": rdd, "prepare": prepare}


def arm_config(
    params: Params | Mapping[str, Any],
    arm: str,
    seed: int,
    *,
    out_root: str | Path = "outputs",
    check_inputs: bool = False,
):
    """The :class:`rdd.engine.TrainConfig` of one arm × seed (see the module docstring).

    With ``check_inputs`` the dataset and (for KD / RDD arms) the teacher must exist."""
    params = as_params(params)
    st = study_section(params)
    if arm not in st.arms:
        raise params.error(f"study.arms has no arm {arm!r} (known: {', '.join(st.arms)})")
    spec = st.arms[arm]
    p = dataclasses.replace(params, student=arm_student(params, arm))
    object.__setattr__(p, "source", params.source)
    cfg = train_stage_config(p, "baseline", out_root=out_root, check_inputs=check_inputs)
    loss, teacher = cfg.loss, None
    if spec.kd or spec.rdd is not None or spec.extra_kd:
        artifact = Path(out_root) / "teacher" / "model.pt"
        if check_inputs and not artifact.is_file():
            raise FileNotFoundError(f"no teacher at {artifact} (run the study's teacher stage first)")
        teacher = TeacherConfig(artifact=str(artifact))
    if spec.kd:
        loss = dataclasses.replace(loss, kd=params.kd.to_engine())
    if spec.rdd is not None:
        r = check(dataclasses.replace(params.rdd, **spec.rdd), f"study.arms.{arm}.rdd")
        loss = dataclasses.replace(loss, rdd=r.to_engine(cfg.optim.iters))
    if spec.extra_kd:
        loss = dataclasses.replace(loss, extra_kd=spec.extra_kd)
    return check(
        dataclasses.replace(
            cfg, out_dir=str(run_dir(out_root, arm, seed)), seed=int(seed), teacher=teacher, loss=loss
        )
    )


def export_arm(params: Params, arm: str, seed: int, out_root: str | Path = "outputs") -> dict[str, Any]:
    """Export ``<run>/model.pt`` to ``<run>/export/`` with the ``export`` section (FP32 ONNX,
    parity gate, ONNX Runtime mIoU); the metadata is the pipeline export's."""
    from rdd.export.run import run_export

    params = as_params(params)
    calib, val = split_datasets(params, out_root)
    d = run_dir(out_root, arm, seed)
    return run_export(d / "model.pt", d / "export", calib_dataset=calib, val_dataset=val, cfg=params.export)


def run_arm(params: Params, arm: str, seed: int, out_root: str | Path = "outputs") -> dict[str, Any]:
    """Train one arm × seed, then export it; returns ``{"train": …, "export": …}``."""
    from rdd.engine import train

    with bad_params(f"{arm}-s{seed}"):
        params = as_params(params)
        cfg = arm_config(params, arm, seed, out_root=out_root, check_inputs=True)
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
    click.echo(
        f"{arm}-s{seed}: val mIoU {100 * t.get('miou', math.nan):.2f} (training code), "
        f"{100 * (ort if ort is not None else math.nan):.2f} (ONNX Runtime), "
        f"{t.get('time_per_iter_s') or math.nan:.3f} s/iter"
    )


if __name__ == "__main__":
    main()
