"""The pipeline end to end on a shrunken configuration (the reporting code: tests/test_reporting.py).

* ``test_stages_in_process`` calls every stage's function in order (seconds);
* ``test_dvc_repro_end_to_end`` (~1 min) runs ``dvc repro`` in a temporary copy of the repository
  and checks every stage's outputs, then that nothing is stale afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
STAGES = ("data", "video", "teacher", "baseline", "kd", "tfe_rdd", "tse_rdd", "evaluate", "export")


def tiny_params() -> dict:
    """The committed params.yaml, shrunk to seconds: tiny frames, models and schedules."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["prepare"]["synthetic"].update(n_train=6, n_val=3, size=[48, 64])
    p["prepare"]["video"].update(n_frames=4)
    p["data"].update(crop_size=[32, 48], batch_size=2, val_batch_size=3)
    p["train"].update(eval_interval=0, log_interval=2)
    p["teacher"]["model"]["kwargs"]["width_mult"] = 0.125
    p["student"]["model"]["kwargs"]["width_mult"] = 0.125
    for s in ("teacher", "student"):
        p[s]["optim"].update(iters=4, warmup_iters=0)
    p["rdd"]["tfe_frac"] = 0.5  # round(0.5 · 4) = 2
    p["evaluate"].update(latency={"runs": 2, "warmup": 1, "threads": 1}, vis_frames=2)
    p["export"] = {
        "parity": {"frames": 3},
        "int8": {"calib_frames": 4, "max_miou_drop": 1.0},
        "benchmark": {"enabled": False},
    }
    return p


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread (and a shared CPU makes more threads pathological)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def check_outputs(out: Path) -> dict:
    """Every stage's deliverables exist and hold sane values; returns the evaluate metrics."""
    data = json.loads((out / "data" / "dataset.json").read_text())
    assert data["dataset"] == "synthetic" and data["splits"]["train"]["num_samples"] == 6
    assert (out / "video" / "video.mp4").stat().st_size > 0
    assert len(list((out / "video" / "masks").glob("*.png"))) == 4
    assert json.loads((out / "video" / "video.json").read_text())["n_frames"] == 4
    for stage in C.TRAIN_STAGES:
        for f in ("model.pt", "model.json", "metrics.json"):
            assert (out / stage / f).is_file(), f"{stage}/{f}"
        m = json.loads((out / stage / "metrics.json").read_text())
        assert 0.0 <= m["miou"] <= 1.0
        assert m["step"] == (2 if stage == "tfe_rdd" else 4)
        assert (out / stage / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert (out / "tfe_rdd" / "checkpoint.pt").is_file()
    assert json.loads((out / "tse_rdd" / "metrics.json").read_text())["method"] == "pixel-kd+tfe+tse"

    ev = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert list(ev["models"]) == ["teacher", "baseline", "kd", "tse_rdd"]
    for r in ev["models"].values():
        assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["pixel_acc"] <= 1.0
        assert len(r["iou"]) == 11 and r["params"] > 0 and r["flops"] > 0
        assert r["cpu_latency_ms"]["mean"] > 0
    assert ev["models"]["teacher"]["params"] > ev["models"]["baseline"]["params"]
    table = (out / "evaluate" / "comparison.md").read_text()
    assert "| student + RDD | lraspp_mobilenetv2 |" in table and "Per-class IoU" in table
    rows = json.loads((out / "evaluate" / "miou.json").read_text())
    assert [r["model"] for r in rows] == ["teacher", "student (no KD)", "student + KD", "student + RDD"]
    vis = sorted((out / "evaluate" / "vis").glob("*.png"))
    assert len(vis) == 2 and (out / "evaluate" / "miou.png").stat().st_size > 0

    ex = json.loads((out / "export" / "export_metrics.json").read_text())
    assert ex["passed"] is True and ex["gates"]["parity_fp32"] is True
    assert (out / "export" / "model.onnx").is_file() and (out / "export" / "model_int8.onnx").is_file()
    for k in ("torch", "ort_fp32", "ort_int8"):
        assert 0.0 <= ex["miou"][k] <= 1.0
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert all(v["status"] == "skipped: TensorRT unavailable" for v in ex["tensorrt"].values())
    return ev


# --------------------------------------------------------------------------- end to end
def test_stages_in_process(tmp_path, one_thread):
    """Each stage's function in dvc.yaml order, in this process (no DVC, no subprocess)."""
    from pipeline.data import prepare_data
    from pipeline.evaluate import run_evaluate
    from pipeline.export import run_export_stage
    from pipeline.train import run_stage
    from pipeline.video import prepare_video

    p, out = tiny_params(), tmp_path / "outputs"
    prepare_data(p, out)
    prepare_video(p, out)
    for stage in C.TRAIN_STAGES:
        run_stage(p, stage, out)
    run_evaluate(p, out)
    run_export_stage(p, out)
    check_outputs(out)


def _copy_repo(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("pipeline", "rdd"):
        shutil.copytree(REPO / d, dst / d, ignore=ignore)
    for f in ("dvc.yaml", ".dvcignore"):
        shutil.copy2(REPO / f, dst / f)


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_dvc_repro_end_to_end(tmp_path):
    """``dvc repro`` of the shrunken params in a fresh copy (no git: ``dvc init --no-scm``)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    dvc = [sys.executable, "-m", "dvc"]
    _run(dvc + ["init", "--no-scm", "-q"], repo, env)
    log = _run(dvc + ["repro"], repo, env)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log, log
    check_outputs(repo / "outputs")
    assert (repo / "dvc.lock").is_file()
    # `dvc metrics show` prints the headline files, one short line each; the full metrics files
    # are shown by target
    metrics = json.loads(_run(dvc + ["metrics", "show", "--json"], repo, env))
    flat = json.dumps(metrics)
    assert "outputs/evaluate/summary.json" in flat and "outputs/export/summary.json" in flat
    table = _run(dvc + ["metrics", "show"], repo, env)
    assert max(len(line) for line in table.splitlines()) < 200, table
    full = json.dumps(
        json.loads(
            _run(
                dvc
                + [
                    "metrics",
                    "show",
                    "--json",
                    "outputs/evaluate/metrics.json",
                    "outputs/export/export_metrics.json",
                ],
                repo,
                env,
            )
        )
    )
    assert "outputs/evaluate/metrics.json" in full and "outputs/export/export_metrics.json" in full
    ev = json.loads((repo / "outputs" / "evaluate" / "metrics.json").read_text())
    summary = json.loads((repo / "outputs" / "evaluate" / "summary.json").read_text())
    assert summary["miou"] == {s: round(100 * r["miou"], 2) for s, r in ev["models"].items()}
    # nothing is stale right after a run (no byte-code or other noise among the deps)
    assert json.loads(_run(dvc + ["status", "--json"], repo, env) or "{}") == {}
    # a parameter invalidates exactly the stages that read it: the demo clip re-trains nothing,
    # the student's schedule leaves the data, the video and the teacher alone
    p = tiny_params()
    p["prepare"]["video"]["fps"] = 12
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert set(json.loads(_run(dvc + ["status", "--json"], repo, env))) == {"video"}
    p["student"]["optim"]["lr"] = 0.03
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert set(json.loads(_run(dvc + ["status", "--json"], repo, env))) == {
        "video",
        "baseline",
        "kd",
        "tfe_rdd",
        "tse_rdd",
    }  # evaluate/export follow via the models


@pytest.mark.slow
def test_train_stage_relaunches_under_torchrun(tmp_path):
    """``train.nproc: 2`` → the stage re-executes itself under torchrun; both ranks train (gloo)."""
    from pipeline.data import prepare_data

    p = tiny_params()
    p["train"]["nproc"] = 2
    p["train"]["device"] = "cpu"
    out = tmp_path / "outputs"
    prepare_data(p, out)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "baseline", "--params", str(params), "--out-root", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "torch.distributed.run --standalone --nproc_per_node=2" in r.stderr
    m = json.loads((out / "baseline" / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["global_batch_size"] == 2 * p["data"]["batch_size"]


# --------------------------------------------------------------------------- unsafe inputs
def _tiny_tse_setup(tmp_path) -> tuple[Path, Path]:
    """Data + a (random) teacher artefact, so that stage ``tse_rdd`` gets as far as resuming
    ``outputs/tfe_rdd/checkpoint.pt``; returns ``(params.yaml, out_root)``."""
    from pipeline.data import prepare_data
    from rdd.artifacts import save_artifact
    from rdd.data import build_dataset
    from rdd.models import create_model
    from rdd.spec import Normalization

    p, out = tiny_params(), tmp_path / "outputs"
    prepare_data(p, out)
    classes = build_dataset("synthetic", root=C.dataset_root(p, out), split="train").classes
    t = p["teacher"]["model"]
    teacher = create_model(t["name"], classes.num_classes, **t["kwargs"])
    save_artifact(
        out / "teacher" / "model.pt",
        teacher,
        classes=classes,
        normalization=Normalization(),
        input_size=(48, 64),
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    return params, out


def test_stage_resume_refuses_crafted_and_truncated_checkpoints(tmp_path, one_thread, hostile_pickle):
    """``tse_rdd`` resumes tfe_rdd's checkpoint: a crafted one runs nothing and a truncated one
    is a one-line error naming the file (no traceback)."""
    from click.testing import CliRunner

    from pipeline.train import main

    params, out = _tiny_tse_setup(tmp_path)
    ckpt = out / "tfe_rdd" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    marker = hostile_pickle(ckpt, lambda pl: {"format": "rdd-edge-checkpoint/2", "step": pl})
    args = ["tse_rdd", "--params", str(params), "--out-root", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and r.exception is not None and not isinstance(r.exception, ValueError), r.output
    assert not marker.exists()
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and str(ckpt) in lines[0] and "refused" in lines[0], r.output
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    r = CliRunner().invoke(main, args)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert str(ckpt) in lines[0] and "truncated" in lines[0] and "Traceback" not in r.output
    assert not (out / "tse_rdd" / "model.pt").exists()


@pytest.mark.slow
def test_kill_9_then_dvc_repro_continues_the_stage(tmp_path):
    """SIGKILL ``dvc repro baseline`` after its first mid-run checkpoint: the next ``dvc repro``
    keeps the checkpoint (``persist: true``), continues at the saved step and ends with a
    ``model.pt`` byte-identical to an uninterrupted run's; the DVCLive curves and ``train.log``
    (persisted too) carry on from the interrupted process, so the curves equal the reference's."""
    import hashlib
    import signal
    import time

    from rdd.engine import load_checkpoint

    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    p = tiny_params()
    p["student"]["optim"]["iters"] = 40
    p["train"].update(eval_interval=4, log_interval=4)
    p["prepare"]["synthetic"]["n_val"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    dvc = [sys.executable, "-m", "dvc"]
    _run(dvc + ["init", "--no-scm", "-q"], repo, env)
    _run(dvc + ["repro", "data"], repo, env)
    # the uninterrupted reference: the stage's own command, into another out-root
    shutil.copytree(repo / "outputs" / "data", tmp_path / "ref" / "data")
    _run([sys.executable, "-m", "pipeline.train", "baseline", "--out-root", str(tmp_path / "ref")], repo, env)

    out = repo / "outputs" / "baseline"
    proc = subprocess.Popen(
        dvc + ["repro", "baseline"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, "dvc repro ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # dvc, its shell and the stage: kill -9
        proc.wait()
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()
    saved = load_checkpoint(out / "checkpoint.pt")["step"]
    assert 0 < saved < 40

    log = _run(dvc + ["repro", "baseline"], repo, env)
    assert "Running stage 'baseline'" in log
    assert f"resumed outputs/baseline/checkpoint.pt at iteration {saved} " in (out / "train.log").read_text()
    assert json.loads((out / "metrics.json").read_text())["step"] == 40

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest(out / "model.pt") == digest(tmp_path / "ref" / "baseline" / "model.pt")
    from rdd.study import read_tsv

    log_text = (out / "train.log").read_text()  # the first process's lines are kept
    assert "iterations 0→40 of 40" in log_text and log_text.index("iterations 0→40") < log_text.index(
        f"resumed outputs/baseline/checkpoint.pt at iteration {saved} "
    )
    for metric in ("val/miou.tsv", "train/loss.tsv"):  # whole curves, from step 4, not `saved`
        got = read_tsv(out / "dvclive" / "plots" / "metrics" / metric)
        ref = read_tsv(tmp_path / "ref" / "baseline" / "dvclive" / "plots" / "metrics" / metric)
        assert got == ref and got[0][0] == 4, metric
    assert json.loads(_run(dvc + ["status", "baseline", "--json"], repo, env) or "{}") == {}


def test_evaluate_and_export_refuse_a_crafted_artifact(tmp_path, one_thread, hostile_pickle):
    """A crafted ``model.pt`` under a stage: evaluate and export stop with one line, run nothing."""
    from click.testing import CliRunner

    from pipeline.evaluate import main as evaluate_main
    from pipeline.export import main as export_main

    params, out = _tiny_tse_setup(tmp_path)
    for stage in ("baseline", "kd", "tse_rdd"):
        shutil.copytree(out / "teacher", out / stage)
    evil = out / "tse_rdd" / "model.pt"
    marker = hostile_pickle(evil, lambda pl: {"backbone.conv1.weight": pl})
    args = ["--params", str(params), "--out-root", str(out)]
    for main in (evaluate_main, export_main):
        r = CliRunner().invoke(main, args)
        errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
        assert r.exit_code == 1 and len(errors) == 1 and "Traceback" not in r.output, r.output
        assert str(evil) in errors[0] and "refused" in errors[0], r.output
        assert r.output.strip().splitlines()[-1] == errors[0]  # nothing after it
        assert not marker.exists()
