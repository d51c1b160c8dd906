"""Study runs → figures and statistics (torch-free: json, yaml, numpy).

A study (``studies/<name>/``, run by :mod:`pipeline.study`) trains every *arm* with several seeds
into :func:`run_dir` ``(out_root, arm, seed)``; each run holds the engine's ``metrics.json``, its
DVCLive logs (``dvclive/plots/metrics/…`` and the logged configuration ``dvclive/params.yaml``)
and ``export/export_metrics.json`` (the exported ONNX graph scored by ONNX Runtime).
:func:`summarize_study` reads them into one summary: every run, mean ± sample standard deviation
per arm, paired gains. mIoU values are fractions in [0, 1].
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = [
    "run_dir",
    "read_tsv",
    "read_json",
    "read_run_config",
    "load_run",
    "mean_std",
    "student_t_sf",
    "paired_t",
    "paired_diff",
    "gap_recovered",
    "declared_iters",
    "found_seeds",
    "length_variants",
    "curve_tail",
    "mean_curve",
    "summarize_study",
    "GAIN_PAIRS",
    "rdd_pairs",
]

#: ``(a, b)`` → the gain ``a − b`` the study summarises at every training length (the arms that
#: exist); ``or`` is RDD's TSE with the OR mask, so ``rdd − or`` is XOR − OR.
GAIN_PAIRS = (("rdd", "kd"), ("rdd", "baseline"), ("kd", "baseline"), ("rdd", "or"))


def run_dir(out_root: str | Path, arm: str, seed: int) -> Path:
    """``<out_root>/runs/<arm>-s<seed>``: where :mod:`pipeline.study` trains one arm × seed."""
    return Path(out_root) / "runs" / f"{arm}-s{seed}"


def read_tsv(path: str | Path) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of a DVCLive metric file (``step<TAB>name`` header), ascending by step;
    empty if absent. A step logged twice keeps its last row: a run resumed from its checkpoint
    at step k (DVC keeps ``dvclive/``) logs k + 1 … again, bit-identical, after the rows the
    interrupted process had already written."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if "step" not in header or len(header) < 2:
            raise ValueError(f"{path}: expected a DVCLive TSV with a 'step' column, got {header}")
        si = header.index("step")
        vi = next(i for i in range(len(header)) if i != si and header[i] != "timestamp")
        rows: dict[int, float] = {}
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == len(header):
                rows[int(float(parts[si]))] = float(parts[vi])
    steps = sorted(rows)
    return steps, [rows[s] for s in steps]


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON file at ``path`` (``None`` when absent; ``ValueError`` naming it when malformed)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None


def read_run_config(run: str | Path) -> dict[str, Any] | None:
    """The :class:`rdd.engine.TrainConfig` dict a run logged (``dvclive/params.yaml``, key
    ``config``, written by the trainer at start); ``None`` for a run without one."""
    path = Path(run) / "dvclive" / "params.yaml"
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            logged = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
    cfg = logged.get("config") if isinstance(logged, Mapping) else None
    if not isinstance(cfg, Mapping):
        raise ValueError(
            f"{path}: expected a mapping with a 'config' mapping (the trainer's logged TrainConfig)"
        )
    return dict(cfg)


def _tse_mode(config: Mapping[str, Any] | None) -> str | None:
    """The TSE mask mode a run trained with (``None``: no TSE, or no logged config)."""
    rdd = ((config or {}).get("loss") or {}).get("rdd") or {}
    return rdd.get("mode") if rdd.get("tse") else None


def load_run(run: str | Path) -> dict[str, Any] | None:
    """One run's figures (``None`` when it has no ``metrics.json`` or did not complete).

    ``tse_mode`` is the TSE mask mode of the run's logged configuration (:func:`read_run_config`),
    ``None`` when the run had no TSE phase."""
    run = Path(run)
    m = read_json(run / "metrics.json")
    if m is None or not m.get("completed", True):
        return None
    e = read_json(run / "export" / "export_metrics.json") or {}
    live = run / "dvclive" / "plots" / "metrics"
    curve = read_tsv(live / "val" / "miou.tsv")
    sel = read_tsv(live / "rdd" / "tse_selected_frac.tsv")
    tfe = read_tsv(live / "rdd" / "tfe_weight_mean.tsv")
    return {
        "miou": m.get("miou"),
        "iou": m.get("iou"),
        "pixel_acc": m.get("pixel_acc"),
        "miou_onnx": (e.get("miou") or {}).get("ort_fp32"),
        "onnx_parity_max_abs": (e.get("parity") or {}).get("max_abs_logit_diff"),
        "time_per_iter_s": m.get("time_per_iter_s"),
        "train_time_s": m.get("train_time_s"),
        "iters": m.get("iters"),
        "params": m.get("params"),
        "method": m.get("method"),
        "tse_mode": _tse_mode(read_run_config(run)),
        "curve": {"step": curve[0], "miou": curve[1]},
        "tse_selected_frac": {"step": sel[0], "value": sel[1]},
        "tfe_weight_mean": {"step": tfe[0], "value": tfe[1]},
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (NaN for fewer than two values: unknown, not 0)."""
    v = [float(x) for x in values]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else math.nan)


def _nanmean0(a: np.ndarray) -> list[float | None]:
    """Column means of ``a`` (runs × classes) ignoring NaN (a class absent from a run's val
    predictions and labels); ``None`` for a column with no value."""
    out = []
    for col in a.T:
        ok = col[~np.isnan(col)]
        out.append(float(ok.mean()) if ok.size else None)
    return out


def student_t_sf(t: float, df: int) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom (math only, no SciPy).

    Uses ``P(|T| > |t|) = I_x(df/2, 1/2)`` with ``x = df / (df + t²)``, the regularised
    incomplete beta function, evaluated by its continued fraction (Numerical Recipes §6.4);
    exact to ~1e-12 for the small ``df`` of a seed study. Closed forms it matches: df = 1,
    ``1/2 − atan(t)/π``; df = 2, ``(1 − t/√(t² + 2))/2``."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    x = df / (df + t * t)
    two_sided = _betainc(df / 2, 0.5, x)
    return two_sided / 2 if t >= 0 else 1 - two_sided / 2


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` (continued fraction, modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(ln_front) * h / a


def paired_t(diffs: Sequence[float]) -> dict[str, float | int]:
    """Paired t test of per-seed differences: ``t = mean / (std / √n)``, ``df = n − 1`` and the
    two-sided ``p`` (NaN for fewer than two differences, or when they are all equal)."""
    n = len(diffs)
    m, sd = mean_std(diffs)
    if n < 2 or not sd > 0:
        return {"t": math.nan, "df": max(n - 1, 0), "p": math.nan}
    t = m / (sd / math.sqrt(n))
    return {"t": t, "df": n - 1, "p": 2 * student_t_sf(abs(t), n - 1)}


def paired_diff(runs: Mapping[str, Mapping[Any, Mapping[str, Any]]], a: str, b: str) -> dict[str, Any] | None:
    """``a − b`` mIoU on the seeds both arms have (``None`` when they share none): mean and
    sample std of the per-seed differences, how many are positive, and the paired t test."""
    if a not in runs or b not in runs:
        return None
    common = sorted(set(runs[a]) & set(runs[b]), key=int)
    if not common:
        return None
    diffs = [runs[a][s]["miou"] - runs[b][s]["miou"] for s in common]
    m, sd = mean_std(diffs)
    return {
        "paired_mean": m,
        "paired_std": sd,
        "paired_seeds": [int(s) for s in common],
        "paired_wins": sum(d > 0 for d in diffs),
        **paired_t(diffs),
    }


def gap_recovered(
    runs: Mapping[str, Mapping[Any, Mapping[str, Any]]], arm: str, baseline: str, teacher_miou: float | None
) -> dict[str, Any] | None:
    """Share of the teacher − baseline gap that ``arm`` closes, per seed:
    ``(arm_s − baseline_s) / (teacher − baseline_s)``; mean ± std over the shared seeds
    (``None`` without a teacher, shared seeds, or with a baseline at or above the teacher)."""
    if teacher_miou is None or arm not in runs or baseline not in runs:
        return None
    common = sorted(set(runs[arm]) & set(runs[baseline]), key=int)
    shares = []
    for s in common:
        gap = teacher_miou - runs[baseline][s]["miou"]
        if gap <= 0:
            return None
        shares.append((runs[arm][s]["miou"] - runs[baseline][s]["miou"]) / gap)
    if not shares:
        return None
    m, sd = mean_std(shares)
    return {"mean": m, "std": sd, "seeds": [int(s) for s in common], "per_seed": shares}


def length_variants(
    arms: Sequence[str], iters: Mapping[str, int | None] | None = None
) -> dict[str, dict[str, str]]:
    """Arms grouped by training length: ``{suffix: {base arm: arm}}``.

    An arm ``<base>_<word>`` whose ``<base>`` is also an arm is ``base`` at another schedule
    (``kd_long`` → ``kd`` under suffix ``"_long"``); every other arm is its own base under
    ``""``. ``tfe_only`` stays a base arm because there is no ``tfe`` arm. With ``iters`` (arm →
    its declared iterations, :func:`declared_iters`), an arm whose base is not an arm joins a
    suffix group all of whose members declare its iterations (``at_16x``, 6 400 iterations like
    ``kd_16x``, joins ``"_16x"`` as ``at``), so that it is compared with the baseline and KD of
    its own length."""
    names = list(arms)
    out: dict[str, dict[str, str]] = {"": {}}
    alone = []
    for arm in names:
        base, sep, word = arm.rpartition("_")
        if sep and base in names and word:
            out.setdefault(f"_{word}", {})[base] = arm
        else:
            alone.append(arm)
    for arm in alone:
        base, sep, word = arm.rpartition("_")
        group = out.get(f"_{word}") if sep and word else None
        n = (iters or {}).get(arm)
        if group and n is not None and {(iters or {}).get(x) for x in group.values()} == {n}:
            group[base] = arm
        else:
            out[""][arm] = arm
    return out


def declared_iters(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, int | None]:
    """Arm → the training iterations its declaration sets (``student.optim.iters``), or None
    where it keeps the study's default."""
    optim = {x: (dict(s or {}).get("student") or {}).get("optim") or {} for x, s in arms.items()}
    return {x: o.get("iters") for x, o in optim.items()}


def rdd_pairs(arms: Mapping[str, Mapping[str, Any]], among: Sequence[str]) -> list[tuple[str, str]]:
    """``(with RDD, without)`` pairs of arms of ``among`` whose declarations differ only by the
    ``rdd`` switch (the paper's Table 8 question: what RDD adds to a KD method): ``rdd`` /
    ``kd``, ``at_rdd_16x`` / ``at_16x`` … read from what the arms *are*, not their names.
    An arm with RDD but another mask mode (``or``) pairs too; its mode is in the run's log."""

    def rest(spec: Mapping[str, Any]) -> str:
        return json.dumps({k: v for k, v in dict(spec).items() if k != "rdd"}, sort_keys=True, default=str)

    def has_rdd(spec: Mapping[str, Any]) -> bool:
        return dict(spec).get("rdd") is not None

    out = []
    for a in among:
        if a in arms and has_rdd(arms[a]) and not (dict(arms[a])["rdd"] or {}):
            for b in among:
                if b in arms and not has_rdd(arms[b]) and rest(arms[b]) == rest(arms[a]):
                    out.append((a, b))
    return out


def curve_tail(steps: Sequence[int], values: Sequence[float], *, frac: float = 0.2) -> dict[str, Any] | None:
    """How flat a validation curve is over its last ``frac`` of training: the points at steps
    ``≥ (1 − frac) · last step``, their range (max − min) and the change first → last."""
    if not steps:
        return None
    start = (1 - frac) * steps[-1]
    tail = [(s, v) for s, v in zip(steps, values) if s >= start]
    if len(tail) < 2:
        return None
    vs = [v for _, v in tail]
    return {
        "from_step": tail[0][0],
        "to_step": tail[-1][0],
        "points": len(tail),
        "range": max(vs) - min(vs),
        "change": vs[-1] - vs[0],
        "last": vs[-1],
    }


def mean_curve(curves: Mapping[str, Mapping[str, list]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Mean and sample std over seeds of validation curves (``seed → {"step", "miou"}``), on the
    steps every seed has (std 0 for a single seed)."""
    per = [dict(zip(c["step"], c["miou"])) for c in curves.values() if c["step"]]
    if not per:
        return [], np.zeros(0), np.zeros(0)
    steps = sorted(set.intersection(*(set(p) for p in per)))
    a = np.array([[p[x] for x in steps] for p in per], dtype=float)
    return steps, a.mean(0), a.std(0, ddof=1) if len(per) > 1 else np.zeros(len(steps))


def found_seeds(out_root: Path, arm: str) -> set[int]:
    """Seeds of ``arm`` that have a run folder under ``out_root``."""
    out = set()
    for p in (out_root / "runs").glob(f"{arm}-s*"):
        name, _, seed = p.name.rpartition("-s")
        if name == arm and seed.isdigit():
            out.add(int(seed))
    return out


def _arm_summary(by_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± std and the per-run figures of one arm's runs (``seed → load_run``)."""
    mious = [r["miou"] for r in by_seed.values()]
    m, sd = mean_std(mious)
    onnx = [r["miou_onnx"] for r in by_seed.values() if r["miou_onnx"] is not None]
    tpi = [r["time_per_iter_s"] for r in by_seed.values() if r["time_per_iter_s"]]
    ious = np.array(
        [[math.nan if v is None else v for v in r["iou"]] for r in by_seed.values() if r["iou"]], dtype=float
    )
    sel = [
        float(np.mean(r["tse_selected_frac"]["value"]))
        for r in by_seed.values()
        if r["tse_selected_frac"]["value"]
    ]
    modes = sorted({r["tse_mode"] for r in by_seed.values() if r.get("tse_mode")})
    return {
        "n": len(mious),
        "seeds": sorted(by_seed),
        "miou_mean": m,
        "miou_std": sd,
        "miou_runs": {str(s): by_seed[s]["miou"] for s in sorted(by_seed)},
        "miou_onnx_mean": mean_std(onnx)[0] if onnx else None,
        "iou_mean": _nanmean0(ious) if ious.size else None,
        "time_per_iter_s": mean_std(tpi)[0] if tpi else None,
        "tse_selected_frac_mean": mean_std(sel)[0] if sel else None,
        "time_per_iter_runs": {str(s): by_seed[s]["time_per_iter_s"] for s in sorted(by_seed)},
        # what the runs logged (several modes only if the arm's runs disagree)
        "tse_mode": "/".join(modes) if modes else None,
    }


def summarize_study(study: Mapping[str, Any], out_root: str | Path) -> dict[str, Any]:
    """Collect every run of ``study`` (the validated ``study`` params section) under ``out_root``.

    Main arms are read for every seed in ``study.seeds``; the other arms for every seed found on
    disk. Gains are paired by seed (``rdd − kd`` on the seeds both have) and reported with the
    unpaired difference of means.
    """
    out_root = Path(out_root)
    runs: dict[str, dict[int, dict]] = {}
    missing: list[str] = []
    for arm in study["arms"]:
        expected = study["seeds"] if arm in study["main_arms"] else study.get("ablation_seeds", [])
        for s in sorted(set(expected) | found_seeds(out_root, arm)):
            r = load_run(run_dir(out_root, arm, s))
            if r is None:
                missing.append(f"{arm}-s{s}")
            else:
                runs.setdefault(arm, {})[s] = r
    arms = {arm: _arm_summary(by_seed) for arm, by_seed in runs.items()}

    def gain(a: str, b: str) -> dict[str, Any] | None:
        g = paired_diff(runs, a, b)
        if g is not None:
            g["mean_diff"] = arms[a]["miou_mean"] - arms[b]["miou_mean"]
        return g

    teacher = read_json(out_root / "teacher" / "metrics.json")
    tjson = read_json(out_root / "teacher" / "model.json") or {}
    t_curve = read_tsv(out_root / "teacher" / "dvclive" / "plots" / "metrics" / "val" / "miou.tsv")
    t_miou = None if teacher is None else teacher.get("miou")
    gains: dict[str, Any] = {}
    recovered: dict[str, Any] = {}
    lengths: dict[str, Any] = {}
    for suffix, members in length_variants(list(study["arms"]), declared_iters(study["arms"])).items():
        for a, b in GAIN_PAIRS:
            if a in members and b in members:
                gains[f"{a}{suffix}_vs_{b}{suffix}"] = gain(members[a], members[b])
        for a in ("kd", "rdd", "or"):
            if a in members and "baseline" in members:
                recovered[members[a]] = gap_recovered(runs, members[a], members["baseline"], t_miou)
        iters = sorted(
            {r["iters"] for x in members.values() for r in runs.get(x, {}).values() if r.get("iters")}
        )
        tails = {
            x: curve_tail(*mean_curve({str(s): r["curve"] for s, r in runs[x].items()})[:2])
            for x in members.values()
            if x in runs
        }
        lengths[suffix] = {"arms": members, "iters": iters, "curve_tail": tails}
    adds = {
        f"{a}_vs_{b}": {"with": a, "without": b, **(gain(a, b) or {})}
        for a, b in rdd_pairs(study["arms"], [x for x in study["arms"] if x in runs])
    }
    return {
        "class_names": (tjson.get("classes") or {}).get("names"),
        "teacher": None
        if teacher is None
        else {
            **{
                k: teacher.get(k)
                for k in (
                    "miou",
                    "iou",
                    "pixel_acc",
                    "params",
                    "iters",
                    "time_per_iter_s",
                    "train_time_s",
                    "model",
                )
            },
            "curve": {"step": t_curve[0], "miou": t_curve[1]},
            "curve_tail": curve_tail(*t_curve),
        },
        "arms": arms,
        "gains": gains,
        "rdd_adds": adds,
        "gap_recovered": recovered,
        "lengths": lengths,
        "runs": {
            arm: {str(s): {k: v for k, v in r.items() if k not in ("curve",)} for s, r in by_seed.items()}
            for arm, by_seed in runs.items()
        },
        "curves": {arm: {str(s): r["curve"] for s, r in by_seed.items()} for arm, by_seed in runs.items()},
        "missing": missing,
    }
