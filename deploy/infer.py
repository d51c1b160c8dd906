#!/usr/bin/env python
"""Real-time semantic segmentation on a video, a camera or an image folder.

A thin wrapper over :mod:`rdd.runtime.cli` (installed as ``rdd-infer``; also
``python -m rdd.runtime``), kept so a checkout runs without installing:

    python deploy/infer.py --model student.onnx --video drive.mp4 --out overlay.mp4 --report r.json
    python deploy/infer.py --model student.onnx --images ../shared/data/camvid/val \\
        --labels ../shared/data/camvid/valannot --label-map camvid --report r.json
    python deploy/infer.py --model student.onnx --camera 0 --max-frames 300

Needs only numpy, opencv and onnxruntime for ``--backend ort`` (no PyTorch).
"""

from __future__ import annotations

import os
import sys

# Keep OpenCV/FFmpeg from printing their own warnings around our one-line errors.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

try:
    import rdd.runtime  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rdd.runtime.cli import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main(prog="infer.py"))
