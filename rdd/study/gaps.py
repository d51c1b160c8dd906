"""The study report's sections on paired gaps between arms: each method at every training length
(:func:`lengths_section`) and what RDD adds to each distillation method (:func:`rdd_adds_section`),
each gap with its spread, paired t test and sign count (see :mod:`rdd.study.sections`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rdd.study.markdown import paired, pct, pm, signed

__all__ = ["LENGTH_METHODS", "length_label", "lengths_section", "rdd_adds_section"]

LENGTH_METHODS = ("baseline", "kd", "rdd", "or")  # compared at every training length
_GAP_LABELS = {
    ("rdd", "kd"): "RDD − KD",
    ("rdd", "baseline"): "RDD − baseline",
    ("kd", "baseline"): "KD − baseline",
    ("rdd", "or"): "RDD (XOR) − RDD-OR",
}


def _gap_cell(g: Mapping[str, Any] | None) -> str:
    """A paired gain with its spread, t test and sign count: ``+1.26 ± 0.79 (t = 2.77, df 2,
    p = 0.11; 3/3 > 0)``."""
    if not g or not g["paired_seeds"]:
        return "–"
    n = len(g["paired_seeds"])
    t = g.get("t")
    test = "" if t is None or math.isnan(t) else f"t = {t:.2f}, df {g['df']}, p = {g['p']:.3f}; "
    return f"{paired(g)} ({test}{g['paired_wins']}/{n} > 0)"


def length_label(group: Mapping[str, Any]) -> str:
    it = group.get("iters") or []
    return (" / ".join(str(i) for i in it) + " it") if it else "–"


def lengths_section(summary: Mapping[str, Any], fig_dir: str) -> list[str]:
    """Each method at every training length: mIoU, the paired gaps with their t tests, the share
    of the teacher − baseline gap recovered and how flat the curves are at the end."""
    lengths = {
        k: v
        for k, v in (summary.get("lengths") or {}).items()
        if any(a in summary["arms"] for a in v["arms"].values())
    }
    if len(lengths) < 2:
        return []
    a = summary["arms"]
    order = sorted(lengths, key=lambda k: (max(lengths[k]["iters"] or [0]), k))
    heads = [length_label(lengths[k]) for k in order]
    methods = [m for m in LENGTH_METHODS if any(m in lengths[k]["arms"] for k in order)]
    count = {2: "Two", 3: "Three", 4: "Four"}.get(len(order), str(len(order)))
    L = [
        f"## {count} training lengths",
        "",
        "The same arms on the same recipe, seeds and initial weights, trained for "
        + ", ".join(heads[:-1])
        + " and "
        + heads[-1]
        + " (poly LR over each length, warm-up scaled with it). "
        "val mIoU (%), mean ± std over seeds (n):",
        "",
        "| arm | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(order),
    ]
    for m in methods:
        cells = []
        for k in order:
            x = lengths[k]["arms"].get(m)
            r = a.get(x) if x else None
            cells.append("–" if r is None else f"{pm(r['miou_mean'], r['miou_std'])} (n={r['n']})")
        L.append(f"| {m} | " + " | ".join(cells) + " |")
    t = summary.get("teacher") or {}
    if t.get("miou") is not None:
        L.append(f"| teacher | {pct(t['miou'])} (one model, {t.get('iters')} it) |" + " |" * (len(order) - 1))
    L += [
        "",
        "Paired gaps in points: mean ± std of the per-seed differences, the paired t "
        "statistic (df = seeds − 1) with its two-sided p, and how many seeds are positive:",
        "",
        "| gap | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(order),
    ]
    for (x, y), label in _GAP_LABELS.items():
        cells = [_gap_cell(summary["gains"].get(f"{x}{k}_vs_{y}{k}")) for k in order]
        if any(c != "–" for c in cells):
            L.append(f"| {label} | " + " | ".join(cells) + " |")
    rec = summary.get("gap_recovered") or {}
    rows = []
    for m in ("kd", "rdd", "or"):
        cells = []
        for k in order:
            v = rec.get(lengths[k]["arms"].get(m, ""))
            cells.append("–" if not v else pm(v["mean"], v["std"]) + "%")
        if any(c != "–" for c in cells):
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
    if rows:
        L += [
            "",
            "Share of the teacher − baseline gap recovered, per seed "
            "`(arm − baseline) / (teacher − baseline)`, mean ± std (%):",
            "",
            "| arm | " + " | ".join(heads) + " |",
            "|---|" + "---:|" * len(order),
            *rows,
        ]
    L += [
        "",
        "How flat each mean validation curve is over the last fifth of its training "
        "(range = max − min of the evaluated points there; change = last − first), points:",
        "",
        "| curve | steps | range | change | last |",
        "|---|---|---:|---:|---:|",
    ]
    tails = [("teacher", t.get("curve_tail"))]
    for k in order:
        tails += [(x, lengths[k]["curve_tail"].get(x)) for x in lengths[k]["arms"].values()]
    for nm, c in tails:
        if c:
            L.append(
                f"| {nm} | {c['from_step']}–{c['to_step']} ({c['points']} evals) | "
                f"{pct(c['range'])} | {signed(c['change'])} | {pct(c['last'])} |"
            )
    L += ["", f"![validation curves at each training length]({fig_dir}/miou_curves_lengths.png)", ""]
    return L


def rdd_adds_section(summary: Mapping[str, Any], study: Mapping[str, Any]) -> list[str]:
    """What RDD adds to each KD method of the study (arms that differ only by RDD, paired by
    seed): the paper's Table 8 question, and the answer a user choosing a method needs."""
    adds = {
        k: v
        for k, v in (summary.get("rdd_adds") or {}).items()
        if v.get("paired_seeds") and v["with"] in study["main_arms"]
    }
    if not adds:
        return []
    a = summary["arms"]
    L = [
        "## What RDD adds to each distillation method",
        "",
        "Arms that differ only by RDD (TFE for the first share of the iterations, then TSE with "
        "the arm's mask), paired by seed: mean ± std of the per-seed differences in points, the "
        "paired t test, and how many seeds RDD wins:",
        "",
        "| without RDD | with RDD | without: mIoU (%) | with: mIoU (%) | RDD adds | seeds > 0 |",
        "|---|---|---:|---:|---|---:|",
    ]
    for v in adds.values():
        w, wo = a[v["with"]], a[v["without"]]
        L.append(
            f"| {v['without']} | {v['with']} | {pm(wo['miou_mean'], wo['miou_std'])} "
            f"(n={wo['n']}) | {pm(w['miou_mean'], w['miou_std'])} (n={w['n']}) | "
            f"{_gap_cell(v)} | {v['paired_wins']}/{len(v['paired_seeds'])} |"
        )
    L.append("")
    return L
