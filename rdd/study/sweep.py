"""The label-noise sweep report: one study summary per noise rate, mIoU against the noise rate,
and where the corrupted labels fall in RDD's difficulty sets (``reports/label_noise.md``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdd.spec import write_json_atomic, write_text_atomic
from rdd.study.aggregate import paired_diff, read_json, summarize_study
from rdd.study.diagnostics import diagnose_noise
from rdd.study.figures import plot_miou_vs_noise
from rdd.study.markdown import paired, pct, pm

__all__ = ["sweep_markdown", "write_sweep_report"]


# --------------------------------------------------------------------------- label-noise sweep

_SWEEP_GAINS = (("xor", "or"), ("xor", "kd"), ("xor", "baseline"), ("kd", "baseline"))


def _p1(v: Any) -> str:
    t = pct(v, 1)
    return t if t == "–" else t + "%"


def sweep_markdown(
    per_rate: Mapping[str, Any],
    rates: Sequence[float],
    params: Mapping[str, Any],
    study: Mapping[str, Any],
    *,
    fig_dir: str,
    diagnose_arm: str,
) -> str:
    """The label-noise sweep report (markdown) of ``per_rate`` (``str(rate)`` → that rate's
    summary, as in the sweep's ``summary.json``)."""
    arms = list(study["main_arms"])
    L = [f"# {study.get('title', 'Label-noise sweep')}", ""]
    if study.get("notes"):
        L += [str(study["notes"]).strip(), ""]
    st, te = params.get("student", {}), params.get("teacher", {})
    synthetic = (params.get("prepare") or {}).get("synthetic")
    L += [
        "## Setup",
        "",
        f"- Data: synthetic street scenes {synthetic}; the train labels are "
        f"corrupted at each rate with {params.get('noise')} (`rdd.label_noise`), val labels "
        "are clean.",
        f"- Teacher per rate, trained on that rate's noisy labels: "
        f"`{te.get('model', {}).get('name')}` "
        f"{te.get('model', {}).get('kwargs')}, {te.get('optim', {}).get('iters')} iterations.",
        f"- Students: `{st.get('model', {}).get('name')}` {st.get('model', {}).get('kwargs')}, "
        f"{st.get('optim', {}).get('iters')} iterations; arms {', '.join(arms)}; "
        f"seeds {study['seeds']}.",
        f"- RDD: {params.get('rdd')}; KD: {params.get('kd')}.",
        "",
        "## Clean-val mIoU (%) vs label noise",
        "",
        "| noise rate (realised) | teacher | " + " | ".join(arms) + " | XOR − OR | XOR − KD |",
        "|---|---:|" + "---:|" * len(arms) + "---:|---:|",
    ]
    for r in rates:
        p = per_rate[str(r)]
        real = (p["noise"] or {}).get("realised_rate")
        cells = [
            "–" if p["arms"].get(a) is None else pm(p["arms"][a]["miou_mean"], p["arms"][a]["miou_std"])
            for a in arms
        ]
        gs = {
            k: ("–" if not p["gains"].get(k) else paired(p["gains"][k])) for k in ("xor_vs_or", "xor_vs_kd")
        }
        L.append(
            f"| {100 * r:.0f}% ({pct(real, 1)}%) | {pct(p['teacher_miou'])} | "
            + " | ".join(cells)
            + f" | {gs['xor_vs_or']} | {gs['xor_vs_kd']} |"
        )
    L += [
        "",
        "Differences are paired by seed (mean ± std over seeds).",
        "",
        f"![mIoU vs noise]({fig_dir}/miou_vs_noise.png)",
        "",
        "## Where the corrupted train pixels fall",
        "",
        "On each rate's noisy train frames, with the final teacher and the first "
        f"`{diagnose_arm}` student: the share of each set whose label is corrupted (precision) "
        "and the share of all corrupted pixels inside the set (recall). XOR keeps pixels hard for "
        "exactly one network; AND (hard for both) is what XOR drops and OR keeps.",
        "",
        "| noise rate | corrupted | AND: size / noisy share / recall | "
        "XOR: size / noisy share / recall | "
        "neither-hard noisy share |",
        "|---|---:|---|---|---:|",
    ]
    for r in rates:
        d = per_rate[str(r)]["diagnostics"]
        if d:
            L.append(
                f"| {100 * r:.0f}% | {_p1(d['noisy_frac'])} | {_p1(d['and_frac'])} / "
                f"{_p1(d['noisy_share_on_and'])} / {_p1(d['noisy_recall_and'])} | "
                f"{_p1(d['xor_frac'])} / {_p1(d['noisy_share_on_xor'])} / "
                f"{_p1(d['noisy_recall_xor'])} | {_p1(d['noisy_share_on_neither'])} |"
            )
    missing = [f"{r}: {m}" for r in rates for m in per_rate[str(r)]["missing"]]
    if missing:
        L += ["", f"Missing runs: {', '.join(missing)}."]
    return "\n".join(L) + "\n"


def write_sweep_report(
    params: Mapping[str, Any],
    study: Mapping[str, Any],
    *,
    rates: Sequence[float],
    out_roots: Sequence[str | Path],
    report_path: str | Path,
    summary_path: str | Path,
    diagnose_arm: str = "xor",
) -> dict[str, Any]:
    """The label-noise sweep: one :func:`summarize_study` per noise rate (``out_roots[i]`` holds
    the runs of ``rates[i]``), the realised noise (``data/noise.json``), mIoU vs noise per arm,
    and where the corrupted train pixels fall among RDD's sets (XOR / AND / …)."""
    report_path, summary_path = Path(report_path), Path(summary_path)
    per: dict[str, Any] = {}
    for rate, root in zip(rates, out_roots):
        root = Path(root)
        s = summarize_study(study, root)
        per[str(rate)] = {
            "noise": read_json(root / "data" / "noise.json"),
            "teacher_miou": (s.get("teacher") or {}).get("miou"),
            "arms": s["arms"],
            "gains": {},
            "missing": s["missing"],
            "diagnostics": diagnose_noise(params, root, diagnose_arm, s),
        }
        for a, b in _SWEEP_GAINS:
            g = paired_diff(s["runs"], a, b)
            if g is not None:
                per[str(rate)]["gains"][f"{a}_vs_{b}"] = g
    fig_dir = report_path.parent / report_path.stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    plot_miou_vs_noise(
        per, rates, list(study["main_arms"]), fig_dir / "miou_vs_noise.png", study.get("title", "label noise")
    )
    write_json_atomic(summary_path, {"rates": list(rates), "per_rate": per})
    write_text_atomic(
        report_path,
        sweep_markdown(per, rates, params, study, fig_dir=fig_dir.name, diagnose_arm=diagnose_arm),
    )
    missing = sum(len(p["missing"]) for p in per.values())
    return {"runs": sum(p["arms"][a]["n"] for p in per.values() for a in p["arms"]), "missing": missing}
