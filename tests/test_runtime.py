"""rdd.runtime: metadata, backends, preprocessing, overlay, sources, labels and the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdd.metrics import ConfusionMatrix
from rdd.runtime import (
    ImageFolderSource,
    InputError,
    LabelFolder,
    ModelMeta,
    OrtBackend,
    OverlayRenderer,
    Pipeline,
    PipelineConfig,
    TrtBackend,
    VideoSource,
    apply_profile,
    engine_sidecar_path,
    inference_size,
    logits_to_labels,
    open_build,
    parse_resize,
    preprocess,
    read_engine_sidecar,
    resize_labels,
    resolve_ignore_ids,
)
from rdd.spec import CAMVID_CLASSES, ClassInfo, Normalization, overlay

REPO = Path(__file__).resolve().parents[1]
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from rdd.data import EvalTransform  # noqa: E402  (needs torch)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tiny_onnx_fixed_labels(tmp_path_factory, tiny_model) -> Path:
    """Fixed 48×64, uint8 NHWC input (preprocessing folded in), uint8 labels output."""
    from rdd.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny_fixed.onnx"
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
    return path


def _meta_dict(**over) -> dict:
    """rdd_meta of a dynamic NCHW float → logits model (CamVid classes, input_size 8×8)."""
    d = ModelMeta.build(
        model="toy", classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(8, 8)
    ).to_dict()
    d.update(over)
    return d


def _identity_onnx(path: Path, in_shape: list, *, meta: dict | None) -> Path:
    """A one-node graph (Identity) with the given input shape, optionally with rdd_meta."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, in_shape)
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        helper.set_model_props(model, {"rdd_meta": json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def _write_images(root: Path, n: int, size=(40, 56), *, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    imgs = []
    for i in range(n):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"img_{i:03d}.png"), img[..., ::-1])
        imgs.append(img)
    return imgs


# --------------------------------------------------------------------------- pure functions
@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_preprocess_normalization_bit_identical_to_spec(color):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    norm = Normalization(mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.7), color=color)
    meta = ModelMeta.from_dict(_meta_dict(normalization=norm.to_dict()))  # dynamic: no resize
    got = preprocess(img, meta)[0]
    assert got.dtype == np.float32 and got.shape == (3, 17, 23)
    np.testing.assert_array_equal(got, norm.apply(img))


def test_preprocess_resizes_fixed_models_and_keeps_dynamic_native():
    meta = ModelMeta.from_dict(_meta_dict(dynamic_spatial=False, input_size=[8, 12]))
    img = np.full((20, 30, 3), 255, np.uint8)
    x = preprocess(img, meta)
    assert x.shape == (1, 3, 8, 12) and x.dtype == np.float32
    # (255/255 - 0.485) / 0.229 on channel 0
    assert x[0, 0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-6)
    dyn = ModelMeta.from_dict(_meta_dict())
    assert preprocess(img, dyn).shape == (1, 3, 20, 30)
    assert preprocess(img, dyn, (10, 16)).shape == (1, 3, 10, 16)
    nhwc = ModelMeta.from_dict(_meta_dict(input_layout="NHWC", input_dtype="uint8"))
    x = preprocess(img, nhwc)
    assert x.shape == (1, 20, 30, 3) and x.dtype == np.uint8


@pytest.mark.parametrize("src,dst", [((37, 53), (24, 32)), ((20, 30), (47, 71)), ((40, 56), (48, 64))])
def test_label_resize_matches_eval_transform(src, dst):
    """Non-integer ratios: the runtime's label resize is EvalTransform's (INTER_NEAREST_EXACT)."""
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 11, src).astype(np.uint8)
    lab[0] = 255
    img = np.zeros((*src, 3), np.uint8)
    _, ref = EvalTransform(dst)(img, lab)
    got = resize_labels(lab, dst)
    assert got.shape == dst
    np.testing.assert_array_equal(got, ref.numpy())
    if src == (20, 30):  # and INTER_NEAREST (the old resize) would differ: the test can fail
        old = cv2.resize(lab, dst[::-1], interpolation=cv2.INTER_NEAREST)
        assert not np.array_equal(old, got)


def test_resize_labels_golden_half_pixel_centres():
    # 3 → 2 columns: output centres at x = 0.75, 2.25 in source pixels → source columns 0 and 2
    lab = np.array([[0, 1, 2]], np.uint8)
    np.testing.assert_array_equal(resize_labels(lab, (1, 2)), [[0, 2]])


def test_inference_size_modes():
    dyn = ModelMeta.from_dict(_meta_dict(input_size=[48, 64]))
    assert inference_size((40, 56), dyn) == (48, 64)  # default: the model's size
    assert inference_size((40, 56), dyn, "model") == (48, 64)
    assert inference_size((40, 56), dyn, "native") == (40, 56)
    assert inference_size((40, 56), dyn, (30, 30)) == (30, 30)
    assert inference_size((40, 56), dyn.with_(input_size=None)) == (40, 56)
    fixed = dyn.with_(dynamic_spatial=False)
    assert inference_size((40, 56), fixed, "native") == (48, 64)
    with pytest.raises(InputError, match="only accepts 48x64"):
        inference_size((40, 56), fixed, (30, 30))
    ranged = dyn.with_(min_size=(32, 32), max_size=(64, 96))
    assert inference_size((20, 200), ranged, "native") == (32, 96)  # clamped per axis
    assert inference_size((40, 56), ranged, "native") == (40, 56)
    with pytest.raises(InputError, match="outside the engine's profile"):
        inference_size((40, 56), ranged, (16, 16))
    assert parse_resize(None) == "model" and parse_resize("360x480") == (360, 480)
    assert parse_resize("NATIVE") == "native" and parse_resize([3, 4]) == (3, 4)
    for bad in ("big", "0x3", "1,2,3", (1,)):
        with pytest.raises(InputError, match="resize must be") as e:
            parse_resize(bad)
        assert e.value.as_flags().startswith("--resize must be")  # the key, spelled as its flag by the CLI


def test_apply_profile_pinned_ranged_and_errors():
    meta = ModelMeta.from_dict(_meta_dict(input_size=[360, 480]))
    pinned = apply_profile(meta, (1, 3, 360, 480), (1, 3, 360, 480))
    assert pinned.fixed_size == (360, 480) and not pinned.dynamic_spatial
    assert not pinned.dynamic_batch
    ranged = apply_profile(meta, (1, 3, 240, 320), (4, 3, 720, 960))
    assert ranged.fixed_size is None and ranged.dynamic_batch
    assert (ranged.min_size, ranged.max_size) == ((240, 320), (720, 960))
    nhwc = meta.with_(input_layout="NHWC", input_dtype="uint8")
    assert apply_profile(nhwc, (1, 8, 9, 3), (1, 8, 9, 3)).fixed_size == (8, 9)
    with pytest.raises(InputError, match="exceeds"):
        apply_profile(meta, (1, 3, 50, 50), (1, 3, 40, 60))
    with pytest.raises(InputError, match="4 positive ints"):
        apply_profile(meta, (1, 3, 50), (1, 3, 50, 50))
    # round-trips through to_dict / from_dict
    assert ModelMeta.from_dict(ranged.to_dict()) == ranged


def test_read_engine_sidecar(tmp_path):
    eng = tmp_path / "model_fp16.engine"
    assert engine_sidecar_path(eng) == tmp_path / "model_fp16.engine.json"
    assert read_engine_sidecar(eng) is None
    side = engine_sidecar_path(eng)
    side.write_text(
        json.dumps(
            {
                "format": "rdd-edge-engine/1",
                "rdd_meta": _meta_dict(input_size=[48, 64]),
                "precision": "fp16",
                "profile": {
                    "input": "image",
                    "min": [1, 3, 48, 64],
                    "opt": [1, 3, 48, 64],
                    "max": [1, 3, 48, 64],
                },
            }
        )
    )
    meta, d = read_engine_sidecar(eng)
    assert meta.fixed_size == (48, 64) and d["precision"] == "fp16"
    side.write_text(json.dumps(_meta_dict()))  # a bare rdd_meta is not an engine sidecar
    with pytest.raises(InputError, match="'rdd_meta' object"):
        read_engine_sidecar(eng)
    side.write_text("{")
    with pytest.raises(InputError, match="cannot read engine metadata"):
        read_engine_sidecar(eng)


def test_overlay_renderer_matches_spec_overlay():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (31, 29, 3), dtype=np.uint8)
    lab = rng.integers(0, 11, (31, 29)).astype(np.uint8)
    lab[:3] = 255  # ignored pixels blend with black, as in rdd.spec.colorize
    for alpha in (0.0, 0.35, 0.5, 1.0):
        got = OverlayRenderer(CAMVID_CLASSES, alpha)(img, lab)
        ref = overlay(img, lab, CAMVID_CLASSES, alpha=alpha)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_logits_to_labels_golden():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 0, 0, 0] = 5  # class 0 at (0,0)
    logits[0, 2, 0, 1] = 1  # class 2 at (0,1)
    logits[0, 1, 1, :] = 3  # class 1 on the bottom row
    np.testing.assert_array_equal(logits_to_labels(logits, "logits"), [[[0, 2], [1, 1]]])
    lab = np.array([[[[4, 7]]]], np.int64)  # N×1×H×W labels
    out = logits_to_labels(lab, "labels")
    assert out.dtype == np.uint8 and out.tolist() == [[[4, 7]]]
    with pytest.raises(InputError, match="N×K×H×W"):
        logits_to_labels(np.zeros((2, 3)), "logits")


def test_model_meta_parsing_errors_name_the_key():
    with pytest.raises(InputError, match="'classes'"):
        ModelMeta.from_dict({k: v for k, v in _meta_dict().items() if k != "classes"}, source="m.onnx")
    with pytest.raises(InputError, match="input_layout"):
        ModelMeta.from_dict(_meta_dict(input_layout="NCWH"))
    with pytest.raises(InputError, match="not valid JSON"):
        ModelMeta.from_json("{nope")
    m = ModelMeta.from_artifact_json(
        {
            "model": "x",
            "model_kwargs": {},
            "input_size": [4, 6],
            "classes": CAMVID_CLASSES.to_dict(),
            "normalization": Normalization().to_dict(),
        }
    )
    assert m.input_layout == "NCHW" and m.output_kind == "logits" and m.input_size == (4, 6)
    assert ModelMeta.from_dict(m.to_dict()) == m


def test_resolve_ignore_ids():
    assert resolve_ignore_ids("auto", [], CAMVID_CLASSES) == (11,)
    other = ClassInfo(names=("a", "b"))
    assert resolve_ignore_ids("auto", [], other) == ()
    assert resolve_ignore_ids("camvid", [200], other) == (11, 200)
    assert resolve_ignore_ids("none", [], CAMVID_CLASSES) == ()
    with pytest.raises(InputError, match="class ids"):
        resolve_ignore_ids("none", [3], CAMVID_CLASSES)


# --------------------------------------------------------------------------- backends
def test_ort_backend_meta_and_parity_with_torch(tiny_onnx, tiny_model):
    be = OrtBackend(tiny_onnx, device="cpu", threads=1)
    m = be.meta
    assert m.classes == CAMVID_CLASSES and m.model == "lraspp_mobilenetv2"
    assert m.input_layout == "NCHW" and m.dynamic_spatial and m.fixed_size is None
    img = np.random.default_rng(3).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    x = np.concatenate([preprocess(i, m) for i in img])
    labels = be.infer(x)
    assert labels.shape == (2, 40, 56) and labels.dtype == np.uint8 and labels.max() < 11
    with torch.no_grad():
        ref = tiny_model(torch.from_numpy(x))["out"].argmax(1).numpy()
    assert (labels == ref).mean() > 0.99
    d = be.describe()
    assert d["backend"] == "ort" and d["providers"] == ["CPUExecutionProvider"]


def test_ort_backend_fixed_size_folded_labels_model(tiny_onnx_fixed_labels, tiny_onnx):
    be = OrtBackend(tiny_onnx_fixed_labels)
    m = be.meta
    assert m.fixed_size == (48, 64) and m.input_layout == "NHWC" and m.input_dtype == "uint8"
    assert m.output_kind == "labels"
    img = np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    x = preprocess(img, m)
    assert x.shape == (1, 48, 64, 3)
    labels = be.infer(np.concatenate([x, x]))  # batch 2 through a batch-dynamic graph
    ref_be = OrtBackend(tiny_onnx)
    ref = ref_be.infer(preprocess(img, ref_be.meta, (48, 64)))
    assert labels.shape == (2, 48, 64)
    assert (labels[0] == ref[0]).mean() > 0.98 and (labels[1] == labels[0]).all()


def test_ort_backend_rejects_bad_models(tmp_path, tiny_onnx):
    with pytest.raises(InputError, match="not an image|rank 2"):
        OrtBackend(_identity_onnx(tmp_path / "vec.onnx", ["N", 10], meta=_meta_dict()))
    with pytest.raises(InputError, match="1 channels"):
        OrtBackend(_identity_onnx(tmp_path / "gray.onnx", ["N", 1, 8, 8], meta=_meta_dict()))
    with pytest.raises(InputError, match="no 'rdd_meta' metadata"):
        OrtBackend(_identity_onnx(tmp_path / "plain.onnx", ["N", 3, 8, 8], meta=None))
    with pytest.raises(InputError, match="model file not found"):
        OrtBackend(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(InputError, match="cannot load ONNX model"):
        OrtBackend(tmp_path / "garbage.onnx")
    with pytest.raises(InputError, match="CUDAExecutionProvider.*available: .*CPUExecutionProvider"):
        OrtBackend(tiny_onnx, device="cuda")
    with pytest.raises(InputError, match="cannot tell the backend"):
        open_build(tmp_path / "model.bin")


def test_ort_backend_reads_sidecar_meta(tmp_path):
    path = _identity_onnx(tmp_path / "side.onnx", ["N", 3, "H", "W"], meta=None)
    three = ClassInfo(names=("a", "b", "c")).to_dict()  # the identity graph has 3 channels
    (tmp_path / "side.json").write_text(json.dumps({"rdd_meta": _meta_dict(model="sidecar", classes=three)}))
    be = OrtBackend(path)
    assert be.meta.model == "sidecar"


def test_trt_backend_unavailable_is_a_clear_error(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"\0")
    with pytest.raises(InputError, match="TensorRT unavailable"):
        TrtBackend(eng)
    with pytest.raises(InputError, match="engine file not found"):
        TrtBackend(tmp_path / "none.engine")


def test_torch_backend_on_artifact_matches_ort(tmp_path, tiny_model, tiny_onnx):
    from rdd.artifacts import save_artifact
    from rdd.runtime import TorchBackend

    save_artifact(
        tmp_path / "student.pt",
        tiny_model,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(48, 64),
    )
    tb = TorchBackend(tmp_path / "student.pt")
    assert tb.meta.classes == CAMVID_CLASSES and tb.meta.model == "lraspp_mobilenetv2"
    img = np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    x = preprocess(img, tb.meta)
    assert (tb.infer(x) == OrtBackend(tiny_onnx).infer(x)).mean() > 0.99


# --------------------------------------------------------------------------- sources & labels
def test_image_folder_and_labels_by_stem(tmp_path):
    _write_images(tmp_path / "img", 3)
    (tmp_path / "img" / "notes.txt").write_text("ignored")
    src = ImageFolderSource(tmp_path / "img")
    frames = list(src)
    assert [n for n, _ in frames] == ["img_000", "img_001", "img_002"] and len(src) == 3
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    mask = np.array([[0, 11, 3], [255, 11, 1]], np.uint8)
    cv2.imwrite(str(lab_dir / "img_001.png"), mask)
    labels = LabelFolder(lab_dir, by_index=False, ignore_ids=(11,))
    assert labels.path_for(0, "img_000") is None
    p = labels.path_for(1, "img_001")
    np.testing.assert_array_equal(labels.load(p, (2, 3)), [[0, 255, 3], [255, 255, 1]])
    with pytest.raises(InputError, match="is 3×2 but its frame is 56×40"):
        labels.load(p, (40, 56))
    assert labels.check_matches(["img_000", "img_001"]) == 1
    with pytest.raises(InputError, match="matches an input frame"):
        labels.check_matches(["zzz"])


def test_labels_by_frame_index(tmp_path):
    """Issue #12 item 7: video masks are paired by frame index only. Pairing other names by sorted
    order (the old fallback: frame 0 ↔ a.png, frame 1 ↔ b.png) shifted every later frame after one
    missing file, silently; such a folder is now a one-line error."""
    for name in ("b.png", "a.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match=r"has no frame_%06d\.png masks \(e\.g\. 'a'\)"):
        LabelFolder(tmp_path, by_index=True)
    cv2.imwrite(str(tmp_path / "frame_000005.png"), np.zeros((2, 2), np.uint8))
    lf = LabelFolder(tmp_path, by_index=True)
    assert lf.path_for(5, "frame_000005").name == "frame_000005.png"
    assert lf.path_for(0, "frame_000000") is None


def test_source_errors(tmp_path):
    with pytest.raises(InputError, match="video not found"):
        VideoSource(tmp_path / "none.mp4")
    (tmp_path / "bad.mp4").write_text("garbage")
    with pytest.raises(InputError, match="cannot open video"):
        VideoSource(tmp_path / "bad.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        ImageFolderSource(tmp_path / "empty")


# --------------------------------------------------------------------------- pipeline
def test_pipeline_report_and_metric_match_direct_evaluation(tmp_path, tiny_onnx):
    imgs = _write_images(tmp_path / "img", 6)
    rng = np.random.default_rng(7)
    (tmp_path / "lab").mkdir()
    masks = []
    for i in range(6):
        m = rng.integers(0, 11, (40, 56)).astype(np.uint8)
        m[:4] = 255
        cv2.imwrite(str(tmp_path / "lab" / f"img_{i:03d}.png"), m)
        masks.append(m)
    be = OrtBackend(tiny_onnx, threads=1)
    out = tmp_path / "o.mp4"
    seen = []
    # default resize "model": frames 40×56 run at the model's input_size 48×64, and mIoU is
    # scored there with labels resized like EvalTransform(size=(48, 64))
    cfg = PipelineConfig(warmup=2, out=out, progress=seen.append)
    rep = Pipeline(
        be,
        ImageFolderSource(tmp_path / "img"),
        labels=LabelFolder(tmp_path / "lab", by_index=False),
        config=cfg,
    ).run()
    cm = ConfusionMatrix(11)
    for img, m in zip(imgs, masks):
        x = torch.from_numpy(preprocess(img, be.meta, (48, 64)))
        _, y = EvalTransform((48, 64))(img, m)
        cm.update(be.infer(x.numpy())[0], y.numpy())
    assert rep["miou"] == pytest.approx(cm.compute()["miou"])
    assert rep["frames"] == 6 and rep["measured_frames"] == 4 and rep["labelled_frames"] == 6
    assert rep["inference_size"] == [48, 64] and rep["frame_size"] == [40, 56]
    assert rep["resize"] == "model" and rep["model_input_size"] == [48, 64]
    assert rep["miou_scored_at"] == "inference_size"
    assert set(rep["stages_ms"]) == {"decode", "preprocess", "inference", "postprocess"}
    lat = rep["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert rep["fps"] > 0 and rep["inference_fps"] > 0
    assert set(rep["iou"]) == set(CAMVID_CLASSES.names)
    assert seen == [1, 2, 3, 4, 5, 6]
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.mp4")]  # no temp left


def test_pipeline_error_in_reader_thread_propagates_and_leaves_no_output(tmp_path, tiny_onnx):
    _write_images(tmp_path / "img", 5)
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "lab" / "img_003.png"), np.zeros((10, 10), np.uint8))
    out = tmp_path / "o.mp4"
    pipe = Pipeline(
        OrtBackend(tiny_onnx),
        ImageFolderSource(tmp_path / "img"),
        labels=LabelFolder(tmp_path / "lab", by_index=False),
        config=PipelineConfig(out=out, queue_size=1),
    )
    with pytest.raises(InputError, match="img_003.png is 10×10"):
        pipe.run()
    assert list(tmp_path.iterdir()) and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]


def test_pipeline_max_frames_on_video(tmp_path, tiny_onnx):
    path = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(8):
        w.write(np.full((48, 64, 3), 30 * i, np.uint8))
    w.release()
    src = VideoSource(path)
    assert src.fps == pytest.approx(10.0)
    rep = Pipeline(OrtBackend(tiny_onnx), src, config=PipelineConfig(warmup=0, max_frames=5)).run()
    assert rep["frames"] == 5 and rep["measured_frames"] == 5 and "miou" not in rep
    assert rep["source"]["kind"] == "video"


def test_runtime_import_does_not_import_torch():
    code = (
        "import sys, rdd.runtime, rdd.runtime.backends, rdd.runtime.timing, "
        "rdd.runtime.provenance, rdd.runtime.backends.openvino, rdd.runtime.backends.ort, "
        "rdd.runtime.backends.trt, rdd.runtime.backends.torch, rdd.runtime.measure.score, "
        "rdd.runtime.measure.bench, rdd.runtime.measure.bench_report, rdd.runtime.bench_cli, "
        "rdd.runtime.stream.stream, rdd.runtime.runner, rdd.runtime.cli, rdd.runtime.segmenter, "
        "rdd.runtime.zoo; rdd.runtime.provenance.device_info(); "
        "assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_report_json_safe_and_summary_line():
    from rdd.runtime.runner import json_safe as _json_safe
    from rdd.runtime.stream.summary import format_summary

    rep = {
        "model": "m",
        "backend": "ort",
        "device": "cpu",
        "frames": 3,
        "inference_size": [4, 6],
        "resize": "native",
        "fps": float("nan"),
        "inference_fps": 12.5,
        "miou": float("nan"),
        "labelled_frames": 0,
        "latency_ms": {"mean": 1.0, "p50": 1.0, "p90": float("inf"), "p99": 2.0},
        "iou": {"a": None, "b": 0.5},
    }
    safe = _json_safe(rep)
    assert safe["fps"] is None and safe["miou"] is None and safe["latency_ms"]["p90"] is None
    json.dumps(safe, allow_nan=False)  # strict JSON
    line = format_summary(safe)
    assert (
        "\n" not in line and "inference 12.5 FPS" in line and "4×6 (native)" in line and "mIoU nan%" in line
    )


def test_check_outputs_folder_outputs_and_nesting(tmp_path):
    """Folder outputs (e.g. per-frame masks) may not be an input folder, inside one, or hold/share
    another output's path; unrelated paths pass."""
    from rdd.runtime.stream.outputs import check_outputs

    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.png").write_bytes(b"x")
    ins = {"--labels": tmp_path / "labels", "--video": tmp_path / "v.mp4"}
    with pytest.raises(InputError, match="--save-masks .* would overwrite the --labels folder"):
        check_outputs({"--save-masks": (tmp_path / "labels", "dir")}, ins)
    with pytest.raises(InputError, match="inside the --labels folder"):
        check_outputs({"--save-masks": (tmp_path / "labels" / "pred", "dir")}, ins)
    with pytest.raises(InputError, match="--report .* is inside / contains --save-masks"):
        check_outputs(
            {"--save-masks": (tmp_path / "pred", "dir"), "--report": (tmp_path / "pred" / "r.json", "file")},
            ins,
        )
    with pytest.raises(InputError, match="is a file; expected a folder"):
        check_outputs({"--save-masks": (tmp_path / "labels" / "a.png", "dir")}, {})
    check_outputs(
        {
            "--save-masks": (tmp_path / "pred", "dir"),
            "--report": (tmp_path / "r.json", "file"),
            "--out": (None, "file"),
        },
        ins,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]  # the probe left nothing


# --------------------------------------------------------------------------- one label reader
def _palette_png(path: Path, idx: np.ndarray, palette: np.ndarray) -> None:
    from PIL import Image

    im = Image.fromarray(idx.astype(np.uint8), mode="P")
    im.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    im.save(path)


def test_runner_reads_palette_grey_palette_and_16bit_labels_like_the_dataset(tmp_path):
    """Issue #12 item 7: VOC palette PNGs were refused ("3 channels"), grey-palette PNGs were read as
    colours, and the runner had its own reader. Now LabelFolder reads through rdd.labels, the
    dataset code's reader: indices, never colours."""
    from rdd.data import read_mask
    from rdd.labels import read_label

    assert read_mask is read_label  # one reader for rdd.data and rdd.runtime
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 11, (6, 9)).astype(np.uint8)
    idx[0, :3] = (255, 11, 11)
    voc = np.zeros((256, 3), np.uint8)
    voc[:21] = [(i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(21)]
    voc[255] = (224, 224, 192)
    grey = np.repeat((255 - np.arange(256, dtype=np.uint8))[:, None], 3, axis=1)  # index i → 255-i
    _palette_png(tmp_path / "voc.png", idx, voc)
    _palette_png(tmp_path / "greypal.png", idx, grey)
    cv2.imwrite(str(tmp_path / "u16.png"), idx.astype(np.uint16))
    lf = LabelFolder(tmp_path, by_index=False, ignore_ids=(11,), num_classes=11)
    want = np.where(idx == 11, 255, idx)
    for stem in ("voc", "greypal", "u16"):
        got = lf.load(lf.path_for(0, stem), idx.shape)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want, err_msg=stem)
    # the colour a grey palette stores (what cv2.imread returns) is not the id
    assert not np.array_equal(cv2.imread(str(tmp_path / "greypal.png"), cv2.IMREAD_GRAYSCALE), idx)


def test_label_ids_outside_the_classes_fail_before_resize(tmp_path, tiny_onnx):
    """Issue #12 item 7: a 16-bit id 259 was refused at native size but became 3 after --resize
    (uint8 cast); now it is an error at any size, and --ignore-ids 259 maps it to ignore."""
    _write_images(tmp_path / "img", 2, size=(40, 56))
    (tmp_path / "lab").mkdir()
    m = np.full((40, 56), 3, np.uint16)
    m[5:9, 5:9] = 259
    for i in range(2):
        cv2.imwrite(str(tmp_path / "lab" / f"img_{i:03d}.png"), m)
    be = OrtBackend(tiny_onnx, threads=1)
    for resize in ("native", (24, 32)):
        with pytest.raises(
            InputError,
            match=r"img_000\.png: invalid label values \[259\].*"
            r"--ignore-ids",
        ):
            Pipeline(
                be,
                ImageFolderSource(tmp_path / "img"),
                labels=LabelFolder(tmp_path / "lab", by_index=False),
                config=PipelineConfig(warmup=0, resize=resize),
            ).run()
    rep = Pipeline(
        be,
        ImageFolderSource(tmp_path / "img"),
        labels=LabelFolder(tmp_path / "lab", by_index=False, ignore_ids=(259,)),
        config=PipelineConfig(warmup=0, resize=(24, 32)),
    ).run()
    assert rep["labelled_frames"] == 2
    # resize_labels keeps 16-bit ids (the old uint8 cast turned 259 into 3)
    np.testing.assert_array_equal(resize_labels(m, (20, 28))[3, 3], 259)
    assert resize_labels(m, (20, 28)).dtype == np.uint16
    with pytest.raises(ValueError, match="ids must be in"):
        resize_labels(np.full((4, 4), 70000, np.int64), (2, 2))


def test_missing_frame_mask_is_counted_never_shifted(tmp_path, tiny_onnx):
    """Issue #12 item 7: a frame without its frame_%06d mask is skipped and counted in the report;
    the next frame keeps its own mask (scored exactly like a direct evaluation)."""
    path = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    rng = np.random.default_rng(1)
    for _ in range(5):
        w.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    w.release()
    (tmp_path / "lab").mkdir()
    masks = {}
    for i in (0, 1, 3, 4):  # frame 2 has no mask
        masks[i] = np.full((48, 64), i, np.uint8)  # frame i is all class i
        cv2.imwrite(str(tmp_path / "lab" / f"frame_{i:06d}.png"), masks[i])
    be = OrtBackend(tiny_onnx, threads=1)
    rep = Pipeline(
        be,
        VideoSource(path),
        labels=LabelFolder(tmp_path / "lab", by_index=True),
        config=PipelineConfig(warmup=0),
    ).run()
    assert rep["labelled_frames"] == 4 and rep["labels_missing"] == 1
    assert rep["labels_missing_first"] == ["frame_000002"]
    cap, cm = cv2.VideoCapture(str(path)), ConfusionMatrix(11)
    for i in range(5):
        frame = cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB)
        if i in masks:
            cm.update(be.infer(preprocess(frame, be.meta, (48, 64)))[0], masks[i])
    assert rep["miou"] == pytest.approx(cm.compute()["miou"])


# --------------------------------------------------------------------------- early ends
def _video(path: Path, n: int, size=(48, 64)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size[::-1])
    for i in range(n):
        frame = np.zeros((*size, 3), np.uint8)
        frame[:, : (i * 7) % size[1]] = (40 * i) % 256
        w.write(frame)
    w.release()
    return path


def _frames_in(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


def test_stop_signal_ends_the_run_early_with_valid_outputs(tmp_path, tiny_onnx):
    """Issue #12 item 9: a stop request (the CLI's SIGINT/SIGTERM handler) ends the run after the frame
    in hand; the report says so and the overlay holds exactly the frames reported."""
    from rdd.runtime import StopSignal

    src = _video(tmp_path / "v.mp4", 30)
    stop, out = StopSignal(), tmp_path / "o.mp4"
    assert not stop.armed
    seen = []

    def progress(n: int) -> None:
        seen.append(stop.armed)
        if n == 3:
            stop.request("sigterm")

    rep = Pipeline(
        OrtBackend(tiny_onnx, threads=1),
        VideoSource(src),
        config=PipelineConfig(warmup=0, out=out, queue_size=1, progress=progress, stop=stop),
    ).run()
    assert all(seen) and not stop.armed
    assert rep["completed"] is False and rep["stop_reason"] == "sigterm"
    assert 3 <= rep["frames"] < 30
    assert _frames_in(out) == rep["frames"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "v.mp4"]  # no temp left
    # a request before the run: nothing processed, nothing written, still a report
    early = StopSignal()
    early.request("sigint")
    rep = Pipeline(
        OrtBackend(tiny_onnx), VideoSource(src), config=PipelineConfig(out=tmp_path / "none.mp4", stop=early)
    ).run()
    assert rep["frames"] == 0 and rep["stop_reason"] == "sigint" and rep["out"] is None
    assert not (tmp_path / "none.mp4").exists()


def test_complete_runs_say_so(tmp_path, tiny_onnx):
    src = _video(tmp_path / "v.mp4", 4)
    be = OrtBackend(tiny_onnx)
    rep = Pipeline(be, VideoSource(src), config=PipelineConfig(warmup=0)).run()
    assert rep["completed"] is True and rep["stop_reason"] == "end_of_input" and rep["frames"] == 4
    rep = Pipeline(be, VideoSource(src), config=PipelineConfig(warmup=0, max_frames=2)).run()
    assert rep["completed"] is True and rep["stop_reason"] == "max_frames" and rep["frames"] == 2


def test_video_corrupted_mid_stream_is_a_decode_error(tmp_path, tiny_onnx):
    """Issue #12 item 9: decoding stopped after 5 of 12 frames and the run looked complete."""
    data = bytearray(_video(tmp_path / "v.mp4", 12).read_bytes())
    mdat = data.find(b"mdat")  # zero a quarter of the frame data, in its middle (moov intact)
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    data[mdat + size // 2 : mdat + size // 2 + size // 4] = bytes(size // 4)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    src = VideoSource(bad)
    assert len(src) == 12
    rep = Pipeline(OrtBackend(tiny_onnx), src, config=PipelineConfig(warmup=0)).run()
    assert rep["completed"] is False and rep["stop_reason"] == "decode_error"
    assert 0 < rep["frames"] < 12
    assert f"decoding stopped after {rep['frames']} of 12 frames" in rep["stop_detail"]


def test_stop_reason_precedence():
    from rdd.runtime.stream.stop import COMPLETE_REASONS, STOP_REASONS, stop_reason

    assert stop_reason("sigterm", True, "decode_error", "x") == ("sigterm", None)
    assert stop_reason(None, True, "stream_ended", "x") == ("max_frames", None)
    assert stop_reason(None, False, "decode_error", "bad") == ("decode_error", "bad")
    assert stop_reason(None, False, "stream_ended", "gone") == ("stream_ended", "gone")
    assert stop_reason(None, False, "end_of_input") == ("end_of_input", None)
    assert stop_reason(None, False, None) == ("end_of_input", None)
    assert set(COMPLETE_REASONS) < set(STOP_REASONS)
