#!/usr/bin/env python
"""Does the ``lowres`` head give the ``full`` head's labels on every pixel, on every backend?

Issue #32's first figure. For each pair of builds of one model that differ only in the head
(``full``: the graph upsamples the logits; ``lowres``: the runtime does, exactly), on each
backend here, the labels of both on the same frames (``rdd.runtime.measure.score.compare_builds``,
the comparison ``rdd-infer --compare`` runs): argmax agreement, the pixels that differ, and both
mIoUs. ``--pair FULL LOWRES`` names a pair (repeatable): two builds of one model (``rdd-export``
of one file with ``--head full`` and ``--head lowres``; INT8 builds calibrated on the same frames).
A backend that does not open a pair's format (ONNX Runtime and an OpenVINO IR) is left out. Not
timed; any machine.

    python benchmarks/heads.py --images ../shared/data/camvid/val \\
        --labels ../shared/data/camvid/valannot \\
        --pair outputs/bench360/full_float/model.onnx outputs/bench360/lowres_float/model.onnx \\
        --pair outputs/bench360/full_float/model_int8.onnx outputs/bench360/lowres_float/model_int8.onnx \\
        --json docs/bench/heads.json

Printed (and written with ``--json``): one row per pair × backend, and the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rdd.contract import InputError
from rdd.runtime.backends import available, open_build
from rdd.runtime.measure.frames import Frames
from rdd.runtime.measure.score import compare_builds
from rdd.runtime.provenance import device_info
from rdd.runtime.runner import resolve_ignore_ids

BACKENDS = ("ort", "openvino")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--pair", nargs=2, action="append", required=True, metavar=("FULL", "LOWRES"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    first = open_build(args.pair[0][0], threads=args.threads)
    ids = resolve_ignore_ids("auto", (), first.meta.classes) if args.labels else ()
    frames = Frames.from_folder(
        args.images, args.labels, ignore_ids=ids, ignore_index=first.meta.classes.ignore_index
    )
    rows = []
    for full, low in args.pair:
        for be in BACKENDS:
            if available(be) is not None:
                continue
            try:
                a = open_build(full, backend=be, threads=args.threads)
                b = open_build(low, backend=be, threads=args.threads)
            except InputError:  # a format this backend does not open
                continue
            assert (a.meta.head, b.meta.head) == ("full", "lowres"), (full, low)
            r = compare_builds(a, b, frames)
            pixels = sum(f.image.shape[0] * f.image.shape[1] for f in frames)
            row = {
                "backend": be,
                "full": full,
                "lowres": low,
                "precision": a.precision,
                "frames": r["frames"],
                "argmax_agreement": r["argmax_agreement"],
                "differing_pixels": round((1 - r["argmax_agreement"]) * pixels),
                "pixels": pixels,
                "miou_full": r["miou_first"],
                "miou_lowres": r["miou_second"],
            }
            rows.append(row)
            print(
                f"{be:9s} {a.precision:5s} {Path(full).parent.name}/{Path(full).name} vs "
                f"{Path(low).parent.name}/{Path(low).name}: agreement "
                f"{100 * r['argmax_agreement']:.4f}% ({row['differing_pixels']} of {pixels} px "
                f"differ), mIoU {100 * (r['miou_first'] or 0):.2f} / "
                f"{100 * (r['miou_second'] or 0):.2f}"
            )
    out = {"device": device_info(), "frames": len(frames), "rows": rows}
    print(f"CPU: {out['device'].get('cpu')}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
