"""deploy/infer.py end to end: CamVid frames, a synthetic video, no-torch edge run, bad inputs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdd.spec import CAMVID_CLASSES, Normalization

REPO = Path(__file__).resolve().parents[1]
INFER = REPO / "deploy" / "infer.py"
torch = pytest.importorskip("torch")


def _load_cli():
    spec = importlib.util.spec_from_file_location("rdd_deploy_infer", INFER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cli = _load_cli()


@pytest.fixture(scope="module")
def camvid_subset(tmp_path_factory, camvid_root) -> tuple[Path, Path]:
    """Symlinks to the first 4 CamVid val frames and their raw annotations (11 = unlabelled)."""
    root = tmp_path_factory.mktemp("camvid")
    (root / "val").mkdir()
    (root / "valannot").mkdir()
    for p in sorted((camvid_root / "val").glob("*.png"))[:4]:
        (root / "val" / p.name).symlink_to(p)
        (root / "valannot" / p.name).symlink_to(camvid_root / "valannot" / p.name)
    return root / "val", root / "valannot"


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory) -> tuple[Path, Path, int]:
    """An mp4 and per-frame masks frame_000000.png … (rdd.data.synthetic when available)."""
    root = tmp_path_factory.mktemp("video")
    mp4, masks, n = root / "scene.mp4", root / "masks", 6
    try:
        from rdd.data.synthetic import write_synthetic_video
    except ImportError:
        write_synthetic_video = None
    if write_synthetic_video is not None:
        write_synthetic_video(mp4, masks, n_frames=n, size=(48, 64), seed=0, fps=10)
    else:  # moving rectangles over a two-class background
        masks.mkdir()
        w = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
        for i in range(n):
            m = np.zeros((48, 64), np.uint8)
            m[24:] = 3
            m[10:30, 5 + 6 * i : 25 + 6 * i] = 8
            img = CAMVID_CLASSES.palette_array()[m]
            w.write(np.ascontiguousarray(img[..., ::-1]))
            cv2.imwrite(str(masks / f"frame_{i:06d}.png"), m)
        w.release()
    return mp4, masks, n


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _run_main(capfd, argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- happy paths
def test_camvid_images_with_labels_out_of_the_box(tmp_path, tiny_onnx, camvid_subset):
    """Raw CamVid annotations (11 = unlabelled) work with no flag: auto label map for CamVid classes."""
    val, annot = camvid_subset
    report, out = tmp_path / "report.json", tmp_path / "overlay.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            str(INFER),
            "--model",
            tiny_onnx,
            "--images",
            val,
            "--labels",
            annot,
            "--warmup",
            "1",
            "--resize",
            "180,240",
            "--out",
            out,
            "--report",
            report,
            "--threads",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["backend"] == "ort" and rep["backend_device"] == "cpu" and rep["model"] == "lraspp_mobilenetv2"
    assert rep["device"]["cpu"] and rep["device"]["numpy"] == np.__version__  # provenance block
    assert rep["model_path"] == str(tiny_onnx)
    assert rep["frames"] == 4 and rep["warmup"] == 1 and rep["measured_frames"] == 3
    assert rep["inference_size"] == [180, 240] and rep["frame_size"] == [360, 480]
    assert rep["resize"] == "180x240"
    assert rep["labelled_frames"] == 4 and rep["ignore_ids"] == [11]
    assert 0.0 <= rep["miou"] <= 1.0 and set(rep["iou"]) == set(CAMVID_CLASSES.names)
    for key in ("fps", "inference_fps"):
        assert rep[key] > 0
    assert set(rep["latency_ms"]) == {"mean", "p50", "p90", "p99"}
    assert _count_frames(out) == 4
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 360)
    summary = proc.stdout.strip().splitlines()
    assert len(summary) == 1 and "FPS end-to-end" in summary[0] and "mIoU" in summary[0]
    assert "@ 180×240 (180x240)" in summary[0]


def test_camvid_raw_ids_without_mapping_is_a_clear_error(capfd, tiny_onnx, camvid_subset):
    val, annot = camvid_subset
    rc, _, err = _run_main(
        capfd,
        [
            "--model",
            tiny_onnx,
            "--images",
            val,
            "--labels",
            annot,
            "--label-map",
            "none",
            "--max-frames",
            "2",
            "--no-progress",
        ],
    )
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: label ") and "--label-map camvid" in lines[0]


def test_synthetic_video_with_masks(tmp_path, capfd, tiny_onnx, synthetic_video):
    mp4, masks, n = synthetic_video
    report, out = tmp_path / "r.json", tmp_path / "o.mp4"
    rc, stdout, err = _run_main(
        capfd,
        [
            "--model",
            tiny_onnx,
            "--video",
            mp4,
            "--labels",
            masks,
            "--label-map",
            "none",
            "--warmup",
            "2",
            "--out",
            out,
            "--report",
            report,
            "--no-progress",
        ],
    )
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["source"]["kind"] == "video" and rep["frames"] == n and rep["labelled_frames"] == n
    assert rep["measured_frames"] == n - 2 and "miou" in rep
    assert _count_frames(out) == n
    assert "FPS end-to-end" in stdout


@pytest.mark.parametrize(
    "flag,want", [(None, [48, 64]), ("model", [48, 64]), ("native", [30, 44]), ("24x32", [24, 32])]
)
def test_resize_defaults_to_the_model_input_size(tmp_path, capfd, tiny_onnx, flag, want):
    """Frames 30×44 run at the exported/evaluated size 48×64 unless --resize says otherwise."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), rng.integers(0, 256, (30, 44, 3), np.uint8))
    argv = [
        "--model",
        tiny_onnx,
        "--images",
        tmp_path / "img",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--report",
        tmp_path / "r.json",
        "--no-progress",
    ] + (["--resize", flag] if flag else [])
    rc, stdout, err = _run_main(capfd, argv)
    assert rc == 0, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["inference_size"] == want and rep["frame_size"] == [30, 44]
    assert rep["resize"] == (flag or "model") and rep["model_input_size"] == [48, 64]
    assert f"@ {want[0]}×{want[1]} ({flag or 'model'})" in stdout


def test_bad_resize_is_a_usage_error(capfd, tiny_onnx, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["--model", str(tiny_onnx), "--images", str(tmp_path), "--resize", "big"])
    assert e.value.code == 2 and "expected 'model', 'native' or HxW" in capfd.readouterr().err


def test_torch_backend_on_artifact(tmp_path, capfd, tiny_model, synthetic_video):
    from rdd.artifacts import save_artifact

    save_artifact(
        tmp_path / "student.pt",
        tiny_model,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(48, 64),
    )
    mp4, _, n = synthetic_video
    rc, stdout, err = _run_main(
        capfd,
        [
            "--model",
            tmp_path / "student.pt",
            "--video",
            mp4,
            "--max-frames",
            "2",
            "--threads",
            "1",
            "--report",
            tmp_path / "r.json",
            "--no-progress",
        ],
    )
    assert rc == 0, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["backend"] == "torch" and rep["frames"] == 2


def test_torch_backend_refuses_bad_artifacts_exit_2(
    tmp_path, capfd, tiny_model, synthetic_video, hostile_pickle
):
    """A crafted, truncated or mismatched model.pt is bad input (exit 2, one line), never run."""
    from rdd.artifacts import save_artifact

    mp4, _, _ = synthetic_video
    pt = tmp_path / "student.pt"
    save_artifact(pt, tiny_model, classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(48, 64))
    good = pt.read_bytes()
    report = tmp_path / "r.json"
    argv = [
        "--model",
        pt,
        "--video",
        mp4,
        "--max-frames",
        "1",
        "--threads",
        "1",
        "--report",
        report,
        "--no-progress",
        "--backend",
        "torch",
    ]

    marker = hostile_pickle(pt, lambda p: {"features.0.0.weight": p})
    rc, _, err = _run_main(capfd, argv)
    assert rc == 2 and not marker.exists(), err
    assert err.count("\n") == 1 and str(pt) in err and "Traceback" not in err, err

    pt.write_bytes(good[: len(good) // 2])  # truncated
    rc, _, err = _run_main(capfd, argv)
    assert rc == 2 and err.count("\n") == 1 and str(pt) in err, err

    torch.save({"not.a.weight": torch.zeros(1)}, pt)  # wrong keys
    rc, _, err = _run_main(capfd, argv)
    assert rc == 2 and err.count("\n") == 1 and str(pt) in err, err
    assert not report.exists()


# --------------------------------------------------------------------------- edge device
_NO_TORCH_BOOT = r"""
import sys, runpy, atexit
BLOCKED = {"torch", "torchvision", "onnx", "onnxscript", "onnxslim", "tqdm", "click"}
attempts = []
class _EdgeDevice:  # behave like a device where these packages are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"No module named {name!r} (blocked: edge device)")
        return None
for m in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[m]
sys.meta_path.insert(0, _EdgeDevice())
atexit.register(lambda: sys.stderr.write("IMPORT-ATTEMPTS " + ",".join(attempts) + "\n"))
sys.argv = ["deploy/infer.py"] + sys.argv[1:]
runpy.run_path("deploy/infer.py", run_name="__main__")
"""


def test_ort_backend_runs_without_torch(tmp_path, tiny_onnx, synthetic_video):
    mp4, masks, n = synthetic_video
    report, out = tmp_path / "r.json", tmp_path / "o.mp4"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _NO_TORCH_BOOT,
            "--model",
            str(tiny_onnx),
            "--backend",
            "ort",
            "--video",
            str(mp4),
            "--labels",
            str(masks),
            "--label-map",
            "none",
            "--out",
            str(out),
            "--report",
            str(report),
            "--warmup",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    attempts = [ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORT-ATTEMPTS")][-1]
    tried = {a.split(".")[0] for a in attempts.split(" ", 1)[1].split(",") if a}
    assert not tried & {"torch", "onnx", "onnxscript", "onnxslim"}, attempts
    assert "tqdm" in tried  # the stderr progress line replaced the missing tqdm
    assert json.loads(report.read_text())["frames"] == n and _count_frames(out) == n


# --------------------------------------------------------------------------- bad inputs
def _bad(capfd, argv, match: str) -> None:
    rc, out, err = _run_main(capfd, [*argv, "--no-progress"])
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and match in lines[0], lines[0]
    assert "Traceback" not in err


def test_bad_inputs_give_one_line_errors(tmp_path, capfd, tiny_onnx, synthetic_video):
    mp4, masks, _ = synthetic_video
    m = ["--model", tiny_onnx]
    _bad(capfd, [*m, "--video", tmp_path / "missing.mp4"], "video not found")
    (tmp_path / "corrupt.mp4").write_bytes(b"\0\1garbage" * 100)
    _bad(capfd, [*m, "--video", tmp_path / "corrupt.mp4"], "cannot open video")
    _bad(capfd, [*m, "--camera", "97"], "camera 97 could not be opened")
    (tmp_path / "empty").mkdir()
    _bad(capfd, [*m, "--images", tmp_path / "empty"], "holds no images")
    _bad(capfd, ["--model", tmp_path / "nope.onnx", "--video", mp4], "model file not found")
    # labels of another size than the frames
    small = tmp_path / "small_masks"
    small.mkdir()
    for i in range(3):
        cv2.imwrite(str(small / f"frame_{i:06d}.png"), np.zeros((10, 12), np.uint8))
    _bad(
        capfd,
        [*m, "--video", mp4, "--labels", small, "--label-map", "none"],
        "labels must match the frame size",
    )
    # a model whose input is not an image
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 16])
    g = helper.make_graph([helper.make_node("Relu", ["image"], ["logits"])], "g", [x], [y])
    vec = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    vec.ir_version = 8
    meta = {
        "format": "rdd-edge/1",
        "model": "vec",
        "input_name": "image",
        "input_layout": "NCHW",
        "input_dtype": "float32",
        "output_name": "logits",
        "output_kind": "logits",
        "normalization": Normalization().to_dict(),
        "classes": CAMVID_CLASSES.to_dict(),
        "input_size": [4, 4],
        "dynamic_batch": True,
        "dynamic_spatial": True,
    }
    helper.set_model_props(vec, {"rdd_meta": json.dumps(meta)})
    onnx.save(vec, str(tmp_path / "vec.onnx"))
    _bad(capfd, ["--model", tmp_path / "vec.onnx", "--video", mp4], "expected an image batch")
    # --out that is not an mp4, and nothing written
    _bad(capfd, [*m, "--video", mp4, "--out", tmp_path / "o.avi"], "--out must be an .mp4")
    assert not (tmp_path / "o.avi").exists()


def test_tampered_input_size_fails_fast_unless_the_bound_is_raised(tmp_path, capfd):
    """rdd_meta asking for 5000×5000 inputs: exit 2 before any frame; --max-input-pixels lifts it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from rdd.contract import ModelMeta
    from rdd.spec import ClassInfo

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, "H", "W"])
    g = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMeta.build(
        model="id",
        classes=ClassInfo(names=("a", "b", "c")),
        normalization=Normalization(),
        input_size=(5000, 5000),
    )
    helper.set_model_props(model, {"rdd_meta": meta.to_json()})
    onnx.save(model, str(tmp_path / "big.onnx"))
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((6, 8, 3), np.uint8))
    argv = ["--model", tmp_path / "big.onnx", "--images", tmp_path / "img", "--report", tmp_path / "r.json"]
    _bad(capfd, argv, "rdd_meta.input_size [5000, 5000] is 25000000 pixels, above the limit")
    assert not (tmp_path / "r.json").exists()
    rc, _, err = _run_main(
        capfd, [*argv, "--max-input-pixels", "25000000", "--resize", "native", "--no-progress"]
    )
    assert rc == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["frames"] == 1
    with pytest.raises(SystemExit) as e:
        cli.main([*map(str, argv), "--max-input-pixels", "0"])
    assert e.value.code == 2 and "expected a positive integer" in capfd.readouterr().err


def test_cli_help_documents_camvid_label_map():
    proc = subprocess.run(
        [sys.executable, str(INFER), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--label-map" in text and "camvid" in text and "Unlabelled" in text
    assert "--ignore-ids" in text and "--warmup" in text and "--max-frames" in text


# --------------------------------------------------------------------------- outputs vs inputs
def _refused(capfd, argv, match: str) -> str:
    """Exit 2 with one 'error:' line containing ``match``."""
    rc, out, err = _run_main(capfd, [*argv, "--no-progress"])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, (rc, err)
    assert lines[0].startswith("error: ") and match in lines[0], lines[0]
    return lines[0]


def _digest(paths) -> dict:
    import hashlib

    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_outputs_that_resolve_to_an_input_or_each_other_are_refused(
    tmp_path, capfd, tiny_onnx, synthetic_video
):
    """Issue #12 item 3: --out/--report equal to an input (also via symlink / hard link) or to each
    other used to replace it and exit 0; now: exit 2, one line, every input byte-identical."""
    import shutil

    mp4_src, masks_src, _ = synthetic_video
    mp4, masks, model = tmp_path / "v.mp4", tmp_path / "masks", tmp_path / "m.onnx"
    shutil.copy(mp4_src, mp4)
    shutil.copytree(masks_src, masks)
    shutil.copy(tiny_onnx, model)
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((48, 64, 3), np.uint8))
    (tmp_path / "link.mp4").symlink_to(mp4)
    os.link(model, tmp_path / "hard.json")
    label = masks / "frame_000001.png"
    inputs = [mp4, model, *sorted(masks.iterdir()), tmp_path / "img" / "a.png"]
    before = _digest(inputs)
    base = ["--model", model, "--video", mp4, "--labels", masks, "--label-map", "none"]
    _refused(capfd, [*base, "--out", mp4], "--out")
    _refused(capfd, [*base, "--out", tmp_path / "link.mp4"], "would overwrite the --video input")
    _refused(capfd, [*base, "--report", mp4], "would overwrite the --video input")
    _refused(capfd, [*base, "--report", model], "would overwrite the --model input")
    _refused(capfd, [*base, "--report", tmp_path / "m.json"], "--model")  # the model's sidecar
    _refused(capfd, [*base, "--report", tmp_path / "hard.json"], "hard link")
    _refused(capfd, [*base, "--report", label], "--labels")
    _refused(capfd, [*base, "--report", masks / "new.json"], "inside the --labels folder")
    _refused(
        capfd,
        ["--model", model, "--images", tmp_path / "img", "--report", tmp_path / "img" / "a.png"],
        "--images",
    )
    _refused(
        capfd,
        [*base, "--out", tmp_path / "o.mp4", "--report", tmp_path / "o.mp4"],
        "is the same path as --out",
    )
    assert _digest(inputs) == before
    assert not (tmp_path / "o.mp4").exists() and not (masks / "new.json").exists()


def test_unwritable_outputs_are_refused_before_the_first_frame(tmp_path, capfd, tiny_onnx, synthetic_video):
    """Issue #12 item 4: an unwritable --report was found only after the whole run (video written,
    figures lost); now every output is checked before any frame: nothing is written."""
    mp4, _, _ = synthetic_video
    out = tmp_path / "o.mp4"
    base = ["--model", tiny_onnx, "--video", mp4, "--out", out]
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    _refused(capfd, [*base, "--report", tmp_path / "missing" / "r.json"], "does not exist")
    _refused(capfd, [*base, "--report", tmp_path / "a_file" / "r.json"], "is not a folder")
    _refused(capfd, [*base, "--report", tmp_path / "a_dir"], "is a folder; expected a file")
    if not _can_create_in("/sys"):  # read-only even for root
        _refused(capfd, [*base, "--report", "/sys/rdd-report.json"], "cannot write in folder /sys")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]


def _can_create_in(folder: str) -> bool:
    import tempfile

    try:
        fd, p = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(p)
    return True


def test_palette_label_pngs_score_like_plain_id_pngs(tmp_path, capfd, tiny_onnx):
    """Issue #12 item 7: the same labels as a grey-palette PNG scored 1.11% mIoU against 6.49% as plain
    ids (colours read as ids), and VOC-style palette PNGs were refused; now all give one mIoU."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("img", "ids", "greypal", "voc"):
        (tmp_path / d).mkdir()
    voc = [c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]
    grey = [v for i in range(256) for v in (255 - i,) * 3]
    for i in range(2):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), rng.integers(0, 256, (48, 64, 3), np.uint8))
        m = rng.integers(0, 11, (48, 64)).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "ids" / f"f{i}.png"), m)
        for d, pal in (("greypal", grey), ("voc", voc)):
            im = Image.fromarray(m, mode="P")
            im.putpalette(pal)
            im.save(tmp_path / d / f"f{i}.png")
    mious = {}
    for d in ("ids", "greypal", "voc"):
        rc, _, err = _run_main(
            capfd,
            [
                "--model",
                tiny_onnx,
                "--images",
                tmp_path / "img",
                "--labels",
                tmp_path / d,
                "--warmup",
                "0",
                "--threads",
                "1",
                "--report",
                tmp_path / f"{d}.json",
                "--no-progress",
            ],
        )
        assert rc == 0, err
        rep = json.loads((tmp_path / f"{d}.json").read_text())
        assert rep["labelled_frames"] == 2 and rep["labels_missing"] == 0
        mious[d] = rep["miou"]
    assert mious["greypal"] == mious["ids"] == mious["voc"]


# --------------------------------------------------------------------------- early ends, signals
def _slow_video(path: Path, n: int = 400) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (128, 96))
    for i in range(n):
        frame = np.zeros((96, 128, 3), np.uint8)
        frame[:, : (i * 5) % 128] = (3 * i) % 256
        w.write(frame)
    w.release()
    return path


@pytest.mark.parametrize("sig,code,reason", [("SIGTERM", 143, "sigterm"), ("SIGINT", 130, "sigint")])
def test_signal_mid_run_keeps_a_valid_overlay_and_report(tmp_path, tiny_onnx, sig, code, reason):
    """Issue #12 item 9: SIGTERM left a hidden unplayable temp mp4 and no report; Ctrl-C exited 0 with
    no flag. Now: exit 130/143, the report says completed false + stop_reason, and the overlay
    (final name, no temp left) opens in OpenCV with the frames reported."""
    import re
    import signal
    import threading
    import time

    mp4 = _slow_video(tmp_path / "v.mp4")
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(INFER),
            "--model",
            str(tiny_onnx),
            "--video",
            str(mp4),
            "--out",
            str(out),
            "--report",
            str(report),
            "--resize",
            "384x512",
            "--threads",
            "1",
            "--queue-size",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    err = bytearray()

    def pump() -> None:
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # the progress bar says "N/400"
        done = [int(m) for m in re.findall(rb"(\d+)/400", bytes(err))]
        if done and max(done) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, bytes(err).decode(errors="replace")
    proc.send_signal(getattr(signal, sig))
    stdout = proc.stdout.read().decode()
    rc = proc.wait(timeout=120)
    reader.join(timeout=10)
    text = bytes(err).decode(errors="replace")
    assert rc == code, text
    rep = json.loads(report.read_text())
    assert rep["completed"] is False and rep["stop_reason"] == reason
    assert 3 <= rep["frames"] < 400
    assert _count_frames(out) == rep["frames"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "r.json", "v.mp4"]  # no temp
    assert f"interrupted ({sig}) after {rep['frames']} frames" in text
    assert "FPS end-to-end" in stdout and "Traceback" not in text


def test_corrupted_video_exits_2_with_the_frames_before_the_damage(tmp_path, capfd, tiny_onnx):
    """Issue #12 item 9: decoding stopped after 5 of 12 frames with exit 0 and no warning."""
    w = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(12):
        w.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    w.release()
    data = bytearray((tmp_path / "v.mp4").read_bytes())
    mdat = data.find(b"mdat")
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    data[mdat + size // 2 : mdat + size // 2 + size // 4] = bytes(size // 4)
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    rc, stdout, err = _run_main(
        capfd,
        [
            "--model",
            tiny_onnx,
            "--video",
            tmp_path / "bad.mp4",
            "--out",
            out,
            "--report",
            report,
            "--no-progress",
        ],
    )
    rep = json.loads(report.read_text())
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and "decoding stopped after" in lines[0], err
    assert rep["completed"] is False and rep["stop_reason"] == "decode_error"
    assert 0 < rep["frames"] < 12 and _count_frames(out) == rep["frames"]


_INTERRUPT_IMPORT = r"""
import os, runpy, signal, sys
class _CtrlC:  # press Ctrl-C while the runner imports onnxruntime / OpenCV
    fired = False
    def find_spec(self, name, path=None, target=None):
        if not _CtrlC.fired and name.split(".")[0] in {"onnxruntime", "cv2"}:
            _CtrlC.fired = True
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, _CtrlC())
sys.argv = ["deploy/infer.py"] + sys.argv[1:]
runpy.run_path("deploy/infer.py", run_name="__main__")
"""


def test_ctrl_c_during_imports_is_one_line_exit_130(tmp_path, tiny_onnx):
    """Issue #12 item 10: Ctrl-C during imports printed a traceback ("ImportError: initialization
    failed"); now one line and exit 130."""
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_IMPORT, "--model", str(tiny_onnx), "--images", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 130, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: interrupted (SIGINT)"), proc.stderr


def test_control_characters_from_the_model_never_reach_the_terminal(tmp_path, capfd, tiny_onnx):
    """Issue #12 item 10: an ANSI escape in rdd_meta's model name (or a file name) reached the terminal
    raw; now every printed line is escaped (the JSON report keeps the exact string)."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(tiny_onnx))
    props = {p.key: p for p in m.metadata_props}
    meta = json.loads(props["rdd_meta"].value)
    meta["model"] = "evil\x1b[2J\x1b]0;pwned\x07\u202e"
    props["rdd_meta"].value = json.dumps(meta)
    onnx.save(m, str(tmp_path / "evil.onnx"))
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((48, 64, 3), np.uint8))
    rc, stdout, err = _run_main(
        capfd, ["--model", tmp_path / "evil.onnx", "--images", tmp_path / "img", "--no-progress"]
    )  # refused by the contract, message escaped
    assert rc == 2 and "\x1b" not in stdout + err and "\x07" not in err and "\u202e" not in err
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202e" in err
    out = tmp_path / "o\x1b[2J.mp4"  # a file name in the summary line
    rc, stdout, err = _run_main(
        capfd,
        [
            "--model",
            tiny_onnx,
            "--images",
            tmp_path / "img",
            "--out",
            out,
            "--report",
            tmp_path / "r.json",
            "--no-progress",
        ],
    )
    assert rc == 0, err
    assert "\x1b" not in stdout + err and "o\\x1b[2J.mp4" in stdout
    assert json.loads((tmp_path / "r.json").read_text())["out"] == str(out)
    rc, _, err = _run_main(
        capfd, ["--model", tiny_onnx, "--video", tmp_path / "x\x1b[31m.mp4", "--no-progress"]
    )
    assert rc == 2 and "\x1b" not in err and "x\\x1b[31m.mp4" in err


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--fps", "0"),
        ("--fps", "-5"),
        ("--fps", "nan"),
        ("--fps", "inf"),
        ("--threads", "0"),
        ("--threads", "-2"),
        ("--threads", "1.5"),
        ("--warmup", "-1"),
        ("--alpha", "nan"),
        ("--alpha", "1.5"),
        ("--queue-size", "0"),
        ("--max-frames", "0"),
        ("--max-frames", "-3"),
        ("--resize", "100000x100000"),
        ("--stream-timeout", "nan"),
        ("--reconnect", "-1"),
    ],
)
def test_odd_numeric_flags_are_one_line_usage_errors(capfd, tmp_path, flag, value):
    """Issue #12 item 10: 0, negative, NaN, inf values → exit 2, one line naming the flag."""
    with pytest.raises(SystemExit) as e:
        cli.main(["--model", "m.onnx", "--images", str(tmp_path), flag, value])
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: argument {flag}") and value in lines[0], lines[0]
