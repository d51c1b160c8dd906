"""Packaging: the install an edge user gets (extras, missing runtimes, the wheel, file modes)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """The test process's environment, minus PYTHONPATH: subprocesses run from ``cwd=REPO``, so
    ``python -m``/``-c`` import this checkout's ``rdd`` first."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _tiny_clip(path: Path, n: int = 4, size: tuple[int, int] = (48, 64)) -> Path:
    h, w = size
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    assert wr.isOpened()
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[h // 2:] = (128, 64, 128)
        img[8:24, 4 + 6 * i:20 + 6 * i] = (64, 0, 128)
        wr.write(img)
    wr.release()
    return path


# --------------------------------------------------------------------------- pyproject
def test_base_install_has_no_inference_runtime_and_extras_pick_one():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {d.split(">")[0].split("<")[0].split("=")[0].strip() for d in project["dependencies"]}
    assert base == {"numpy", "opencv-python-headless"}
    extras = project["optional-dependencies"]
    assert any(d.startswith("onnxruntime>") for d in extras["cpu"])
    assert any(d.startswith("onnxruntime-gpu>") for d in extras["gpu"])
    assert {d.split(">")[0] for d in extras["trt"]} == {"tensorrt", "cuda-python"}
    # ranges, not pins: every runtime requirement admits more than one release
    for d in project["dependencies"] + extras["cpu"] + extras["gpu"] + extras["trt"]:
        assert "==" not in d and ">=" in d, d
    assert project["scripts"]["rdd-infer"] == "rdd.runtime.cli:main"


def test_constraints_pin_what_ci_installs():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.strip().lower()] = version.strip()
    assert pins["torch"] == "2.13.0"  # the CPU wheel this machine installs; newer means CUDA
    for name in ("numpy", "onnxruntime", "opencv-python-headless", "pytest"):
        assert name in pins, name


# --------------------------------------------------------------------------- missing runtime
_NO_ORT = r"""
import runpy, sys
class _NoOrt:  # a device where onnxruntime is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxruntime":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.modules.pop("onnxruntime", None)
sys.meta_path.insert(0, _NoOrt())
sys.argv = ["rdd-infer"] + sys.argv[1:]
runpy.run_module("rdd.runtime", run_name="__main__", alter_sys=True)
"""


def test_missing_onnxruntime_names_the_extra(tmp_path):
    clip = _tiny_clip(tmp_path / "clip.mp4")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read: the runtime is missing")
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-c", _NO_ORT, "--model", str(model), "--video", str(clip),
         "--report", str(report), "--no-progress"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["error: onnxruntime is not installed: pip install 'rdd-edge[cpu]' "
                     "(or [gpu] for onnxruntime-gpu)"], proc.stderr
    assert not report.exists()


# --------------------------------------------------------------------------- file modes
def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_atomic_writer_gives_open_modes_under_the_umask(tmp_path):
    from rdd.spec import atomic_path, temp_sibling, write_json_atomic

    old = os.umask(0o022)
    try:
        for umask in (0o022, 0o077, 0o002):
            os.umask(umask)
            d = tmp_path / f"u{umask:03o}"
            write_json_atomic(d / "metrics.json", {"a": 1})
            with atomic_path(d / "blob.bin") as tmp:
                tmp.write_bytes(b"x")
            folder = temp_sibling(d / "folder", directory=True)
            with open(d / "plain.txt", "w") as f:  # what a plain open() gives
                f.write("x")
            assert _mode(d / "metrics.json") == _mode(d / "blob.bin") == _mode(d / "plain.txt") \
                == 0o666 & ~umask
            assert _mode(folder) == 0o777 & ~umask
            assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == [folder.name]
    finally:
        os.umask(old)


def test_exported_onnx_and_runner_outputs_follow_the_umask(tmp_path, tiny_model):
    """An ONNX export in this process, and a runner subprocess started under each umask: the
    report, overlay, mask folder and masks get what open()/mkdir() would give."""
    from rdd.export import export_onnx
    from rdd.spec import CAMVID_CLASSES, Normalization

    clip = _tiny_clip(tmp_path / "clip.mp4")
    old = os.umask(0o022)
    try:
        for umask in (0o022, 0o077):
            os.umask(umask)
            d = tmp_path / f"u{umask:03o}"
            d.mkdir()
            onnx_path = d / "m.onnx"
            export_onnx(tiny_model, onnx_path, classes=CAMVID_CLASSES,
                        normalization=Normalization(), input_size=(48, 64), simplify=False)
            assert _mode(onnx_path) == 0o666 & ~umask
            proc = subprocess.run(
                [sys.executable, "-m", "rdd.runtime", "--model", str(onnx_path), "--video",
                 str(clip), "--report", str(d / "r.json"), "--out", str(d / "o.mp4"),
                 "--save-masks", str(d / "masks"), "--threads", "1", "--no-progress"],
                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120, umask=umask)
            assert proc.returncode == 0, proc.stderr
            assert _mode(d / "r.json") == _mode(d / "o.mp4") == 0o666 & ~umask
            masks = sorted((d / "masks").iterdir())
            assert masks and all(_mode(m) == 0o666 & ~umask for m in masks)
            assert _mode(d / "masks") == 0o777 & ~umask
    finally:
        os.umask(old)
