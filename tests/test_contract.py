"""rdd.contract: the rdd_meta schema, its byte-compatible JSON, and tampered metadata at load.

Every tampering test edits the ``metadata_props`` of a tiny one-node ONNX graph with the ``onnx``
package and checks that both readers (``read_onnx_meta`` for export, ``OrtBackend`` for the
runtime) refuse it with one line that names the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rdd.contract import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    META_KEY,
    InputError,
    ModelMeta,
    engine_sidecar_path,
    read_engine_sidecar,
    read_onnx_meta,
    resolve_max_pixels,
)
from rdd.runtime import OrtBackend
from rdd.spec import ClassInfo, Normalization

onnx = pytest.importorskip("onnx")

#: rdd_meta exactly as rdd.export wrote it before rdd.contract existed (old ``build_meta`` +
#: ``json.dumps``): labels output, folded preprocessing, static spatial axes.
LEGACY = (
    '{"format": "rdd-edge/1", "model": "lraspp_mobilenetv2", "input_name": "image", '
    '"input_layout": "NHWC", "input_dtype": "uint8", "output_name": "labels", '
    '"output_kind": "labels", "normalization": {"mean": [0.485, 0.456, 0.406], '
    '"std": [0.229, 0.224, 0.225], "color": "RGB"}, "classes": {"names": ["road", "car", '
    '"sky"], "palette": [[128, 64, 128], [64, 0, 128], [128, 128, 128]], "ignore_index": '
    '255}, "input_size": [360, 480], "dynamic_batch": true, "dynamic_spatial": false}'
)
THREE = ClassInfo(names=("road", "car", "sky"), palette=((128, 64, 128), (64, 0, 128), (128, 128, 128)))


def _meta(**over) -> dict:
    d = ModelMeta.build(
        model="toy", classes=THREE, normalization=Normalization(), input_size=(8, 8)
    ).to_dict()
    d.update(over)
    return d


def _tiny_onnx(path: Path, meta: dict | str) -> Path:
    """Identity graph ``image`` float32 N×3×H×W → ``logits`` (3 channels = THREE's classes)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {META_KEY: meta if isinstance(meta, str) else json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def _tamper(path: Path, edit) -> Path:
    """Rewrite ``metadata_props["rdd_meta"]`` of ``path`` in place with ``edit(meta_dict)``."""
    proto = onnx.load(str(path))
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    meta = json.loads(entry.value)
    edit(meta)
    entry.value = json.dumps(meta)  # NaN / Infinity are written as JSON's NaN / Infinity
    onnx.save(proto, str(path))
    return path


def _rejected(path: Path, key: str, **kw) -> str:
    """Both readers refuse ``path`` with one line naming the file and ``key``."""
    msgs = []
    for read in (lambda: read_onnx_meta(path, **kw), lambda: OrtBackend(path, **kw)):
        with pytest.raises(InputError) as ei:
            read()
        msg = str(ei.value)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        assert f"rdd_meta.{key}" in msg, msg
        msgs.append(msg)
    return msgs[0]


# ----------------------------------------------------------------------------- format
def test_legacy_json_round_trips_byte_for_byte():
    meta = ModelMeta.from_json(LEGACY)
    assert meta.to_json() == LEGACY
    assert (
        ModelMeta.build(
            model="lraspp_mobilenetv2",
            classes=THREE,
            normalization=Normalization(),
            input_size=(360, 480),
            argmax=True,
            fold_preprocess=True,
            dynamic_spatial=False,
        ).to_json()
        == LEGACY
    )
    assert meta.fixed_size == (360, 480) and meta.num_classes == 3


def test_valid_tiny_model_loads_in_both_readers(tmp_path):
    path = _tiny_onnx(tmp_path / "ok.onnx", _meta())
    meta = read_onnx_meta(path)
    assert OrtBackend(path).meta == meta and meta.classes == THREE
    x = np.zeros((1, 3, 4, 5), np.float32)
    x[0, 2] = 1.0  # channel 2 wins everywhere
    assert (OrtBackend(path).infer(x) == 2).all()


def test_unknown_and_missing_keys(tmp_path):
    path = _tiny_onnx(tmp_path / "m.onnx", _meta(extra=1))
    with pytest.raises(InputError, match=r"m.onnx: rdd_meta has unknown key\(s\) \['extra'\]"):
        read_onnx_meta(path)
    _tamper(path, lambda m: (m.pop("extra"), m.pop("output_kind")))
    with pytest.raises(InputError, match=r"missing key\(s\) \['output_kind'\]"):
        OrtBackend(path)


# ----------------------------------------------------------------------------- issue #12 item 8
def test_class_names_must_match_output_channels(tmp_path):
    five = ClassInfo(names=tuple("abcde")).to_dict()
    path = _tamper(_tiny_onnx(tmp_path / "k.onnx", _meta()), lambda m: m.update(classes=five))
    for read in (read_onnx_meta, OrtBackend):
        with pytest.raises(InputError, match="has 3 channels but rdd_meta lists 5 classes"):
            read(path)


def test_palette_length_must_match_names(tmp_path):
    path = _tamper(_tiny_onnx(tmp_path / "p.onnx", _meta()), lambda m: m["classes"]["palette"].pop())
    assert "one [r, g, b] per class name (3), got 2" in _rejected(path, "classes.palette")


@pytest.mark.parametrize("value", [300, -1, "red", 1.5, True])
def test_bad_palette_value_is_one_line(tmp_path, value):
    path = _tamper(
        _tiny_onnx(tmp_path / "c.onnx", _meta()), lambda m: m["classes"]["palette"][1].__setitem__(0, value)
    )
    assert "integers in 0..255" in _rejected(path, "classes.palette[1]")


@pytest.mark.parametrize(
    "key,index,value",
    [
        ("mean", 0, float("nan")),
        ("mean", 2, 1e30),
        ("mean", 1, float("inf")),
        ("mean", 0, "0.5"),
        ("std", 1, 1e-30),
        ("std", 0, 0.0),
        ("std", 2, -0.2),
        ("std", 0, float("nan")),
        ("std", 1, 1e30),
    ],
)
def test_mean_and_std_must_be_finite_and_sane(tmp_path, key, index, value):
    path = _tamper(
        _tiny_onnx(tmp_path / "n.onnx", _meta()), lambda m: m["normalization"][key].__setitem__(index, value)
    )
    assert "finite number in" in _rejected(path, f"normalization.{key}[{index}]")


def test_huge_input_size_fails_fast_and_the_bound_can_be_raised(tmp_path, monkeypatch):
    path = _tamper(_tiny_onnx(tmp_path / "s.onnx", _meta()), lambda m: m.update(input_size=[100000, 100000]))
    msg = _rejected(path, "input_size")
    assert "10000000000 pixels" in msg and "--max-input-pixels" in msg and MAX_PIXELS_ENV in msg
    assert read_onnx_meta(path, max_pixels=10**10).input_size == (100000, 100000)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10**10))
    assert OrtBackend(path).meta.input_size == (100000, 100000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match=f"{MAX_PIXELS_ENV} must be a positive integer"):
        read_onnx_meta(path)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert resolve_max_pixels() == DEFAULT_MAX_PIXELS == 4096 * 4096
    with pytest.raises(InputError, match="positive integer"):
        resolve_max_pixels(0)


@pytest.mark.parametrize(
    "edit,key",
    [
        (lambda m: m["classes"]["names"].__setitem__(0, 7), "classes.names[0]"),
        (lambda m: m["classes"].update(ignore_index=1), "classes.ignore_index"),
        (lambda m: m.update(model="\x1b[31mred"), "model"),
        (lambda m: m.update(input_size=[8, 0]), "input_size"),
        (lambda m: m.update(dynamic_batch="yes"), "dynamic_batch"),
        (lambda m: m["normalization"].update(color="RGBA"), "normalization.color"),
        (lambda m: m["normalization"].update(mean=[0.5, 0.5]), "normalization.mean"),
        (lambda m: m.update(input_layout="NCWH"), "input_layout"),
        (lambda m: m.update(input_dtype="uint8"), "input_dtype"),
    ],
)
def test_other_bad_values_name_their_key(tmp_path, edit, key):
    _rejected(_tamper(_tiny_onnx(tmp_path / "o.onnx", _meta()), edit), key)


def test_engine_sidecar_profile_is_bounded(tmp_path):
    eng = tmp_path / "m.engine"
    side = {
        "format": "rdd-edge-engine/1",
        META_KEY: _meta(),
        "profile": {"input": "image", "min": [1, 3, 9000, 9000], "max": [1, 3, 9000, 9000]},
    }
    engine_sidecar_path(eng).write_text(json.dumps(side))
    with pytest.raises(InputError, match="m.engine.json: profile min .*81000000 pixels"):
        read_engine_sidecar(eng)
    meta, _ = read_engine_sidecar(eng, max_pixels=81_000_000)
    assert meta.fixed_size == (9000, 9000)


def test_artifact_classes_must_match_the_model(tmp_path, tiny_model):
    """A training artifact whose JSON lists other classes than the model predicts is refused."""
    from rdd.artifacts import save_artifact
    from rdd.runtime import TorchBackend
    from rdd.spec import CAMVID_CLASSES

    save_artifact(
        tmp_path / "s.pt",
        tiny_model,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(48, 64),
    )
    assert TorchBackend(tmp_path / "s.pt").meta.num_classes == 11
    side = tmp_path / "s.json"
    d = json.loads(side.read_text())
    d["classes"] = THREE.to_dict()
    side.write_text(json.dumps(d))
    with pytest.raises(InputError, match="s.json: the model predicts 11 classes but classes.names lists 3"):
        TorchBackend(tmp_path / "s.pt")
    d["normalization"]["std"][0] = 1e-30
    side.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"rdd_meta.normalization.std\[0\]"):
        TorchBackend(tmp_path / "s.pt")
