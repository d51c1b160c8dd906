"""``rdd-bench`` results → Pareto front, recommendation, markdown / CSV tables and plot (torch-free).

Pure functions over the result rows of :mod:`rdd.runtime.measure.bench`; matplotlib is imported
only by :func:`save_plot` (the plot is skipped, with the reason, where it is not installed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "pareto_front",
    "recommend",
    "markdown_table",
    "csv_table",
    "save_plot",
    "plot_figure",
    "CSV_COLUMNS",
]


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
    """The fastest measured row (latency p50) within ``max_miou_loss`` mIoU *points* of the most
    accurate model's reference (each row's reference mIoU = its mIoU + its ``miou_loss``), or
    ``None``. With one model this is "the fastest build within LOSS of its FP32 row"; with
    several, a build of a worse model never wins because its own FP32 row is its reference: the
    choice is read off the Pareto front of all rows (the fastest row above the threshold is on
    it)."""
    ok = [
        r
        for r in rows
        if _ok(r) and _num(r.get("latency_ms", {}).get("p50")) is not None and _num(r.get("miou")) is not None
    ]
    refs = [100 * r["miou"] + r["miou_loss"] for r in ok if _num(r.get("miou_loss")) is not None]
    if not refs:
        return None
    threshold = max(refs) - max_miou_loss - 1e-9
    front = [ok[i] for i in pareto_front([(r["latency_ms"]["p50"], r["miou"]) for r in ok])]
    within = [r for r in front if 100 * r["miou"] >= threshold]
    if not within:
        return None
    best = min(within, key=lambda r: r["latency_ms"]["p50"])
    return {
        "row": best["row"],
        "model": best["model"],
        "size": best["size"],
        "threads": best["threads"],
        "batch": best["batch"],
        "latency_ms_p50": best["latency_ms"]["p50"],
        "miou": best["miou"],
        "miou_loss": best.get("miou_loss"),
        "max_miou_loss": max_miou_loss,
        "best_reference_miou": max(refs) / 100,
    }


def _f(v: Any, fmt: str) -> str:
    v = _num(v)
    return "–" if v is None else format(v, fmt)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per row × size × threads × batch; skipped rows last with their reason."""
    head = (
        "| row | model | size | threads | batch | p50 ms | p90 ms | p99 ms | inf/s "
        "| e2e FPS | mIoU % | ΔmIoU | agree % | MB | RSS MB |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: not _ok(r)):
        size = "×".join(str(v) for v in r["size"]) if r.get("size") else "–"
        if not _ok(r):
            lines.append(
                f"| {r['row']} | {r.get('model') or '–'} | {size} | – | – | {r['status']} | | | | | | | | | |"
            )
            continue
        lat = r.get("latency_ms", {})
        mb = r["model_bytes"] / 1e6 if r.get("model_bytes") else None
        agree = 100 * r["argmax_agreement"] if _num(r.get("argmax_agreement")) is not None else None
        miou = 100 * r["miou"] if _num(r.get("miou")) is not None else None
        loss = 0.0 - r["miou_loss"] if _num(r.get("miou_loss")) is not None else None
        lines.append(
            f"| {r['row']} | {r['model']} | {size} | {r['threads']} | {r['batch']} "
            f"| {_f(lat.get('p50'), '.2f')} | {_f(lat.get('p90'), '.2f')} "
            f"| {_f(lat.get('p99'), '.2f')} "
            f"| {_f(r.get('throughput'), '.1f')} | {_f(r.get('e2e_fps'), '.1f')} | {_f(miou, '.2f')} "
            f"| {_f(loss, '+.2f')} | {_f(agree, '.2f')} | {_f(mb, '.2f')} "
            f"| {_f(r.get('peak_rss_mb'), '.0f')} |"
        )
    return "\n".join(lines)


#: the columns of ``bench.csv`` (a flat view of the JSON rows; mIoU and agreement in %)
CSV_COLUMNS = (
    "row",
    "kind",
    "model",
    "model_sha256",
    "precision",
    "head",
    "input",
    "size",
    "threads",
    "batch",
    "status",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "throughput",
    "e2e_fps",
    "miou_pct",
    "miou_loss_pts",
    "agreement_pct",
    "max_abs_logit_diff",
    "reference",
    "model_mb",
    "peak_rss_mb",
    "load_ms",
    "first_inference_ms",
)


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (:data:`CSV_COLUMNS`), skipped rows last with their reason."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in sorted(rows, key=lambda r: not _ok(r)):
        lat = r.get("latency_ms") or {}
        pct = lambda k: None if _num(r.get(k)) is None else 100 * r[k]  # noqa: B023 — used in this iteration
        vals = {
            "row": r.get("row"),
            "kind": r.get("kind"),
            "model": r.get("model"),
            "model_sha256": r.get("model_sha256"),
            "precision": r.get("precision"),
            "head": r.get("head"),
            "input": r.get("input"),
            "size": "x".join(map(str, r["size"])) if r.get("size") else None,
            "threads": r.get("threads"),
            "batch": r.get("batch"),
            "status": r.get("status"),
            "p50_ms": lat.get("p50"),
            "p90_ms": lat.get("p90"),
            "p99_ms": lat.get("p99"),
            "throughput": r.get("throughput"),
            "e2e_fps": r.get("e2e_fps"),
            "miou_pct": pct("miou"),
            "miou_loss_pts": r.get("miou_loss"),
            "agreement_pct": pct("argmax_agreement"),
            "max_abs_logit_diff": r.get("max_abs_logit_diff"),
            "reference": r.get("reference"),
            "model_mb": r["model_bytes"] / 1e6 if r.get("model_bytes") else None,
            "peak_rss_mb": r.get("peak_rss_mb"),
            "load_ms": r.get("load_ms"),
            "first_inference_ms": r.get("first_inference_ms"),
        }
        w.writerow(["" if vals[c] is None else vals[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def save_plot(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> str | None:
    """Latency p50 against mIoU, one numbered point per measured row, the Pareto front drawn
    and a key beside the axes (labels never overlap each other, nothing is clipped); the marker
    says the head (circle ``full``, triangle ``lowres``), a hollow one a ``uint8``-input build.

    Returns ``None`` when written, else why not (``"matplotlib is not installed"``, ``"no row
    has both a latency and an mIoU"``)."""
    fig = plot_figure(rows, title=title)
    if isinstance(fig, str):
        return fig
    import matplotlib.pyplot as plt

    from rdd.spec import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
    return None


#: head → marker; a uint8-input build is drawn hollow
MARKERS = {"full": "o", "lowres": "^"}


def plot_figure(rows: Sequence[dict[str, Any]], *, title: str = "") -> Any:
    """The figure :func:`save_plot` writes (a matplotlib ``Figure``), or why there is none."""
    pts = [
        r
        for r in rows
        if _ok(r) and _num(r.get("latency_ms", {}).get("p50")) is not None and _num(r.get("miou")) is not None
    ]
    if not pts:
        return "no measured row has both a latency and an mIoU (give --labels)"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    import textwrap

    xy = [(r["latency_ms"]["p50"], 100 * r["miou"]) for r in pts]
    front = set(pareto_front(xy))
    many = len({tuple(p["size"]) for p in pts}) > 1 or len({p["threads"] for p in pts}) > 1
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for i, (r, (x, y)) in enumerate(zip(pts, xy)):
        color = "tab:red" if i in front else "tab:blue"
        hollow = r.get("input") == "uint8"
        ax.scatter(
            [x],
            [y],
            marker=MARKERS.get(r.get("head"), "o"),
            s=32,
            zorder=3,
            facecolors="none" if hollow else color,
            edgecolors=color,
        )
    fx = sorted(xy[i] for i in front)
    ax.plot([p[0] for p in fx], [p[1] for p in fx], "--", color="tab:red", zorder=2)
    lo, hi = min(p[0] for p in xy), max(p[0] for p in xy)
    if lo > 0 and hi / lo > 5:  # e.g. torch eager beside INT8 builds
        ax.set_xscale("log")
    ys = [p[1] for p in xy]
    pad = max(0.5, 0.15 * (max(ys) - min(ys)))  # a span of 0.1 points is not a front
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlim(lo * 0.9, hi * 1.1)
    ax.set_xlabel("latency p50 (ms, batch as listed)")
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)
    _number_points(ax, xy)
    key = [
        f"{i}  {r['row']} ({r['model']})"
        + (f" {r['size'][0]}×{r['size'][1]} t{r['threads']}" if many else "")
        for i, r in enumerate(pts, 1)
    ]
    blank = plt.Line2D([], [], linestyle="none")
    marks = [
        plt.Line2D([], [], linestyle="--", color="tab:red"),
        plt.Line2D([], [], linestyle="none", marker="o", color="grey"),
        plt.Line2D([], [], linestyle="none", marker="^", color="grey"),
        plt.Line2D([], [], linestyle="none", marker="o", color="grey", markerfacecolor="none"),
    ]
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=7,
        frameon=False,
        handles=marks + [blank] * len(key),
        labels=["Pareto front", "full head", "lowres head", "uint8 input (hollow)"] + key,
    )
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    return fig


def _number_points(ax: Any, xy: Sequence[tuple[float, float]], *, near_px: float = 14.0) -> None:
    """Number the points 1..n: points closer than ``near_px`` on screen share one label
    (``"13,18"``), and a label closer than that to the one before it goes below its point
    instead of above, so no two labels overlap."""
    screen = ax.transData.transform(xy)
    order = sorted(range(len(xy)), key=lambda i: (screen[i][0], screen[i][1]))
    groups: list[list[int]] = []
    for i in order:
        for g in groups:
            if (
                abs(screen[g[0]][0] - screen[i][0]) < near_px
                and abs(screen[g[0]][1] - screen[i][1]) < near_px
            ):
                g.append(i)
                break
        else:
            groups.append([i])
    placed: list[tuple[float, float, int]] = []  # (x, y, dy) of the labels so far
    for g in groups:
        x, y = screen[g[0]]
        text = ",".join(str(i + 1) for i in sorted(g))
        width = 6.0 * len(text) + near_px
        dy = 6
        if any(abs(px - x) < width and abs(py + pdy - (y + dy)) < near_px for px, py, pdy in placed):
            dy = -14
        placed.append((x, y, dy))
        ax.annotate(text, xy[g[0]], textcoords="offset points", xytext=(0, dy), ha="center", fontsize=8)
