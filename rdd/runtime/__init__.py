"""Edge runtime: inference backends and the real-time frame pipeline behind ``deploy/infer.py``.

Imports numpy, OpenCV and (lazily, inside the backend) onnxruntime only: PyTorch is imported
solely by :class:`TorchBackend`, so this package runs on a device without it.

Example::

    from rdd.runtime import OrtBackend, ImageFolderSource, Pipeline, PipelineConfig
    be = OrtBackend("student.onnx", device="cpu")
    rep = Pipeline(be, ImageFolderSource("camvid/val"), config=PipelineConfig(warmup=5)).run()
    rep["fps"], rep["latency_ms"]["p99"]

The names below are loaded on first use (PEP 562), so ``import rdd.runtime.cli`` stays light:
the command line installs its signal handlers before numpy, OpenCV or onnxruntime load, and a
Ctrl-C during those imports is a one-line exit 130, not a traceback.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "rdd.contract": ("META_KEY", "InputError", "ModelMeta", "apply_profile", "engine_sidecar_path",
                     "read_engine_sidecar"),
    "rdd.runtime.backends": ("ORT_PROVIDERS", "Backend", "OrtBackend", "TorchBackend", "TrtBackend",
                             "create_backend", "logits_to_labels", "make_session"),
    "rdd.runtime.pipeline": ("STAGES", "OverlayRenderer", "Pipeline", "PipelineConfig",
                             "format_summary", "inference_size", "parse_resize",
                             "preprocess", "resize_labels"),
    "rdd.runtime.runner": ("LABEL_MAPS", "open_source", "resolve_ignore_ids", "run_inference"),
    "rdd.runtime.sources": ("CameraSource", "FrameSource", "ImageFolderSource", "LabelFolder",
                            "StreamSource", "VideoSource", "quiet_opencv"),
    "rdd.runtime.stop": ("StopSignal", "STOP_REASONS"),
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
