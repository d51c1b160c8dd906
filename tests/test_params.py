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
PARAMS = C.load_params(REPO / "params.yaml")  # checked, typed
RAW = yaml.safe_load((REPO / "params.yaml").read_text())  # as written (tests mutate it)


def _fake_outputs(out_root: Path, params) -> None:
    """What the upstream stages leave behind, enough for a stage's input checks."""
    if params.data.dataset == "synthetic":
        (out_root / "data" / "synthetic").mkdir(parents=True, exist_ok=True)
    for stage in ("teacher", "tfe_rdd"):
        (out_root / stage).mkdir(parents=True, exist_ok=True)
    (out_root / "teacher" / "model.pt").write_bytes(b"")
    (out_root / "tfe_rdd" / "checkpoint.pt").write_bytes(b"")


# --------------------------------------------------------------------------- mapping
def test_stage_configs_share_the_student_recipe():
    from rdd.engine import TeacherConfig

    cfgs = {s: C.train_stage_config(PARAMS, s, out_root="out", check_inputs=False) for s in C.TRAIN_STAGES}
    assert cfgs["teacher"].model == PARAMS.teacher.model
    assert cfgs["teacher"].model.name == RAW["teacher"]["model"]["name"]
    for s in C.STUDENT_STAGES:
        assert cfgs[s].model == PARAMS.student.model
        assert cfgs[s].optim == PARAMS.student.optim
        assert cfgs[s].optim.iters == RAW["student"]["optim"]["iters"]
        assert cfgs[s].data == cfgs["teacher"].data
        assert cfgs[s].out_dir == str(Path("out") / s)
    assert cfgs["teacher"].teacher is None and cfgs["baseline"].teacher is None
    assert cfgs["baseline"].loss.kd.type == "none"
    assert not (cfgs["baseline"].loss.rdd.tfe or cfgs["baseline"].loss.rdd.tse)
    assert cfgs["kd"].teacher == TeacherConfig(artifact=str(Path("out/teacher/model.pt")))
    assert cfgs["kd"].loss.kd.type == "pixel"
    assert not (cfgs["kd"].loss.rdd.tfe or cfgs["kd"].loss.rdd.tse)
    # TFE → TSE split: identical recipe, tfe stops at round(tfe_frac · iters), tse resumes
    tfe, tse = cfgs["tfe_rdd"], cfgs["tse_rdd"]
    assert tfe.loss == tse.loss
    assert tfe.loss.rdd.tfe is tse.loss.rdd.tse is True
    iters = RAW["student"]["optim"]["iters"]
    assert tfe.loss.rdd.tfe_iters == round(RAW["rdd"]["tfe_frac"] * iters) == tfe.stop_at == 30
    assert tfe.loss.kd.type == RAW["rdd"]["kd"]["type"] == "pixel"
    assert tse.resume == str(Path("out/tfe_rdd/checkpoint.pt")) and tse.stop_at is None
    # launch / data-stage keys never reach the engine
    for cfg in cfgs.values():
        d = cfg.to_dict()
        assert "nproc" not in d
        assert not {"synthetic", "video", "check"} & set(d["data"])
        assert cfg.data.root == str(Path("out/data/synthetic"))


def test_section_overrides_merge_deeply():
    p = copy.deepcopy(RAW)
    p["teacher"]["data"] = {"batch_size": 3}
    p["teacher"]["seed"] = 7
    params = C.parse_params(p)
    cfg = C.train_stage_config(params, "teacher", check_inputs=False)
    assert cfg.data.batch_size == 3 and cfg.seed == 7
    assert cfg.data.crop_size == tuple(RAW["data"]["crop_size"])
    assert (
        C.train_stage_config(params, "baseline", check_inputs=False).data.batch_size
        == RAW["data"]["batch_size"]
    )


def test_committed_params_validate_in_the_engine(tmp_path):
    from pipeline.train import build_config
    from rdd.engine import TrainConfig

    _fake_outputs(tmp_path, PARAMS)
    for stage in C.TRAIN_STAGES:
        cfg = build_config(PARAMS, stage, tmp_path)
        assert cfg.out_dir == str(tmp_path / stage)
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # the engine's own walker agrees
    tse = build_config(PARAMS, "tse_rdd", tmp_path)
    assert tse.loss.rdd.tfe_iters == round(RAW["rdd"]["tfe_frac"] * tse.optim.iters) < tse.optim.iters
    assert tse.method_name() == "pixel-kd+tfe+tse"
    assert build_config(PARAMS, "baseline", tmp_path).method_name() == "supervised"


def test_default_preset_is_the_committed_params():
    assert (REPO / "params" / "synthetic.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert {"synthetic", "camvid", "cityscapes"} <= set(list_presets(REPO / "params"))


def test_cityscapes_preset_is_the_papers_protocol():
    p = C.load_params(REPO / "params" / "cityscapes.yaml")
    t, s = (C.train_stage_config(p, st, check_inputs=False) for st in ("teacher", "tse_rdd"))
    assert t.model.name == "deeplabv3_resnet101" and s.model.name == "deeplabv3_resnet18"
    assert s.data.crop_size == (512, 1024) and s.optim.iters == 40000
    assert p.data.batch_size * p.train.nproc == 16
    assert s.loss.rdd.tfe_iters == 4000
    assert s.loss.rdd.min_kept == 0.048 and s.loss.rdd.threshold == 0.7
    assert s.loss.kd.temperature == 1


@pytest.mark.parametrize("name", ["camvid", "cityscapes"])
def test_presets_validate_or_name_the_missing_root(name, tmp_path, monkeypatch):
    from pipeline.train import build_config

    monkeypatch.chdir(REPO)  # preset roots are relative to the repository root
    p = C.load_params(REPO / "params" / f"{name}.yaml")
    _fake_outputs(tmp_path, p)
    if Path(p.data.root).is_dir():
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
    p = copy.deepcopy(RAW)
    mutate(p)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


BAD = [
    (
        "teacher",
        lambda p: p["teacher"]["model"].update(name="resnet9000"),
        r"model\.name.*unknown model 'resnet9000'",
    ),
    ("baseline", lambda p: p["student"]["optim"].update(iters=0), r"student\.optim\.iters must be > 0"),
    ("kd", lambda p: p["student"]["optim"].update(lrr=0.1), r"unknown key 'student\.optim\.lrr'"),
    ("teacher", lambda p: p["data"].update(dataset="imagenet"), r"data\.dataset.*'imagenet'"),
    (
        "teacher",
        lambda p: p["data"].update(dataset="camvid", root="/nonexistent/camvid"),
        r"data\.root.*/nonexistent/camvid",
    ),
    ("teacher", lambda p: p["data"].update(dataset="camvid", root=None), r"data\.root is required"),
    (
        "tfe_rdd",
        lambda p: p["rdd"].update(tfe_frac=0.0),
        r"rdd\.tfe_frac must hand over to TSE-RDD inside the run.* = 0, expected 1 \.\. 299",
    ),
    (
        "tse_rdd",
        lambda p: p["rdd"].update(tfe_frac=1.0),
        r"rdd\.tfe_frac must hand over to TSE-RDD inside the run.* = 300, expected 1 \.\. 299",
    ),
    ("tse_rdd", lambda p: p["rdd"].update(tfe_frac=2), r"rdd\.tfe_frac must be in \[0, 1\], got 2"),
    ("tfe_rdd", lambda p: p["rdd"].update(mode="nand"), r"params\.yaml: rdd\.mode must be one of"),
    ("teacher", lambda p: p["train"].update(nproc=0), r"train\.nproc must be >= 1, got 0"),
    ("teacher", lambda p: p["train"].update(nproc="2"), r"train\.nproc must be an integer"),
    # a misspelled section is caught by the stage itself, not only by dvc repro
    (
        "teacher",
        lambda p: p.update(studnet=p.pop("student")),
        r"params\.yaml: unknown key 'studnet' \(did you mean 'student'\?",
    ),
    (
        "baseline",
        lambda p: p["student"].update(optim_=p["student"].pop("optim")),
        r"unknown key 'student\.optim_' \(did you mean 'optim'\?",
    ),
    (
        "baseline",
        lambda p: p["student"]["model"]["kwargs"].update(width_mult=-1),
        r"params\.yaml: student\.model\.kwargs: width_mult must be > 0, got -1",
    ),
    (
        "teacher",
        lambda p: p["teacher"]["model"]["kwargs"].update(width_mult=-1),
        r"params\.yaml: teacher\.model\.kwargs: width_mult must be > 0, got -1",
    ),
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


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (lambda p: p["data"].update(dataset="imagenet"), r"data\.dataset: unknown dataset 'imagenet'"),
        (
            lambda p: p["data"].update(dataset="cityscapes", root="/nonexistent/cs"),
            r"data\.root: dataset 'cityscapes' not found at '/nonexistent/cs'.*cityscapes-dataset\.com",
        ),
        (lambda p: p["data"].update(dataset="voc", root=None), r"data\.root is required"),
        (lambda p: p["prepare"]["synthetic"].update(n_train=0), r"prepare\.synthetic\.n_train must be"),
        (lambda p: p["prepare"].update(chek="quick"), r"unknown key 'prepare\.chek' \(did you mean 'check'"),
    ],
)
def test_bad_params_stop_the_data_stage(mutate, pattern, tmp_path):
    from pipeline.data import main

    _assert_stage_stops(main, "data", _write(tmp_path, mutate), tmp_path / "o", pattern)


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
    assert cmd[cmd.index("--nproc_per_node=4") + 1 :] == [
        "-m",
        "pipeline.train",
        "kd",
        "--params",
        "p.yaml",
        "--out-root",
        "o",
    ]


# --------------------------------------------------------------------------- values, not just keys
@pytest.mark.parametrize(
    "stage,mutate,message",
    [
        (
            "tse_rdd",
            lambda p: p["student"]["optim"].update(iters=-5),
            "params.yaml: student.optim.iters must be > 0, got -5",
        ),
        (
            "baseline",
            lambda p: p["student"]["optim"].update(iters=-5),
            "params.yaml: student.optim.iters must be > 0, got -5",
        ),
        (
            "teacher",
            lambda p: p["teacher"]["optim"].update(iters=0),
            "params.yaml: teacher.optim.iters must be > 0, got 0",
        ),
        (
            "kd",
            lambda p: p["student"]["optim"].update(lrr=0.1),
            "params.yaml: unknown key 'student.optim.lrr'",
        ),
        ("kd", lambda p: p["kd"].update(temperature=-1), "params.yaml: kd.temperature must be"),
        ("tfe_rdd", lambda p: p["rdd"].update(mode="nand"), "params.yaml: rdd.mode must be one of"),
        ("teacher", lambda p: p["train"].update(seed=-1), "params.yaml: train.seed must be >= 0, got -1"),
        (
            "baseline",
            lambda p: p["data"].update(batch_size=0),
            "params.yaml: data.batch_size must be > 0, got 0",
        ),
        (
            "teacher",
            lambda p: p["teacher"].update(data={"batch_size": 0}),
            "params.yaml: teacher.data.batch_size must be > 0, got 0",
        ),
    ],
)
def test_engine_errors_name_the_params_yaml_key(stage, mutate, message, tmp_path):
    from pipeline.train import main

    params = _write(tmp_path, mutate)
    out_root = tmp_path / "outputs"
    _fake_outputs(out_root, PARAMS)
    res = CliRunner().invoke(main, [stage, "--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith(f"Error: stage {stage!r}: {message}"), msg


@pytest.mark.parametrize(
    "mutate,message",
    [
        # each params key is named as written in params.yaml, with no engine path to translate back
        (lambda p: p["student"]["optim"].update(lr=-1), "student.optim.lr must be > 0, got -1"),
        (lambda p: p["teacher"]["model"].update(name="x"), "teacher.model.name: unknown model 'x'"),
        (lambda p: p["teacher"].update(data={"batch_size": 0}), "teacher.data.batch_size must be > 0"),
        (lambda p: p["data"].update(batch_size=0), "data.batch_size must be > 0, got 0"),
        (lambda p: p["kd"].update(temperature=0), "kd.temperature must be > 0, got 0"),
        (lambda p: p["rdd"].update(min_kept=2), "rdd.min_kept must be in [0, 1], got 2"),
        (lambda p: p["rdd"]["kd"].update(weight=-1), "rdd.kd.weight must be >= 0, got -1"),
        (
            lambda p: p["rdd"].update(extra_kd=[{"type": "cwd", "weight": -1}]),
            "rdd.extra_kd[0].weight must be >= 0, got -1",
        ),
        (lambda p: p["student"]["loss"].update(ce={"weight": 1}), "unknown key 'student.loss.ce'"),
        # KD / RDD terms have one home each (the kd and rdd sections), not the recipes
        (
            lambda p: p["student"]["loss"].update(kd={"type": "pixel"}),
            "unknown key 'student.loss.kd' (expected one of: aux_weight)",
        ),
        (lambda p: p["teacher"]["loss"].update(rdd={"tse": True}), "unknown key 'teacher.loss.rdd'"),
        (lambda p: p["train"].update(amp="fp8"), "train.amp must be one of auto, false, fp16, bf16"),
        (lambda p: p["train"].update(foo=1), "unknown key 'train.foo'"),
        (lambda p: p["student"].update(amp="fp8"), "student.amp must be one of"),
        (
            lambda p: p["student"]["optim"].update(iters=5, warmup_iters=0),
            "rdd.tfe_frac must hand over to TSE-RDD inside the run: round(0.1 · student.optim.iters (5))",
        ),
    ],
)
def test_errors_name_the_params_key_natively(mutate, message):
    p = copy.deepcopy(RAW)
    mutate(p)
    with pytest.raises(C.ParamsError) as e:
        C.parse_params(p)
    assert str(e.value).startswith(f"params.yaml: {message}"), str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_cuda_device_without_cuda_is_a_one_line_error(tmp_path):
    from pipeline.train import main

    if torch_cuda_available():
        pytest.skip("CUDA is available here")
    params = _write(tmp_path, lambda p: p["train"].update(device="cuda"))
    out_root = tmp_path / "outputs"
    _fake_outputs(out_root, PARAMS)
    res = CliRunner().invoke(main, ["teacher", "--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith(
        "Error: stage 'teacher': params.yaml: train.device is 'cuda' but CUDA is not available"
    ), msg
    assert not (out_root / "teacher" / "metrics.json").exists()


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _evaluate_cli(tmp_path: Path, mutate):
    from pipeline.evaluate import main

    params = _write(tmp_path, mutate)
    out_root = tmp_path / "o"
    for stage in C.TRAIN_STAGES:  # placeholders: validation must fail before any is loaded
        (out_root / stage).mkdir(parents=True)
        (out_root / stage / "model.pt").write_bytes(b"")
    (out_root / "data" / "synthetic").mkdir(parents=True)
    res = CliRunner().invoke(main, ["--params", str(params), "--out-root", str(out_root)])
    return res, out_root


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (
            lambda p: p["data"].update(dataset="camvid", root="/nope"),
            r"data\.root: dataset 'camvid' not found at '/nope' \(not a folder\)",
        ),
        (
            lambda p: p["data"].update(eval_size=[0, -3]),
            r"data\.eval_size must be a positive size .* got \[0, -3\]",
        ),
        (lambda p: p["data"].update(eval_size=[2.5, 3]), r"data\.eval_size must be a positive size"),
        (
            lambda p: p.setdefault("evaluate", {}).update(crop_size=[-1, 5]),
            r"evaluate\.crop_size must be a positive size",
        ),
        (
            lambda p: p.setdefault("evaluate", {}).update(mode="slide", crop_size=None),
            r"evaluate\.crop_size is required .* slide",
        ),
        (
            lambda p: p.setdefault("evaluate", {}).update(latency={"threads": 0}),
            r"evaluate\.latency\.threads must be > 0, got 0",
        ),
        (
            lambda p: p.setdefault("evaluate", {}).update(latency={"runs": 0}),
            r"evaluate\.latency\.runs must be > 0, got 0",
        ),
        (
            lambda p: p.setdefault("evaluate", {}).update(models=["teacher", "tse"]),
            r"evaluate\.models\[1\] must be one of teacher, baseline, kd, tfe_rdd, tse_rdd; got 'tse'",
        ),
        (
            lambda p: p.setdefault("evaluate", {}).update(latency={"rnus": 3}),
            r"unknown key 'evaluate\.latency\.rnus'",
        ),
        (lambda p: p["data"].update(kwargs=[1]), r"data\.kwargs must be a mapping"),
    ],
)
def test_bad_params_stop_evaluate_before_any_work(mutate, pattern, tmp_path):
    res, out_root = _evaluate_cli(tmp_path, mutate)
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert msg.startswith("Error: stage 'evaluate': ") and len(msg.splitlines()) == 1, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (out_root / "evaluate").exists()


def test_evaluate_names_a_missing_synthetic_dataset(tmp_path):
    import shutil

    from pipeline.evaluate import main

    out_root = tmp_path / "o"
    for stage in C.TRAIN_STAGES:
        (out_root / stage).mkdir(parents=True)
        (out_root / stage / "model.pt").write_bytes(b"")
    p = copy.deepcopy(PARAMS)
    assert p.data.dataset == "synthetic"
    with pytest.raises(FileNotFoundError, match="dvc repro data"):
        C.dataset_root(p, out_root, must_exist=True)  # what run_evaluate checks first
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(RAW))
    res = CliRunner().invoke(main, ["--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1 and "dvc repro data" in res.output, res.output
    (out_root / "data" / "synthetic").mkdir(parents=True)
    assert C.dataset_root(p, out_root, must_exist=True) == str(out_root / "data" / "synthetic")
    shutil.rmtree(out_root)


@pytest.mark.parametrize(
    "update,pattern",
    [
        ({"opset": 0}, r"export\.opset must be >= 17, got 0"),
        ({"opset": True}, r"export\.opset must be an integer"),
        ({"parity": {"frames": 0}}, r"export\.parity\.frames must be >= 1 or null, got 0"),
        ({"input_size": [-1, 5]}, r"export\.input_size must be a positive size .* got \[-1, 5\]"),
        ({"int8": {"max_miou_drop": -0.1}}, r"export\.int8\.max_miou_drop must be in \[0, 1\]"),
        ({"int8": {"calib_frames": 0}}, r"export\.int8\.calib_frames must be >= 1"),
        ({"int8": {"method": "magic"}}, r"export\.int8\.method must be one of minmax"),
        ({"tensorrt": {"precisions": ["fp8"]}}, r"export\.tensorrt\.precisions\[0\] must be one of"),
        ({"tensorrt": {"precisions": []}}, r"export\.tensorrt\.precisions must be a non-empty list"),
        ({"tensorrt": {"max_size": [0, 1]}}, r"export\.tensorrt\.max_size must be a positive size"),
        ({"benchmark": {"runs": 0}}, r"export\.benchmark\.runs must be > 0"),
        ({"benchmark": {"threads": 0}}, r"export\.benchmark\.threads must be > 0"),
        ({"benchmark": "yes"}, r"export\.benchmark must be a mapping"),
        ({"variants": [{"name": "model"}]}, r"export\.variants\[0\]\.name must be a unique"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, r"export\.variants\[1\]\.name must be a unique"),
        ({"int9": {}}, r"unknown key 'export\.int9'"),
        ({"int8": {"x": 1}}, r"unknown key 'export\.int8\.x'"),
    ],
)
def test_bad_export_values_stop_the_stage_before_loading(update, pattern, tmp_path):
    from pipeline.export import main as export_main
    from rdd.export.run import export_config

    with pytest.raises(ValueError, match=pattern):
        export_config(update)
    params = _write(tmp_path, lambda p: p.update(export=update))
    out_root = tmp_path / "o"
    (out_root / "tse_rdd").mkdir(parents=True)
    (out_root / "tse_rdd" / "model.pt").write_bytes(b"")  # not a model: loading it would fail
    res = CliRunner().invoke(export_main, ["--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert msg.startswith("Error: stage 'export': ") and len(msg.splitlines()) == 1, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (out_root / "export").exists()


def test_export_config_merges_defaults_and_accepts_the_committed_params():
    from rdd.config.export import ExportConfig
    from rdd.config.walker import as_dict
    from rdd.export.onnx import MIN_OPSET
    from rdd.export.quantize import CALIB_METHODS
    from rdd.export.run import export_config

    defaults = ExportConfig()
    assert export_config(None) == as_dict(defaults) == export_config(defaults)
    user = {"parity": {"frames": None}, "int8": {"calib_frames": 8}, "input_size": [64, 96]}
    c = export_config(user)
    assert c["parity"]["frames"] is None and c["int8"]["calib_frames"] == 8
    assert c["int8"]["method"] == defaults.int8.method and c["input_size"] == [64, 96]
    assert user == {
        "parity": {"frames": None},
        "int8": {"calib_frames": 8},
        "input_size": [64, 96],
    }  # not modified
    for f in [REPO / "params.yaml", *sorted((REPO / "params").glob("*.yaml"))]:
        export_config(yaml.safe_load(f.read_text()).get("export"))
    # the torch-free schema states the exporter's limits; these pin them to the exporter's own
    from dataclasses import fields

    md = {f.name: f.metadata for f in fields(ExportConfig)}
    assert md["opset"]["ge"] == MIN_OPSET
    from rdd.config.export import Int8

    assert {f.name: f.metadata for f in fields(Int8)}["method"]["choices"] == CALIB_METHODS
    from rdd.export.quantize import KEEP_FLOAT

    assert {f.name: f.metadata for f in fields(Int8)}["keep_float"]["choices"] == KEEP_FLOAT


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (lambda p: p["prepare"]["video"].update(fps=-1), r"prepare\.video\.fps must be > 0"),
        (lambda p: p["prepare"]["video"].update(n_frames=0), r"prepare\.video\.n_frames must be"),
        (lambda p: p["prepare"]["video"].update(size=3), r"unknown key 'prepare\.video\.size'"),
        (
            lambda p: p["data"].update(dataset="camvid", root="/nonexistent/cv"),
            r"data\.root: dataset 'camvid' not found",
        ),
    ],
)
def test_bad_params_stop_the_video_stage(mutate, pattern, tmp_path):
    from pipeline.video import main

    _assert_stage_stops(main, "video", _write(tmp_path, mutate), tmp_path / "o", pattern)


def _assert_stage_stops(main, stage: str, params: Path, out_root: Path, pattern: str) -> None:
    """``main`` (a stage's click command) exits 1 with one line matching ``pattern``, writing nothing."""
    res = CliRunner().invoke(main, ["--params", str(params), "--out-root", str(out_root)])
    assert res.exit_code == 1, res.output
    msg = res.output.strip()
    assert msg.startswith(f"Error: stage {stage!r}: ") and len(msg.splitlines()) == 1, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (out_root / stage).exists()
