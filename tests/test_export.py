"""Tests for rdd.export: ONNX export + metadata, parity gate, INT8, TensorRT skip path, errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rdd.contract import META_KEY, InputError, ModelMeta, file_sha256, read_onnx_meta, write_engine_sidecar
from rdd.export.onnx import export_onnx
from rdd.export.parity import ParityError, check_parity, compare_parity, evaluate_onnx, miou_gate
from rdd.export.quantize import quantize_int8
from rdd.export.tensorrt import (
    SKIPPED_NO_TRT,
    build_engine,
    int8_calib_cache_path,
    shape_profile,
    tensorrt_available,
)
from rdd.models import create_model
from rdd.runtime import OrtBackend, preprocess
from rdd.runtime.measure.frames import Frame, Frames, load_frames
from rdd.runtime.measure.score import predict
from rdd.spec import CAMVID_CLASSES, ClassInfo, Normalization

H, W = 64, 96
K = CAMVID_CLASSES.num_classes
REPO = Path(__file__).resolve().parents[1]


def _frames(n: int, size=(H, W), seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Smooth random images (gradients + rectangles) with matching block masks."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, rng.integers(256))], -1)
        mask = np.full((h, w), rng.integers(K), np.uint8)
        for _ in range(3):
            y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
            c = rng.integers(K)
            img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 256, 3)
            mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = c
        mask[:2] = 255  # some ignore pixels
        out.append((img.astype(np.uint8), mask))
    return out


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    m = create_model("lraspp_mobilenetv2", num_classes=K, width_mult=0.25).eval()
    # Non-trivial BN statistics so logits are not all alike.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(scope="module")
def exported(student, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return export_onnx(
        student, d / "model.onnx", classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(H, W)
    )


def _torch_logits(model, images: np.ndarray, norm=Normalization()) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(norm.apply(images)))["out"].numpy()


# ----------------------------------------------------------------------------- export + meta
def test_export_writes_meta_and_main_logits_only(student, exported):
    path = Path(exported["path"])
    meta = read_onnx_meta(path)
    assert meta == ModelMeta.build(
        model="lraspp_mobilenetv2", classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(H, W)
    )
    assert meta.to_dict()["format"] == "rdd-edge/1" and meta.input_name == "image"
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["logits"]  # no aux head, no features
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert exported["simplified"] and exported["simplify_error"] is None
    assert exported["size_bytes"] == path.stat().st_size
    assert not list(path.parent.glob(".*tmp*"))  # atomic write left nothing


def test_export_rejects_bad_arguments(student, tmp_path):
    kw = dict(classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(H, W))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(student, tmp_path / "a.onnx", opset=13, **kw)
    with pytest.raises(ValueError, match="classes"):
        export_onnx(
            student,
            tmp_path / "b.onnx",
            classes=ClassInfo(names=("a", "b")),
            normalization=Normalization(),
            input_size=(H, W),
        )
    assert not list(tmp_path.iterdir())


def test_parity_passes_on_frames(student, exported):
    rep = check_parity(student, exported["path"], _frames(3))
    assert rep["passed"] and rep["frames"] == 3 and rep["pixels"] == 3 * H * W
    assert rep["max_abs_logit_diff"] < 1e-4
    assert rep["argmax_agreement"] >= 0.999
    assert abs(rep["miou_delta"]) <= 0.0005 and 0.0 <= rep["miou_torch"] <= 1.0


def test_evaluate_torch_matches_parity_report(student, exported):
    from rdd.export.parity import evaluate_torch

    frames = _frames(2, seed=3)
    ev = evaluate_torch(student, frames, normalization=Normalization(), num_classes=K)
    rep = compare_parity(student, exported["path"], frames)
    assert ev["miou"] == pytest.approx(rep["miou_torch"]) and ev["frames"] == 2
    assert evaluate_onnx(exported["path"], frames)["miou"] == pytest.approx(rep["miou_onnx"])


def test_parity_gate_raises_when_thresholds_are_impossible(student, exported):
    with pytest.raises(ParityError, match="FAILED: argmax agreement") as ei:
        check_parity(
            student,
            exported["path"],
            _frames(2),
            thresholds={"min_argmax_agreement": 1.5, "max_abs_logit_diff": -1.0},
        )
    assert ei.value.report["passed"] is False and len(ei.value.report["failures"]) == 2
    with pytest.raises(ValueError, match="unknown threshold"):
        compare_parity(student, exported["path"], _frames(1), thresholds={"typo": 1})


def test_parity_detects_a_different_model(student, exported):
    other = create_model("lraspp_mobilenetv2", num_classes=K, width_mult=0.25).eval()
    rep = compare_parity(other, exported["path"], _frames(2))
    assert not rep["passed"] and rep["max_abs_logit_diff"] > 1e-2


@pytest.mark.parametrize("argmax,fold", [(True, False), (False, True), (True, True)])
def test_argmax_and_folded_preprocessing_agree_with_torch(student, tmp_path, argmax, fold):
    norm = Normalization(mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3), color="BGR")
    info = export_onnx(
        student,
        tmp_path / "v.onnx",
        classes=CAMVID_CLASSES,
        normalization=norm,
        input_size=(H, W),
        argmax=argmax,
        fold_preprocess=fold,
    )
    meta = read_onnx_meta(info["path"])
    assert meta.input_layout == ("NHWC" if fold else "NCHW")
    assert meta.input_dtype == ("uint8" if fold else "float32")
    assert meta.output_name == meta.output_kind == ("labels" if argmax else "logits")
    images = np.stack([f[0] for f in _frames(2)])
    sess = ort.InferenceSession(info["path"], providers=["CPUExecutionProvider"])
    feed = images if fold else norm.apply(images)
    assert feed.dtype == (np.uint8 if fold else np.float32)
    out = sess.run(None, {"image": feed})[0]
    ref = _torch_logits(student, images, norm)
    if argmax:
        assert out.dtype == np.uint8 and out.shape == (2, H, W)
        assert (out == ref.argmax(1)).mean() >= 0.999
    else:
        assert out.shape == (2, K, H, W)
        np.testing.assert_allclose(out, ref, atol=1e-4)
    assert check_parity(student, info["path"], _frames(2))["passed"]


def test_dynamic_batch_and_spatial_axes(student, exported):
    sess = ort.InferenceSession(exported["path"], providers=["CPUExecutionProvider"])
    images = np.stack([f[0] for f in _frames(3, size=(80, 128))])  # not the export size
    out = sess.run(None, {"image": Normalization().apply(images)})[0]
    assert out.shape == (3, K, 80, 128)
    np.testing.assert_allclose(out, _torch_logits(student, images), atol=1e-4)


def test_static_export_pins_the_shape(student, tmp_path):
    info = export_onnx(
        student,
        tmp_path / "s.onnx",
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(H, W),
        dynamic_batch=False,
        dynamic_spatial=False,
    )
    meta = read_onnx_meta(info["path"])
    assert meta.dynamic_batch is False and meta.dynamic_spatial is False
    inp = onnx.load(info["path"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in inp] == [1, 3, H, W]
    # Frames of another size are resized to input_size by the parity gate.
    assert compare_parity(student, info["path"], _frames(1, size=(48, 80)))["passed"]


# ----------------------------------------------------------------------------- bad files
def _rewrite(src: str, dst: Path, edit) -> Path:
    proto = onnx.load(src)
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def _set_meta(proto, **changes):
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    meta = json.loads(entry.value)
    meta.update(changes)
    entry.value = json.dumps(meta)


def test_corrupted_or_foreign_files_give_clear_errors(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        read_onnx_meta(tmp_path / "nope.onnx")
    txt = tmp_path / "notes.onnx"
    txt.write_text("this is not a protobuf \x00\xff at all" * 10)
    with pytest.raises(InputError, match="notes.onnx.*not a readable ONNX"):
        read_onnx_meta(txt)
    data = Path(exported["path"]).read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.onnx"):
        read_onnx_meta(trunc)
    bare = _rewrite(
        exported["path"], tmp_path / "bare.onnx", lambda p: p.metadata_props.__delitem__(slice(None))
    )
    with pytest.raises(InputError, match="bare.onnx.*no metadata_props\\['rdd_meta'\\]"):
        read_onnx_meta(bare)
    badjson = _rewrite(
        exported["path"],
        tmp_path / "badjson.onnx",
        lambda p: setattr(p.metadata_props[0], "value", "{not json"),
    )
    with pytest.raises(InputError, match="not valid JSON"):
        read_onnx_meta(badjson)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"input_name": "pixels"}, "input_name 'pixels'"),
        ({"output_name": "labels", "output_kind": "labels"}, "output_name 'labels' is not a graph output"),
        ({"input_layout": "NHWC", "input_dtype": "uint8"}, "dtype float32 but rdd_meta says uint8"),
        ({"classes": {"names": ["a", "b"], "ignore_index": 255}}, "11 channels but rdd_meta lists 2"),
        ({"dynamic_spatial": False}, "dynamic_spatial=False"),
        ({"format": "other/9"}, "not supported"),
        ({"normalization": {"mean": [0, 0, 0]}}, "missing key 'std'"),
    ],
)
def test_meta_inconsistent_with_graph_is_rejected(exported, tmp_path, changes, match):
    bad = _rewrite(exported["path"], tmp_path / "bad.onnx", lambda p: _set_meta(p, **changes))
    with pytest.raises(InputError, match=match) as ei:
        read_onnx_meta(bad)
    assert "bad.onnx" in str(ei.value)


@pytest.mark.parametrize("block", ["torch", "torch,onnx"])
def test_meta_reader_needs_no_torch(exported, block):
    """``rdd.export`` and ``rdd.contract`` import without torch (and without onnx → ORT)."""
    code = (
        f"import sys\nfor m in {block.split(',')!r}: sys.modules[m] = None\n"
        "import rdd.export\nfrom rdd.contract import read_onnx_meta\n"
        f"m = read_onnx_meta({exported['path']!r})\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "print(m.to_dict()['format'], m.output_name)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["rdd-edge/1", "logits"]


# ----------------------------------------------------------------------------- frames
def test_frames_helpers_golden():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    meta = ModelMeta.build(
        model="m",
        classes=CAMVID_CLASSES,
        normalization=Normalization(mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25)),
        input_size=(2, 3),
    )
    x = preprocess(img, meta)  # 1×3×2×3 (the runtime's own)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32
    # channel 1: (v/255 - 0.5) / 0.5 at pixel (0, 0) with v = 10
    np.testing.assert_allclose(x[0, 1, 0, 0], (10 / 255 - 0.5) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(x[0, 2, 1, 2], (170 / 255 - 1.0) / 0.25, rtol=1e-6)
    fmeta = meta.with_(input_layout="NHWC", input_dtype="uint8")
    assert preprocess(img, fmeta).shape == (1, 2, 3, 3)
    fr = load_frames([(img, np.zeros((2, 3), np.uint8))] * 5 + [img], size=(4, 6), limit=3)
    assert len(fr) == 3 and fr[0].image.shape == (4, 6, 3) and fr[0].mask.shape == (4, 6)
    assert fr[-1].mask is None  # the last (mask-less) frame is kept
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        load_frames([np.zeros((4, 4), np.uint8)])


# ----------------------------------------------------------------------------- INT8
@pytest.fixture(scope="module")
def int8_model(exported, tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    return quantize_int8(exported["path"], d / "model_int8.onnx", calib_frames=_frames(4, seed=1))


def test_int8_quantization_and_miou_gate(exported, int8_model):
    path = int8_model["path"]
    assert read_onnx_meta(path) == read_onnx_meta(exported["path"])  # same I/O contract
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {p.key: p.value for p in proto.metadata_props}["rdd_precision"] == "int8"
    assert int8_model["size_bytes"] < 0.6 * exported["size_bytes"]
    val = _frames(3, seed=2)
    ev32, ev8 = evaluate_onnx(exported["path"], val), evaluate_onnx(path, val)
    assert 0.0 <= ev8["miou"] <= 1.0 and ev8["frames"] == 3
    # INT8 logits stay close to FP32 ones (same argmax on most pixels).
    b32, b8 = OrtBackend(exported["path"]), OrtBackend(path)
    imgs = np.stack([f[0] for f in val])
    (l32, z32), (l8, z8) = (
        predict(b, Frames.from_arrays(list(imgs)), "native", keep_logits=True) for b in (b32, b8)
    )
    z32, z8 = np.stack(z32), np.stack(z8)
    assert np.corrcoef(z32.ravel(), z8.ravel())[0, 1] > 0.9
    # Gate mechanics: generous passes, impossible fails with a readable report.
    assert miou_gate(ev32["miou"], ev8["miou"], max_drop=1.0, what="INT8")["passed"]
    with pytest.raises(ParityError, match="INT8 accuracy gate failed") as ei:
        miou_gate(ev32["miou"], ev8["miou"], max_drop=-1.0, what="INT8")
    assert "points" in str(ei.value)


def test_miou_gate_golden():
    assert miou_gate(0.60, 0.595, max_drop=0.01, what="x")["miou_drop"] == pytest.approx(0.005)
    with pytest.raises(ParityError, match="2.000 points > 1.000 points"):
        miou_gate(0.60, 0.58, max_drop=0.01, what="x")
    with pytest.raises(ParityError):
        miou_gate(0.60, float("nan"), max_drop=0.01, what="x")


def test_quantize_rejects_bad_options(exported, tmp_path):
    with pytest.raises(ValueError, match="method"):
        quantize_int8(exported["path"], tmp_path / "q.onnx", calib_frames=_frames(1), method="magic")
    with pytest.raises(ValueError, match="quant type"):
        quantize_int8(exported["path"], tmp_path / "q.onnx", calib_frames=_frames(1), activation_type="int4")
    assert not (tmp_path / "q.onnx").exists()


# ----------------------------------------------------------------------------- TensorRT
def test_tensorrt_skip_path(exported, tmp_path):
    if tensorrt_available():
        pytest.skip("TensorRT is installed here: the skip path is not reachable")
    for prec in ("fp16", "int8"):
        res = build_engine(
            exported["path"], tmp_path / f"m_{prec}.engine", precision=prec, calib_frames=_frames(1)
        )
        assert res["status"] == SKIPPED_NO_TRT and res["path"] is None
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="precision"):
        build_engine(exported["path"], tmp_path / "m.engine", precision="int4")


def test_shape_profile(exported):
    meta = read_onnx_meta(exported["path"])
    p = shape_profile(meta, min_size=(32, 48), max_size=(128, 192), batch=(1, 2, 4))
    assert p == {"min": (1, 3, 32, 48), "opt": (2, 3, H, W), "max": (4, 3, 128, 192)}
    static = meta.with_(dynamic_spatial=False, dynamic_batch=False)
    assert shape_profile(static, max_size=(128, 192))["max"] == (1, 3, H, W)
    nhwc = meta.with_(input_layout="NHWC", input_dtype="uint8")
    assert shape_profile(nhwc)["opt"] == (1, H, W, 3)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        shape_profile(meta, min_size=(128, 192))


def test_engine_sidecar_is_what_the_runtime_reads(exported, tmp_path):
    """The sidecar build_engine writes next to an engine gives TrtBackend its meta and sizes."""
    from rdd.runtime import engine_sidecar_path, inference_size, read_engine_sidecar

    meta = read_onnx_meta(exported["path"])
    eng = tmp_path / "model_fp16.engine"
    # default profile: pinned to input_size although the graph is spatially dynamic
    side = write_engine_sidecar(
        eng,
        meta=meta,
        profile=shape_profile(meta),
        precision="fp16",
        onnx_path=exported["path"],
        extra={"tensorrt_version": "10.x"},
    )
    assert side == engine_sidecar_path(eng) == tmp_path / "model_fp16.engine.json"
    d = json.loads(side.read_text())
    assert d["format"] == "rdd-edge-engine/1" and d["rdd_meta"] == meta.to_dict()
    assert d["precision"] == "fp16" and d["onnx"] == "model.onnx"
    assert d["onnx_sha256"] == file_sha256(exported["path"]) and d["tensorrt_version"] == "10.x"
    assert d["profile"] == {"input": "image", "min": [1, 3, H, W], "opt": [1, 3, H, W], "max": [1, 3, H, W]}
    rmeta, _ = read_engine_sidecar(eng)
    assert rmeta.fixed_size == (H, W)  # → native-size frames are resized to the pinned size
    assert inference_size((360, 480), rmeta, "native") == (H, W)
    # a ranged profile: frames are clamped into [min, max]
    prof = shape_profile(meta, min_size=(32, 48), max_size=(96, 128))
    write_engine_sidecar(eng, meta=meta, profile=prof, precision="int8")
    rmeta, d = read_engine_sidecar(eng)
    assert rmeta.fixed_size is None and (rmeta.min_size, rmeta.max_size) == ((32, 48), (96, 128))
    assert inference_size((360, 480), rmeta, "native") == (96, 128)
    assert inference_size((360, 480), rmeta) == (H, W) and "onnx" not in d
    with pytest.raises(ValueError, match="profile lacks"):
        write_engine_sidecar(eng, meta=meta, profile={"min": (1, 3, H, W)}, precision="fp16")
    assert [p.name for p in tmp_path.iterdir()] == ["model_fp16.engine.json"]  # no temp files left


def test_int8_calib_cache_is_keyed_by_the_onnx_content(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"graph A")
    b.write_bytes(b"graph B")
    cache_dir = tmp_path / "out"
    cache_dir.mkdir()
    legacy = cache_dir / "trt_int8_calib.cache"
    legacy.write_bytes(b"stale")
    pa = int8_calib_cache_path(a, cache_dir)
    assert pa.name == f"trt_int8_calib_{hashlib.sha256(b'graph A').hexdigest()[:16]}.cache"
    assert not legacy.exists()  # an un-keyed cache of unknown origin is dropped
    pa.write_bytes(b"calib of A")
    assert int8_calib_cache_path(a, cache_dir) == pa and pa.exists()  # same graph: reused
    pb = int8_calib_cache_path(b, cache_dir)
    assert pb != pa and not pa.exists()  # another graph: new name, old cache deleted
    pb.write_bytes(b"calib of B")
    assert int8_calib_cache_path(a, cache_dir, prune=False) == pa and pb.exists()
    other = cache_dir / "unrelated.cache"
    other.write_bytes(b"x")
    int8_calib_cache_path(a, cache_dir)
    assert other.exists() and not pb.exists()


# ----------------------------------------------------------------------------- run_export
def _save_student(tmp_path, student):
    from rdd.artifacts import save_artifact

    save_artifact(
        tmp_path / "student" / "model.pt",
        student,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(H, W),
        metrics={"miou": 0.1},
    )
    return tmp_path / "student" / "model.pt"


@pytest.mark.parametrize("head", ["full", "lowres"])
def test_run_export_end_to_end(student, tmp_path, head):
    from rdd.export.run import run_export
    from rdd.runtime.provenance import device_info

    art = _save_student(tmp_path, student)
    cfg = {
        "variants": [{"name": "model_labels", "argmax": True, "fold_preprocess": True}],
        "parity": {"frames": 2},
        "int8": {"calib_frames": 2, "max_miou_drop": 1.0},
        "benchmark": {"warmup": 1, "runs": 2},
        "head": head,
    }
    m = run_export(
        art,
        tmp_path / "export",
        calib_dataset=[f[0] for f in _frames(2, seed=1)],
        val_dataset=_frames(2, seed=2),
        cfg=cfg,
    )
    out = tmp_path / "export"
    assert json.loads((out / "export_metrics.json").read_text()) == json.loads(json.dumps(m))
    assert m["passed"] and all(m["gates"].values())
    assert set(m["files"]) == {"onnx_fp32", "model_labels", "onnx_int8"}
    for f in m["files"].values():
        assert (out / f["path"]).stat().st_size == f["size_bytes"]
    assert set(m["miou"]) == {"torch", "ort_fp32", "ort_int8"}
    assert abs(m["miou"]["torch"] - m["miou"]["ort_fp32"]) <= 0.0005
    assert set(m["latency_ms"]) == {"torch_eager", "ort_fp32", "ort_int8"}
    assert all(v["p50"] > 0 for v in m["latency_ms"].values())
    assert m["int8"]["speedup_vs_fp32"] > 0
    assert m["device"] == device_info()  # the runner report's provenance block
    if head == "full":
        assert len(m["int8"]["float_nodes"]) == 2  # stem conv + logits Resize kept float
    else:  # a lowres graph has no logits Resize: only the stem is left in float
        assert len(m["int8"]["float_nodes"]) == 1 and m["parity"]["max_abs_logit_diff"] < 2e-3
    assert (out / "openvino").is_dir()  # one DVC output, always there
    from rdd.runtime.backends import available

    if available("openvino") is None:
        ov8 = m["openvino_int8"]
        assert ov8["status"] == "ok" and m["gates"]["openvino_int8_miou"] is True
        assert (out / "openvino" / ov8["path"]).is_file() and ov8["calib_frames"] == 2
    else:
        assert m["openvino_int8"]["status"].startswith("skipped: OpenVINO")
    assert m["eval"] == {"size": [H, W], "image_resize": "bilinear", "mask_resize": "nearest_exact"}
    if not tensorrt_available():
        assert m["tensorrt"]["fp16"]["status"] == SKIPPED_NO_TRT
        assert not list(out.rglob("*.engine*"))
        assert json.loads((out / "trt" / "status.json").read_text())["fp16"]["status"] == SKIPPED_NO_TRT
    assert m["files"]["model_labels"]["path"] == "variants/model_labels.onnx"
    assert read_onnx_meta(out / "variants" / "model_labels.onnx").output_kind == "labels"


def test_run_export_gate_failure_raises_and_records(student, tmp_path):
    from rdd.export.run import run_export

    art = _save_student(tmp_path, student)
    cfg = {
        "parity": {"frames": 2, "min_argmax_agreement": 2.0},
        "int8": {"enabled": False},
        "tensorrt": {"enabled": False},
        "benchmark": {"enabled": False},
    }
    with pytest.raises(ParityError, match="ONNX parity gate failed for .*model.onnx"):
        run_export(art, tmp_path / "export", calib_dataset=[], val_dataset=_frames(2, seed=2), cfg=cfg)
    m = json.loads((tmp_path / "export" / "export_metrics.json").read_text())
    assert m["passed"] is False and m["gates"] == {"parity_fp32": False}
    assert "argmax agreement" in m["error"]
    with pytest.raises(ValueError, match="unknown key"):
        run_export(art, tmp_path / "e2", calib_dataset=[], val_dataset=[], cfg={"int8": {"x": 1}})


# ----------------------------------------------------------------------------- real frames
def test_parity_on_camvid_val_frames(student, exported, camvid_root):
    from rdd.data import EvalTransform, build_dataset

    ds = build_dataset("camvid", root=camvid_root, split="val", transform=EvalTransform(size=(H, W)))
    frames = load_frames(ds, limit=4)  # size taken from the EvalTransform
    assert len(frames) == 4 and frames[0].image.shape == (H, W, 3)
    assert frames[0].mask.shape == (H, W) and isinstance(frames[0], Frame)
    rep = check_parity(student, exported["path"], ds, limit=4)
    assert rep["passed"] and rep["frames"] == 4 and rep["miou_torch"] is not None


def test_package_exports_resolve_lazily():
    import rdd.export as ex

    for name in ex.__all__:
        assert getattr(ex, name) is not None, name
    with pytest.raises(AttributeError):
        ex.no_such_name  # noqa: B018


def test_onnx_export_is_byte_reproducible(tmp_path, tiny_model):
    """The same weights give the same ONNX bytes (fp32, preprocessing/argmax folded, INT8),
    whatever the output or temporary file names, so DVC sees no change below a re-run stage."""

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    kw = dict(classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(48, 64))
    folded = dict(fold_preprocess=True, argmax=True, simplify=False)
    digests = {}
    for name, variant in (("fp32", {}), ("folded", folded)):
        a, b = tmp_path / f"{name}.onnx", tmp_path / f"{name}-other-name.onnx"
        export_onnx(tiny_model, a, **kw, **variant)
        export_onnx(tiny_model, b, **kw, **variant)
        assert digest(a) == digest(b), name
        digests[name] = digest(a)
    frames = [img for img, _ in _frames(2, size=(48, 64))]
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "q1.onnx", calib_frames=frames)
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "q2.onnx", calib_frames=frames)
    assert digest(tmp_path / "q1.onnx") == digest(tmp_path / "q2.onnx")
    changed = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=0.25).eval()
    with torch.no_grad():
        changed.load_state_dict(tiny_model.state_dict())
        next(changed.parameters()).add_(1e-3)
    export_onnx(changed, tmp_path / "changed.onnx", **kw, **folded)
    assert digest(tmp_path / "changed.onnx") != digests["folded"]  # the hash sees a change
