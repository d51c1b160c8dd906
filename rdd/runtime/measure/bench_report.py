"""``rdd-bench`` results → Pareto front, recommendation, markdown table and plot (torch-free).

Pure functions over the result rows of :mod:`rdd.runtime.bench`; matplotlib is imported only by
:func:`save_plot` (the plot is skipped where it is not installed).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["pareto_front", "recommend", "markdown_table", "save_plot"]


def _ok(r: dict[str, Any]) -> bool:
    return r.get("status") == "ok"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(latency, accuracy)`` no other point beats on both axes
    (lower latency and higher accuracy; ties on both keep the first), by increasing latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def recommend(rows: Sequence[dict[str, Any]], max_miou_loss: float) -> dict[str, Any] | None:
    """The fastest measured row (latency p50) whose mIoU is within ``max_miou_loss`` *points*
    of its reference row (``miou_loss`` = reference − row, in points), or ``None``."""
    ok = [r for r in rows if _ok(r) and _num(r.get("latency_ms", {}).get("p50")) is not None
          and _num(r.get("miou_loss")) is not None and r["miou_loss"] <= max_miou_loss + 1e-9]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["latency_ms"]["p50"])
    return {"row": best["row"], "model": best["model"], "size": best["size"],
            "threads": best["threads"], "batch": best["batch"],
            "latency_ms_p50": best["latency_ms"]["p50"], "miou": best["miou"],
            "miou_loss": best["miou_loss"], "max_miou_loss": max_miou_loss}


def _f(v: Any, fmt: str) -> str:
    v = _num(v)
    return "–" if v is None else format(v, fmt)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per row × size × threads × batch; skipped rows last with their reason."""
    head = ("| row | model | size | threads | batch | p50 ms | p90 ms | p99 ms | inf/s "
            "| e2e FPS | mIoU % | ΔmIoU | agree % | MB | RSS MB |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: not _ok(r)):
        size = "×".join(str(v) for v in r["size"]) if r.get("size") else "–"
        if not _ok(r):
            lines.append(f"| {r['row']} | {r.get('model') or '–'} | {size} | – | – | "
                         f"{r['status']} | | | | | | | | | |")
            continue
        lat = r.get("latency_ms", {})
        mb = r["model_bytes"] / 1e6 if r.get("model_bytes") else None
        agree = 100 * r["argmax_agreement"] if _num(r.get("argmax_agreement")) is not None else None
        miou = 100 * r["miou"] if _num(r.get("miou")) is not None else None
        loss = 0.0 - r["miou_loss"] if _num(r.get("miou_loss")) is not None else None
        lines.append(
            f"| {r['row']} | {r['model']} | {size} | {r['threads']} | {r['batch']} "
            f"| {_f(lat.get('p50'), '.2f')} | {_f(lat.get('p90'), '.2f')} | {_f(lat.get('p99'), '.2f')} "
            f"| {_f(r.get('throughput'), '.1f')} | {_f(r.get('e2e_fps'), '.1f')} | {_f(miou, '.2f')} "
            f"| {_f(loss, '+.2f')} | {_f(agree, '.2f')} | {_f(mb, '.2f')} | {_f(r.get('peak_rss_mb'), '.0f')} |")
    return "\n".join(lines)


def save_plot(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> bool:
    """Latency p50 against mIoU, one point per measured row, the Pareto front drawn.

    Returns ``False`` (nothing written) when matplotlib is missing or no row has both figures."""
    pts = [r for r in rows if _ok(r) and _num(r.get("latency_ms", {}).get("p50")) is not None
           and _num(r.get("miou")) is not None]
    if not pts:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from rdd.spec import atomic_path

    xy = [(r["latency_ms"]["p50"], 100 * r["miou"]) for r in pts]
    front = pareto_front(xy)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in xy], [p[1] for p in xy], color="tab:blue", zorder=3)
    many = len({tuple(p["size"]) for p in pts}) > 1 or len({p["threads"] for p in pts}) > 1
    names = [p["row"] for p in pts]
    for r, (x, y) in zip(pts, xy):
        tag = r["row"] + (f" ({r['model']})" if names.count(r["row"]) > 1 else "")
        tag += f" {r['size'][0]}×{r['size'][1]} t{r['threads']}" if many else ""
        ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    fx = [xy[i] for i in front]
    ax.plot([p[0] for p in fx], [p[1] for p in fx], "--", color="tab:red", zorder=2,
            label="Pareto front")
    lo, hi = min(p[0] for p in xy), max(p[0] for p in xy)
    if lo > 0 and hi / lo > 5:  # e.g. torch eager beside INT8 builds
        ax.set_xscale("log")
    ax.set_xlabel("latency p50 (ms, batch as listed)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return True
