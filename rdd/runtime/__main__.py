"""``python -m rdd.runtime``: the real-time runner (same CLI as ``rdd-infer`` / ``deploy/infer.py``)."""

import os
import sys

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from rdd.runtime.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python -m rdd.runtime"))
