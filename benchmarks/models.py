"""Parameters, FLOPs and CPU latency of every registered model; prints JSON.

    python benchmarks/models.py --threads 2 --widths 1.0 0.5 0.25 --size 360 480 --runs 5

Latency: :func:`rdd.reporting.cpu_latency` (the project's protocol, :mod:`rdd.runtime.timing`):
``--warmup`` calls and >= 200 ms of warm-up, then ``--runs`` forwards at batch 1, eval mode,
``torch.inference_mode``; median and minimum reported. FLOPs: ``torch.utils.flop_counter`` (1 MAC = 2 FLOPs;
convs/matmuls only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from rdd.models import count_flops, count_params, create_model, list_models
from rdd.reporting import cpu_latency
from rdd.runtime.provenance import device_info
from rdd.spec import write_json_atomic


def bench_model(
    name: str, width: float, *, size: tuple[int, int], num_classes: int, runs: int, warmup: int, threads: int
) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes, width_mult=width).eval()
    kwargs = {k: v for k, v in model.model_kwargs.items() if k in ("output_stride", "aux")}
    lat = cpu_latency(model, size, warmup=warmup, runs=runs, threads=threads)
    return {
        "model": name,
        "width_mult": width,
        **kwargs,
        "params_m": round(count_params(model) / 1e6, 3),
        "gflops": round(count_flops(model, size) / 1e9, 2),
        "latency_ms_median": round(lat["p50"], 1),
        "latency_ms_min": round(lat["min"], 1),
        "runs": lat["runs"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="*", default=None, help="default: all registered")
    p.add_argument("--widths", nargs="*", type=float, default=[1.0, 0.5, 0.25])
    p.add_argument("--size", nargs=2, type=int, default=[360, 480], metavar=("H", "W"))
    p.add_argument("--num-classes", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        p.error(f"unknown models {unknown}; known: {list_models()}")
    results = []
    for name in names:
        for width in args.widths:
            r = bench_model(
                name,
                width,
                size=tuple(args.size),
                num_classes=args.num_classes,
                runs=args.runs,
                warmup=args.warmup,
                threads=args.threads,
            )
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    report = {
        "benchmark": "models",
        "input_size": list(args.size),
        "batch": 1,
        "threads": args.threads,
        "device": device_info(),
        "loadavg_at_end": list(os.getloadavg()),
        "results": results,
    }
    if args.out:
        write_json_atomic(args.out, report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
