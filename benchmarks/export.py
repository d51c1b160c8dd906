#!/usr/bin/env python
"""CPU latency of the student per export recipe: torch eager, ORT FP32 and ORT INT8 recipes.

Exports a (random-init, speed only) student, quantises it with each INT8 recipe of
``--int8`` (calibration on CamVid training frames when ``--camvid`` exists, else random frames)
and times every build with the project's one harness, :func:`rdd.runtime.measure.harness.
time_builds` (``Backend.infer`` on a preprocessed frame, trtexec's protocol, interleaved
rounds, ONNX Runtime's threads not spinning), as ``rdd-bench`` and the export stage do. JSON out.

    python benchmarks/export.py --widths 0.5 --sizes 360x480 --int8 qdq_u8s8_rr qdq_u8s8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# INT8 recipes (keyword arguments of rdd.export.quantize.quantize_int8)
INT8_VARIANTS = {
    "qdq_u8s8_rr": {"reduce_range": True},
    "qdq_u8s8": {"reduce_range": False},
    "qdq_u8s8_keepfloat": {"reduce_range": False, "keep_float": ("input_conv", "output_resize")},
    "qdq_u8u8": {"reduce_range": False, "weight_type": "quint8"},
    "qoperator_u8s8_rr": {"reduce_range": True, "quant_format": "qoperator"},
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", type=float, nargs="+", default=[0.5])
    p.add_argument("--sizes", nargs="+", default=["360x480"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calib-frames", type=int, default=16)
    p.add_argument(
        "--camvid", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
    )
    p.add_argument("--int8", nargs="+", default=["qdq_u8s8_rr"], choices=sorted(INT8_VARIANTS))
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from rdd.artifacts import save_artifact
    from rdd.export.onnx import export_onnx
    from rdd.export.quantize import quantize_int8
    from rdd.models import create_model
    from rdd.runtime.backends import open_build
    from rdd.runtime.measure.harness import time_builds
    from rdd.runtime.provenance import device_info
    from rdd.spec import CAMVID_CLASSES, Normalization

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    result = {"device": device_info(), "threads": args.threads, "unit": "ms (batch 1)", "results": []}
    tmp = Path(tempfile.mkdtemp(prefix="rdd_bench_"))
    for wm in args.widths:
        torch.manual_seed(0)
        model = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=wm).eval()
        art = tmp / f"w{wm}.pt"
        save_artifact(art, model, classes=CAMVID_CLASSES, normalization=Normalization(), input_size=sizes[0])
        fp32 = export_onnx(
            model,
            tmp / f"w{wm}.onnx",
            classes=CAMVID_CLASSES,
            normalization=Normalization(),
            input_size=sizes[0],
        )["path"]
        if (args.camvid / "train.txt").exists():
            from rdd.data import build_dataset

            calib = build_dataset("camvid", root=args.camvid, split="train")
        else:
            rng = np.random.default_rng(0)
            calib = [rng.integers(0, 256, (*sizes[0], 3), dtype=np.uint8) for _ in range(16)]
        builds = {
            "torch_eager": open_build(art, threads=args.threads),
            "ort_fp32": open_build(fp32, threads=args.threads),
        }
        for name in args.int8:
            q = quantize_int8(
                fp32,
                tmp / f"w{wm}_{name}.onnx",
                calib_frames=calib,
                calib_limit=args.calib_frames,
                **INT8_VARIANTS[name],
            )
            builds[f"ort_int8_{name}"] = open_build(q["path"], threads=args.threads)
        for size in sizes:
            st = time_builds(builds, size, rounds=args.rounds, min_runs=args.runs, duration_s=0.0)
            p50 = {k: round(v["p50"], 2) for k, v in st.items()}
            entry = {
                "width_mult": wm,
                "size": list(size),
                "latency_ms_p50": p50,
                "speedup_vs_ort_fp32": {k: round(p50["ort_fp32"] / v, 2) for k, v in p50.items()},
            }
            result["results"].append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
