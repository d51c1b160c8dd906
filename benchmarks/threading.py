#!/usr/bin/env python
"""Which process and threading model should every published latency use? Measured on this CPU.

Candidates for timing several builds (the question of issue #31, answered in docs/BENCH.md):

* ``shared-spin`` — every build in one process, interleaved rounds, ONNX Runtime's intra-op
  threads spinning (its default; what ``rdd-bench`` did before);
* ``shared-nospin`` — the same with spinning off (what the export stage did, and now everything);
* ``own-spin`` / ``own-nospin`` — one build per process (trtexec / benchmark_app style), each
  timed alone in a fresh interpreter, the builds one after the other.

Each is run ``--repeats`` times in a rotated order and reported as the median and range of the
p50 latency per build, plus the runner's end-to-end FPS with spinning on and off (its decode and
overlay threads share the CPU with inference). JSON out; name the CPU beside any figure.

    python benchmarks/threading.py --model studies/camvid_converged/models/rdd_16x-s0.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _open(spec: str, spin: bool, threads: int):
    from rdd.runtime.backends import open_build
    from rdd.runtime.backends.ort import OrtBackend

    backend, path = spec.split(":", 1)
    if backend == "ort":
        return OrtBackend(path, threads=threads, spin=spin)
    return open_build(path, backend=backend, threads=threads)


def _time(specs: list[str], spin: bool, threads: int, size, duration: float) -> dict[str, float]:
    from rdd.runtime.measure.harness import time_builds

    builds = {s: _open(s, spin, threads) for s in specs}
    st = time_builds(builds, size, rounds=5, duration_s=duration, min_runs=20)
    return {k: v["p50"] for k, v in st.items()}


def _e2e(spec: str, spin: bool, threads: int, images: str, frames: int, size) -> float:
    from rdd.runtime.stream.sources import ImageFolderSource
    from rdd.runtime.stream.stream import Pipeline, PipelineConfig

    be = _open(spec, spin, threads)
    rep = Pipeline(
        be, ImageFolderSource(images), config=PipelineConfig(warmup=5, max_frames=frames, resize=size)
    ).run()
    return rep["fps"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="an FP32 .onnx")
    ap.add_argument("--int8", help="its INT8 .onnx (optional)")
    ap.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "camvid" / "val"))
    ap.add_argument("--size", default="360x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--e2e-frames", type=int, default=100)
    ap.add_argument("--worker", nargs=2, metavar=("SPEC", "SPIN"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.worker:  # one build alone in this process
        spec, spin = args.worker[0], args.worker[1] == "1"
        print(json.dumps(_time([spec], spin, args.threads, size, args.duration)))
        return {}
    import cv2

    from rdd.runtime.provenance import device_info

    cv2.setNumThreads(1)
    specs = [f"ort:{args.model}", f"openvino:{args.model}"] + (
        [f"ort:{args.int8}", f"openvino:{args.int8}"] if args.int8 else []
    )
    runs: dict[str, dict[str, list[float]]] = {}

    def add(mode: str, p50: dict[str, float]) -> None:
        for k, v in p50.items():
            runs.setdefault(mode, {}).setdefault(k, []).append(v)

    modes = ["shared-spin", "shared-nospin", "own-spin", "own-nospin"]
    for r in range(args.repeats):
        for mode in modes[r % 4 :] + modes[: r % 4]:
            spin = mode.endswith("-spin")
            if mode.startswith("shared"):
                add(mode, _time(specs, spin, args.threads, size, args.duration))
            else:
                for s in specs:
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--model",
                            args.model,
                            "--size",
                            args.size,
                            "--threads",
                            str(args.threads),
                            "--duration",
                            str(args.duration),
                            "--worker",
                            s,
                            "1" if spin else "0",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=REPO,
                    )
                    add(mode, json.loads(out.stdout.strip().splitlines()[-1]))
            print(
                mode,
                {
                    Path(k.split(":", 1)[1]).name + "@" + k.split(":")[0]: round(v[-1], 2)
                    for k, v in runs[mode].items()
                },
                file=sys.stderr,
            )
    e2e = {
        f"spin={int(s)}": [
            _e2e(specs[0], s, args.threads, args.images, args.e2e_frames, size) for _ in range(args.repeats)
        ]
        for s in (True, False)
    }
    summary = {
        mode: {
            Path(k.split(":", 1)[1]).name + "@" + k.split(":")[0]: {
                "p50_ms_median": statistics.median(v),
                "min": min(v),
                "max": max(v),
            }
            for k, v in per.items()
        }
        for mode, per in runs.items()
    }
    result = {
        "device": device_info(),
        "threads": args.threads,
        "size": list(size),
        "repeats": args.repeats,
        "p50_ms": summary,
        "e2e_fps_ort": {
            k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in e2e.items()
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
