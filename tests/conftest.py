"""Shared pytest setup: CPU-only, few threads, deterministic seeds, paths to shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CAMVID_ROOT = (REPO_ROOT / ".." / "shared" / "data" / "camvid").resolve()

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

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
    export_onnx(tiny_model, path, classes=CAMVID_CLASSES, normalization=Normalization(),
                input_size=(48, 64), simplify=False)
    return path
