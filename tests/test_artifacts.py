"""Tests for rdd.artifacts: NAME.pt + NAME.json round trip and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rdd.artifacts import artifact_paths, load_artifact, read_artifact_meta, save_artifact
from rdd.models import create_model, export_wrapper
from rdd.spec import CAMVID_CLASSES, ClassInfo, Normalization

NORM = Normalization(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def _model(**kw):
    torch.manual_seed(0)
    m = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=0.25, **kw)
    with torch.no_grad():  # non-default BN buffers, so a round trip that dropped them would show
        for bn in (m_ for m_ in m.modules() if isinstance(m_, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _save(tmp_path, model, name="model.pt", **kw):
    return save_artifact(
        tmp_path / name, model, classes=CAMVID_CLASSES, normalization=NORM, input_size=(360, 480), **kw
    )


def test_roundtrip(tmp_path):
    model = _model(output_stride=8)
    pt, js = _save(tmp_path, model, metrics={"miou": 0.5, "iou": [0.1, None], "n": torch.tensor(3)})
    assert (pt, js) == (tmp_path / "model.pt", tmp_path / "model.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]  # no temp files
    meta = json.loads(js.read_text())
    assert meta["model"] == "lraspp_mobilenetv2"
    assert meta["model_kwargs"]["output_stride"] == 8 and meta["model_kwargs"]["num_classes"] == 11
    assert ClassInfo.from_dict(meta["classes"]) == CAMVID_CLASSES
    assert Normalization.from_dict(meta["normalization"]) == NORM
    assert meta["input_size"] == [360, 480]
    assert meta["metrics"] == {"miou": 0.5, "iou": [0.1, None], "n": 3}

    model.train()  # saving / loading must not depend on the mode
    loaded, meta2 = load_artifact(pt)
    assert not loaded.training and meta2 == meta
    assert loaded.model_kwargs == model.model_kwargs
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["out"], model.eval()(x)["out"], rtol=0, atol=0)


@pytest.mark.parametrize("suffix", ["", ".pt", ".json"])
def test_path_forms(tmp_path, suffix):
    _save(tmp_path, _model(), name="student")
    assert artifact_paths(tmp_path / f"student{suffix}") == (
        tmp_path / "student.pt",
        tmp_path / "student.json",
    )
    model, meta = load_artifact(tmp_path / f"student{suffix}")
    assert meta["model"] == "lraspp_mobilenetv2" and model.num_classes == 11


def test_wrapped_model_and_dict_inputs(tmp_path):
    model = _model()
    pt, _ = save_artifact(
        tmp_path / "w.pt",
        export_wrapper(model),
        classes=CAMVID_CLASSES.to_dict(),
        normalization=NORM.to_dict(),
        input_size=256,
    )
    loaded, meta = load_artifact(pt)
    assert meta["input_size"] == [256, 256]
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_missing_sidecar_and_weights(tmp_path):
    pt, js = _save(tmp_path, _model())
    js.unlink()
    with pytest.raises(FileNotFoundError, match=r"sidecar not found: .*model\.json"):
        load_artifact(pt)
    pt2, _ = _save(tmp_path, _model(), name="other.pt")
    pt2.unlink()
    with pytest.raises(FileNotFoundError, match=r"weights not found: .*other\.pt"):
        load_artifact(pt2)


def test_mismatched_weights(tmp_path):
    pt, _ = _save(tmp_path, _model())
    torch.save(create_model("lraspp_mobilenetv2", 11, width_mult=0.5).state_dict(), pt)
    with pytest.raises(ValueError, match=r"model\.pt do not match.*shape mismatches.*features\.0\.0"):
        load_artifact(pt)
    sd = _model().state_dict()
    sd.pop("head.low_classifier.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, pt)
    with pytest.raises(ValueError, match=r"missing \['head\.low_classifier\.bias'\].*extra\.weight"):
        load_artifact(pt)
    pt.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"model\.pt cannot be read"):
        load_artifact(pt)


def test_bad_sidecar(tmp_path):
    pt, js = _save(tmp_path, _model())
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({k: v for k, v in meta.items() if k != "normalization"}))
    with pytest.raises(ValueError, match=r"model\.json is missing keys \['normalization'\]"):
        read_artifact_meta(pt)
    js.write_text(json.dumps({**meta, "model": "no_such_model"}))
    with pytest.raises(ValueError, match=r"model\.json: cannot rebuild.*unknown model 'no_such_model'"):
        load_artifact(pt)
    js.write_text("{not json")
    with pytest.raises(ValueError, match=r"model\.json is not valid JSON"):
        load_artifact(pt)


def test_save_validation(tmp_path):
    with pytest.raises(ValueError, match="3 names but the model predicts 11"):
        save_artifact(
            tmp_path / "m.pt",
            _model(),
            classes=ClassInfo(("a", "b", "c")),
            normalization=NORM,
            input_size=(32, 32),
        )
    custom = create_model("lraspp_mobilenetv2", 11, width_mult=0.25, norm_layer=nn.BatchNorm2d)
    with pytest.raises(ValueError, match="model_kwargs.norm_layer"):
        _save(tmp_path, custom)
    assert not list(tmp_path.iterdir())  # nothing written on failure
    with pytest.raises(TypeError, match="SegmentationModel"):
        _save(tmp_path, nn.Conv2d(3, 3, 1))


def test_crafted_weights_run_nothing(tmp_path, hostile_pickle):
    """``model.pt`` replaced by a pickle with a payload: refused in one line, nothing runs."""
    pt, _ = _save(tmp_path, _model())
    marker = hostile_pickle(pt, lambda p: {"features.0.0.weight": p})
    with pytest.raises(ValueError) as e:
        load_artifact(pt)
    msg = str(e.value)
    assert not marker.exists()
    assert "\n" not in msg and str(pt) in msg and "refused" in msg, msg


def test_same_weights_give_the_same_bytes(tmp_path):
    """Byte-reproducible artefact: same weights → same ``model.pt`` bytes, whatever the file name
    or the temporary name of the atomic write (DVC then sees no change below a re-run stage)."""
    import hashlib
    import zipfile

    def digest(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()

    a, _ = _save(tmp_path / "a", _model())
    first = digest(a)
    a2, _ = _save(tmp_path / "a", _model())  # overwritten in place
    b, _ = _save(tmp_path / "b", _model(), name="student.pt")
    assert digest(a2) == first and digest(b) == first
    names = zipfile.ZipFile(a).namelist()
    assert all(n.startswith("archive/") for n in names), names  # no temp name inside the zip
    m = _model()
    with torch.no_grad():
        next(m.parameters()).add_(1e-3)
    c, _ = _save(tmp_path / "c", m)
    assert digest(c) != first  # and the hash does see a change


# --------------------------------------------------------------------------- issue #33 item 8
def test_loading_an_artifact_fetches_nothing(tmp_path, monkeypatch):
    """``model_kwargs.backbone_weights`` in a ``model.json`` (a URL, or a ``file://`` URL of a
    private file) is ignored: the weights are ``model.pt``, nothing is downloaded or copied into
    the torch cache."""
    import rdd.serialization

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    secret = tmp_path / "secret.pth"
    torch.save({"k": torch.zeros(1)}, secret)
    secret.chmod(0o600)
    calls = []
    real_fetch = rdd.serialization.fetch_url
    monkeypatch.setattr(
        "rdd.models.weights.fetch_url", lambda *a, **k: calls.append(a) or real_fetch(*a, **k)
    )
    model = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=1.0).eval()
    pt, js = _save(tmp_path, model)
    meta = json.loads(js.read_text())
    for source in (secret.as_uri(), "https://example.invalid/w.pth", str(secret)):
        meta["model_kwargs"]["backbone_weights"] = source
        js.write_text(json.dumps(meta))
        loaded, _ = load_artifact(pt)
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x)["out"], model(x)["out"], rtol=0, atol=0)
    assert calls == [] and not (tmp_path / "torch_home").exists()


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("width_mult", 1000.0, r"width_mult must be <= 2, got 1000\.0"),
        ("width_mult", float("nan"), r"width_mult must be a number in \(0, 2\], got nan"),
        ("width_mult", "0.5", r"width_mult must be a number in \(0, 2\], got '0\.5'"),
        ("num_classes", 100000, r"num_classes must be an integer in \[1, 255\], got 100000"),
        ("output_stride", 1, r"output_stride must be 8, 16 or 32, got 1"),
        ("aux", "yes", r"aux must be true or false, got 'yes'"),
        ("norm_layer", "groupnorm", r"norm_layer must be null, batchnorm, syncbatchnorm"),
    ],
)
def test_model_kwargs_from_a_file_are_bounded(tmp_path, key, value, message):
    """An unbounded ``width_mult`` asked for 205 GB; every builder argument has one bound
    (``rdd.models.registry.KWARG_LIMITS``), checked before anything is allocated."""
    import time

    pt, js = _save(tmp_path, _model())
    meta = json.loads(js.read_text())
    meta["model_kwargs"][key] = value
    js.write_text(json.dumps(meta))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"model\.json: cannot rebuild model: " + message) as e:
        load_artifact(pt)
    assert "\n" not in str(e.value) and time.perf_counter() - t0 < 10


def test_every_builder_argument_has_a_bound():
    import inspect

    from rdd.models import get_model_builder, list_models, register_model
    from rdd.models.registry import KWARG_LIMITS

    for name in list_models():
        assert set(inspect.signature(get_model_builder(name)).parameters) <= set(KWARG_LIMITS)
    with pytest.raises(TypeError, match=r"\['depth'\] have no bound"):
        register_model(lambda *, num_classes, depth=3: None, name="unbounded_builder")
    assert "unbounded_builder" not in list_models()


def test_sidecar_nesting_and_duplicate_class_names_are_one_line_errors(tmp_path):
    pt, js = _save(tmp_path, _model())
    meta = json.loads(js.read_text())
    js.write_text(
        json.dumps({**meta, "metrics": {"x": "PLACEHOLDER"}}).replace(
            '"PLACEHOLDER"', "[" * 100_000 + "]" * 100_000
        )
    )
    with pytest.raises(
        ValueError,
        match=r"model\.json is not valid JSON: nested deeper than 64 "
        r"levels",
    ) as e:
        read_artifact_meta(pt)
    assert "\n" not in str(e.value)
    names = list(CAMVID_CLASSES.names)
    names[8] = "road"
    js.write_text(json.dumps({**meta, "classes": {**meta["classes"], "names": names}}))
    with pytest.raises(
        ValueError,
        match=r"model\.json: classes: class names must be unique: "
        r"names\[8\] repeats names\[3\] 'road'",
    ):
        load_artifact(pt)
