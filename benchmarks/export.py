#!/usr/bin/env python
"""CPU latency of the student: PyTorch eager vs onnxruntime FP32 vs onnxruntime INT8 (JSON out).

Random-init weights are fine for speed. INT8 calibration uses CamVid training frames when
``--camvid`` exists (default ``../shared/data/camvid``), otherwise random frames. Every backend is
timed at batch 1 in interleaved rounds (so load changes on a shared machine hit all of them alike);
the figure reported is the median over all timed runs after warm-up (:mod:`rdd.runtime.timing`).

    python benchmarks/export.py                                  # widths 0.5 and 1.0, 360×480 and 720×960
    python benchmarks/export.py --widths 0.5 --sizes 360x480 --rounds 3 --runs 10 --explore

Targets on a 2-core CPU: ORT FP32 ≥ 1.5× eager, ORT INT8 ≥ 1.5× ORT FP32.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# INT8 recipes compared with --explore (the first one is the default of rdd.export.quantize).
INT8_VARIANTS = {
    "qdq_u8s8_rr": {"reduce_range": True},
    "qdq_u8s8": {"reduce_range": False},
    "qdq_u8u8": {"reduce_range": False, "weight_type": "quint8"},
    "qoperator_u8s8_rr": {"reduce_range": True, "quant_format": "qoperator"},
    "qdq_u8s8_rr_conv_only": {"reduce_range": True, "op_types_to_quantize": ["Conv"]},
    "qdq_s8s8_rr": {"reduce_range": True, "activation_type": "qint8"},
}


def _parse_size(s: str) -> tuple[int, int]:
    h, w = s.lower().split("x")
    return int(h), int(w)


def _calib_frames(camvid: Path, n: int, size: tuple[int, int]):
    from rdd.export.frames import load_frames

    if (camvid / "train.txt").exists():
        from rdd.data import build_dataset

        ds = build_dataset("camvid", root=camvid, split="train")
        return load_frames(ds, size=size, limit=n), "camvid-train"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)], "random"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="lraspp_mobilenetv2")
    p.add_argument("--num-classes", type=int, default=11)
    p.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    p.add_argument("--sizes", type=_parse_size, nargs="+", default=[(360, 480), (720, 960)])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=10, help="timed runs per backend per round")
    p.add_argument("--duration", type=float, default=0.0,
                   help="timed seconds per backend, over all rounds (trtexec: 3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all backends")
    p.add_argument("--calib-frames", type=int, default=16)
    p.add_argument("--camvid", type=Path,
                   default=Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")
    p.add_argument("--int8", nargs="+", default=["qdq_u8s8_rr"], choices=sorted(INT8_VARIANTS),
                   help="INT8 recipes to time")
    p.add_argument("--explore", action="store_true",
                   help="also time all INT8 recipes and FP32 session options")
    p.add_argument("--spin", action="store_true",
                   help="let ORT intra-op threads busy-wait (faster on an idle dedicated CPU, but "
                        "starves the other backends on a shared one)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)

    import torch

    from rdd.export.onnx import export_onnx
    from rdd.export.quantize import quantize_int8
    from rdd.models import create_model
    from rdd.runtime.backends import make_session
    from rdd.runtime.provenance import device_info
    from rdd.runtime.timing import measure_interleaved
    from rdd.spec import ClassInfo, Normalization

    torch.set_num_threads(args.threads)
    int8_names = sorted(INT8_VARIANTS) if args.explore else args.int8
    classes = ClassInfo(names=tuple(f"c{i}" for i in range(args.num_classes)))
    result = {"command": " ".join([sys.executable, *sys.argv]), "device": device_info(),
              "threads": args.threads, "ort_spinning": args.spin,
              "load_avg_at_start": os.getloadavg(), "unit": "ms (batch 1)",
              "stat": "p50 over rounds×runs after warm-up (rdd.runtime.timing)", "results": []}
    tmp = Path(tempfile.mkdtemp(prefix="rdd_bench_"))
    for wm in args.widths:
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=args.num_classes, width_mult=wm).eval()
        fp32 = export_onnx(model, tmp / f"w{wm}.onnx", classes=classes,
                           normalization=Normalization(), input_size=args.sizes[0])
        frames, calib_src = _calib_frames(args.camvid, args.calib_frames, args.sizes[0])
        int8 = {}
        for name in int8_names:
            t0 = time.perf_counter()
            q = quantize_int8(fp32["path"], tmp / f"w{wm}_{name}.onnx", calib_frames=frames,
                              calib_limit=None, **INT8_VARIANTS[name])
            int8[name] = (q["path"], q["size_bytes"], time.perf_counter() - t0)
        for size in args.sizes:
            h, w = size
            x = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
            xt = torch.from_numpy(x)
            backends = {}

            def torch_eager():
                with torch.inference_mode():
                    model(xt)

            backends["torch_eager"] = torch_eager
            sess_cfgs = {"ort_fp32": (fp32["path"], {})}
            if args.explore:
                sess_cfgs["ort_fp32_extended"] = (fp32["path"], {"opt_level": "extended"})
                sess_cfgs["ort_fp32_parallel"] = (fp32["path"], {"parallel": True})
                sess_cfgs["ort_fp32_1thread"] = (fp32["path"], {"threads": 1})
            for name, (path, _, _) in int8.items():
                sess_cfgs[f"ort_int8_{name}"] = (path, {})
            for key, (path, kw) in sess_cfgs.items():
                sess = make_session(path, **{"threads": args.threads, "spin": args.spin, **kw})
                backends[key] = (lambda s: (lambda: s.run(None, {"image": x})))(sess)
            stats = measure_interleaved(backends, rounds=args.rounds, warmup_runs=args.warmup,
                                        duration_s=args.duration, min_runs=args.runs * args.rounds)
            med = {k: v["p50"] for k, v in stats.items()}
            times = {k: v["round_p50"] for k, v in stats.items()}
            entry = {"model": args.model, "width_mult": wm, "size": [h, w],
                     "calib": calib_src, "latency_ms": {k: round(v, 2) for k, v in med.items()},
                     "rounds_p50_ms": {k: [round(t, 2) for t in v] for k, v in times.items()},
                     "size_bytes": {"onnx_fp32": fp32["size_bytes"],
                                    **{f"int8_{n}": s for n, (_, s, _) in int8.items()}},
                     "speedup": {"ort_fp32_vs_eager": round(med["torch_eager"] / med["ort_fp32"], 2)}}
            for n in int8:
                entry["speedup"][f"int8_{n}_vs_fp32"] = round(med["ort_fp32"] / med[f"ort_int8_{n}"], 2)
            result["results"].append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    result["load_avg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from rdd.spec import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return result


if __name__ == "__main__":
    main()
