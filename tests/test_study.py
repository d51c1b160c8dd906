"""Student studies (``pipeline.study``, ``pipeline.study_report``, ``rdd.study``).

* the arm → TrainConfig mapping (golden), and every arm of the committed CamVid study is valid;
* the aggregation (mean ± sample std, paired gains) on hand-written run folders;
* the difficulty diagnostics on hand-made logits;
* end to end: teacher, arms × seeds and the report on a tiny synthetic configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from pipeline import config as C
from pipeline.study import arm_config, study_section
from rdd.study import run_dir

REPO = Path(__file__).resolve().parents[1]
CAMVID_STUDY = REPO / "studies" / "camvid" / "params.yaml"
CONVERGED_STUDY = REPO / "studies" / "camvid_converged" / "params.yaml"  # issue #16

STUDY = {
    "seeds": [0, 1],
    "main_arms": ["baseline", "kd", "rdd"],
    "arms": {
        "baseline": {},
        "kd": {"kd": True},
        "rdd": {"kd": True, "rdd": {}},
        "tfe_only": {"kd": True, "rdd": {"tse": False}},
        "tse_only": {"kd": True, "rdd": {"tfe": False}},
        "p30": {"kd": True, "rdd": {"tfe_frac": 0.3}},
        "or": {"kd": True, "rdd": {"mode": "or"}},
        "wide": {"student": {"model": {"kwargs": {"width_mult": 0.25}}}},
        "at_rdd": {"kd": True, "rdd": {}, "extra_kd": [{"type": "at", "weight": 50}]},
    },
}


def tiny_params() -> dict:
    """A synthetic study shrunk to seconds (the committed params.yaml + a study section)."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["prepare"]["synthetic"].update(n_train=6, n_val=3, size=[48, 64])
    p["data"].update(crop_size=[32, 48], batch_size=2, val_batch_size=3)
    p["train"].update(eval_interval=2, log_interval=1)
    p["teacher"]["model"]["kwargs"]["width_mult"] = 0.125
    p["student"]["model"]["kwargs"]["width_mult"] = 0.125
    for s in ("teacher", "student"):
        p[s]["optim"].update(iters=4, warmup_iters=0)
    p["rdd"] = {"tfe_frac": 0.25, "threshold": 0.7, "min_kept": 0.05, "mode": "xor"}
    p["kd"] = {"weight": 1.0, "temperature": 1.0}
    p["export"] = {
        "parity": {"frames": 2},
        "int8": {"enabled": False},
        "tensorrt": {"enabled": False},
        "benchmark": {"enabled": False},
    }
    p["study"] = copy.deepcopy(STUDY)
    return p


# --------------------------------------------------------------------------- arm configs
def test_arm_configs_golden():
    from rdd.engine import KDConfig, RDDConfig, TeacherConfig

    p = tiny_params()
    b = arm_config(p, "baseline", 1, out_root="o")
    assert b.teacher is None and b.seed == 1 and b.out_dir == str(Path("o/runs/baseline-s1"))
    assert b.loss.kd.type == "none" and not (b.loss.rdd.tfe or b.loss.rdd.tse)
    k = arm_config(p, "kd", 0, out_root="o")
    assert k.teacher == TeacherConfig(artifact=str(Path("o/teacher/model.pt")))
    assert k.loss.kd == KDConfig(type="pixel", weight=1.0, temperature=1.0)
    assert not (k.loss.rdd.tfe or k.loss.rdd.tse)
    # the student recipe is identical across arms except for the loss and the teacher
    base = arm_config(p, "baseline", 0, out_root="o").to_dict()
    for arm in ("kd", "rdd", "or"):
        c = arm_config(p, arm, 0, out_root="o").to_dict()
        assert {x: v for x, v in c.items() if x not in ("loss", "teacher", "out_dir")} == {
            x: v for x, v in base.items() if x not in ("loss", "teacher", "out_dir")
        }
    r = arm_config(p, "rdd", 0, out_root="o").loss.rdd
    assert r == RDDConfig(
        tfe=True, tse=True, threshold=0.7, min_kept=0.05, mode="xor", tfe_iters=1
    )  # round(0.25 · 4)
    assert arm_config(p, "p30", 0).loss.rdd.tfe_iters == 1  # round(0.3 · 4) = 1
    assert arm_config(p, "tfe_only", 0).loss.rdd.tfe_iters == 4  # every iteration
    assert arm_config(p, "tse_only", 0).loss.rdd.tfe_iters == 0  # p = 0
    assert arm_config(p, "or", 0).loss.rdd.mode == "or"
    assert arm_config(p, "wide", 0).model.kwargs["width_mult"] == 0.25
    # an arm's feature KD terms (issue #35: AT + pixel KD, with and without RDD)
    at = arm_config(p, "at_rdd", 0, out_root="o")
    assert at.teacher == k.teacher and at.loss.kd == k.loss.kd and at.loss.rdd == r
    assert [(e.type, e.weight, e.feature) for e in at.loss.extra_kd] == [("at", 50.0, "backbone")]
    assert arm_config(p, "rdd", 0).loss.extra_kd == ()
    # a study's params file runs through the pipeline: the same rdd section, the same spelling
    from pipeline.config import train_stage_config

    pipe = train_stage_config(p, "tse_rdd", out_root="o", check_inputs=False)
    assert pipe.loss.rdd.tfe_iters == r.tfe_iters and pipe.loss.rdd.mode == r.mode


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.update(arms={}), "study.arms must be a non-empty mapping"),
        (lambda s: s["arms"].update({"bad name": {}}), "alphanumeric"),
        (lambda s: s["arms"]["kd"].update(teacher=1), r"unknown key 'study\.arms\.kd\.teacher'"),
        (lambda s: s["arms"]["kd"].update(kd="yes"), r"study.arms.kd.kd must be true or false"),
        (lambda s: s["arms"]["rdd"].update(rdd=[1]), r"study.arms.rdd.rdd must be a mapping"),
        (lambda s: s.update(seeds=[]), "study.seeds must be a non-empty list"),
        (lambda s: s.update(main_arms=["nope"]), "study.main_arms: 'nope' is not in study.arms"),
    ],
)
def test_bad_study_sections_name_the_key(mutate, match):
    p = tiny_params()
    mutate(p["study"])
    with pytest.raises(C.ParamsError, match=match):
        study_section(p)


def test_run_dir_layout_is_the_pipelines():
    import pipeline.study

    assert pipeline.study.run_dir is run_dir  # one path rule for the runs and the report
    assert run_dir("o", "kd", 2) == Path("o/runs/kd-s2")


def test_bad_arm_and_tfe_frac():
    p = tiny_params()
    with pytest.raises(C.ParamsError, match="no arm 'nope'"):
        arm_config(p, "nope", 0)
    p["study"]["arms"]["rdd"]["rdd"] = {"tfe_frac": 1.5}
    with pytest.raises(C.ParamsError, match=r"study.arms.rdd.rdd.tfe_frac must be in \[0, 1\]"):
        arm_config(p, "rdd", 0)


def _arm_configs(path: Path, tmp_path: Path):
    """``(params, study, {arm: TrainConfig of seed 0})`` of a committed study; a tiny real teacher
    stands in for the trained one, and a clone without ../shared gets a temp data root."""
    from rdd.artifacts import save_artifact
    from rdd.engine import TrainConfig
    from rdd.models import create_model
    from rdd.spec import CAMVID_CLASSES, Normalization

    p = C.load_params(path)
    if not Path(p.data.root).is_dir():  # a clone without ../shared: any folder will do
        p = _with_root(p, tmp_path)
    (tmp_path / "teacher").mkdir()
    save_artifact(
        tmp_path / "teacher" / "model.pt",
        create_model("deeplabv3_resnet18", num_classes=11, width_mult=0.125, aux=True),
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(180, 240),
    )
    st = study_section(p)
    return (
        p,
        st,
        {arm: TrainConfig.from_dict(arm_config(p, arm, 0, out_root=tmp_path).to_dict()) for arm in st.arms},
    )


def _with_root(p, root: Path):
    src = p.source
    p = dataclasses.replace(p, data=dataclasses.replace(p.data, root=str(root)))
    object.__setattr__(p, "source", src)
    return p


def _check_paper_settings(cfgs, iters: int) -> None:
    """RDD's settings are the paper's (issue #8) and each ablation changes only its one switch."""
    assert cfgs["rdd"].loss.rdd.tfe_iters == round(0.1 * iters)
    assert cfgs["rdd"].loss.rdd.mode == "xor" and cfgs["rdd"].loss.rdd.threshold == 0.7
    assert abs(cfgs["rdd"].loss.rdd.min_kept - 100_000 / (4 * 512 * 1024)) < 1e-3
    assert cfgs["kd"].loss.kd.temperature == 1.0 and cfgs["kd"].loss.kd.weight == 1.0
    assert cfgs["tse_only"].loss.rdd.tfe_iters == 0
    assert cfgs["tfe_only"].loss.rdd.tfe_iters == iters and not cfgs["tfe_only"].loss.rdd.tse
    assert {cfgs[a].loss.rdd.mode for a in ("or", "and")} == {"or", "and"}
    assert cfgs["p20"].loss.rdd.tfe_iters == round(0.2 * iters)
    assert cfgs["p30"].loss.rdd.tfe_iters == round(0.3 * iters)


def _check_length(cfgs, suffix: str, factor: int) -> None:
    """The ``*<suffix>`` arms are the 400-iteration recipe at ``factor``× the iterations and
    warm-up (same LR and poly power) with the same losses, TFE over the same share."""
    base, long = cfgs["baseline"], cfgs[f"baseline{suffix}"]
    assert long.optim.iters == factor * base.optim.iters
    assert long.optim.warmup_iters == factor * base.optim.warmup_iters
    assert (long.optim.lr, long.optim.power) == (base.optim.lr, base.optim.power)
    for arm in ("kd", "rdd", "or"):
        short, lng = cfgs[arm].loss, cfgs[f"{arm}{suffix}"].loss
        assert lng.kd == short.kd and lng.rdd.mode == short.rdd.mode
        assert lng.rdd.tfe_iters == (None if short.rdd.tfe_iters is None else factor * short.rdd.tfe_iters)


def test_every_camvid_arm_is_a_valid_config(tmp_path):
    """Each arm of the committed CamVid study validates (a tiny real teacher stands in for the
    trained one), and the paper's settings are the ones the issue asks for."""
    p, st, cfgs = _arm_configs(CAMVID_STUDY, tmp_path)
    iters = p.student.optim.iters
    _check_paper_settings(cfgs, iters)
    base, long, xlong = cfgs["baseline"], cfgs["baseline_long"], cfgs["baseline_xlong"]
    for arm, c in cfgs.items():  # one schedule per training length
        ref = xlong if arm.endswith("_xlong") else long if arm.endswith("_long") else base
        assert (c.model, c.optim, c.data) == (ref.model, ref.optim, ref.data), arm
    _check_length(cfgs, "_long", 4)
    _check_length(cfgs, "_xlong", 8)
    assert st.seeds == [0, 1, 2]
    assert st.main == [
        "baseline",
        "kd",
        "rdd",
        "or",
        "baseline_long",
        "kd_long",
        "rdd_long",
        "or_long",
        "baseline_xlong",
        "kd_xlong",
        "rdd_xlong",
        "or_xlong",
    ]


def test_converged_camvid_study_is_the_issue_16_protocol(tmp_path):
    """studies/camvid_converged: the earlier study's data, models, recipe and paper settings; a
    6 400-iteration teacher; every main arm at 400 and at 16x (6 400) iterations on 3 seeds."""
    p, st, cfgs = _arm_configs(CONVERGED_STUDY, tmp_path)
    _check_paper_settings(cfgs, p.student.optim.iters)
    base, x16 = cfgs["baseline"], cfgs["baseline_16x"]
    for arm, c in cfgs.items():
        ref = x16 if arm.endswith("_16x") else base
        assert (c.model, c.optim, c.data) == (ref.model, ref.optim, ref.data), arm
    _check_length(cfgs, "_16x", 16)
    assert x16.optim.iters == 6400
    assert st.seeds == [0, 1, 2]
    assert st.main == [
        "baseline",
        "kd",
        "rdd",
        "or",
        "baseline_16x",
        "kd_16x",
        "rdd_16x",
        "or_16x",
        "at_16x",
        "at_rdd_16x",
    ]
    # issue #35: AT + pixel KD with and without RDD differ from KD / RDD by the AT term only,
    # one AT weight for both; the weight's candidates are the 400-iteration KD recipe + AT
    at, at_rdd = cfgs["at_16x"].loss, cfgs["at_rdd_16x"].loss
    assert dataclasses.replace(at, extra_kd=()) == cfgs["kd_16x"].loss
    assert dataclasses.replace(at_rdd, extra_kd=()) == cfgs["rdd_16x"].loss
    assert at.extra_kd == at_rdd.extra_kd and [e.type for e in at.extra_kd] == ["at"]
    assert at.extra_kd[0].feature == "backbone"
    cands = sorted((c.loss.extra_kd[0].weight, a) for a, c in cfgs.items() if a.startswith("at_w"))
    assert [w for w, _ in cands] == [10.0, 100.0, 1000.0]
    assert at.extra_kd[0].weight in [w for w, _ in cands]
    for _, a in cands:
        assert dataclasses.replace(cfgs[a].loss, extra_kd=()) == cfgs["kd"].loss
    old = C.load_params(CAMVID_STUDY)  # what differs from the earlier study, and only that
    assert p.teacher.optim == dataclasses.replace(old.teacher.optim, iters=6400, warmup_iters=200)
    assert (p.teacher.model, p.student, p.kd, p.rdd, p.export) == (
        old.teacher.model,
        old.student,
        old.kd,
        old.rdd,
        old.export,
    )
    assert p.train == dataclasses.replace(old.train, channels_last=True)
    assert dataclasses.replace(p.data, root=old.data.root) == old.data


@pytest.mark.parametrize(
    "params,longest",
    [(CAMVID_STUDY, "_xlong"), (CONVERGED_STUDY, "_16x")],
    ids=["camvid", "camvid_converged"],
)
def test_camvid_dvc_stages_match_the_study(params, longest):
    """The matrix stages of each study's dvc.yaml cover every arm × its seeds exactly once."""
    dvc_yaml = params.with_name("dvc.yaml").relative_to(REPO)
    r = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", str(dvc_yaml), "--name-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    names = {ln.split(":")[-1].strip() for ln in r.stdout.splitlines() if ln.strip()}
    st = study_section(C.load_params(params))
    supervised = [a for a in st.main if a.startswith("baseline")]
    runs = {f"baseline@{a}-{s}" for a in supervised for s in st.seeds}
    runs |= {f"student@{a}-{s}" for a in st.main if a not in supervised for s in st.seeds}
    longest_arms = [a for a in st.arms if a.endswith(longest) and not a.startswith("at_")]
    runs |= {f"ablation@{a}-0" for a in st.arms if a not in st.main and not a.startswith("at_")}
    assert sorted(longest_arms) == [f"{a}{longest}" for a in ("baseline", "kd", "or", "rdd")]
    if longest == "_16x":  # seeds 3 and 4 at 400 iterations: 5 seeds for KD, RDD, OR (#16)
        runs |= {f"extra_baseline@baseline-{s}" for s in (3, 4)}
        runs |= {f"extra@{a}-{s}" for a in ("kd", "rdd", "or") for s in (3, 4)}
        # issue #35: AT ± RDD at 6 400 iterations, the AT weight's candidates, XOR / OR seeds 3-4
        runs = {r for r in runs if not r.startswith("student@at_")}
        runs |= {f"integration@{a}-{s}" for a in ("at_16x", "at_rdd_16x") for s in st.seeds}
        runs |= {f"at_weight@at_w{w}-0" for w in (10, 100, 1000)}
        runs |= {f"extra_16x@{a}-{s}" for a in ("rdd_16x", "or_16x") for s in (3, 4)}
    assert names == runs | {"teacher", "models", "report"}


def test_converged_study_keeps_its_durable_files_in_git():
    """The #16 study spans machines: its curves, logs, metrics and teacher weights are tracked by
    git (never DVC-cache-only), while checkpoints and run weights stay out of git."""
    out = "outputs/camvid_converged"
    tracked = [
        f"{out}/teacher/dvclive/plots/metrics/val/miou.tsv",
        f"{out}/teacher/train.log",
        f"{out}/runs/kd_16x-s0/dvclive/params.yaml",
        f"{out}/runs/kd_16x-s0/metrics.json",
        f"{out}/runs/kd_16x-s0/export/export_metrics.json",
        "studies/camvid_converged/models/teacher.pt",
        "studies/camvid_converged/models/teacher.json",
        "studies/camvid_converged/models/rdd_16x-s2.onnx",
    ]
    ignored = [
        f"{out}/teacher/model.pt",
        f"{out}/teacher/checkpoint.pt",
        f"{out}/teacher/export/export_metrics.json",  # inside a DVC-cached folder
        f"{out}/runs/kd_16x-s0/model.pt",
        f"{out}/runs/kd_16x-s0/export/model.onnx",
    ]
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(
        ["git", "check-ignore", "--no-index", *tracked, *ignored],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode in (0, 1), r.stderr
    assert sorted(r.stdout.split()) == sorted(ignored)
    dvc = yaml.safe_load((REPO / "studies/camvid_converged/dvc.yaml").read_text())["stages"]
    for name in ("teacher", "baseline", "student", "ablation"):
        outs = {k: v for o in dvc[name]["outs"] if isinstance(o, dict) for k, v in o.items()}
        live = [v for k, v in outs.items() if k.endswith("/dvclive")]
        assert live == [{"cache": False, "persist": True}], name
    models = dvc["models"]
    assert "--teacher-weights" in models["cmd"]
    assert {"cache": False, "persist": True} in [
        v for o in models["outs"] if isinstance(o, dict) for v in o.values()
    ]


# --------------------------------------------------------------------------- aggregation
def _fake_run(
    root: Path,
    arm: str,
    seed: int,
    miou: float,
    *,
    tpi: float = 1.0,
    sel: list[float] | None = None,
    rdd: dict | None = None,
) -> None:
    d = run_dir(root, arm, seed)
    (d / "dvclive" / "plots" / "metrics" / "val").mkdir(parents=True)
    if rdd is not None:  # the configuration the trainer logs (TrainConfig.to_dict())
        (d / "dvclive" / "params.yaml").write_text(
            yaml.safe_dump({"config": {"seed": seed, "loss": {"rdd": rdd}}, "world_size": 1})
        )
    (d / "export").mkdir()
    (d / "metrics.json").write_text(
        json.dumps(
            {"miou": miou, "iou": [miou, miou / 2], "completed": True, "time_per_iter_s": tpi, "iters": 4}
        )
    )
    (d / "export" / "export_metrics.json").write_text(json.dumps({"miou": {"ort_fp32": miou}}))
    (d / "dvclive" / "plots" / "metrics" / "val" / "miou.tsv").write_text(
        f"step\tmiou\n2\t{miou / 2}\n4\t{miou}\n"
    )
    if sel:
        (d / "dvclive" / "plots" / "metrics" / "rdd").mkdir()
        (d / "dvclive" / "plots" / "metrics" / "rdd" / "tse_selected_frac.tsv").write_text(
            "step\ttse_selected_frac\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(sel))
        )


def test_summary_means_std_and_paired_gains(tmp_path):
    from rdd.study import mean_std, read_tsv, summarize_study

    m1, s1 = mean_std([0.5])
    assert m1 == 0.5 and math.isnan(s1)  # one run: std unknown, not 0
    m, s = mean_std([0.1, 0.2, 0.3])
    assert math.isclose(m, 0.2) and math.isclose(s, 0.1)  # sample std (n − 1)
    st = study_section(tiny_params()).to_dict()
    for seed, (b, k, r) in enumerate([(0.40, 0.44, 0.47), (0.42, 0.45, 0.44)]):
        _fake_run(tmp_path, "baseline", seed, b, tpi=0.5)
        _fake_run(tmp_path, "kd", seed, k, tpi=1.0)
        _fake_run(
            tmp_path, "rdd", seed, r, tpi=1.1, sel=[0.1, 0.3], rdd={"tfe": True, "tse": True, "mode": "xor"}
        )
    _fake_run(tmp_path, "or", 0, 0.30, sel=[0.5], rdd={"tfe": True, "tse": True, "mode": "or"})
    (run_dir(tmp_path, "or", 1)).mkdir(parents=True)  # unfinished: no metrics.json
    s = summarize_study(st, tmp_path)
    assert s["arms"]["rdd"]["n"] == 2 and math.isclose(s["arms"]["rdd"]["miou_mean"], 0.455)
    assert math.isclose(s["arms"]["rdd"]["miou_std"], float(np.std([0.47, 0.44], ddof=1)))
    g = s["gains"]["rdd_vs_kd"]
    assert math.isclose(g["paired_mean"], 0.01) and g["paired_wins"] == 1
    assert g["paired_seeds"] == [0, 1]
    assert math.isclose(s["arms"]["rdd"]["tse_selected_frac_mean"], 0.2)
    assert s["arms"]["or"]["n"] == 1 and s["arms"]["or"]["seeds"] == [0]
    assert s["arms"]["baseline"]["iou_mean"] == pytest.approx([0.41, 0.205])
    assert "tfe_only" not in s["arms"] and s["missing"] == ["or-s1"]  # started, unfinished
    # each arm's mask mode is the one its runs logged (no logged config: unknown)
    assert (s["arms"]["rdd"]["tse_mode"], s["arms"]["or"]["tse_mode"]) == ("xor", "or")
    assert s["arms"]["kd"]["tse_mode"] is None and s["runs"]["or"]["0"]["tse_mode"] == "or"
    assert read_tsv(tmp_path / "missing.tsv") == ([], [])
    # a run resumed from its checkpoint at step 20 logs 40 again after the interrupted process
    # wrote it: one row per step, the last one, in step order
    resumed = tmp_path / "resumed.tsv"
    resumed.write_text("step\tmiou\n20\t0.1\n40\t0.2\n40\t0.25\n60\t0.3\n")
    assert read_tsv(resumed) == ([20, 40, 60], [0.1, 0.25, 0.3])
    # a main arm without a seed is reported missing
    st["seeds"] = [0, 1, 2]
    assert set(summarize_study(st, tmp_path)["missing"]) == {"baseline-s2", "kd-s2", "rdd-s2", "or-s1"}


def test_extra_seeds_are_paired_and_named_in_the_report(tmp_path):
    """Main arms with runs beyond ``study.seeds`` (here 4 seeds for KD and RDD, 2 for OR): every
    run on disk counts, gains pair on the seeds both arms have, the setup names the extra seeds."""
    from rdd.study import markdown_report, summarize_study

    st = study_section(tiny_params()).to_dict()
    st["arms"] = {a: {} for a in ("baseline", "kd", "rdd", "or")}
    st["main_arms"], st["seeds"] = list(st["arms"]), [0, 1]
    offset = {"baseline": 0.0, "kd": 0.01, "rdd": 0.03, "or": 0.02}
    for seed in range(4):
        for arm in ("baseline", "kd", "rdd", "or") if seed < 2 else ("baseline", "kd", "rdd"):
            _fake_run(tmp_path, arm, seed, 0.3 + 0.01 * seed + offset[arm] + 0.001 * seed**2)
    s = summarize_study(st, tmp_path)
    assert s["arms"]["kd"]["seeds"] == [0, 1, 2, 3] and s["arms"]["or"]["seeds"] == [0, 1]
    assert s["gains"]["rdd_vs_kd"]["paired_seeds"] == [0, 1, 2, 3]
    assert s["gains"]["rdd_vs_kd"]["paired_mean"] == pytest.approx(0.02)
    assert s["gains"]["rdd_vs_or"]["paired_seeds"] == [0, 1] and s["missing"] == []
    md = markdown_report(s, {}, st, fig_dir="fig")
    assert (
        "- Seeds: [0, 1] for baseline, kd, rdd, or, and seeds [2, 3] for baseline, kd, rdd; "
        "ablations: the seeds listed."
    ) in md
    st["seeds"] = [0, 1, 2, 3]  # or-s2, or-s3 missing; nothing extra to name
    md = markdown_report(summarize_study(st, tmp_path), {}, st, fig_dir="fig")
    assert "- Seeds: [0, 1, 2, 3] for baseline, kd, rdd, or; ablations: the seeds listed." in md


@pytest.mark.parametrize(
    "t,df,p",
    [
        (12.706, 1, 0.05),
        (4.303, 2, 0.05),
        (2.776, 4, 0.05),
        (2.228, 10, 0.05),
        (1.0, 3, 0.3910),
        (9.925, 2, 0.01),
    ],
)
def test_student_t_matches_the_table(t, df, p):
    """Two-sided p of Student's t against printed critical values (4 significant digits)."""
    from rdd.study.aggregate import student_t_sf

    assert 2 * student_t_sf(t, df) == pytest.approx(p, abs=2e-4)
    assert student_t_sf(-t, df) == pytest.approx(1 - p / 2, abs=1e-4)


def test_student_t_closed_forms():
    from rdd.study.aggregate import paired_t, student_t_sf

    for t in (0.0, 0.3, 1.7, 25.0):
        assert student_t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-12)
        assert student_t_sf(t, 2) == pytest.approx((1 - t / math.sqrt(t * t + 2)) / 2, abs=1e-12)
    r = paired_t([0.01, 0.02, 0.015])  # mean 0.015, sd 0.005, n 3
    assert r["df"] == 2 and r["t"] == pytest.approx(0.015 / (0.005 / math.sqrt(3)))
    assert r["p"] == pytest.approx(1 - r["t"] / math.sqrt(r["t"] ** 2 + 2))
    assert math.isnan(paired_t([0.01])["p"]) and math.isnan(paired_t([0.02, 0.02])["t"])


def test_length_variants_and_curve_tail():
    from rdd.study.aggregate import curve_tail, length_variants

    g = length_variants(["baseline", "kd", "tfe_only", "kd_long", "baseline_long", "x_long"])
    assert g == {
        "": {"baseline": "baseline", "kd": "kd", "tfe_only": "tfe_only", "x_long": "x_long"},
        "_long": {"kd": "kd_long", "baseline": "baseline_long"},
    }
    # an arm without a base arm joins the suffix group whose members all declare its length
    # (at_16x beside kd_16x), not one of another length (x_long declares 400, kd_long 6400)
    names = ["baseline", "kd", "kd_16x", "baseline_16x", "at_16x", "x_16x", "at_w10", "y_16x"]
    iters = {"kd_16x": 6400, "baseline_16x": 6400, "at_16x": 6400, "x_16x": 400, "y_16x": None}
    assert length_variants(names, iters) == {
        "": {"baseline": "baseline", "kd": "kd", "x_16x": "x_16x", "at_w10": "at_w10", "y_16x": "y_16x"},
        "_16x": {"kd": "kd_16x", "baseline": "baseline_16x", "at": "at_16x"},
    }
    c = curve_tail([100, 200, 300, 400, 500], [0.1, 0.3, 0.35, 0.40, 0.38])
    assert (c["from_step"], c["points"]) == (400, 2)
    assert c["range"] == pytest.approx(0.02) and c["change"] == pytest.approx(-0.02)
    assert curve_tail([], []) is None and curve_tail([10], [0.5]) is None


def test_two_training_lengths_summary_and_report(tmp_path):
    """Short and _long arms: paired gaps with t tests per length, the share of the teacher −
    baseline gap recovered, curve flatness, and the report's side-by-side section + figure."""
    from rdd.study import markdown_report, summarize_study
    from rdd.study.report import _plot_study

    st = study_section(tiny_params()).to_dict()
    st["arms"] = {a: {} for a in ("baseline", "kd", "rdd", "baseline_long", "kd_long", "rdd_long")}
    st["main_arms"], st["seeds"] = list(st["arms"]), [0, 1, 2]
    short = {"baseline": (0.30, 0.31, 0.32), "kd": (0.32, 0.33, 0.33), "rdd": (0.34, 0.34, 0.36)}
    for arm, vals in short.items():
        for seed, v in enumerate(vals):
            _fake_run(tmp_path, arm, seed, v)
            _fake_run(tmp_path, f"{arm}_long", seed, v + 0.1)
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "metrics.json").write_text(json.dumps({"miou": 0.50, "iters": 8}))
    live = tmp_path / "teacher" / "dvclive" / "plots" / "metrics" / "val"
    live.mkdir(parents=True)
    live.joinpath("miou.tsv").write_text("step\tmiou\n2\t0.3\n4\t0.45\n6\t0.47\n8\t0.49\n10\t0.5\n")
    s = summarize_study(st, tmp_path)
    g, gl = s["gains"]["rdd_vs_kd"], s["gains"]["rdd_long_vs_kd_long"]
    assert g["paired_mean"] == pytest.approx(0.02) and gl["paired_mean"] == pytest.approx(0.02)
    assert g["t"] == pytest.approx(0.02 / (0.01 / math.sqrt(3))) and g["df"] == 2
    assert g["paired_wins"] == 3 and "rdd_vs_or" not in s["gains"]
    rec = s["gap_recovered"]["kd"]  # (kd − b) / (0.5 − b) per seed
    assert rec["per_seed"] == pytest.approx([0.02 / 0.2, 0.02 / 0.19, 0.01 / 0.18])
    assert s["gap_recovered"]["rdd_long"]["per_seed"] == pytest.approx([0.04 / 0.1, 0.03 / 0.09, 0.04 / 0.08])
    assert s["lengths"]["_long"]["arms"]["kd"] == "kd_long"
    assert s["lengths"][""]["curve_tail"]["baseline"] is None  # steps 2, 4: one in the tail
    tail = s["teacher"]["curve_tail"]  # steps ≥ 8 of 10
    assert (tail["from_step"], tail["points"]) == (8, 2) and tail["range"] == pytest.approx(0.01)
    md = markdown_report(s, {}, st, fig_dir="fig")
    assert "## Two training lengths" in md
    assert f"| RDD − KD | +2.00 ± 1.00 (t = {0.02 / (0.01 / math.sqrt(3)):.2f}, df 2, p = " in md
    kd_rec = np.mean([0.02 / 0.2, 0.02 / 0.19, 0.01 / 0.18])  # share recovered, short
    assert f"| kd | {100 * kd_rec:.2f} ± " in md
    assert "![validation curves at each training length](fig/miou_curves_lengths.png)" in md
    # Δ columns of a _long arm are against the _long baseline / KD
    row = next(ln for ln in md.splitlines() if ln.startswith("| rdd_long | 3 |"))
    assert "| +3.67 | +2.00 |" in row
    _plot_study(s, st, tmp_path / "fig")
    assert (tmp_path / "fig" / "miou_curves_lengths.png").stat().st_size > 1000
    # a main arm at a third schedule (seed 0 only, outside main_arms) is a length point, not an
    # ablation; a real ablation still is one
    st["arms"].update(baseline_xlong={}, tse_only={})
    st["ablation_seeds"] = [0]
    _fake_run(tmp_path, "baseline_xlong", 0, 0.45)
    _fake_run(tmp_path, "tse_only", 0, 0.35)
    md = markdown_report(summarize_study(st, tmp_path), {}, st, fig_dir="fig")
    assert "## Three training lengths" in md and "## Two training lengths" not in md
    ablation = md.split("## Ablations")[1].split("\n## ")[0]
    assert "| tse_only |" in ablation and "baseline_xlong" not in ablation
    assert next(ln for ln in md.splitlines() if ln.startswith("| baseline | "))
    rows = [
        ln.split(" | ")[0]
        for ln in md.split("## Main result")[1].split("\n## ")[0].splitlines()
        if ln.startswith("| ") and not ln.startswith("| model |")
    ]
    assert len(rows) == len(set(rows)) and "| baseline_xlong" in rows  # every arm once
    assert any(ln.startswith("| baseline_xlong | 1 | 45.00") for ln in md.splitlines())
    # distilled arms at the third length on fewer seeds than its baseline: every gap is paired on
    # the seeds both arms have (df = 1 here), and the 3rd column fills in
    st["arms"].update(kd_xlong={}, rdd_xlong={})
    xruns = [(0.45, 0.46, 0.48), (0.46, 0.48, 0.49), (0.47, None, None)]
    for seed, (b, kd, rdd) in enumerate(xruns):
        if seed:  # seed 0 (0.45) is above
            _fake_run(tmp_path, "baseline_xlong", seed, b)
        if kd is not None:
            _fake_run(tmp_path, "kd_xlong", seed, kd)
            _fake_run(tmp_path, "rdd_xlong", seed, rdd)
    s = summarize_study(st, tmp_path)
    gx = s["gains"]["kd_xlong_vs_baseline_xlong"]
    assert gx["paired_seeds"] == [0, 1] and gx["df"] == 1
    assert gx["paired_mean"] == pytest.approx(0.015)
    assert s["gains"]["rdd_xlong_vs_kd_xlong"]["paired_mean"] == pytest.approx(0.015)
    assert s["gap_recovered"]["kd_xlong"]["per_seed"] == pytest.approx([0.01 / 0.05, 0.02 / 0.04])
    md = markdown_report(s, {}, st, fig_dir="fig")
    row = next(ln for ln in md.splitlines() if ln.startswith("| RDD − KD |"))
    assert row.count("df 2") == 2
    assert "+1.50 ± 0.71 (t = 3.00, df 1, p = 0.205; 2/2 > 0) |" in row
    lengths = md.split("## Three training lengths")[1].split("\n## ")[0]
    assert next(ln for ln in lengths.splitlines() if ln.startswith("| baseline | ")).endswith(
        "| 46.00 ± 1.00 (n=3) |"
    )


def test_collect_onnx_copies_finished_runs_and_indexes_them(tmp_path):
    """Completed runs with a passed export are copied byte for byte as ARM-sSEED.onnx with their
    SHA-256; unfinished ones and failed exports are listed as skipped, never copied."""
    import hashlib

    from rdd.study.models import collect_onnx

    out, dest = tmp_path / "out", tmp_path / "models"
    for arm, seed in (("baseline", 0), ("kd", 0), ("kd", 1)):
        _fake_run(out, arm, seed, 0.3)
        d = run_dir(out, arm, seed) / "export"
        (d / "model.onnx").write_bytes(f"onnx {arm} {seed}".encode())
        (d / "export_metrics.json").write_text(
            json.dumps(
                {
                    "passed": (arm, seed) != ("kd", 1),
                    "model": "lraspp_mobilenetv2",
                    "miou": {"ort_fp32": 0.29},
                }
            )
        )
    run_dir(out, "rdd", 0).mkdir(parents=True)  # started, not finished
    (out / "teacher" / "export").mkdir(parents=True)
    (out / "teacher" / "export" / "model.onnx").write_bytes(b"teacher")
    (out / "teacher" / "export" / "export_metrics.json").write_text(json.dumps({"passed": True}))
    (out / "teacher" / "metrics.json").write_text(json.dumps({"miou": 0.5, "iters": 8}))
    study = {"arms": {"baseline": {}, "kd": {}, "rdd": {}}}
    idx = collect_onnx(study, out, dest, teacher_export=out / "teacher" / "export")
    assert [m["name"] for m in idx["models"]] == ["teacher", "baseline-s0", "kd-s0"]
    assert {s["name"]: s["why"] for s in idx["skipped"]} == {
        "kd-s1": "no passed export",
        "rdd-s0": "not finished",
    }
    assert sorted(p.name for p in dest.iterdir()) == [
        "baseline-s0.onnx",
        "index.json",
        "kd-s0.onnx",
        "teacher.onnx",
    ]
    kd = idx["models"][2]
    assert (dest / "kd-s0.onnx").read_bytes() == b"onnx kd 0"
    assert kd["sha256"] == hashlib.sha256(b"onnx kd 0").hexdigest()
    assert (kd["iters"], kd["miou_val"], kd["miou_val_onnxruntime"]) == (4, 0.3, 0.29)
    assert json.loads((dest / "index.json").read_text()) == idx


def test_collect_onnx_is_cumulative_across_machines_and_keeps_the_teacher(tmp_path):
    """A study trained on several machines: runs whose export is gone from this machine (their
    metrics are in git) keep the ONNX already gathered while it matches its indexed SHA-256;
    the teacher's weights are gathered and restored byte for byte, never over other bytes."""
    from rdd.study.models import collect_onnx, restore_teacher

    out, dest = tmp_path / "out", tmp_path / "models"
    study = {"arms": {"baseline": {}, "kd": {}}}
    for arm in ("baseline", "kd"):
        _fake_run(out, arm, 0, 0.3)
        d = run_dir(out, arm, 0) / "export"
        (d / "model.onnx").write_bytes(arm.encode())
        (d / "export_metrics.json").write_text(json.dumps({"passed": True}))
    te = out / "teacher"
    (te / "export").mkdir(parents=True)
    (te / "export" / "model.onnx").write_bytes(b"teacher onnx")
    (te / "export" / "export_metrics.json").write_text(json.dumps({"passed": True}))
    (te / "metrics.json").write_text(json.dumps({"miou": 0.56, "iters": 8}))
    (te / "model.pt").write_bytes(b"weights")
    (te / "model.json").write_text('{"model": "t"}')
    first = collect_onnx(study, out, dest, teacher_export=te / "export", teacher_artifact=te / "model.pt")
    assert [w["file"] for w in first["models"][0]["weights"]] == ["teacher.pt", "teacher.json"]
    assert (dest / "teacher.pt").read_bytes() == b"weights"

    # another machine: only git's files (metrics, ONNX gathered before); kd-s0's was altered
    for f in [
        te / "model.pt",
        te / "model.json",
        te / "export" / "model.onnx",
        *(run_dir(out, a, 0) / "export" / "model.onnx" for a in ("baseline", "kd")),
    ]:
        f.unlink()
    (dest / "kd-s0.onnx").write_bytes(b"tampered")
    again = collect_onnx(study, out, dest, teacher_export=te / "export", teacher_artifact=te / "model.pt")
    assert again["models"] == first["models"][:2]  # the teacher and baseline-s0, as they were
    assert again["skipped"] == [{"name": "kd-s0", "why": "no passed export"}]

    assert restore_teacher(dest, out) == [te / "model.pt", te / "model.json"]
    # the same teacher exported again elsewhere, to other bytes: the gathered export stays
    (te / "export" / "model.onnx").write_bytes(b"teacher onnx, other constant folding")
    same = collect_onnx(study, out, dest, teacher_export=te / "export", teacher_artifact=te / "model.pt")
    assert same["models"][0] == first["models"][0]
    assert (dest / "teacher.onnx").read_bytes() == b"teacher onnx"
    assert (te / "model.pt").read_bytes() == b"weights"
    assert restore_teacher(dest, out) == []  # already there: nothing rewritten
    (te / "model.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"model.json: exists and differs.*not overwritten"):
        restore_teacher(dest, out)
    assert (te / "model.json").read_text() == "{}"
    (dest / "teacher.pt").write_bytes(b"other")
    with pytest.raises(ValueError, match=r"teacher.pt: missing or not the file indexed"):
        restore_teacher(dest, out)
    with pytest.raises(FileNotFoundError, match=r"index.json: no teacher weights indexed"):
        restore_teacher(tmp_path / "nowhere", out)


def test_models_cli_restores_the_teacher_or_says_why_in_one_line(tmp_path):
    from pipeline.study_models import main as models_main

    r = CliRunner().invoke(
        models_main,
        [
            "--params",
            str(CONVERGED_STUDY),
            "--out-root",
            str(tmp_path / "out"),
            "--dest",
            str(tmp_path / "m"),
            "--restore-teacher",
        ],
    )
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith("Error: models: ") and "no teacher weights indexed" in r.output


def test_run_config_is_read_from_the_run_and_bad_logs_are_named(tmp_path):
    from rdd.study import read_run_config

    assert read_run_config(tmp_path) is None  # nothing logged
    _fake_run(tmp_path, "tfe_only", 0, 0.3, rdd={"tfe": True, "tse": False, "mode": "or"})
    d = run_dir(tmp_path, "tfe_only", 0)
    assert read_run_config(d)["loss"]["rdd"]["mode"] == "or"
    study = {"arms": {"tfe_only": {}}, "main_arms": [], "seeds": [0]}
    from rdd.study import summarize_study

    assert summarize_study(study, tmp_path)["arms"]["tfe_only"]["tse_mode"] is None  # no TSE
    (d / "dvclive" / "params.yaml").write_text("world_size: 1\n")
    with pytest.raises(ValueError, match=r"params.yaml: expected a mapping with a 'config'"):
        read_run_config(d)


# the committed summaries predate the logged mode: these are the modes the runs trained with
_CAMVID_TSE_MODES = {"rdd": "xor", "tse_only": "xor", "p20": "xor", "p30": "xor", "or": "or", "and": "and"}


def test_committed_reports_regenerate_from_their_summaries():
    """reports/camvid.md and reports/label_noise.md are what the markdown functions make of the
    committed summaries (the runs' DVCLive logs and weights are not in git, so the report
    stages themselves cannot re-run from a clone)."""
    from pipeline.study import report_params
    from rdd.study import markdown_report, sweep_markdown

    p = report_params(C.load_params(CAMVID_STUDY), CAMVID_STUDY)
    st = study_section(C.load_params(CAMVID_STUDY)).to_dict()
    summary = json.loads((REPO / "outputs/camvid/report/summary.json").read_text())
    for arm, a in summary["arms"].items():
        if "tse_mode" not in a:  # summaries written before it was logged
            a["tse_mode"] = _CAMVID_TSE_MODES.get(arm)
    md = markdown_report(
        summary, p, st, fig_dir="camvid", diagnostics=summary["diagnostics"], notes=st.get("notes", "")
    )
    assert md == (REPO / "reports/camvid.md").read_text()
    noise = REPO / "studies/label_noise/params.yaml"
    p = report_params(C.load_params(noise), noise)
    summary = json.loads((REPO / "outputs/label_noise/report/summary.json").read_text())
    md = sweep_markdown(
        summary["per_rate"],
        summary["rates"],
        p,
        study_section(C.load_params(noise)).to_dict(),
        fig_dir="label_noise",
        diagnose_arm="xor",
    )
    assert md == (REPO / "reports/label_noise.md").read_text()


# --------------------------------------------------------------------------- diagnostics
class _Fixed(nn.Module):
    """A 'network' whose logits are given (to test the statistics with known maps)."""

    def __init__(self, out: torch.Tensor, aux: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out, self.aux = out, aux

    def forward(self, x, with_aux: bool = False):
        n = x.shape[0]
        if with_aux:
            return {"out": self.out[:n], "aux": self.aux[:n]}
        return self.out[:n]


def test_difficulty_diagnostics_golden():
    from rdd.runtime.measure.frames import Frame
    from rdd.spec import Normalization
    from rdd.study import difficulty_diagnostics

    # 1×2×1×4 logits; labels [0, 0, 1, 255]; probabilities of the label class:
    big = 5.0
    t = torch.tensor([[[[big, -big, big, 0.0]], [[-big, big, -big, 0.0]]]])  # right, wrong, wrong
    s = torch.tensor([[[[big, big, -big, 0.0]], [[-big, -big, big, 0.0]]]])  # right, right, right
    y = np.array([[0, 0, 1, 255]], np.uint8)
    frame = Frame(np.zeros((1, 4, 3), np.uint8), y, "f")
    d = difficulty_diagnostics(
        _Fixed(t, aux=t.clone()),
        _Fixed(s),
        [frame],
        normalization=Normalization(),
        threshold=0.7,
        min_kept=0.0,
    )
    assert d["valid_pixels"] == 3 and d["neither_frac"] == pytest.approx(1 / 3)
    assert d["teacher_hard_frac"] == pytest.approx(2 / 3) and d["student_hard_frac"] == 0
    assert d["xor_frac"] == pytest.approx(2 / 3) and d["and_frac"] == 0
    assert d["teacher_error"] == pytest.approx(2 / 3) and d["teacher_error_on_xor"] == 1.0
    assert math.isnan(d["teacher_error_on_and"])
    assert d["tfe_weight_mean"] == pytest.approx(1.0)  # identical heads: KL = 0
    # a uniform aux head: KL(u ‖ p) = log 0.5 − ½(log p0 + log p1) with p = softmax(±5)
    lp = torch.log_softmax(torch.tensor([5.0, -5.0]), 0)
    w = math.exp(-(math.log(0.5) - 0.5 * float(lp.sum())))  # ≈ 0.01348
    d = difficulty_diagnostics(
        _Fixed(t, aux=torch.zeros_like(t)),
        _Fixed(s),
        [frame],
        normalization=Normalization(),
        threshold=0.7,
        min_kept=0.0,
    )
    assert d["tfe_weight_mean"] == pytest.approx(w, rel=1e-4)
    assert d["tfe_weight_mean_teacher_right"] == pytest.approx(w, rel=1e-4)
    assert d["tfe_weight_mean_teacher_wrong"] == pytest.approx(w, rel=1e-4)
    # with the true labels: pixel 1 is labelled 0 but is really 1 (the teacher is right there)
    clean = np.array([[0, 1, 1, 255]], np.uint8)
    d = difficulty_diagnostics(
        _Fixed(t, aux=t.clone()),
        _Fixed(s),
        [frame],
        normalization=Normalization(),
        threshold=0.7,
        min_kept=0.0,
        clean_masks=[clean],
    )
    assert d["noisy_frac"] == pytest.approx(1 / 3)
    assert d["noisy_share_on_xor"] == pytest.approx(1 / 2) and d["noisy_recall_xor"] == 1.0
    assert d["noisy_recall_and"] == 0.0 and math.isnan(d["noisy_share_on_and"])
    assert d["noisy_share_on_neither"] == 0.0
    with pytest.raises(ValueError, match="clean_masks must match"):
        difficulty_diagnostics(
            _Fixed(t, aux=t),
            _Fixed(s),
            [frame],
            normalization=Normalization(),
            threshold=0.7,
            min_kept=0.0,
            clean_masks=[clean[:, :2]],
        )


# --------------------------------------------------------------------------- end to end
def test_study_end_to_end(tmp_path):
    """Noisy data → teacher → every main arm × 2 seeds + one ablation → both reports (the study
    report and the label-noise sweep report with this one rate), on tiny synthetic data."""
    from pipeline.noise_report import main as noise_report_main
    from pipeline.noisy_data import prepare_noisy_data
    from pipeline.study import run_arm
    from pipeline.study_report import main as report_main
    from pipeline.train import run_stage

    p = tiny_params()
    out = tmp_path / "outputs" / "rate-0.2"
    p["study"]["arms"] = {k: v for k, v in p["study"]["arms"].items() if k in ("baseline", "kd", "rdd", "or")}
    p["study"]["ablation_seeds"] = [0]
    prepare_noisy_data(p, out, 0.2)
    run_stage(p, "teacher", out)
    for arm, seeds in (("baseline", [0, 1]), ("kd", [0, 1]), ("rdd", [0, 1]), ("or", [0])):
        for s in seeds:
            res = run_arm(p, arm, s, out)
            assert res["export"]["passed"] and res["export"]["gates"]["parity_fp32"]
            assert (run_dir(out, arm, s) / "export" / "model.onnx").is_file()
    # seeds change the run; the same seed of two arms starts from the same weights and batches
    m = {
        (a, s): json.loads((run_dir(out, a, s) / "metrics.json").read_text())
        for a, s in (("baseline", 0), ("baseline", 1), ("rdd", 0))
    }
    assert m[("baseline", 0)]["train_loss"] != m[("baseline", 1)]["train_loss"]
    assert m[("rdd", 0)]["method"] == "pixel-kd+tfe+tse"

    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(p, sort_keys=False))
    report = tmp_path / "reports" / "study.md"
    r = CliRunner().invoke(
        report_main, ["--params", str(params_path), "--out-root", str(out), "--report", str(report)]
    )
    assert r.exit_code == 0, r.output
    md = report.read_text()
    assert "| rdd | 2 |" in md and "| kd | 2 |" in md and "| or | 1 |" in md
    assert "RDD − KD, paired by seed over seeds [0, 1]" in md
    for f in ("miou_curves.png", "miou_bars.png", "tse_mask_fraction.png"):
        assert (tmp_path / "reports" / "study" / f).stat().st_size > 1000
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["arms"]["rdd"]["n"] == 2 and summary["missing"] == []
    # read from DVCLive (XOR may be empty for 4-iteration nets that find every pixel hard; OR not)
    assert summary["arms"]["rdd"]["tse_selected_frac_mean"] is not None
    assert summary["arms"]["or"]["tse_selected_frac_mean"] > 0
    assert summary["arms"]["or"]["tse_mode"] == "or" and summary["arms"]["kd"]["tse_mode"] is None
    assert "or (or) " in md  # the mode the run logged
    assert summary["runs"]["rdd"]["0"]["tse_selected_frac"]["step"]
    assert "## What the TSE mask selects" in md and "## Cost" in md
    assert "| teacher `deeplabv3_resnet18` |" in md and "Per-class IoU" in md
    assert set(summary["diagnostics"]) == {"kd-s0", "rdd-s0"}
    onnx = summary["arms"]["kd"]["miou_onnx_mean"]
    assert abs(onnx - summary["arms"]["kd"]["miou_mean"]) < 0.05  # 2 parity frames vs all val
    bars = json.loads((out / "report" / "miou_by_arm.json").read_text())
    assert [b["arm"] for b in bars] == ["baseline", "kd", "rdd", "or"]
    m = json.loads((out / "report" / "metrics.json").read_text())
    assert m["rdd_miou_mean"] == summary["arms"]["rdd"]["miou_mean"] and "or_miou_std" not in m

    # the models stage: the teacher's ONNX export and every finished run's, with an index
    from pipeline.study_models import main as models_main

    dest = tmp_path / "models"
    r = CliRunner().invoke(
        models_main, ["--params", str(params_path), "--out-root", str(out), "--dest", str(dest)]
    )
    assert r.exit_code == 0, r.output
    idx = json.loads((dest / "index.json").read_text())
    assert [x["name"] for x in idx["models"]] == [
        "teacher",
        "baseline-s0",
        "baseline-s1",
        "kd-s0",
        "kd-s1",
        "rdd-s0",
        "rdd-s1",
        "or-s0",
    ]
    from rdd.contract import read_onnx_meta

    assert read_onnx_meta(dest / "teacher.onnx").model == "deeplabv3_resnet18"
    assert (dest / "kd-s1.onnx").read_bytes() == (
        run_dir(out, "kd", 1) / "export" / "model.onnx"
    ).read_bytes()

    # a later machine without the DVC cache: the teacher comes back from the committed weights,
    # and a student whose weights are gone is diagnosed from its committed ONNX
    r = CliRunner().invoke(
        models_main,
        ["--params", str(params_path), "--out-root", str(out), "--dest", str(dest), "--teacher-weights"],
    )
    assert r.exit_code == 0, r.output
    teacher_pt = (out / "teacher" / "model.pt").read_bytes()
    for f in (out / "teacher" / "model.pt", run_dir(out, "kd", 0) / "model.pt"):
        f.unlink()
    r = CliRunner().invoke(
        models_main,
        ["--params", str(params_path), "--out-root", str(out), "--dest", str(dest), "--restore-teacher"],
    )
    assert r.exit_code == 0 and "restored" in r.output, r.output
    assert (out / "teacher" / "model.pt").read_bytes() == teacher_pt
    r = CliRunner().invoke(
        report_main,
        [
            "--params",
            str(params_path),
            "--out-root",
            str(out),
            "--report",
            str(report),
            "--models",
            str(dest),
        ],
    )
    assert r.exit_code == 0, r.output
    again = json.loads((out / "report" / "summary.json").read_text())["diagnostics"]
    assert set(again) == {"kd-s0", "rdd-s0"}
    for k, v in summary["diagnostics"]["kd-s0"].items():  # ONNX Runtime ≈ PyTorch logits
        assert again["kd-s0"][k] == pytest.approx(v, abs=0.01, nan_ok=True), k

    # the sweep report over this single rate (its rate folder is out)
    sweep = tmp_path / "reports" / "noise.md"
    r = CliRunner().invoke(
        noise_report_main,
        [
            "--params",
            str(params_path),
            "--out-root",
            str(out.parent),
            "--rates",
            "0.2",
            "--report",
            str(sweep),
            "--diagnose",
            "rdd",
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads((out.parent / "report" / "summary.json").read_text())["per_rate"]["0.2"]
    assert s["noise"]["realised_rate"] == pytest.approx(0.2, abs=0.01)
    d = s["diagnostics"]
    assert d["noisy_frac"] == pytest.approx(0.2, abs=0.01)  # corrupted vs regenerated clean
    assert d["noisy_recall_and"] + d["noisy_recall_xor"] + d["noisy_recall_neither"] == pytest.approx(
        1.0
    )  # AND, XOR, neither partition
    assert "| 20% (20.0%) |" in sweep.read_text()


def test_what_rdd_adds_pairs_arms_that_differ_only_by_rdd(tmp_path):
    """Issue #35 (the paper's Table 8): arms are paired by what they declare, not by name — a KD
    method with and without RDD — and the report shows the paired gap with its t test."""
    from rdd.study import markdown_report, summarize_study
    from rdd.study.aggregate import rdd_pairs

    at = [{"type": "at", "weight": 10.0}]
    arms = {
        "kd": {"kd": True},
        "rdd": {"kd": True, "rdd": {}},
        "or": {"kd": True, "rdd": {"mode": "or"}},
        "at": {"kd": True, "extra_kd": at},
        "at_rdd": {"kd": True, "rdd": {}, "extra_kd": at},
        "baseline": {},
    }
    assert rdd_pairs(arms, list(arms)) == [("rdd", "kd"), ("at_rdd", "at")]
    study = {"seeds": [0, 1, 2], "main_arms": list(arms), "arms": arms}
    for arm, base in (
        ("kd", 0.50),
        ("rdd", 0.51),
        ("or", 0.505),
        ("at", 0.52),
        ("at_rdd", 0.53),
        ("baseline", 0.48),
    ):
        for s, bump in enumerate((0.0, 0.004, -0.002)):
            _fake_run(tmp_path, arm, s, base + bump * (arm == "at_rdd"))
    summary = summarize_study(study, tmp_path)
    g = summary["rdd_adds"]["at_rdd_vs_at"]
    assert g["paired_seeds"] == [0, 1, 2] and g["paired_wins"] == 3
    assert g["paired_mean"] == pytest.approx(0.01 + 0.002 / 3)
    md = markdown_report(summary, {}, study, fig_dir="f")
    assert "## What RDD adds to each distillation method" in md
    assert "| at | at_rdd | 52.00 ± 0.00 (n=3) |" in md and "3/3 |" in md


def test_arms_of_another_length_and_other_short_arms_in_the_report(tmp_path):
    """Issue #35: ``at_16x`` (no ``at`` arm) is compared with the baseline and KD of its own
    length, and the short AT-weight runs are not listed as RDD ablations ("rdd with null") but
    against KD with what they change."""
    from rdd.study import markdown_report, summarize_study

    at = [{"type": "at", "weight": 10.0}]
    long = {"student": {"optim": {"iters": 6400}}}
    arms = {
        "baseline": {},
        "kd": {"kd": True},
        "rdd": {"kd": True, "rdd": {}},
        "baseline_16x": {**long},
        "kd_16x": {"kd": True, **long},
        "at_16x": {"kd": True, "extra_kd": at, **long},
        "p20": {"kd": True, "rdd": {"tfe_frac": 0.2}},
        "at_w10": {"kd": True, "extra_kd": at},
    }
    main = ["baseline", "kd", "rdd", "baseline_16x", "kd_16x", "at_16x"]
    study = {"seeds": [0], "main_arms": main, "ablation_seeds": [0], "arms": arms}
    for arm, v in (
        ("baseline", 0.30),
        ("kd", 0.32),
        ("rdd", 0.33),
        ("baseline_16x", 0.50),
        ("kd_16x", 0.52),
        ("at_16x", 0.53),
        ("p20", 0.34),
        ("at_w10", 0.31),
    ):
        _fake_run(tmp_path, arm, 0, v)
    summary = summarize_study(study, tmp_path)
    assert summary["lengths"]["_16x"]["arms"]["at"] == "at_16x"
    md = markdown_report(summary, {}, study, fig_dir="f")
    row = next(line for line in md.splitlines() if line.startswith("| at_16x | 1 |"))
    assert "| +3.00 (n=1) | +1.00 (n=1) |" in row  # vs baseline_16x and kd_16x, not the 400-it arms
    assert '| p20 | rdd with {"tfe_frac": 0.2} |' in md
    assert "rdd with null" not in md
    assert '| at_w10 | extra_kd: [{"type": "at", "weight": 10.0}] | 31.00 | 1 | -1.00 |' in md
