"""Shared pytest setup: CPU-only, few threads, deterministic seeds, paths to shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdd.offline import no_telemetry

REPO_ROOT = Path(__file__).resolve().parents[1]
CAMVID_ROOT = (REPO_ROOT / ".." / "shared" / "data" / "camvid").resolve()

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
no_telemetry()  # OpenVINO / NNCF imported by tests directly send nothing either (rdd.offline)

try:
    import torch

    torch.set_num_threads(1)  # shared 2-core CI: oversubscription is 5-20x slower
except ImportError:  # the edge-runtime tests run without torch
    torch = None


@pytest.fixture(autouse=True)
def _seed():
    if torch is not None:
        torch.manual_seed(0)
    import numpy as np

    np.random.seed(0)


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    if not (CAMVID_ROOT / "train.txt").exists():
        pytest.skip(f"CamVid not found at {CAMVID_ROOT}")
    return CAMVID_ROOT


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny random-init real-time student (CamVid's 11 classes), eval mode."""
    from rdd.models import create_model

    torch.manual_seed(0)
    return create_model("lraspp_mobilenetv2", num_classes=11, width_mult=0.25).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_model) -> Path:
    """Dynamic-shape float NCHW → logits export of ``tiny_model`` (input_size 48×64)."""
    from rdd.export import export_onnx
    from rdd.spec import CAMVID_CLASSES, Normalization

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(
        tiny_model,
        path,
        classes=CAMVID_CLASSES,
        normalization=Normalization(),
        input_size=(48, 64),
        simplify=False,
    )
    return path


class _Payload:
    """Unpickling this *calls* ``open(marker, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def hostile_pickle(tmp_path):
    """``make(path, wrap=lambda payload: {...}) -> marker``: write a torch file whose unpickling
    creates ``marker`` (``wrap`` places the payload inside e.g. a checkpoint-shaped dict).

    The factory first proves the file is live: ``torch.load(weights_only=False)`` does create the
    marker (then it is removed), so a test asserting that the marker stays absent can fail."""

    def make(path: Path, wrap=lambda p: {"state": p}, *, marker: Path | None = None) -> Path:
        marker = Path(marker or tmp_path / f"PWNED-{Path(path).name}")
        torch.save(wrap(_Payload(marker)), path)
        torch.load(path, weights_only=False)
        assert marker.exists(), "the crafted pickle did not run its payload"
        marker.unlink()
        return marker

    return make
