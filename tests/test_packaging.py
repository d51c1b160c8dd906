"""Packaging: the install an edge user gets (extras, missing runtimes, the wheel, file modes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "docs" / "DEPLOY.md"
WHEEL = "rdd_edge-0.1.0-py3-none-any.whl"  # the name docs/DEPLOY.md uses


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
        img[h // 2 :] = (128, 64, 128)
        img[8:24, 4 + 6 * i : 20 + 6 * i] = (64, 0, 128)
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
    # [trt]: NVIDIA's CUDA 12 TensorRT wheels and CUDA 12 buffers (PyPI's plain `tensorrt` 10.x
    # pulls the CUDA 13 build, issue #34); [trt-cu13] the CUDA 13 pair
    assert extras["trt"] == ["tensorrt-cu12>=10,<11", "cuda-python>=12,<13"]
    assert extras["trt-cu13"] == ["tensorrt-cu13>=10,<11", "cuda-python>=13,<14"]
    # ranges, not pins: every runtime requirement admits more than one release
    for d in (
        project["dependencies"]
        + extras["cpu"]
        + extras["gpu"]
        + extras["trt"]
        + extras["trt-cu13"]
        + extras["openvino"]
    ):
        assert "==" not in d and ">=" in d, d
    assert project["scripts"]["rdd-infer"] == "rdd.runtime.cli:main"


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in reqs}


def test_openvino_is_the_runtime_alone_and_nncf_is_an_export_tool():
    """Issue #34: [openvino] is what a device runs (no NNCF, scipy, scikit-learn); NNCF and the
    ONNX tools are [export]'s, on the workstation; [train] (and so [dev]) keeps all of it."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert _names(extras["openvino"]) == {"openvino"}
    assert _names(extras["export"]) == {"rdd-edge", "onnx", "onnxslim", "nncf"}
    assert "rdd-edge[openvino]" in extras["export"]  # NNCF's OpenVINO INT8 build needs it
    assert {"rdd-edge[cpu]", "rdd-edge[export]", "rdd-edge[openvino]"} <= set(extras["train"])
    assert "rdd-edge[train]" in extras["dev"]
    deps = _deps_tool()
    train = {r.name for r in deps.root_requirements(("train",))}
    assert {"torch", "onnx", "onnxslim", "nncf", "openvino", "onnxruntime", "dvc"} <= train
    # the TorchScript exporter (rdd.export.onnx: dynamo=False) needs no onnxscript
    assert "onnxscript" not in {r.name for r in deps.root_requirements(("dev",))}
    for device in ("cpu", "gpu", "trt", "trt-cu13", "openvino"):
        names = {r.name for r in deps.root_requirements((device,))}
        assert not names & {"nncf", "onnx", "onnxslim", "torch"}, (device, names)


def test_license_is_apache_2_and_declared_for_the_wheel():
    """Issue #34 point 7: the Apache-2.0 text the metadata declares is in the repository and named
    as the wheel's license file (test_wheel_ships_the_license checks the built wheel)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 11000  # the full text


def test_readme_installs_cpu_only_torch_where_there_is_no_gpu():
    """Issue #34 point 7: the README's install blocks name PyTorch's CPU-only wheel index for a
    machine without an NVIDIA GPU (the default wheel pulls gigabytes of CUDA libraries), before
    the extra that needs torch, at the version constraints.txt pins."""
    readme = (REPO / "README.md").read_text().splitlines()
    lines = [ln for ln in readme if "--index-url https://download.pytorch.org/whl/cpu" in ln]
    assert len(lines) >= 2 and all(ln.startswith("pip install torch") for ln in lines), lines
    pin = next(
        ln.split("==")[1].strip()
        for ln in (REPO / "constraints.txt").read_text().splitlines()
        if ln.startswith("torch==")
    )
    assert any(f"torch=={pin} " in ln for ln in lines), (pin, lines)
    first = readme.index(lines[0])
    assert any("[train]" in ln or "[dev]" in ln or "-e ." in ln for ln in readme[first + 1 : first + 8])


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


def _deps_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ci_deps", REPO / ".ci" / "deps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ci_deps_tool_expands_extras_and_lists_platform_tags():
    deps = _deps_tool()
    names = {r.name for r in deps.root_requirements(("dev",))}
    assert {"numpy", "opencv-python-headless", "onnxruntime", "torch", "pytest"} <= names
    assert "rdd-edge" not in names and "onnxruntime-gpu" not in names
    assert {r.name for r in deps.root_requirements(("cpu",))} == {
        "numpy",
        "opencv-python-headless",
        "onnxruntime",
    }
    tags = deps.platforms("aarch64", 35)
    assert tags[0] == "manylinux_2_35_aarch64" and "manylinux_2_17_aarch64" in tags
    assert ("3.10", "aarch64", 35) in deps.TARGETS
    assert [t[0] for t in deps.TARGETS if t[1] == "x86_64"] == ["3.10", "3.11", "3.12", "3.13"]
    with pytest.raises(SystemExit, match="no optional-dependencies extra 'nope'"):
        deps.root_requirements(("nope",))
    # `resolve` checks every extra a user installs, the device runtimes on the Jetson target too
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(deps.RESOLVE) == set(extras) - {"train", "dev"}
    assert deps.RESOLVE["cpu"] == deps.RESOLVE["openvino"] == deps.TARGETS
    assert all(t[1] == "x86_64" for e in ("gpu", "trt", "trt-cu13") for t in deps.RESOLVE[e])
    # the TensorRT meta-package (an sdist) is dry-run through its per-Python bindings wheel
    trt = {str(r) for r in deps.binary_requirements(deps.root_requirements(("trt",)))}
    assert {"tensorrt-cu12-bindings<11,>=10", "cuda-python<13,>=12"} <= trt
    assert deps.FORBIDDEN["trt"].search("tensorrt-cu13-libs")
    assert not deps.FORBIDDEN["trt"].search("tensorrt-cu12-bindings")


# --------------------------------------------------------------------------- missing runtime
_HIDE = r"""
import runpy, sys
HIDDEN = {hidden!r}
class _Hide:  # a device where these packages are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
for m in HIDDEN:
    sys.modules.pop(m, None)
sys.meta_path.insert(0, _Hide())
sys.argv = ["rdd-infer"] + sys.argv[1:]
runpy.run_module("rdd.runtime", run_name="__main__", alter_sys=True)
"""
#: no inference runtime at all (neither onnxruntime nor OpenVINO)
_NO_ORT = _HIDE.format(hidden=("onnxruntime", "openvino"))
#: OpenVINO only (the ``[openvino]`` extra)
_OPENVINO_ONLY = _HIDE.format(hidden=("onnxruntime", "onnx", "torch"))


def test_openvino_alone_runs_an_onnx_with_backend_auto(tmp_path, tiny_onnx):
    """Issue #34: with only OpenVINO installed, ``--model m.onnx`` (backend auto) runs with it."""
    pytest.importorskip("openvino")
    clip = _tiny_clip(tmp_path / "clip.mp4")
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _OPENVINO_ONLY,
            "--model",
            str(tiny_onnx),
            "--video",
            str(clip),
            "--report",
            str(report),
            "--no-progress",
            "--warmup",
            "0",
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["backend"] == "openvino" and rep["precision"] == "fp32" and rep["frames"] > 0


def test_missing_onnxruntime_names_the_extra(tmp_path):
    clip = _tiny_clip(tmp_path / "clip.mp4")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read: the runtime is missing")
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _NO_ORT,
            "--model",
            str(model),
            "--video",
            str(clip),
            "--report",
            str(report),
            "--no-progress",
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "error: onnxruntime is not installed: pip install 'rdd-edge[cpu]' (or [gpu] for onnxruntime-gpu)"
    ], proc.stderr
    assert not report.exists()


@pytest.mark.parametrize("device", ["cuda", "trt"])
def test_gpu_device_on_the_cpu_runtime_names_the_gpu_extra(tmp_path, tiny_onnx, device):
    """``[cpu]`` installed, ``--device cuda``/``trt`` asked: one line naming ``rdd-edge[gpu]``."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rdd.runtime",
            "--model",
            str(tiny_onnx),
            "--device",
            device,
            "--video",
            str(_tiny_clip(tmp_path / "clip.mp4")),
            "--report",
            str(report),
            "--no-progress",
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "rdd-edge[gpu]" in lines[0] and "onnxruntime-gpu" in lines[0], lines[0]
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
            assert (
                _mode(d / "metrics.json") == _mode(d / "blob.bin") == _mode(d / "plain.txt") == 0o666 & ~umask
            )
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
            export_onnx(
                tiny_model,
                onnx_path,
                classes=CAMVID_CLASSES,
                normalization=Normalization(),
                input_size=(48, 64),
                simplify=False,
            )
            assert _mode(onnx_path) == 0o666 & ~umask
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rdd.runtime",
                    "--model",
                    str(onnx_path),
                    "--video",
                    str(clip),
                    "--report",
                    str(d / "r.json"),
                    "--out",
                    str(d / "o.mp4"),
                    "--save-masks",
                    str(d / "masks"),
                    "--threads",
                    "1",
                    "--no-progress",
                ],
                cwd=REPO,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=120,
                umask=umask,
            )
            assert proc.returncode == 0, proc.stderr
            assert _mode(d / "r.json") == _mode(d / "o.mp4") == 0o666 & ~umask
            masks = sorted((d / "masks").iterdir())
            assert masks and all(_mode(m) == 0o666 & ~umask for m in masks)
            assert _mode(d / "masks") == 0o777 & ~umask
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- docs/DEPLOY.md
def deploy_blocks() -> list[tuple[str, str, str]]:
    """``(kind, label, commands)`` of every fenced block of docs/DEPLOY.md, kind ``tested`` or
    ``needs`` from the block's first line (``# tested: NAME`` / ``# needs: HARDWARE``)."""
    text = DEPLOY.read_text()
    fences = re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    out = []
    for lang, body in fences:
        assert lang == "bash", f"docs/DEPLOY.md: every command block is ```bash, got ```{lang}"
        first, _, rest = body.partition("\n")
        m = re.fullmatch(r"# (tested|needs): (.+)", first.strip())
        assert m, (
            "docs/DEPLOY.md: a command block must start with '# tested: NAME' (run by "
            f"test_deploy_doc_on_a_fresh_venv) or '# needs: HARDWARE', got {first!r}"
        )
        out.append((m.group(1), m.group(2).strip(), rest))
    return out


def test_deploy_doc_commands_are_tested_or_need_hardware():
    blocks = deploy_blocks()
    assert [label for kind, label, _ in blocks if kind == "tested"] == [
        "wheel-build",
        "device-install",
        "cpu-run",
        "first-hour",
        "openvino-run",
    ]
    needs = " ".join(label for kind, label, _ in blocks if kind == "needs")
    assert "Jetson" in needs and "NVIDIA GPU" in needs
    text = DEPLOY.read_text()
    assert "rdd-infer --backend trt" in text and "trtexec" in text and "build_engine(" in text
    assert "rdd-export model.onnx --to engine" in text and "Telemetry" in text
    assert "docs/DEPLOY.md" in (REPO / "README.md").read_text()


def test_readme_test_command_is_what_ci_runs():
    """The README's quick-start test command is .ci/run's last step (the fast suite), and CI also
    runs the slow checks the issues name: the wheel install and the kill -9 + dvc repro resume."""
    readme = (REPO / "README.md").read_text()
    ci = [
        ln.strip()
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    m = re.search(r"^(python3? -m pytest)\s+#", readme, re.M)
    assert m, "README quick start: no `python -m pytest` line"
    assert ci[-1].replace("python3", "python") == m.group(1).replace("python3", "python")
    assert "python3 -m pytest -q -m slow tests/test_packaging.py" in ci
    assert any(
        ln.startswith("python3 -m pytest -q -m slow tests/test_pipeline.py") and "kill_9" in ln for ln in ci
    )


def _report_keys(rep: dict) -> set[str]:
    keys = set(rep)
    for block in ("realtime", "compare", "device", "source"):
        keys |= set(rep.get(block) or {})
    return keys


def test_deploy_doc_explains_every_report_field(tmp_path, tiny_onnx):
    """Every field a report has (video with labels, masks, real time and --compare; images in
    batches) is named in docs/DEPLOY.md's report table."""
    from rdd.data.synthetic import write_synthetic_video

    write_synthetic_video(
        tmp_path / "v.mp4",
        tmp_path / "masks",
        n_frames=4,
        size=(48, 64),
        seed=0,
        fps=10,
        images_dir=tmp_path / "images",
    )
    runs = [
        [
            "--video",
            tmp_path / "v.mp4",
            "--labels",
            tmp_path / "masks",
            "--save-masks",
            tmp_path / "pred",
            "--realtime",
            "--out",
            tmp_path / "o.mp4",
            "--compare",
            "ort",
        ],
        ["--images", tmp_path / "images", "--batch", "2"],
    ]
    documented = set(re.findall(r"`([a-z0-9_]+)`", DEPLOY.read_text().split("## 5.")[1]))
    for i, args in enumerate(runs):
        report = tmp_path / f"r{i}.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rdd.runtime",
                "--model",
                str(tiny_onnx),
                "--report",
                str(report),
                "--warmup",
                "1",
                "--no-progress",
                *map(str, args),
            ],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        missing = _report_keys(json.loads(report.read_text())) - documented
        assert not missing, (
            f"report fields {sorted(missing)} are not explained in "
            "docs/DEPLOY.md's report table (section 5): add them"
        )


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{script}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _pip_env(constraints: bool = True) -> dict[str, str]:
    """Environment for the doc's shell blocks: no PYTHONPATH, this interpreter's ``python3``
    first on PATH, pip pinned by constraints.txt (what CI installs)."""
    env = _env()
    env.update(
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if constraints:
        env["PIP_CONSTRAINT"] = str(REPO / "constraints.txt")
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """docs/DEPLOY.md's ``wheel-build`` block, run as written in a copy of the repo that holds
    only what the wheel is built from (so the wheel cannot lean on the checkout)."""
    blocks = {label: cmds for kind, label, cmds in deploy_blocks() if kind == "tested"}
    clone = tmp_path_factory.mktemp("clone")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, clone / name)
    shutil.copytree(REPO / "rdd", clone / "rdd", ignore=shutil.ignore_patterns("__pycache__"))
    _bash(blocks["wheel-build"], clone, _pip_env(), timeout=300)
    wheels = sorted((clone / "dist").glob("*.whl"))
    assert [w.name for w in wheels] == [WHEEL], "the wheel's name changed: update docs/DEPLOY.md"
    return wheels[0]


@pytest.mark.slow
def test_deploy_doc_on_a_fresh_venv(tmp_path, tiny_model, built_wheel):
    """docs/DEPLOY.md's tested blocks, as written: the wheel (``built_wheel``), then on the
    "device" a fresh venv (no system site-packages, so no torch), install the wheel with [cpu]
    (versions pinned by constraints.txt), run rdd-infer on a tiny FP32 and INT8 ONNX and a short
    clip; reports, overlay and masks are written."""
    from rdd.data.synthetic import write_synthetic_video
    from rdd.export import export_onnx
    from rdd.export.quantize import quantize_int8
    from rdd.spec import CAMVID_CLASSES, Normalization

    blocks = {label: cmds for kind, label, cmds in deploy_blocks() if kind == "tested"}
    env = _pip_env()
    with zipfile.ZipFile(built_wheel) as z:
        names = z.namelist()
        entry_points = z.read("rdd_edge-0.1.0.dist-info/entry_points.txt").decode()
        metadata = z.read("rdd_edge-0.1.0.dist-info/METADATA").decode()
    assert {"rdd/runtime/cli.py", "rdd/runtime/__main__.py", "rdd/spec.py"} <= set(names)
    assert {n.split("/")[0] for n in names} == {"rdd", "rdd_edge-0.1.0.dist-info"}
    assert "rdd-infer = rdd.runtime.cli:main" in entry_points
    assert "Provides-Extra: cpu" in metadata

    dev = tmp_path / "device"
    dev.mkdir()
    shutil.copy(built_wheel, dev / WHEEL)
    kw = dict(classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(48, 64))
    export_onnx(tiny_model, dev / "model.onnx", simplify=False, **kw)
    rng = np.random.default_rng(0)
    quantize_int8(
        dev / "model.onnx",
        dev / "model_int8.onnx",
        preprocess=False,
        calib_frames=[rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(2)],
    )
    write_synthetic_video(
        dev / "video.mp4", dev / "masks", n_frames=6, size=(48, 64), seed=0, fps=10, images_dir=dev / "frames"
    )
    zoo = "camvid/rdd_16x-s0"  # first-hour's model by name, from a file:// mirror
    entry = json.loads((REPO / "rdd" / "zoo.json").read_text())["models"][zoo]
    (dev / "zoo-mirror").mkdir()
    shutil.copy(
        REPO / "studies" / "camvid_converged" / "models" / entry["file"], dev / "zoo-mirror" / entry["file"]
    )
    env["RDD_CACHE"] = str(dev / "cache")
    env["HOME"] = str(dev / "home")  # OpenVINO would write its telemetry id here (it must not)
    trt_line = next(
        ln for ln in DEPLOY.read_text().splitlines() if ln.startswith("rdd-export model.onnx --to engine")
    )
    checks = (
        '\npython -c "import importlib.util, rdd; '
        "assert importlib.util.find_spec('torch') is None, 'torch in the venv'; print(rdd.__file__)\"\n"
        + trt_line
        + "\n"
    )
    out = _bash(
        "\n".join([blocks["device-install"], blocks["cpu-run"], blocks["first-hour"]])
        + checks
        + "deactivate\n"
        + blocks["openvino-run"],
        dev,
        env,
        timeout=1500,
    )

    assert "usage: rdd-infer" in out and "usage: python -m rdd.runtime" in out
    assert f"{dev / 'venv'}" in out  # rdd came from the venv, not from this checkout
    assert "engine fp16: skipped: TensorRT unavailable" in out
    assert not list(dev.glob("engine/trt/*.engine"))
    _check_first_hour(dev, out, entry)
    for name in ("report_ov.json", "report_ov_auto.json"):  # [openvino] alone, f32 asked
        rep = json.loads((dev / name).read_text())
        assert rep["backend"] == "openvino" and rep["frames"] == 6 and rep["precision"] == "fp32"
    assert "OpenVINO CPU" in out and not (dev / "home" / "intel").exists()
    for name, labelled in (("report.json", False), ("report_int8.json", True), ("report_rt.json", False)):
        rep = json.loads((dev / name).read_text())
        assert rep["frames"] >= 1 and rep["backend"] == "ort" and rep["device"]["torch"] is None
        assert ("miou" in rep) == labelled
    assert json.loads((dev / "report.json").read_text())["frames"] == 6
    assert "realtime" in json.loads((dev / "report_rt.json").read_text())
    assert (dev / "overlay.mp4").stat().st_size > 0
    assert len(list((dev / "pred_masks").glob("frame_*.png"))) >= 1


def _check_first_hour(dev: Path, out: str, zoo_entry: dict) -> None:
    """What docs/DEPLOY.md's first-hour block promises, on the device venv's outputs."""
    assert "rdd-infer 0.1.0" in out
    rep = json.loads((dev / "report_images.json").read_text())
    assert rep["frames"] == 6 and "miou" in rep and rep["rdd_edge"] == "0.1.0"
    assert len(list((dev / "overlays").glob("*.jpg"))) == 6
    masks = sorted((dev / "pred_palette").glob("*.png"))
    assert len(masks) == 6 and masks[0].read_bytes()[25] == 3  # PNG colour type 3: palette
    assert json.loads((dev / "report_serve.json").read_text())["frames"] == 6
    rep = json.loads((dev / "report_zoo.json").read_text())
    assert rep["model_sha256"] == zoo_entry["sha256"] and "miou" in rep
    assert (dev / "cache" / "zoo" / "camvid_converged" / zoo_entry["file"]).is_file()
    assert (dev / "my_export" / "model_int8.onnx").is_file()
    rows = (dev / "bench.csv").read_text().splitlines()
    assert rows[0].startswith("row,") and sum("ORT CPU" in r for r in rows) >= 3, rows
    assert "(48, 64) uint8" in out and (dev / "overlay.jpg").stat().st_size > 0


# (Python, extra requirements): 3.10 also with numpy 1.x, as on a Jetson (docs/DEPLOY.md)
_OTHER_PYTHONS = [("3.10", ()), ("3.10", ("numpy<2",)), ("3.12", ()), ("3.13", ())]


def _python(version: str) -> str | None:
    """An interpreter of ``version`` on this machine (pyenv's, where installed), else None."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    cands = sorted(root.glob(f"{version}.*/bin/python{version}"))
    found = shutil.which(f"python{version}")
    for exe in [str(c) for c in cands] + ([found] if found else []):
        ok = subprocess.run(
            [exe, "-c", "import venv, sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok.returncode == 0 and ok.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return exe
    return None


@pytest.mark.slow
@pytest.mark.parametrize("version,extra", _OTHER_PYTHONS, ids=["3.10", "3.10-numpy1", "3.12", "3.13"])
def test_wheel_runs_on_other_pythons(tmp_path, tiny_onnx, built_wheel, version, extra):
    """The wheel with [cpu] on Python 3.10 (Jetson's JetPack 6; also with numpy 1.x), 3.12 and
    3.13, where this machine has the interpreter: resolved from pyproject's ranges (constraints.txt
    pins 3.11's versions),
    then rdd-infer on a tiny ONNX and a clip. Skipped where the interpreter is absent."""
    exe = _python(version)
    if exe is None:
        pytest.skip(f"no Python {version} on this machine")
    clip = _tiny_clip(tmp_path / "clip.mp4")
    venv = tmp_path / "venv"
    env = _pip_env(constraints=False)
    subprocess.run([exe, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", f"{built_wheel}[cpu]", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "r.json"
    run = subprocess.run(
        [
            str(venv / "bin" / "rdd-infer"),
            "--model",
            str(tiny_onnx),
            "--video",
            str(clip),
            "--threads",
            "1",
            "--report",
            str(report),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rep = json.loads(report.read_text())
    assert rep["frames"] == 4 and rep["device"]["python"].startswith(version + ".")
    assert rep["device"]["torch"] is None
    if "numpy<2" in extra:
        assert rep["device"]["numpy"].startswith("1.")


@pytest.mark.slow
def test_wheel_ships_the_license(built_wheel):
    """The wheel carries the repository's LICENSE (PEP 639: dist-info/licenses/) and says so."""
    with zipfile.ZipFile(built_wheel) as z:
        shipped = z.read("rdd_edge-0.1.0.dist-info/licenses/LICENSE")
        metadata = z.read("rdd_edge-0.1.0.dist-info/METADATA").decode()
    assert shipped == (REPO / "LICENSE").read_bytes()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata


# --------------------------------------------------------------------------- one venv per extra
# Issue #34: every extra alone in a fresh venv (no system site-packages, so no torch; pip run from
# this interpreter, versions pinned by constraints.txt, one download cache for the module's venvs):
# [cpu] and [openvino] run rdd-infer and rdd-bench on an export folder; [trt] and [gpu] only
# resolve (no GPU here).


def _installed(py: Path) -> dict[str, str]:
    """{canonical name: version} of every distribution the interpreter ``py`` sees."""
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']:"
            " d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in json.loads(out).items()}


@pytest.fixture(scope="module")
def pip_cache(tmp_path_factory) -> Path:
    """One pip download cache for this module's venvs (not the user's)."""
    return tmp_path_factory.mktemp("pip-cache")


def _fresh_venv(path: Path) -> Path:
    """``python -m venv --without-pip``: no system site-packages, no pip of its own (this
    interpreter's pip installs into it with ``--python``)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


def _pip_into(
    py: Path, args: list[str], cache: Path, timeout: float = 900, **env_extra: str
) -> subprocess.CompletedProcess:
    env = _pip_env()
    env.update(PIP_CACHE_DIR=str(cache), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory, tiny_onnx) -> Path:
    """An export folder as the export stage leaves it, small: ``export/model.onnx`` (the tiny
    student) and, where NNCF is installed here, ``export/openvino/model_int8.xml`` (NNCF INT8 on 2
    frames, the export stage's function); beside it ``images/`` + ``masks/`` (4 labelled frames)
    and ``clip.mp4``."""
    from rdd.data.synthetic import write_synthetic_video

    root = tmp_path_factory.mktemp("export-folder")
    (root / "export").mkdir()
    shutil.copy(tiny_onnx, root / "export" / "model.onnx")
    write_synthetic_video(
        root / "clip.mp4",
        root / "masks",
        n_frames=4,
        size=(48, 64),
        seed=0,
        fps=10,
        images_dir=root / "images",
    )
    try:
        import nncf  # noqa: F401

        from rdd.export.openvino import quantize_openvino
    except ImportError:
        return root  # the ONNX alone
    rng = np.random.default_rng(0)
    quantize_openvino(
        root / "export" / "model.onnx",
        root / "export" / "openvino" / "model_int8.xml",
        calib_limit=2,
        calib_frames=[rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(2)],
    )
    return root


# extra -> (the backend `--backend auto` picks, rdd-bench's row kind, what must not be installed)
_RUNTIME_EXTRAS = {
    "cpu": ("ort", "ort_cpu", {"openvino", "nncf", "onnx", "torch", "onnxruntime-gpu"}),
    "openvino": (
        "openvino",
        "openvino_cpu",
        {"onnxruntime", "nncf", "scipy", "scikit-learn", "onnx", "torch"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("extra", sorted(_RUNTIME_EXTRAS))
def test_extra_alone_runs_infer_and_bench(tmp_path, built_wheel, export_folder, pip_cache, extra):
    """A fresh venv with ONLY ``wheel[extra]``: ``rdd-infer --backend auto`` on the ONNX runs with
    the extra's runtime and ``rdd-bench`` on the export folder runs every build that runtime can
    (the other runtime's rows are skipped with the reason), both rc 0. Prints the install time and
    the venv's size. No consent file is written and OpenVINO writes no telemetry id under the
    private HOME (the project imports it with its telemetry off: rdd.offline)."""
    backend, kind, absent = _RUNTIME_EXTRAS[extra]
    t0 = time.perf_counter()
    py = _fresh_venv(tmp_path / "venv")
    t1 = time.perf_counter()
    proc = _pip_into(py, ["install", "-q", f"{built_wheel}[{extra}]"], pip_cache)
    t2 = time.perf_counter()
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = _installed(py)
    assert {"rdd-edge", "numpy", "opencv-python-headless"} <= set(installed)
    assert {"cpu": "onnxruntime", "openvino": "openvino"}[extra] in installed
    assert not absent & set(installed), sorted(absent & set(installed))

    home = tmp_path / "home"
    home.mkdir()
    env = _pip_env(constraints=False)
    env["HOME"] = str(home)
    bin_ = tmp_path / "venv" / "bin"
    report = tmp_path / "r.json"
    run = subprocess.run(
        [
            str(bin_ / "rdd-infer"),
            "--model",
            str(export_folder / "export" / "model.onnx"),
            "--video",
            str(export_folder / "clip.mp4"),
            "--threads",
            "1",
            "--report",
            str(report),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert rep["backend"] == backend and rep["frames"] == 4 and rep["completed"], rep
    assert rep["device"]["torch"] is None and rep["device"]["onnx"] is None
    assert f"[{backend}/" in run.stdout, run.stdout  # the summary line names it too

    bench = subprocess.run(
        [
            str(bin_ / "rdd-bench"),
            "--model",
            str(export_folder / "export"),
            "--images",
            str(export_folder / "images"),
            "--labels",
            str(export_folder / "masks"),
            "--rows",
            "ort_cpu",
            "openvino_cpu",
            "--threads",
            "1",
            "--duration",
            "0.1",
            "--warmup-ms",
            "10",
            "--min-runs",
            "2",
            "--rounds",
            "1",
            "--e2e-frames",
            "0",
            "--out",
            str(tmp_path / "bench"),
            "--format",
            "json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["results"]
    ran = {(r["kind"], r["model"]) for r in rows if r["status"] == "ok"}
    ir = (export_folder / "export" / "openvino" / "model_int8.xml").is_file()
    expected = {(kind, "model.onnx")} | ({(kind, "model_int8.xml")} if ir and extra == "openvino" else set())
    assert ran == expected, rows
    other = {"ort_cpu", "openvino_cpu"} - {kind}
    assert all(r["status"].startswith("skipped") for r in rows if r["kind"] in other), rows
    assert any(r["kind"] in other for r in rows), rows

    assert not (home / "intel").exists()  # no telemetry id or counter (rdd.offline), no consent file
    t3 = time.perf_counter()
    mb = int(
        subprocess.run(
            ["du", "-sm", str(tmp_path / "venv")], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    print(
        f"\n[{extra}] venv {t1 - t0:.1f} s, pip install {t2 - t1:.1f} s, {len(installed)} "
        f"distributions, {mb} MB (no pip in the venv); rdd-infer + rdd-bench {t3 - t2:.1f} s"
    )


def _dry_run(
    py: Path, reqs: list[str], cache: Path, tmp: Path, *args: str, **env_extra: str
) -> dict[str, str]:
    """``pip install --dry-run --report`` of ``reqs`` into the venv of ``py``:
    {canonical name: version} of what pip would install."""
    report = tmp / f"dry-run-{len(list(tmp.glob('dry-run-*')))}.json"
    proc = _pip_into(
        py,
        ["install", "--dry-run", "-q", "--report", str(report), *args, *reqs],
        cache,
        timeout=600,
        **env_extra,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }


def _stub_wheel(folder: Path, name: str, version: str) -> Path:
    """A metadata-only wheel ``name==version`` (nothing to import, no requirements)."""
    dist = f"{re.sub(r'[-.]+', '_', name)}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: rdd-edge-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{dist}.dist-info/RECORD", "")
    return path


@pytest.mark.slow
def test_trt_extra_resolves_to_the_cuda12_tensorrt(tmp_path, built_wheel, pip_cache):
    """``wheel[trt]`` resolves, in a fresh venv of this Python, to NVIDIA's CUDA 12 TensorRT 10
    (``tensorrt-cu12`` + its bindings wheel) and cuda-python 12, never a ``cu13`` package.

    ``tensorrt-cu12`` X is an sdist needing ``tensorrt_cu12_libs==X``, itself a stub sdist that
    downloads gigabytes from pypi.nvidia.com to give pip its metadata. So: one ``--no-deps`` dry
    run of the wheel's [trt] requirements finds X, then the full dry run takes a metadata-only
    ``tensorrt_cu12_libs`` X from a local folder (the libraries' own requirements, hosted by
    NVIDIA, are not seen), and the stub's downloader is pointed at a closed port in case pip
    builds it anyway."""
    with zipfile.ZipFile(built_wheel) as z:
        metadata = z.read("rdd_edge-0.1.0.dist-info/METADATA").decode()
    trt_reqs = [
        m.group(1).strip() for m in re.finditer(r'^Requires-Dist: (.+?); extra == "trt"$', metadata, re.M)
    ]
    assert sorted(_names(trt_reqs)) == ["cuda-python", "tensorrt-cu12"], trt_reqs
    py = _fresh_venv(tmp_path / "venv")
    no_fetch = {"WHEEL_STUB_PIP_INDEX_URL": "http://127.0.0.1:9/"}
    top = _dry_run(py, trt_reqs, pip_cache, tmp_path, "--no-deps", **no_fetch)
    version = top["tensorrt-cu12"]
    assert version.startswith("10."), top
    _stub_wheel(tmp_path / "stubs", "tensorrt_cu12_libs", version)
    got = _dry_run(
        py,
        [f"{built_wheel}[trt]"],
        pip_cache,
        tmp_path,
        "--find-links",
        str(tmp_path / "stubs"),
        "--only-binary",
        "tensorrt-cu12-libs",
        **no_fetch,
    )
    assert got["tensorrt-cu12"] == got["tensorrt-cu12-bindings"] == version, got
    assert got["cuda-python"].startswith("12."), got
    assert not [n for n in got if "cu13" in n] and "tensorrt" not in got, got
    assert "torch" not in got and "onnxruntime" not in got, got
    print("\n[trt] resolves: " + " ".join(f"{n}=={got[n]}" for n in sorted(got)))


@pytest.mark.slow
def test_gpu_extra_resolves_to_onnxruntime_gpu_alone(tmp_path, built_wheel, pip_cache):
    """``wheel[gpu]`` resolves, in a fresh venv of this Python, to onnxruntime-gpu and not the
    CPU onnxruntime (one ``onnxruntime`` module), without torch."""
    py = _fresh_venv(tmp_path / "venv")
    got = _dry_run(py, [f"{built_wheel}[gpu]"], pip_cache, tmp_path)
    assert "onnxruntime-gpu" in got and "onnxruntime" not in got, got
    assert "torch" not in got and not [n for n in got if n.startswith("nvidia-")], got
    print("\n[gpu] resolves: " + " ".join(f"{n}=={got[n]}" for n in sorted(got)))
