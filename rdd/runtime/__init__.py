"""Edge runtime: inference backends and the real-time frame pipeline behind ``deploy/infer.py``.

Imports numpy, OpenCV and (lazily, inside the backend) onnxruntime only: PyTorch is imported
solely by :class:`TorchBackend`, so this package runs on a device without it.

Example::

    from rdd.runtime import OrtBackend, ImageFolderSource, Pipeline, PipelineConfig
    be = OrtBackend("student.onnx", device="cpu")
    rep = Pipeline(be, ImageFolderSource("camvid/val"), config=PipelineConfig(warmup=5)).run()
    rep["fps"], rep["latency_ms"]["p99"]
"""
from rdd.contract import (META_KEY, InputError, ModelMeta, apply_profile, engine_sidecar_path,
                          read_engine_sidecar)
from rdd.runtime.backends import (ORT_PROVIDERS, Backend, OrtBackend, TorchBackend, TrtBackend,
                                  create_backend, logits_to_labels, make_session)
from rdd.runtime.pipeline import (STAGES, OverlayRenderer, Pipeline, PipelineConfig, format_summary,
                                  inference_size, normalize_nchw, parse_resize, preprocess,
                                  resize_labels)
from rdd.runtime.runner import LABEL_MAPS, open_source, resolve_ignore_ids, run_inference
from rdd.runtime.sources import (CameraSource, FrameSource, ImageFolderSource, LabelFolder,
                                 StreamSource, VideoSource, quiet_opencv)

__all__ = [
    "Backend", "OrtBackend", "TrtBackend", "TorchBackend", "create_backend", "logits_to_labels",
    "ORT_PROVIDERS", "make_session", "InputError", "ModelMeta", "META_KEY", "Pipeline",
    "PipelineConfig",
    "preprocess", "normalize_nchw", "OverlayRenderer", "format_summary", "STAGES", "FrameSource",
    "VideoSource", "StreamSource", "CameraSource",
    "ImageFolderSource", "LabelFolder", "quiet_opencv", "open_source", "resolve_ignore_ids",
    "run_inference", "LABEL_MAPS", "apply_profile", "engine_sidecar_path", "read_engine_sidecar",
    "inference_size", "parse_resize", "resize_labels",
]
