"""The deployment contract's readers against crafted JSON (issue #33 item 10): duplicate class
names and deep nesting are one-line :class:`InputError` naming the file and key."""

from __future__ import annotations

import json

import pytest

from rdd.contract import InputError, ModelMeta, read_engine_sidecar, sidecar_meta
from rdd.spec import ClassInfo, Normalization

DEEP = "[" * 100_000 + "]" * 100_000


def _meta() -> dict:
    return ModelMeta.build(
        model="toy",
        classes=ClassInfo(names=("road", "car", "sky")),
        normalization=Normalization(),
        input_size=(8, 8),
    ).to_dict()


def test_duplicate_class_names_are_refused():
    d = _meta()
    d["classes"]["names"] = ["road", "car", "road"]
    with pytest.raises(
        InputError,
        match=r"^m\.onnx: rdd_meta\.classes\.names\[2\] repeats "
        r"classes\.names\[0\] 'road'; class names must be "
        r"unique$",
    ):
        ModelMeta.from_json(json.dumps(d), source="m.onnx")


def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    text = json.dumps({**_meta(), "model": "PLACEHOLDER"}).replace('"PLACEHOLDER"', DEEP)
    with pytest.raises(
        InputError,
        match=r"^m\.onnx: rdd_meta is not valid JSON \(nested deeper "
        r"than 64 levels",
    ):
        ModelMeta.from_json(text, source="m.onnx")
    (tmp_path / "m.json").write_text(text)
    (tmp_path / "m.engine.json").write_text(text)
    for read in (
        lambda: sidecar_meta(tmp_path / "m.onnx"),
        lambda: read_engine_sidecar(tmp_path / "m.engine"),
    ):
        with pytest.raises(InputError, match=r"cannot read .*nested deeper than 64 levels") as e:
            read()
        assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path))
