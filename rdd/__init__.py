"""rdd-edge: Relative Difficulty Distillation for semantic segmentation, from teacher to edge.

This package root imports nothing heavy (no torch) so that the edge runtime (``rdd.runtime``)
works on a device with only numpy, OpenCV and onnxruntime installed.
"""

__version__ = "0.1.0"

__all__ = ["Segmenter", "__version__"]


def __getattr__(name: str):
    """``rdd.Segmenter`` (the one-call API, :mod:`rdd.runtime.segmenter`), imported on first use
    so that ``import rdd`` stays free of numpy, OpenCV and every runtime."""
    if name == "Segmenter":
        from rdd.runtime.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'rdd' has no attribute {name!r}")
