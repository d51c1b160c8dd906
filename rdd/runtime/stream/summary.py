"""The report's one human line (what ``rdd-infer`` prints when a run ends)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary", "stream_summary"]


def format_summary(rep: dict[str, Any]) -> str:
    """One human line: model, backend, frames, FPS, latency, mIoU (``None`` prints as nan)."""
    rep = {
        **rep,
        **{
            k: (float("nan") if rep.get(k) is None else rep[k])
            for k in ("fps", "inference_fps", "miou")
            if k in rep
        },
    }
    rep["latency_ms"] = {k: (float("nan") if v is None else v) for k, v in rep["latency_ms"].items()}
    size = "×".join(str(v) for v in rep["inference_size"]) if rep.get("inference_size") else "?"
    if rep.get("resize"):
        size += f" ({rep['resize']})"
    s = (
        f"{rep.get('model', '?')} [{rep.get('backend')}/{rep.get('backend_device', '?')}] "
        f"{rep['frames']} frames "
        f"@ {size}: {rep['fps']:.1f} FPS end-to-end (inference {rep['inference_fps']:.1f} FPS), "
        f"latency p50 {rep['latency_ms']['p50']:.1f} ms p99 {rep['latency_ms']['p99']:.1f} ms"
    )
    if "miou" in rep:
        s += f", mIoU {100 * rep['miou']:.2f}% over {rep['labelled_frames']} labelled frames"
        if rep.get("labels_missing"):
            s += f" ({rep['labels_missing']} without a mask, skipped)"
    s += stream_summary(rep)
    if rep.get("out"):
        s += f" → {rep['out']}"
    return s


def stream_summary(rep: dict[str, Any]) -> str:
    """``", batch 4, real time @ 30 fps: 3/120 dropped, …, flicker 1.20% (labels 0.90%)"``:
    the batch, ``realtime`` and flicker figures of a report for its summary line ("" if none)."""
    s = f", batch {rep['batch']}" if (rep.get("batch") or 1) > 1 else ""
    rt = rep.get("realtime")
    if rt:
        s += (
            f", real time @ {rt['fps']:g} fps: {rt['dropped_frames']}/{rt['frames_read']} "
            f"dropped, {rt['deadline_misses']} deadline misses"
        )
    if rep.get("flicker") is not None:
        s += f", flicker {100 * rep['flicker']:.2f}%"
        if rep.get("flicker_gt") is not None:
            s += f" (labels {100 * rep['flicker_gt']:.2f}%)"
    return s
