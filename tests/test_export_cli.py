"""``rdd-export`` (issue #34 point 4): a user's own model to the builds the runtime runs, with the
export stage's gates and ``rdd_meta``; the ONNX path needs no PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Images and masks (train ids of CamVid's 11 classes) at 48×64."""
    d = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    (d / "img").mkdir()
    (d / "lab").mkdir()
    for i in range(6):
        cv2.imwrite(str(d / "img" / f"f{i}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(d / "lab" / f"f{i}.png"), rng.integers(0, 11, (48, 64)).astype(np.uint8))
    return d


def _run(*args) -> tuple[int, str]:
    from rdd.export.cli import main

    return main([str(a) for a in args]), ""


def test_onnx_to_lowres_uint8_int8_keeps_the_labels(tiny_onnx, frames, tmp_path):
    """An .onnx → lowres head + uint8 input + INT8: the FP32 build gives the source's labels on
    every pixel (the gate), INT8 passes its mIoU gate, and every build names its source."""
    from rdd.contract import file_sha256, read_onnx_meta, read_onnx_props

    out = tmp_path / "e"
    rc, _ = _run(
        tiny_onnx,
        "--to",
        "onnx",
        "int8",
        "--head",
        "lowres",
        "--fold-preprocess",
        "--calib",
        frames / "img",
        "--val-labels",
        frames / "lab",
        "--label-map",
        "none",
        "--max-miou-drop",
        "1.0",
        "--out",
        out,
    )
    assert rc == 0
    m = json.loads((out / "export_metrics.json").read_text())
    assert m["passed"] and m["gates"] == {"parity_fp32": True, "int8_miou": True}
    assert m["parity"]["argmax_agreement"] == 1.0 and m["parity"]["miou_delta"] == 0.0
    meta = read_onnx_meta(out / "model.onnx")
    assert meta.head == "lowres" and meta.output_stride == 8 and meta.input_dtype == "uint8"
    src = file_sha256(tiny_onnx)
    assert read_onnx_props(out / "model.onnx")["rdd_source_sha256"] == src
    assert read_onnx_props(out / "model_int8.onnx")["rdd_source_sha256"] == file_sha256(out / "model.onnx")
    assert read_onnx_props(out / "model_int8.onnx")["rdd_precision"] == "int8"


def test_onnx_path_needs_no_torch(tiny_onnx, frames, tmp_path):
    """On a device with the runtime and onnx only (no torch, no PyYAML), the ONNX path runs."""
    code = (
        "import sys\n"
        "class H:\n"
        "    def find_spec(self, n, p=None, t=None):\n"
        "        if n.split('.')[0] in ('torch', 'yaml'): raise ModuleNotFoundError(n, name=n)\n"
        "sys.meta_path.insert(0, H())\n"
        "from rdd.export.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules and 'yaml' not in sys.modules\n"
        "sys.exit(rc)\n"
    )
    out = tmp_path / "e"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tiny_onnx),
            "--to",
            "onnx",
            "int8",
            "--calib",
            str(frames / "img"),
            "--val-labels",
            str(frames / "lab"),
            "--label-map",
            "none",
            "--max-miou-drop",
            "1.0",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "model_int8.onnx").is_file()


def test_pt_to_onnx_uses_the_export_stages_parity_gate(tiny_model, frames, tmp_path):
    from rdd.artifacts import save_artifact
    from rdd.contract import read_onnx_meta
    from rdd.spec import CAMVID_CLASSES, Normalization

    pt = tmp_path / "m" / "model.pt"
    save_artifact(pt, tiny_model, classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(48, 64))
    out = tmp_path / "e"
    rc, _ = _run(
        pt,
        "--to",
        "onnx",
        "--head",
        "full",
        "--val",
        frames / "img",
        "--val-labels",
        frames / "lab",
        "--label-map",
        "none",
        "--out",
        out,
    )
    assert rc == 0
    m = json.loads((out / "export_metrics.json").read_text())
    assert m["gates"]["parity_fp32"] and m["parity"]["max_abs_logit_diff"] < 2e-3
    assert read_onnx_meta(out / "model.onnx").head == "full"


def test_bad_input_is_one_line_and_writes_nothing(tiny_onnx, frames, tmp_path, capsys):
    import shutil

    from rdd.export.cli import main

    out = tmp_path / "e"
    src = tmp_path / "src" / "model.onnx"  # its folder as --out: model.onnx is the input
    src.parent.mkdir()
    shutil.copy(tiny_onnx, src)
    before = src.read_bytes()
    assert main([str(tmp_path / "nope.onnx"), "--out", str(out)]) == 2
    assert main([str(tiny_onnx), "--to", "int8", "--out", str(out)]) == 2  # no --calib
    assert main([str(src), "--out", str(src.parent)]) == 2
    assert src.read_bytes() == before
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 3 and all(ln.startswith("error: ") for ln in err), err
    assert "--calib" in err[1] and "would overwrite" in err[2]
    assert not out.exists()


def test_version_and_engine_status_lines(tiny_onnx, tmp_path, capsys):
    """``--version``; ``--to engine`` says per precision what happened (here TensorRT is absent:
    skipped, and no engine file is written)."""
    from rdd.export.cli import main
    from rdd.export.tensorrt import tensorrt_available

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("rdd-export 0.")
    out = tmp_path / "e"
    assert main([str(tiny_onnx), "--to", "engine", "--precisions", "fp16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    if tensorrt_available():
        assert "engine fp16: ok" in printed and (out / "trt" / "model_fp16.engine").is_file()
    else:
        assert "engine fp16: skipped: TensorRT unavailable" in printed
        assert not list((out / "trt").glob("*.engine"))
