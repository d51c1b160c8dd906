"""A study's deliverable ONNX files: every finished run's FP32 student and the teacher, in one
folder that is committed with the report (``studies/<name>/models/``), so an independent check
can score them on data the project never saw without the training code.

Layout: ``<dest>/ARM-sSEED.onnx`` per run (a byte copy of ``runs/ARM-sSEED/export/model.onnx``,
with its ``rdd_meta``), ``<dest>/teacher.onnx``, and ``<dest>/index.json`` naming each file's
arm, seed, iterations, val mIoU (training code and ONNX Runtime), size and SHA-256.
Torch-free.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from rdd.serialization import sha256_file
from rdd.spec import atomic_path, write_json_atomic
from rdd.study.aggregate import _found_seeds, read_json, run_dir

__all__ = ["collect_onnx"]


def _copy(src: Path, dst: Path) -> dict[str, Any]:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return {"file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst)}


def _entry(train: Mapping[str, Any] | None, export: Mapping[str, Any] | None) -> dict[str, Any]:
    train, export = train or {}, export or {}
    return {"iters": train.get("iters"), "model": export.get("model"),
            "input_size": export.get("input_size"), "miou_val": train.get("miou"),
            "miou_val_onnxruntime": (export.get("miou") or {}).get("ort_fp32")}


def collect_onnx(study: Mapping[str, Any], out_root: str | Path, dest: str | Path, *,
                 teacher_export: str | Path | None = None) -> dict[str, Any]:
    """Copy the FP32 ONNX of every *completed* run of ``study`` (and the teacher's, from
    ``teacher_export``/model.onnx when given) into ``dest``; write and return ``index.json``.

    A run counts when its ``metrics.json`` says it completed and its export passed the parity
    gate; anything else is listed under ``"skipped"`` with the reason."""
    out_root, dest = Path(out_root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"models": [], "skipped": []}
    if teacher_export is not None:
        te = Path(teacher_export)
        exp = read_json(te / "export_metrics.json")
        if exp is None or not exp.get("passed") or not (te / "model.onnx").is_file():
            index["skipped"].append({"name": "teacher", "why": f"no passed export in {te}"})
        else:
            train = read_json(out_root / "teacher" / "metrics.json")
            index["models"].append({"name": "teacher", "arm": None, "seed": None,
                                    **_entry(train, exp), **_copy(te / "model.onnx",
                                                                  dest / "teacher.onnx")})
    for arm in study["arms"]:
        for seed in sorted(_found_seeds(out_root, arm)):
            d = run_dir(out_root, arm, seed)
            name = f"{arm}-s{seed}"
            train = read_json(d / "metrics.json")
            exp = read_json(d / "export" / "export_metrics.json")
            why = ("not finished" if train is None or not train.get("completed", True)
                   else "no passed export" if exp is None or not exp.get("passed")
                   or not (d / "export" / "model.onnx").is_file() else None)
            if why:
                index["skipped"].append({"name": name, "why": why})
                continue
            index["models"].append({"name": name, "arm": arm, "seed": seed,
                                    **_entry(train, exp),
                                    **_copy(d / "export" / "model.onnx", dest / f"{name}.onnx")})
    write_json_atomic(dest / "index.json", index)
    return index
