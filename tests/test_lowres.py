"""rdd.runtime.backends.lowres: labels identical to ONNX Runtime's own ``Resize`` (linear, half_pixel,
``sizes``) followed by ``argmax`` — on random, tied and real (committed student, CamVid) logits."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from rdd.contract import InputError  # noqa: E402
from rdd.runtime.backends.lowres import LabelUpsampler, upsample_argmax  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "studies" / "camvid_converged" / "models" / "rdd_16x-s0.onnx"
CAMVID_VAL = (REPO / ".." / "shared" / "data" / "camvid" / "val").resolve()
_SESSIONS: dict = {}


def _session(model_bytes: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def ort_resize(x: np.ndarray, size) -> np.ndarray:
    """ORT's ``Resize`` (one node: linear, half_pixel, ``sizes``) of float32 ``N×K×h×w``."""
    key = (x.shape, tuple(size))
    if key not in _SESSIONS:
        n, k = x.shape[:2]
        node = helper.make_node(
            "Resize",
            ["x", "", "", "sizes"],
            ["y"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
        graph = helper.make_graph(
            [node],
            "resize",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=[helper.make_tensor("sizes", TensorProto.INT64, [4], [n, k, *size])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        _SESSIONS[key] = _session(model.SerializeToString())
    return _SESSIONS[key].run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]


def reference(x: np.ndarray, size) -> np.ndarray:
    return ort_resize(x, size).argmax(axis=1)


def distinct_logits(rng, shape, smooth: bool = True) -> np.ndarray:
    """Well-separated values (a permutation, spacing 1/16: no two low-res logits tie), optionally
    on smooth class fields so that the label map has regions and a boundary band."""
    x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) / 16
    if smooth:
        n, k, h, w = shape
        coarse = rng.normal(0, 1, (n * k, max(h // 4, 1), max(w // 4, 1))).astype(np.float32)
        fields = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse])
        x = x / x.max() + 8 * fields.reshape(shape)
    return x


CASES = [  # (in_hw, out_hw, K, N)
    ((45, 60), (360, 480), 11, 1),  # the student: stride 8, integer scale
    ((23, 30), (360, 480), 11, 1),  # non-integer scales
    ((23, 31), (181, 241), 19, 3),  # odd sizes, batched
    ((7, 5), (53, 37), 2, 3),
    ((7, 5), (53, 37), 150, 1),
    ((12, 16), (12, 16), 11, 2),  # scale 1
    ((12, 16), (36, 16), 5, 1),  # scale 3 × 1
    ((1, 4), (5, 9), 3, 2),  # one source row: everything clamped
    ((3, 1), (8, 2), 4, 1),
    ((20, 30), (9, 13), 7, 1),  # downsampling (no antialias) works as well
]


@pytest.mark.parametrize("in_hw,out_hw,k,n", CASES)
@pytest.mark.parametrize("smooth", [True, False])
def test_labels_match_ort_resize_argmax(in_hw, out_hw, k, n, smooth):
    x = distinct_logits(np.random.default_rng(hash((in_hw, out_hw, k)) % 2**32), (n, k, *in_hw), smooth)
    up = LabelUpsampler(in_hw, out_hw)
    got = up(x)
    assert got.shape == (n, *out_hw) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference(x, out_hw))
    np.testing.assert_array_equal(up(x), got)  # the reused per-thread grid leaks nothing


def test_student_geometry_has_a_boundary_band():
    x = distinct_logits(np.random.default_rng(0), (1, 11, 45, 60))
    up = LabelUpsampler((45, 60), (360, 480))
    band = up.band(x)
    assert band.shape == (1, 360, 480) and 0.02 < band.mean() < 0.9
    ref = reference(x, (360, 480))
    np.testing.assert_array_equal(up(x)[band], ref[band])
    np.testing.assert_array_equal(up(x)[~band], ref[~band])


def test_border_rows_and_columns_are_clamped_like_ort():
    # Distinct labels along the borders: the half-cell strips at the edges (clamped source
    # coordinates) must follow the edge rows / columns exactly as ORT does.
    rng = np.random.default_rng(1)
    x = distinct_logits(rng, (2, 6, 9, 11), smooth=False)
    x[:, :, 0, :] += 50 * (np.arange(11) % 6 == np.arange(6)[:, None])[None]  # row 0: class x%6
    up = LabelUpsampler((9, 11), (72, 88))
    got, ref = up(x), reference(x, (72, 88))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[:, :4], ref[:, :4])
    np.testing.assert_array_equal(got[:, :, -4:], ref[:, :, -4:])


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_exact_ties_follow_first_max(step):
    """Rounded logits: many exact ties, at low resolution and after interpolation."""
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(0, 2, (2, 5, 10, 13)) / step).astype(np.float32) * step
    for out_hw in [(80, 104), (37, 29)]:
        np.testing.assert_array_equal(LabelUpsampler((10, 13), out_hw)(x), reference(x, out_hw))
    flat = np.zeros((1, 4, 6, 7), np.float32)  # all tied: class 0 everywhere
    assert not LabelUpsampler((6, 7), (48, 56))(flat).any()


@pytest.mark.parametrize("k", [2, 3])
def test_near_ties_at_rounding_level_follow_ort(k):
    """Class 1 is class 0 moved by one ulp up or down at every low-res pixel: the winner at
    each output pixel is decided by float32 rounding alone, and must still be ORT's."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 4, (2, k, 15, 20)).astype(np.float32)
    away = np.where(rng.random(x[:, 0].shape) < 0.5, -np.inf, np.inf).astype(np.float32)
    x[:, 1] = np.nextafter(x[:, 0], away)
    assert (np.abs(x[:, 1] - x[:, 0]) > 0).all()
    if k == 3:
        x[:, 2] -= 20  # never wins
    for out_hw in [(120, 160), (97, 131)]:
        np.testing.assert_array_equal(LabelUpsampler((15, 20), out_hw)(x), reference(x, out_hw))


def test_more_than_256_classes_give_uint16():
    x = distinct_logits(np.random.default_rng(3), (1, 300, 6, 7))
    got = LabelUpsampler((6, 7), (30, 41))(x)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, reference(x, (30, 41)))


def test_float16_input():
    x16 = distinct_logits(np.random.default_rng(4), (3, 11, 23, 31)).astype(np.float16)
    got = LabelUpsampler((23, 31), (181, 241))(x16)
    np.testing.assert_array_equal(got, reference(x16.astype(np.float32), (181, 241)))


@pytest.mark.parametrize("in_hw,out_hw,k,n", CASES[:5])
def test_upsample_matches_ort_resize(in_hw, out_hw, k, n):
    x = distinct_logits(np.random.default_rng(5), (n, k, *in_hw))
    up, ref = LabelUpsampler(in_hw, out_hw), ort_resize(x, out_hw)
    got = up.upsample(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    np.testing.assert_array_equal(up.upsample(x, exact=True), ref)  # ORT's arithmetic, bit for bit


def test_upsample_argmax_caches_per_shape():
    x = distinct_logits(np.random.default_rng(6), (2, 11, 23, 30))
    first = upsample_argmax(x, (360, 480))
    np.testing.assert_array_equal(first, reference(x, (360, 480)))
    np.testing.assert_array_equal(upsample_argmax(x[:1], [360, 480]), first[:1])
    from rdd.runtime.backends import lowres

    info = lowres._cached.cache_info()
    assert info.hits >= 1 and info.currsize <= info.maxsize == 8


def test_threads_share_one_upsampler():
    up = LabelUpsampler((23, 31), (181, 241))
    xs = [distinct_logits(np.random.default_rng(10 + i), (1 + i % 3, 11, 23, 31)) for i in range(6)]
    refs = [up(x) for x in xs]
    bad = []

    def work(i):
        for _ in range(5):
            if not np.array_equal(up(xs[i]), refs[i]):
                bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 11, 45, 61), np.float32),
        np.zeros((11, 45, 60), np.float32),
        np.zeros((1, 11, 45, 60), np.int32),
    ],
)
def test_rejects_bad_logits(bad):
    with pytest.raises(InputError):
        LabelUpsampler((45, 60), (360, 480))(bad)


@pytest.mark.parametrize("hw", [(0, 5), (3,), "ab", None])
def test_rejects_bad_sizes(hw):
    with pytest.raises(InputError):
        LabelUpsampler(hw, (10, 10))
    with pytest.raises(InputError):
        upsample_argmax(np.zeros((1, 2, 3, 3), np.float32), hw)


def test_property_random_shapes_and_values():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
    @hypothesis.given(
        h=st.integers(1, 9),
        w=st.integers(1, 9),
        sh=st.integers(1, 40),
        sw=st.integers(1, 40),
        k=st.integers(1, 7),
        n=st.integers(1, 2),
        seed=st.integers(0, 2**31),
        levels=st.sampled_from([3, 17, 0]),
    )
    def check(h, w, sh, sw, k, n, seed, levels):
        rng = np.random.default_rng(seed)
        x = rng.normal(0, 3, (n, k, h, w)).astype(np.float32)
        if levels:  # few distinct values: ties everywhere
            x = np.round(x * levels / 3).astype(np.float32)
        np.testing.assert_array_equal(LabelUpsampler((h, w), (sh, sw))(x), reference(x, (sh, sw)))

    check()


# ---------------------------------------------------------------- the committed student, CamVid
def _cut_before_last_resize(path: Path):
    """The model without its final ``Resize``: ``(low-res model bytes, the Resize node)``."""
    model = onnx.load(str(path))
    resize = [node for node in model.graph.node if node.op_type == "Resize"][-1]
    assert resize.output[0] == model.graph.output[0].name
    from onnx import utils

    low = utils.Extractor(model).extract_model([i.name for i in model.graph.input], [resize.input[0]])
    return low.SerializeToString(), resize


def test_real_student_logits_on_camvid_frames():
    if not MODEL.exists():
        pytest.skip(f"committed student model not found: {MODEL}")
    frames = sorted(CAMVID_VAL.glob("*.png"))[::25][:4] if CAMVID_VAL.is_dir() else []
    if not frames:
        pytest.skip(f"CamVid val frames not found at {CAMVID_VAL} (see ../shared/data/camvid)")
    low_bytes, resize = _cut_before_last_resize(MODEL)
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    assert attrs["mode"] == b"linear" and attrs["coordinate_transformation_mode"] == b"half_pixel"
    meta = json.loads({p.key: p.value for p in onnx.load(str(MODEL)).metadata_props}["rdd_meta"])
    mean = np.float32(255) * np.asarray(meta["normalization"]["mean"], np.float32)
    std = np.float32(255) * np.asarray(meta["normalization"]["std"], np.float32)
    full, cut = _session(MODEL.read_bytes()), _session(low_bytes)
    bands = []
    for f in frames:
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        image = ((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None].copy()
        low = cut.run(None, {"image": image})[0]  # 1×11×45×60
        want = full.run(None, {"image": image})[0].argmax(axis=1)  # in-graph Resize + argmax
        assert low.shape == (1, 11, 45, 60) and want.shape == (1, 360, 480)
        up = LabelUpsampler(low.shape[2:], want.shape[1:])
        np.testing.assert_array_equal(up(low), want)
        np.testing.assert_array_equal(up(low), reference(low, want.shape[1:]))
        np.testing.assert_array_equal(
            upsample_argmax(low.astype(np.float16), (360, 480)),
            reference(low.astype(np.float16).astype(np.float32), (360, 480)),
        )
        bands.append(up.band(low).mean())
    assert 0.05 < np.mean(bands) < 0.5  # the boundary band: ~20 % on CamVid
