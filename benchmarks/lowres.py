#!/usr/bin/env python
"""Labels from low-resolution logits (issue #32): ``rdd.runtime.backends.lowres`` vs ORT's Resize + argmax.

The committed student (LR-ASPP-MobileNetV2, 11 classes) is cut before its final ``Resize``; its
real low-resolution logits (``1×11×45×60`` for a 360×480 CamVid val frame, computed up front and
not timed) are turned into 360×480 labels by each candidate, timed side by side with
``rdd.runtime.timing.measure_interleaved`` (rounds in rotated order, p50 of the per-frame calls):

* ``(a) ort_resize+argmax``: today's path, the model's own tail (Shape/Slice/Concat + ``Resize``
  linear/half_pixel, run by ONNX Runtime) then numpy ``argmax`` over the K×H×W logits;
* ``(b) LabelUpsampler``: ``rdd.runtime.backends.lowres``;
* ``(c)`` the alternatives tried: the same cells without candidate pruning (all K classes per
  boundary cell), the band computed pixel by pixel with ORT's formula (the naive vectorisation),
  numpy's full interpolation + argmax, ``cv2.resize`` per channel + argmax, and (a)'s two halves.

Printed: the CPU, p50 ms per frame and the speed-up over (a), the boundary-band pixel fraction,
and the pixels that differ from (a) over all frames (0 for every exact method).

    python benchmarks/lowres.py --frames 40 [--threads N] [--clock thread] [--json out.json]

On a shared, loaded machine wall-clock p50s swing by 2-3x between runs; ``--clock thread``
times CPU seconds of the calling thread instead (steadier there; ORT then runs on 1 thread,
in that thread, so the comparison stays like for like).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rdd.contract import read_onnx_meta  # noqa: E402
from rdd.runtime.backends.lowres import LabelUpsampler  # noqa: E402
from rdd.runtime.backends.ort import make_session  # noqa: E402
from rdd.runtime.measure.frames import Frames  # noqa: E402
from rdd.runtime.provenance import device_info  # noqa: E402
from rdd.runtime.stream.transforms import preprocess  # noqa: E402
from rdd.runtime.timing import measure_interleaved, protocol  # noqa: E402

MODEL = REPO / "studies" / "camvid_converged" / "models" / "rdd_16x-s0.onnx"
IMAGES = REPO.parent / "shared" / "data" / "camvid" / "val"


def split_model(path: Path) -> tuple[bytes, bytes, str, dict]:
    """``(head, tail, cut, attrs)``: the model up to its final Resize's input ``cut``, the tail
    from there (the Resize and the shape ops that feed it ``sizes``), the Resize attributes."""
    import onnx
    from onnx import helper, utils

    model = onnx.load(str(path))
    resize = [n for n in model.graph.node if n.op_type == "Resize"][-1]
    image, logits = model.graph.input[0].name, model.graph.output[0].name
    ex = utils.Extractor(model)
    head = ex.extract_model([image], [resize.input[0]])
    tail = ex.extract_model([resize.input[0], image], [logits])
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    return head.SerializeToString(), tail.SerializeToString(), resize.input[0], attrs


def load_frames(model: Path, images: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """The first ``n`` frames (file-name order) as the model's ``1×3×H×W`` input, through the
    runtime's own reader and preprocessing (``Frames``, ``preprocess``)."""
    meta = read_onnx_meta(model)
    frames = Frames.from_folder(images)
    out = [preprocess(f.image, meta, size) for f, _ in zip(frames, range(n))]
    if not out:
        raise SystemExit(f"no frames in {images}")
    return out


class NoPruning(LabelUpsampler):
    """(c) every boundary cell interpolates all K classes (no candidate buckets)."""

    _WIDTHS = ()


class BandPerPixel(LabelUpsampler):
    """(c) every band pixel gathers its 4 corner vectors and applies ORT's formula over K."""

    def _boundary(self, x, labels, dis, rows, tol):
        ay, ax = self._ay, self._ax
        cell_y, cell_x = ay.map // ay.slots, ax.map // ax.slots  # H, W: each pixel's cell
        b, y, xo = np.nonzero(dis[:, cell_y][:, :, cell_x])  # the band's pixels
        return [(b, y, xo)]  # → _exact for all of them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40, help="CamVid val frames (cycled)")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--images", type=Path, default=IMAGES)
    ap.add_argument("--size", default="360,480", help="H,W of the model input / the labels")
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: default)")
    ap.add_argument("--duration", type=float, default=2.0, help="timed seconds per candidate")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--clock",
        choices=["wall", "thread"],
        default="wall",
        help="wall: time.perf_counter (the protocol); thread: time.thread_time",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.clock == "thread":
        args.threads = 1  # ORT's own pool threads would escape a thread clock
    size = tuple(int(v) for v in args.size.split(","))
    head, tail, cut, attrs = split_model(args.model)
    # the project's one session factory: spinning off, as every published latency (docs/BENCH.md)
    s_head = make_session(head, threads=args.threads)
    s_tail = make_session(tail, threads=args.threads)
    s_tail1 = make_session(tail, threads=1)
    image_name = s_head.get_inputs()[0].name
    frames = load_frames(args.model, args.images, args.frames, size)
    lows = [s_head.run(None, {image_name: x})[0] for x in frames]  # 1×K×h×w, not timed

    def ort_resize(low: np.ndarray, sess=s_tail) -> np.ndarray:  # (the tail reads only the
        return sess.run(None, {cut: low, image_name: frames[0]})[0]  # image's shape)

    up = LabelUpsampler(lows[0].shape[2:], size)
    no_prune, per_pixel = NoPruning(up.in_hw, size), BandPerPixel(up.in_hw, size)
    fulls = [ort_resize(low) for low in lows]
    methods = {  # name → (labels from low-res logits, exact?)
        "(a) ort_resize+argmax": (lambda low: ort_resize(low).argmax(axis=1).astype(np.uint8), 1)
    }
    if args.threads != 1:
        methods["(a) same, ORT on 1 thread"] = (
            lambda low: ort_resize(low, s_tail1).argmax(axis=1).astype(np.uint8),
            1,
        )
    methods |= {
        "(b) LabelUpsampler": (up, 1),
        "(c) no candidate pruning": (no_prune, 1),
        "(c) band per pixel (ORT formula)": (per_pixel, 1),
        "(c) numpy full interp+argmax": (
            lambda low: up.upsample(low, exact=True).argmax(axis=1).astype(np.uint8),
            1,
        ),
        "(c) cv2.resize+argmax": (lambda low: up.upsample(low).argmax(axis=1).astype(np.uint8), 0),
    }
    fns = {}
    for name, (fn, _) in methods.items():
        it = itertools.cycle(lows)
        fns[name] = (lambda f, it: lambda: f(next(it)))(fn, it)  # noqa: B023 — bound as an argument
    it_full, it_low = itertools.cycle(fulls), itertools.cycle(lows)
    fns["    (a) half: ort_resize only"] = lambda: ort_resize(next(it_low))
    fns["    (a) half: argmax only"] = lambda: next(it_full).argmax(axis=1).astype(np.uint8)

    ref = [f.argmax(axis=1).astype(np.uint8) for f in fulls]
    diffs = {
        name: int(sum((fn(low) != r).sum() for low, r in zip(lows, ref))) for name, (fn, _) in methods.items()
    }
    band = float(np.mean([up.band(low).mean() for low in lows]))
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    st = measure_interleaved(
        fns, rounds=args.rounds, duration_s=args.duration, clock=clock, min_runs=len(lows)
    )

    base = st["(a) ort_resize+argmax"]["p50"]
    lines = [
        f"CPU: {device_info()['cpu']}  ({platform.machine()}; numpy {np.__version__}, "
        f"OpenCV {cv2.__version__}, onnxruntime {device_info()['onnxruntime']}; ORT intra-op threads: "
        f"{args.threads or 'default'}, the numpy paths single-threaded; clock: {args.clock})",
        f"model: {args.model.name}  logits {tuple(lows[0].shape[1:])} → labels {size}; "
        f"Resize mode={attrs['mode'].decode()}, "
        f"coordinate_transformation_mode={attrs['coordinate_transformation_mode'].decode()}",
        f"frames: {len(lows)} CamVid val ({args.images}); boundary band: {100 * band:.1f} % of the pixels",
        "",
        f"{'method':34s} {'p50 ms':>8s} {'speed-up':>9s} {'differing px':>13s}   p50 of each round (ms)",
    ]
    for name, s in st.items():
        rounds = " ".join(f"{v:.2f}" for v in s["round_p50"])
        d = diffs.get(name)
        tag = "" if d is None else f"{d}" + ("" if methods[name][1] else " ~")
        lines.append(f"{name:34s} {s['p50']:8.3f} {base / s['p50']:8.1f}x {tag:>13s}   {rounds}")
    lines.append("(speed-up: p50 of (a) / p50; differing px: vs (a) over all frames, ~ = approximate method)")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu": device_info()["cpu"],
                    "frames": len(lows),
                    "band_fraction": band,
                    "differing_pixels": diffs,
                    "protocol": protocol(rounds=args.rounds, duration_s=args.duration),
                    "p50_ms": {k: v["p50"] for k, v in st.items()},
                    "speedup_vs_a": {k: base / v["p50"] for k, v in st.items()},
                },
                indent=2,
            )
            + "\n"
        )
    exact_bad = {k: v for k, v in diffs.items() if methods[k][1] and v}
    if exact_bad:
        raise SystemExit(f"exact methods differ from (a): {exact_bad}")


if __name__ == "__main__":
    main()
