"""Edge runtime: inference backends, the real-time frame stream and the measuring tools.

Three rooms: :mod:`rdd.runtime.backends` (builds behind one interface and one format table),
:mod:`rdd.runtime.stream` (sources, the threaded pipeline, outputs) and
:mod:`rdd.runtime.measure` (frames, scoring, ``rdd-bench``); above them the options
(:mod:`.options`), the runner (:mod:`.runner`, :mod:`.cli`) and the one-call API
(:class:`Segmenter`). Imports numpy, OpenCV and (lazily, inside a backend) its runtime only:
PyTorch is imported solely by the torch backend, so this package runs on a device without it.

Example::

    from rdd.runtime import Segmenter
    seg = Segmenter("student.onnx")            # backend="auto": whichever runtime is installed
    labels = seg.predict(image_rgb)            # H×W class ids at the image's size
    vis = seg.overlay(image_rgb)               # the colour overlay

    from rdd.runtime import run_inference       # the whole runner, as rdd-infer
    rep = run_inference(model="student.onnx", images="camvid/val", labels="camvid/valannot")

The names below are loaded on first use (PEP 562), so ``import rdd.runtime.cli`` stays light:
the command line installs its signal handlers before numpy, OpenCV or onnxruntime load, and a
Ctrl-C during those imports is a one-line exit 130, not a traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "rdd.contract": (
        "META_KEY",
        "InputError",
        "ModelMeta",
        "apply_profile",
        "engine_sidecar_path",
        "read_engine_sidecar",
    ),
    "rdd.runtime.backends": (
        "Backend",
        "open_build",
        "discover_builds",
        "available",
        "Build",
        "logits_to_labels",
    ),
    "rdd.runtime.backends.ort": ("OrtBackend", "ORT_PROVIDERS", "make_session"),
    "rdd.runtime.backends.openvino": ("OpenVinoBackend",),
    "rdd.runtime.backends.trt": ("TrtBackend",),
    "rdd.runtime.backends.torch": ("TorchBackend",),
    "rdd.runtime.stream.stream": ("Pipeline", "PipelineConfig"),
    "rdd.runtime.stream.figures": ("STAGES",),
    "rdd.runtime.stream.summary": ("format_summary",),
    "rdd.runtime.stream.transforms": (
        "OverlayRenderer",
        "Resize",
        "inference_size",
        "parse_resize",
        "preprocess",
        "resize_labels",
    ),
    "rdd.runtime.runner": ("LABEL_MAPS", "open_source", "resolve_ignore_ids", "run_inference"),
    "rdd.runtime.stream.sources": ("FrameSource", "ImageFolderSource", "quiet_opencv"),
    "rdd.runtime.stream.capture": ("CameraSource", "StreamSource", "VideoSource"),
    "rdd.runtime.stream.labels": ("LabelFolder",),
    "rdd.runtime.stream.stop": ("StopSignal", "STOP_REASONS"),
    "rdd.runtime.options": ("InferOptions", "BenchOptions"),
    "rdd.runtime.segmenter": ("Segmenter",),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'rdd.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
