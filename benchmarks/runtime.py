#!/usr/bin/env python
"""Real-time runner vs pure inference on CPU (CamVid val, 360×480): prints JSON.

* ``pure_inference_fps``: back-to-back ``session.run`` on frames already decoded and
  preprocessed in memory (the ceiling for the runner);
* ``end_to_end_fps``: :class:`rdd.runtime.Pipeline` reading the PNGs from disk, preprocessing,
  inferring, resizing, colouring and (with ``--out``, the default) writing the overlay mp4,
  after ``--warmup`` frames; ``ratio`` = end-to-end / pure (target ≥ 0.8);
* the same without writing a video, and the per-stage times.

Without ``--model`` an ``lraspp_mobilenetv2`` (random init: speed only) is exported to a
temporary ONNX with ``rdd.export.export_onnx`` (needs torch); with ``--model`` any exported
``.onnx`` is used and torch is not needed.

    python benchmarks/runtime.py [--images ../shared/data/camvid/val] [--threads N] [--model m.onnx]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rdd.runtime import (ImageFolderSource, OrtBackend, Pipeline, PipelineConfig,  # noqa: E402
                         preprocess)


def _export(path: Path, size: tuple[int, int], width_mult: float) -> None:
    import torch

    from rdd.export import export_onnx
    from rdd.models import create_model
    from rdd.spec import CAMVID_CLASSES, Normalization

    torch.manual_seed(0)
    model = create_model("lraspp_mobilenetv2", num_classes=CAMVID_CLASSES.num_classes,
                         width_mult=width_mult).eval()
    export_onnx(model, path, classes=CAMVID_CLASSES, normalization=Normalization(),
                input_size=size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "camvid" / "val"))
    ap.add_argument("--model", default=None, help="exported .onnx (default: export lraspp_mobilenetv2)")
    ap.add_argument("--width-mult", type=float, default=1.0)
    ap.add_argument("--size", default="360,480", help="H,W of the export / inference")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pure-frames", type=int, default=30, help="frames timed for pure inference")
    ap.add_argument("--no-video", action="store_true", help="skip the run that writes the overlay")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # as rdd.runtime.run_inference does (deploy/infer.py)
    size = tuple(int(v) for v in args.size.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else Path(tmp) / "lraspp_mobilenetv2.onnx"
        if args.model is None:
            _export(model, size, args.width_mult)
        be = OrtBackend(model, device="cpu", intra_op_threads=args.threads)
        src = ImageFolderSource(args.images)

        # Pure inference: frames decoded and preprocessed up front, back-to-back session.run.
        # Measured before and after the pipeline runs (load on a shared machine drifts).
        xs = [preprocess(img, be.meta, size) for _, img in src][: args.warmup + args.pure_frames]

        def pure() -> float:
            it = itertools.cycle(xs)
            st = measure(lambda: be.run_raw(next(it)), warmup_runs=args.warmup, duration_s=0.0,
                         min_runs=args.pure_frames)
            return st["throughput"]

        pure_before = pure()
        runs = {}
        for name, out in (("no_video", None), ("overlay_video", Path(tmp) / "overlay.mp4")):
            if out is not None and args.no_video:
                continue
            cfg = PipelineConfig(warmup=args.warmup, resize=size, out=out)
            runs[name] = Pipeline(be, ImageFolderSource(args.images), config=cfg).run()
        pure_after = pure()
        pure_fps = (pure_before + pure_after) / 2

    main_run = runs.get("overlay_video", runs["no_video"])
    result = {
        "model": be.meta.model, "model_path": str(args.model or "exported lraspp_mobilenetv2 (random init)"),
        "width_mult": args.width_mult if args.model is None else None,
        "input_size": list(size), "frames": main_run["frames"], "warmup": args.warmup,
        "threads": args.threads, "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "pure_inference_fps": pure_fps,
        "pure_inference_fps_before_after": [pure_before, pure_after],
        "pure_inference_ms": 1e3 / pure_fps,
        "end_to_end_fps": main_run["fps"],
        "ratio": main_run["fps"] / pure_fps,
        "end_to_end_fps_no_video": runs["no_video"]["fps"],
        "ratio_no_video": runs["no_video"]["fps"] / pure_fps,
        "latency_ms": main_run["latency_ms"],
        "stages_ms_mean": {k: v["mean"] for k, v in main_run["stages_ms"].items()},
        "stages_ms_p50": {k: v["p50"] for k, v in main_run["stages_ms"].items()},
        "in_pipeline_inference_fps": main_run["inference_fps"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
