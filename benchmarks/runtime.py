#!/usr/bin/env python
"""The runner against pure inference on CPU: ``rdd-bench``'s ``inf/s`` and ``e2e FPS`` columns.

Pure inference (back-to-back ``Backend.infer`` on a decoded, preprocessed frame) is the ceiling
of the runner; end-to-end FPS is the runner's threaded pipeline reading the images from disk,
preprocessing, inferring, making labels and (here) nothing else. Their ratio (target ≥ 0.9) is
what the pipeline's own overhead leaves. This is one ``rdd-bench`` call:

    python benchmarks/runtime.py --model outputs/export/model.onnx [--images DIR] [--threads N]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from rdd.runtime.bench_cli import main as bench

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="an exported build (or an export folder)")
    ap.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "camvid" / "val"))
    ap.add_argument("--threads", default="2")
    ap.add_argument("--e2e-frames", default="100")
    args = ap.parse_args(argv)
    return bench(
        [
            "--model",
            args.model,
            "--images",
            args.images,
            "--threads",
            args.threads,
            "--e2e-frames",
            args.e2e_frames,
            "--rows",
            "ort_cpu",
            "openvino_cpu",
            "--format",
            "md",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
