"""A study's deliverable ONNX files: every finished run's FP32 student and the teacher, in one
folder that is committed with the report (``studies/<name>/models/``), so an independent check
can score them on data the project never saw without the training code.

Layout: ``<dest>/ARM-sSEED.onnx`` per run (a byte copy of ``runs/ARM-sSEED/export/model.onnx``,
with its ``rdd_meta``), ``<dest>/teacher.onnx``, and ``<dest>/index.json`` naming each file's
arm, seed, iterations, val mIoU (training code and ONNX Runtime), size and SHA-256. Optionally
the teacher's training artifact too (``teacher.pt`` + ``teacher.json``, :mod:`rdd.artifacts`),
so that a clone without the DVC cache can still run the distilled stages
(:func:`restore_teacher`).

The folder is cumulative: a run finished on another machine (its metrics are in git, its
``export/`` is not here) keeps the ONNX file and index entry it already has in ``dest`` when the
file still matches the SHA-256 indexed for it. Torch-free.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdd.serialization import sha256_file
from rdd.spec import atomic_path, write_json_atomic
from rdd.study.aggregate import found_seeds, read_json, run_dir

__all__ = ["collect_onnx", "restore_teacher"]


TEACHER_WEIGHTS = ("teacher.pt", "teacher.json")  # model.pt / model.json of the teacher stage


def _copy(src: Path, dst: Path) -> dict[str, Any]:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return {"file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst)}


def _intact(entry: Mapping[str, Any] | None, dest: Path) -> bool:
    """Whether ``dest/entry["file"]`` exists with the SHA-256 the index recorded for it."""
    if not entry or not entry.get("file"):
        return False
    f = dest / entry["file"]
    return f.is_file() and sha256_file(f) == entry.get("sha256")


def _entry(train: Mapping[str, Any] | None, export: Mapping[str, Any] | None) -> dict[str, Any]:
    train, export = train or {}, export or {}
    return {
        "iters": train.get("iters"),
        "model": export.get("model"),
        "input_size": export.get("input_size"),
        "miou_val": train.get("miou"),
        "miou_val_onnxruntime": (export.get("miou") or {}).get("ort_fp32"),
    }


def collect_onnx(
    study: Mapping[str, Any],
    out_root: str | Path,
    dest: str | Path,
    *,
    teacher_export: str | Path | None = None,
    teacher_artifact: str | Path | None = None,
) -> dict[str, Any]:
    """Copy the FP32 ONNX of every *completed* run of ``study`` (and the teacher's, from
    ``teacher_export``/model.onnx when given) into ``dest``; write and return ``index.json``.

    A run counts when its ``metrics.json`` says it completed and its export passed the parity
    gate; anything else is listed under ``"skipped"`` with the reason. A completed run whose
    export passed but is not on this machine keeps its intact file and entry from the previous
    ``index.json``. With ``teacher_artifact`` (the teacher stage's ``model.pt``) its weights and
    sidecar are copied too, as ``teacher.pt`` / ``teacher.json`` (the teacher entry's
    ``"weights"``); when those weights are the ones already gathered, the teacher's files and
    entry stay as they are (a re-export elsewhere could differ in the last bits)."""
    out_root, dest = Path(out_root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"models": [], "skipped": []}
    previous = {m["name"]: m for m in (read_json(dest / "index.json") or {}).get("models", [])}
    if teacher_export is not None:
        te = Path(teacher_export)
        exp = read_json(te / "export_metrics.json")
        old = previous.get("teacher")
        weights = (old or {}).get("weights") or []  # [teacher.pt, teacher.json] entries
        kept = _intact(old, dest) and all(_intact(w, dest) for w in weights)
        if (
            kept
            and weights
            and teacher_artifact is not None
            and Path(teacher_artifact).is_file()
            and weights[0]["sha256"] == sha256_file(teacher_artifact)
        ):
            # the same weights, gathered before: keep their export's bytes (another CPU may
            # fold the graph's constants to other last bits)
            index["models"].append(old)
        elif exp is not None and exp.get("passed") and (te / "model.onnx").is_file():
            train = read_json(out_root / "teacher" / "metrics.json")
            entry = {
                "name": "teacher",
                "arm": None,
                "seed": None,
                **_entry(train, exp),
                **_copy(te / "model.onnx", dest / "teacher.onnx"),
            }
            if teacher_artifact is not None:
                pt = Path(teacher_artifact)  # model.pt; its sidecar model.json
                js = pt.with_suffix(".json")
                entry["weights"] = [
                    _copy(pt, dest / TEACHER_WEIGHTS[0]),
                    _copy(js, dest / TEACHER_WEIGHTS[1]),
                ]
            index["models"].append(entry)
        elif kept:
            index["models"].append(old)  # exported on another machine
        else:
            index["skipped"].append({"name": "teacher", "why": f"no passed export in {te}"})
    for arm in study["arms"]:
        for seed in sorted(found_seeds(out_root, arm)):
            d = run_dir(out_root, arm, seed)
            name = f"{arm}-s{seed}"
            train = read_json(d / "metrics.json")
            exp = read_json(d / "export" / "export_metrics.json")
            done = train is not None and train.get("completed", True)
            passed = exp is not None and exp.get("passed")
            if done and passed and (d / "export" / "model.onnx").is_file():
                index["models"].append(
                    {
                        "name": name,
                        "arm": arm,
                        "seed": seed,
                        **_entry(train, exp),
                        **_copy(d / "export" / "model.onnx", dest / f"{name}.onnx"),
                    }
                )
            elif done and passed and _intact(previous.get(name), dest):
                index["models"].append(previous[name])  # exported on another machine
            else:
                index["skipped"].append(
                    {"name": name, "why": "not finished" if not done else "no passed export"}
                )
    write_json_atomic(dest / "index.json", index)
    return index


def restore_teacher(dest: str | Path, out_root: str | Path) -> list[Path]:
    """Copy the teacher weights committed in ``dest`` (:data:`TEACHER_WEIGHTS`) back to
    ``<out_root>/teacher/model.pt`` / ``model.json``, where the distilled stages read them: a
    clone on a machine without the DVC cache can then run them (the files are byte copies, so
    their hashes match ``dvc.lock``). Each file is checked against the SHA-256 in
    ``dest/index.json`` first; a target that exists with other bytes is never overwritten.
    Returns the paths written (those already identical are skipped)."""
    dest, target = Path(dest), Path(out_root) / "teacher"
    index = read_json(dest / "index.json")
    entry = next((m for m in (index or {}).get("models", []) if m.get("name") == "teacher"), None)
    weights = {w.get("file"): w for w in (entry or {}).get("weights", [])}
    if set(weights) != set(TEACHER_WEIGHTS):
        raise FileNotFoundError(
            f"{dest / 'index.json'}: no teacher weights indexed (expected "
            f"{' and '.join(TEACHER_WEIGHTS)} under the teacher entry)"
        )
    for name in TEACHER_WEIGHTS:
        if not _intact(weights[name], dest):
            raise ValueError(
                f"{dest / name}: missing or not the file indexed in {dest / 'index.json'} (SHA-256 differs)"
            )
    written = []
    for name, out in zip(TEACHER_WEIGHTS, ("model.pt", "model.json")):
        dst = target / out
        if dst.exists():
            if sha256_file(dst) == weights[name]["sha256"]:
                continue
            raise FileExistsError(
                f"{dst}: exists and differs from {dest / name}; not "
                "overwritten (move it away to restore the committed teacher)"
            )
        _copy(dest / name, dst)
        written.append(dst)
    return written
