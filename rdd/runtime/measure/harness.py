"""The measurements ``rdd-bench`` makes of an opened build, also used on their own: the one
latency harness (:func:`time_builds`), end-to-end FPS through the runner's pipeline
(:func:`e2e_interleaved`) and this process's peak RSS (:class:`PeakRss`).

Latencies in ms (trtexec's protocol, interleaved rounds: :mod:`rdd.runtime.timing`), FPS in
frames per second, RSS in MB. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rdd.runtime.measure.frames import Frames

__all__ = ["time_builds", "input_batch", "e2e_interleaved", "PeakRss"]


def _rss_reset() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRss:
    """This process's peak resident memory from now on (Linux ``/proc``: the peak is reset when
    made); :meth:`growth_mb` is the rise above the RSS at that moment, ``None`` where unknown."""

    def __init__(self) -> None:
        self.tracked = _rss_reset()
        self.rss0 = _status_kb("VmRSS")

    def growth_mb(self) -> float | None:
        peak = _status_kb("VmHWM") if self.tracked else None
        return (peak - self.rss0) / 1024 if peak and self.rss0 else None


def input_batch(be: Any, hw: tuple[int, int], frames: Frames | None, batch: int) -> np.ndarray | None:
    """``batch`` copies of the first of ``frames`` (or a seeded random frame) preprocessed for
    ``be`` at ``hw``; ``None`` when ``batch > 1`` and the model's batch axis is fixed."""
    from rdd.runtime.stream.transforms import preprocess

    if batch > 1 and not be.meta.dynamic_batch:
        return None
    img = frames[0].image if frames else np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    x = preprocess(img, be.meta, hw)
    return np.ascontiguousarray(np.repeat(x, batch, axis=0)) if batch > 1 else x


def time_builds(
    backends: Mapping[str, Any],
    size: tuple[int, int],
    *,
    frame: np.ndarray | None = None,
    batch: int = 1,
    **timing: Any,
) -> dict[str, dict[str, Any]]:
    """The one latency harness of the project: each backend's ``infer`` on the same frame
    (``frame`` or a seeded random one) preprocessed for it at ``size`` (``batch`` copies),
    timed under trtexec's protocol in interleaved rounds (:func:`rdd.runtime.timing.
    measure_interleaved`; ``timing`` are its keyword arguments). ``rdd-bench``, the export
    stage's latencies, the evaluate stage's latency column and ``benchmarks/`` all time builds
    this way, each opened by :func:`~rdd.runtime.backends.open_build` (ONNX Runtime's threads
    not spinning), so one model on one backend at one size and thread count has one latency."""
    from rdd.runtime.timing import measure_interleaved

    img = (
        frame if frame is not None else np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    )
    frames = Frames.from_arrays([img])
    fns = {}
    for k, be in backends.items():
        x = input_batch(be, tuple(size), frames, batch)
        if x is not None:
            fns[k] = (lambda b, x_: lambda: b.infer(x_))(be, x)
    return measure_interleaved(fns, batch=batch, **timing)


def e2e_interleaved(
    rows: Mapping[str, tuple[Any, tuple[int, int]]], clip: Any, frames: int, rounds: int
) -> dict[str, float | None]:
    """End-to-end FPS per row (``key → (backend, inference size)``): ``rounds`` short pipeline
    runs each over ``clip`` (``frames / rounds`` frames, rotated order, like the latency rounds),
    the median of the runs."""
    rounds = max(1, min(rounds, frames // 8))
    keys = list(rows)
    fps: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)] if keys else []:
            v = _e2e_fps(*rows[k], clip, max(2, frames // rounds))
            if v is not None:
                fps[k].append(v)
    return {k: float(np.median(v)) if v else None for k, v in fps.items()}


def _e2e_fps(backend: Any, hw: tuple[int, int], clip: Any, n: int) -> float | None:
    from rdd.runtime.stream.capture import VideoSource
    from rdd.runtime.stream.sources import IMAGE_EXTS, ImageFolderSource
    from rdd.runtime.stream.stop import SIGNAL_EXIT_CODES, Interrupted
    from rdd.runtime.stream.stream import Pipeline, PipelineConfig

    is_video = (
        isinstance(clip, (str, Path)) and Path(clip).is_file() and Path(clip).suffix.lower() not in IMAGE_EXTS
    )
    src = VideoSource(clip) if is_video else ImageFolderSource(clip)
    try:
        rep = Pipeline(
            backend, src, config=PipelineConfig(warmup=min(3, n - 1), max_frames=n, resize=hw)
        ).run()
    finally:
        src.close()
    if rep.get("stop_reason") in SIGNAL_EXIT_CODES:  # the pipeline took a Ctrl-C as its stop:
        raise Interrupted(rep["stop_reason"])  # it ends the benchmark, not just this run
    fps = rep.get("fps")
    return float(fps) if fps is not None and math.isfinite(fps) else None
