"""Models by name (issue #34 point 6) and the one-call API (point 5)."""

from __future__ import annotations

import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NAME = "camvid/rdd_16x-s0"


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over a folder holding a copy of the zoo file (a mirror)."""
    from rdd.runtime.zoo import entries

    e = entries()[NAME]
    root = tmp_path / "mirror"
    root.mkdir()
    src = REPO / "studies" / e["study"] / "models" / e["file"]
    if not src.is_file():
        pytest.skip("the committed study models are not in this checkout")
    shutil.copy(src, root / e["file"])
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", e
    srv.shutdown()
    srv.server_close()


def test_manifest_and_readme_table_are_generated():
    """rdd/zoo.json is what the generator makes of the committed index.json, and the
    README's zoo table is what it prints."""
    import json

    from rdd.runtime.zoo import MANIFEST, build_manifest, markdown_table

    assert json.loads(MANIFEST.read_text()) == json.loads(json.dumps(build_manifest()))
    assert markdown_table() in (REPO / "README.md").read_text()


def test_a_name_resolves_to_the_clone_then_downloads_and_verifies(served, tmp_path, monkeypatch):
    from rdd.runtime import zoo
    from rdd.runtime.errors import InputError

    root, url, e = served
    # 1. in a clone: the committed file itself
    assert zoo.resolve_model(NAME) == str(REPO / "studies" / e["study"] / "models" / e["file"])
    # 2. outside a clone: nothing in the cache, no URL → a one-line error naming RDD_ZOO_URL
    monkeypatch.setattr(zoo, "_REPO", tmp_path / "no-clone")
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(zoo.ZOO_ENV, raising=False)
    with pytest.raises(InputError, match="RDD_ZOO_URL"):
        zoo.resolve_model(NAME)
    # 3. downloaded from the mirror into the cache, checked against the manifest's SHA-256
    monkeypatch.setenv(zoo.ZOO_ENV, url)
    got = Path(zoo.resolve_model(NAME))
    assert got.parent == tmp_path / "cache" / "zoo" / e["study"] and got.stat().st_size == e["bytes"]
    # 4. a tampered mirror: an error, and nothing kept
    got.unlink()
    (root / e["file"]).write_bytes(b"x" * e["bytes"])
    with pytest.raises(InputError, match="nothing kept"):
        zoo.resolve_model(NAME)
    assert not any((tmp_path / "cache" / "zoo" / e["study"]).iterdir())
    # 5. a path or an unknown name is left as it is
    assert zoo.resolve_model("some/file.onnx") == "some/file.onnx"


def test_rdd_infer_runs_a_zoo_model_by_name(served, tmp_path, monkeypatch, capsys):
    from rdd.runtime import zoo
    from rdd.runtime.cli import main

    _, url, _ = served
    monkeypatch.setattr(zoo, "_REPO", tmp_path / "no-clone")
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(zoo.ZOO_ENV, url)
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((90, 120, 3), np.uint8))
    assert main(["--model", NAME, "--images", str(tmp_path / "img"), "--no-progress"]) == 0
    assert "lraspp_mobilenetv2" in capsys.readouterr().out


def test_segmenter_predicts_at_the_models_size_and_returns_the_images(tmp_path):
    """Segmenter(path).predict(image) runs the frame as rdd-infer does (resized to the model's
    input size) and returns labels at the image's size; overlay() colours them."""
    from rdd.runtime import Segmenter, preprocess
    from rdd.runtime.backends import open_build
    from rdd.runtime.stream.transforms import resize_labels

    model = REPO / "studies" / "camvid_converged" / "models" / "rdd_16x-s0.onnx"
    if not model.is_file():
        pytest.skip("the committed study models are not in this checkout")
    img = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    seg = Segmenter(model)
    labels = seg.predict(img)
    assert labels.shape == (360, 480) and labels.dtype == np.uint8
    be = open_build(model)  # the runner's rule: the model's input size, 180×240
    want = resize_labels(be.infer(preprocess(img, be.meta, "model"))[0], (360, 480))
    np.testing.assert_array_equal(labels, want)
    vis = seg.overlay(img)
    assert vis.shape == img.shape and vis.dtype == np.uint8 and not np.array_equal(vis, img)
    assert Segmenter(model, resize="native").predict(img).shape == (360, 480)
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        seg.predict(img[..., 0])


def test_readme_segmenter_example_runs_as_written(tmp_path, monkeypatch):
    """The README's six-line Python example, run as written (the zoo name resolves to the clone's
    file): labels at the image's size, an overlay written."""
    import re

    code = next(
        b
        for b in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
        if "rdd.Segmenter(" in b
    )
    assert len(code.strip().splitlines()) == 6
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "frame.png"), rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["labels"].shape == (200, 300) and scope["labels"].dtype == np.uint8
    assert cv2.imread("overlay.png").shape == (200, 300, 3)
