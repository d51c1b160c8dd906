"""OpenVINO backend (rdd.runtime.backends.openvino): same contract and labels as onnxruntime.

Skipped where the ``[openvino]`` extra is not installed, except the 'unavailable' message test.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from rdd.runtime import InputError, OrtBackend, open_build
from rdd.runtime.stream.transforms import preprocess
from rdd.spec import CAMVID_CLASSES, Normalization


def _needs_ov():
    return pytest.importorskip("openvino")


def _frames(n, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_openvino_unavailable_is_one_line(monkeypatch, tiny_onnx):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    with pytest.raises(InputError, match=r"OpenVINO unavailable: .*rdd-edge\[openvino\]"):
        open_build(tiny_onnx, backend="openvino")
    from rdd.runtime.backends import available

    assert available("openvino") is not None


def test_openvino_reads_onnx_meta_and_matches_ort(tiny_onnx):
    _needs_ov()
    vo = open_build(tiny_onnx, backend="openvino", threads=1)
    ro = OrtBackend(tiny_onnx, threads=1)
    assert vo.meta == ro.meta and vo.meta.input_size == (48, 64)
    assert vo.describe()["backend"] == "openvino" and vo.describe()["inference_precision"]
    for img in _frames(2):
        x = preprocess(img, vo.meta, (48, 64))
        np.testing.assert_allclose(vo.forward(x), ro.forward(x), atol=1e-4)
        np.testing.assert_array_equal(vo.infer(x), ro.infer(x))
    # another size recompiles for that shape (dynamic-spatial export)
    x = preprocess(_frames(1, 32, 40)[0], vo.meta, (32, 40))
    assert vo.infer(x).shape == (1, 32, 40)
    np.testing.assert_array_equal(vo.infer(x), ro.infer(x))


def test_openvino_folded_uint8_labels_model(tmp_path, tiny_model):
    _needs_ov()
    from rdd.export import export_onnx

    path = tmp_path / "fixed.onnx"
    export_onnx(
        tiny_model,
        path,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(48, 64),
        argmax=True,
        fold_preprocess=True,
        dynamic_spatial=False,
        simplify=False,
    )
    vo, ro = open_build(path, backend="openvino"), OrtBackend(path)
    assert vo.meta.input_layout == "NHWC" and vo.meta.input_dtype == "uint8"
    assert vo.meta.output_kind == "labels" and vo.meta.fixed_size == (48, 64)
    x = np.stack(_frames(2))
    np.testing.assert_array_equal(vo.infer(x), ro.infer(x))


def test_openvino_ir_roundtrip_keeps_meta(tmp_path, tiny_onnx):
    ov = _needs_ov()
    from rdd.export.openvino import save_ir

    meta = json.loads(ov.Core().read_model(str(tiny_onnx)).get_rt_info(["framework", "rdd_meta"]).astype(str))
    xml = save_ir(ov.Core().read_model(str(tiny_onnx)), tmp_path / "m.xml", meta)
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]  # no temporaries
    vo = open_build(xml)  # auto: .xml → openvino
    assert vo.name == "openvino" and vo.meta == OrtBackend(tiny_onnx).meta
    x = preprocess(_frames(1)[0], vo.meta, (48, 64))
    np.testing.assert_array_equal(vo.infer(x), OrtBackend(tiny_onnx).infer(x))


def test_openvino_bad_models(tmp_path):
    _needs_ov()
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    no_meta = tmp_path / "nometa.onnx"
    no_meta.write_bytes(m.SerializeToString())
    with pytest.raises(InputError, match="no 'rdd_meta' metadata"):
        open_build(no_meta, backend="openvino")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="OpenVINO cannot read the model"):
        open_build(junk, backend="openvino")
    with pytest.raises(InputError, match="model file not found"):
        open_build(tmp_path / "missing.onnx", backend="openvino")


def test_runner_cli_backend_openvino(tmp_path, tiny_onnx):
    _needs_ov()
    import cv2

    from rdd.runtime.cli import main

    (tmp_path / "img").mkdir()
    for i, img in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), img)
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "--model",
                str(tiny_onnx),
                "--backend",
                "openvino",
                "--images",
                str(tmp_path / "img"),
                "--warmup",
                "0",
                "--report",
                str(report),
                "--no-progress",
            ]
        )
        == 0
    )
    rep = json.loads(report.read_text())
    assert rep["backend"] == "openvino" and rep["frames"] == 3 and rep["device"]["openvino"]


def test_openvino_and_nncf_telemetry_off_in_what_the_project_runs(tmp_path, tiny_onnx):
    """A bare ``import openvino`` writes a client id under ``~/intel`` (and sends a usage event);
    the project's imports (rdd.offline) leave both OpenVINO's and NNCF's telemetry stubbed: the
    runner's OpenVINO backend and NNCF write nothing there. Checked in plain interpreters with a
    private HOME (pytest itself already silences NNCF)."""
    pytest.importorskip("openvino")
    import importlib.util
    import os
    import subprocess

    def run(code: str, home) -> None:
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CI", "TF_BUILD", "JENKINS_URL", "NNCF_CI", "NNCF_DEV")
        }
        subprocess.run([sys.executable, "-c", code], env={**env, "HOME": str(home)}, check=True, timeout=120)

    bare = tmp_path / "bare"
    run("import openvino", bare)
    assert (bare / "intel").is_dir()  # the control: telemetry is on without the project
    ours = tmp_path / "ours"
    nncf = (
        "from rdd.offline import import_nncf; import_nncf(); "
        "import nncf.telemetry.wrapper as w; assert type(w.telemetry).__name__ == 'MagicMock'; "
        if importlib.util.find_spec("nncf")
        else ""
    )
    run(
        "import sys; from rdd.runtime import open_build; "
        f"b = open_build({str(tiny_onnx)!r}, backend='openvino'); "
        f"{nncf}"
        "assert sys.modules['openvino_telemetry'] is None",
        ours,
    )
    assert not (ours / "intel").exists(), sorted(p.name for p in (ours / "intel").iterdir())


@pytest.mark.parametrize("asked", ["fp32", "bf16", "fp16"])
def test_openvino_reports_the_precision_that_ran(tmp_path, asked):
    """Issue #34: ``--precision`` is a hint to OpenVINO; the backend and the report name what the
    compiled model runs (``INFERENCE_PRECISION_HINT`` read back), not what was asked: fp32 runs
    fp32, bf16 runs bf16 on a CPU that has it, and fp16 is not claimed on a CPU without FP16."""
    ov = _needs_ov()
    import cv2
    from toy_onnx import toy_onnx

    from rdd.runtime.cli import main

    caps = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if asked == "bf16" and "BF16" not in caps:
        pytest.skip(f"this CPU has no BF16 (OpenVINO's CPU OPTIMIZATION_CAPABILITIES: {sorted(caps)})")
    model = toy_onnx(tmp_path / "toy.onnx")
    be = open_build(model, backend="openvino", precision=asked, threads=1)
    hint = be.describe()["inference_precision"]  # OpenVINO's own name of what it compiled
    ran = asked
    if asked == "fp16" and "FP16" not in caps:  # OpenVINO runs another precision: that is named
        ran = be.precision
        assert ran in ("bf16", "fp32"), ran
    assert be.precision == ran and be.describe()["precision"] == ran, (asked, be.precision)
    assert hint == {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[ran], hint
    (tmp_path / "img").mkdir()
    for i, img in enumerate(_frames(2, 8, 8)):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), img)
    report = tmp_path / "r.json"
    argv = ["--model", str(model), "--backend", "openvino", "--precision", asked, "--threads", "1"]
    argv += ["--images", str(tmp_path / "img"), "--warmup", "0", "--no-progress", "--report", str(report)]
    assert main(argv) == 0
    rep = json.loads(report.read_text())
    assert rep["backend"] == "openvino" and rep["precision"] == ran, rep["precision"]
