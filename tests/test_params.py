"""params.yaml, the presets and the mapping onto the engine's TrainConfig; bad params stop a stage
before any work with a one-line error naming the key."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline import config as C
from pipeline.preset import apply_preset, list_presets

REPO = Path(__file__).resolve().parents[1]
PARAMS = C.load_params(REPO / "params.yaml")


def _fake_outputs(out_root: Path, params: dict) -> None:
    """What the upstream stages leave behind, enough for TrainConfig.from_dict to validate."""
    if params["data"]["dataset"] == "synthetic":
        (out_root / "data" / "synthetic").mkdir(parents=True, exist_ok=True)
    for stage in ("teacher", "tfe_rdd"):
        (out_root / stage).mkdir(parents=True, exist_ok=True)
    (out_root / "teacher" / "model.pt").write_bytes(b"")
    (out_root / "tfe_rdd" / "checkpoint.pt").write_bytes(b"")


# --------------------------------------------------------------------------- mapping
def test_stage_configs_share_the_student_recipe():
    cfgs = {s: C.train_stage_config(PARAMS, s, out_root="out") for s in C.TRAIN_STAGES}
    assert cfgs["teacher"]["model"] == PARAMS["teacher"]["model"]
    for s in C.STUDENT_STAGES:
        assert cfgs[s]["model"] == PARAMS["student"]["model"]
        assert cfgs[s]["optim"] == PARAMS["student"]["optim"]
        assert cfgs[s]["data"] == cfgs["teacher"]["data"]
        assert cfgs[s]["out_dir"] == str(Path("out") / s)
    assert cfgs["teacher"]["teacher"] is None and cfgs["baseline"]["teacher"] is None
    assert cfgs["baseline"]["loss"].get("kd") is None and "rdd" not in cfgs["baseline"]["loss"]
    assert cfgs["kd"]["teacher"] == {"artifact": str(Path("out/teacher/model.pt"))}
    assert cfgs["kd"]["loss"]["kd"]["type"] == "pixel"
    assert "rdd" not in cfgs["kd"]["loss"]
    # TFE → TSE split: identical recipe, tfe stops at tfe_iters, tse resumes its checkpoint
    tfe, tse = cfgs["tfe_rdd"], cfgs["tse_rdd"]
    assert tfe["loss"] == tse["loss"]
    assert tfe["loss"]["rdd"]["tfe"] is tse["loss"]["rdd"]["tse"] is True
    assert tfe["loss"]["rdd"]["tfe_iters"] == PARAMS["rdd"]["tfe_iters"] == tfe["stop_at"]
    assert "kd" in tfe["loss"] and "kd" not in tfe["loss"]["rdd"]
    assert tse["resume"] == str(Path("out/tfe_rdd/checkpoint.pt")) and "stop_at" not in tse
    # launch / data-stage keys never reach the engine
    for cfg in cfgs.values():
        assert "nproc" not in cfg
        assert not {"synthetic", "video", "check"} & set(cfg["data"])
        assert cfg["data"]["root"] == str(Path("out/data/synthetic"))


def test_section_overrides_merge_deeply():
    p = copy.deepcopy(PARAMS)
    p["teacher"]["data"] = {"batch_size": 3}
    p["teacher"]["seed"] = 7
    cfg = C.train_stage_config(p, "teacher")
    assert cfg["data"]["batch_size"] == 3 and cfg["seed"] == 7
    assert cfg["data"]["crop_size"] == PARAMS["data"]["crop_size"]
    assert C.train_stage_config(p, "baseline")["data"]["batch_size"] == PARAMS["data"]["batch_size"]


def test_committed_params_validate_in_the_engine(tmp_path):
    from pipeline.train import build_config

    _fake_outputs(tmp_path, PARAMS)
    for stage in C.TRAIN_STAGES:
        cfg = build_config(PARAMS, stage, tmp_path)
        assert cfg.out_dir == str(tmp_path / stage)
    tse = build_config(PARAMS, "tse_rdd", tmp_path)
    assert tse.loss.rdd.tfe_iters == PARAMS["rdd"]["tfe_iters"] < tse.optim.iters
    assert tse.method_name() == "pixel-kd+tfe+tse"
    assert build_config(PARAMS, "baseline", tmp_path).method_name() == "supervised"


def test_default_preset_is_the_committed_params():
    assert (REPO / "params" / "synthetic.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert {"synthetic", "camvid", "cityscapes"} <= set(list_presets(REPO / "params"))


def test_cityscapes_preset_is_the_papers_protocol():
    p = C.load_params(REPO / "params" / "cityscapes.yaml")
    t, s = (C.train_stage_config(p, st) for st in ("teacher", "tse_rdd"))
    assert t["model"]["name"] == "deeplabv3_resnet101" and s["model"]["name"] == "deeplabv3_resnet18"
    assert s["data"]["crop_size"] == [512, 1024] and s["optim"]["iters"] == 40000
    assert p["data"]["batch_size"] * p["train"]["nproc"] == 16
    assert s["loss"]["rdd"]["tfe_iters"] == 4000
    assert s["loss"]["rdd"]["min_kept"] == 0.048 and s["loss"]["rdd"]["threshold"] == 0.7
    assert s["loss"]["kd"]["temperature"] == 1


@pytest.mark.parametrize("name", ["camvid", "cityscapes"])
def test_presets_validate_or_name_the_missing_root(name, tmp_path, monkeypatch):
    from pipeline.train import build_config

    monkeypatch.chdir(REPO)  # preset roots are relative to the repository root
    p = C.load_params(REPO / "params" / f"{name}.yaml")
    _fake_outputs(tmp_path, p)
    if Path(p["data"]["root"]).is_dir():
        for stage in C.TRAIN_STAGES:
            build_config(p, stage, tmp_path)
    else:
        with pytest.raises(ValueError, match=r"data\.root"):
            build_config(p, "teacher", tmp_path)


def test_apply_preset(tmp_path):
    target = tmp_path / "params.yaml"
    apply_preset("camvid", preset_dir=REPO / "params", target=target)
    assert yaml.safe_load(target.read_text())["data"]["dataset"] == "camvid"
    with pytest.raises(FileNotFoundError, match="no preset 'nope'"):
        apply_preset("nope", preset_dir=REPO / "params", target=target)


# --------------------------------------------------------------------------- bad params → CLI
def _write(tmp_path: Path, mutate) -> Path:
    p = copy.deepcopy(PARAMS)
    mutate(p)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


BAD = [
    ("teacher", lambda p: p["teacher"]["model"].update(name="resnet9000"),
     r"model\.name.*unknown model 'resnet9000'"),
    ("baseline", lambda p: p["student"]["optim"].update(iters=0), r"optim\.iters must be > 0"),
    ("kd", lambda p: p["student"]["optim"].update(lrr=0.1), r"unknown key 'optim\.lrr'"),
    ("teacher", lambda p: p["data"].update(dataset="imagenet"), r"data\.dataset.*'imagenet'"),
    ("teacher", lambda p: p["data"].update(dataset="camvid", root="/nonexistent/camvid"),
     r"data\.root.*/nonexistent/camvid"),
    ("teacher", lambda p: p["data"].update(dataset="camvid", root=None), r"data\.root is required"),
    ("tfe_rdd", lambda p: p["rdd"].update(tfe_iters=0), r"rdd\.tfe_iters must be an integer >= 1"),
    ("tse_rdd", lambda p: p["rdd"].update(tfe_iters=10 ** 6), r"rdd\.tfe_iters must be <"),
    ("tfe_rdd", lambda p: p["rdd"].update(mode="nand"), r"loss\.rdd\.mode must be one of"),
    ("teacher", lambda p: p["train"].update(nproc=0), r"train\.nproc must be an integer >= 1"),
]


@pytest.mark.parametrize("stage,mutate,pattern", BAD)
def test_bad_params_stop_a_training_stage_before_any_work(stage, mutate, pattern, tmp_path):
    from pipeline.train import main

    params = _write(tmp_path, mutate)
    out_root = tmp_path / "outputs"
    _fake_outputs(out_root, PARAMS)
    res = CliRunner().invoke(main, [stage, "--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert msg.startswith(f"Error: stage {stage!r}: ") and len(msg.splitlines()) == 1, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (out_root / stage / "metrics.json").exists()
    assert not (out_root / stage / "dvclive").exists()


@pytest.mark.parametrize("mutate,pattern", [
    (lambda p: p["data"].update(dataset="imagenet"), r"data\.dataset: unknown dataset 'imagenet'"),
    (lambda p: p["data"].update(dataset="cityscapes", root="/nonexistent/cs"),
     r"data\.root: dataset 'cityscapes' not found at '/nonexistent/cs'.*cityscapes-dataset\.com"),
    (lambda p: p["data"].update(dataset="voc", root=None), r"data\.root is required"),
    (lambda p: p["data"]["synthetic"].update(n_train=0), r"data\.synthetic\.n_train must be"),
    (lambda p: p["data"]["video"].update(fps=-1), r"data\.video\.fps must be > 0"),
])
def test_bad_params_stop_the_data_stage(mutate, pattern, tmp_path):
    from pipeline.data import main

    params = _write(tmp_path, mutate)
    res = CliRunner().invoke(main, ["--params", str(params), "--out-root", str(tmp_path / "o")])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert msg.startswith("Error: stage 'data': ") and len(msg.splitlines()) == 1, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (tmp_path / "o" / "data").exists()


def test_missing_params_file_and_unknown_export_key(tmp_path):
    from pipeline.export import main as export_main
    from pipeline.train import main as train_main

    res = CliRunner().invoke(train_main, ["teacher", "--params", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 1 and "params file not found" in res.output
    params = _write(tmp_path, lambda p: p["export"].update(int9={}))
    out_root = tmp_path / "o"
    (out_root / "tse_rdd").mkdir(parents=True)
    (out_root / "tse_rdd" / "model.pt").write_bytes(b"")
    res = CliRunner().invoke(export_main, ["--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1 and "unknown key 'export.int9'" in res.output, res.output


# --------------------------------------------------------------------------- torchrun
def test_torchrun_command():
    from pipeline.train import torchrun_command

    cmd = torchrun_command(4, ["kd", "--params", "p.yaml", "--out-root", "o"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and "--nproc_per_node=4" in cmd
    assert cmd[cmd.index("--nproc_per_node=4") + 1:] == ["-m", "pipeline.train", "kd", "--params",
                                                         "p.yaml", "--out-root", "o"]
