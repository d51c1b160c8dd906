"""rdd-edge: Relative Difficulty Distillation for semantic segmentation, from teacher to edge.

This package root imports nothing heavy (no torch) so that the edge runtime (``rdd.runtime``)
works on a device with only numpy, OpenCV and onnxruntime installed.
"""
__version__ = "0.1.0"
