"""``params.yaml`` → the library's configuration, one function per kind of stage.

``params.yaml`` is organised by *what is shared* rather than by stage, so that the baseline, KD
and RDD students are guaranteed the same recipe:

* ``data``     – dataset, root, splits, augmentation, loader (every stage);
* ``train``    – engine settings shared by all training stages (``nproc``, device, amp, seed, …);
* ``teacher``  – the teacher's ``model`` / ``optim`` / ``loss`` (+ any engine-key overrides);
* ``student``  – the same for the students of ``baseline``, ``kd``, ``tfe_rdd``, ``tse_rdd``;
* ``kd``       – the plain pixel-KD loss of the ``kd`` stage;
* ``rdd``      – RDD switches and the KD loss that runs alongside RDD;
* ``evaluate`` and ``export`` – the last two stages.

:func:`train_stage_config` assembles one stage's :class:`rdd.engine.TrainConfig` dict (validated
by ``TrainConfig.from_dict``). Everything here is pure dict manipulation; errors are
:class:`ParamsError` (a ``ValueError``) naming the ``params.yaml`` key.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["ParamsError", "TRAIN_STAGES", "STUDENT_STAGES", "load_params", "section",
           "dataset_root", "data_config", "train_stage_config", "train_nproc", "stage_dir",
           "deep_merge", "params_key", "params_message"]

TRAIN_STAGES = ("teacher", "baseline", "kd", "tfe_rdd", "tse_rdd")
STUDENT_STAGES = ("baseline", "kd", "tfe_rdd", "tse_rdd")

# keys of the ``data`` section that are the data stage's own (not TrainConfig.data keys)
_DATA_STAGE_KEYS = ("synthetic", "video", "check")
# keys of ``train`` that the pipeline consumes itself (not TrainConfig keys)
_LAUNCH_KEYS = ("nproc",)
# TrainConfig keys that only ``train`` (or a recipe override) sets
_ENGINE_TRAIN_KEYS = ("eval_interval", "log_interval", "seed", "device", "amp", "channels_last",
                      "sync_bn")


class ParamsError(ValueError):
    """A bad or missing value in ``params.yaml``; the message names the key."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` (a mapping of sections)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    with open(path) as f:
        try:
            params = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(params, Mapping):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return dict(params)


def section(params: Mapping[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    """``params[key]`` as a dict (``{}`` when absent and not required)."""
    value = params.get(key)
    if value is None:
        if required:
            raise ParamsError(f"params.yaml: missing section {key!r}")
        return {}
    if not isinstance(value, Mapping):
        raise ParamsError(f"params.yaml: {key} must be a mapping, got {value!r}")
    return copy.deepcopy(dict(value))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def stage_dir(out_root: str | Path, stage: str) -> str:
    return str(Path(out_root) / stage)


def dataset_root(params: Mapping[str, Any], out_root: str | Path = "outputs") -> str:
    """Where the dataset lives: generated under ``outputs/data/synthetic`` for ``synthetic``,
    else ``data.root`` (a local folder; relative paths are relative to the repository root)."""
    data = section(params, "data")
    name = data.get("dataset")
    if not isinstance(name, str) or not name:
        raise ParamsError(f"params.yaml: data.dataset must be a dataset name, got {name!r}")
    from rdd.data import DATASETS

    if name not in DATASETS:
        raise ParamsError(f"params.yaml: data.dataset: unknown dataset {name!r} "
                          f"(known: {', '.join(sorted(DATASETS))})")
    if name == "synthetic":
        return str(Path(out_root) / "data" / "synthetic")
    root = data.get("root")
    if not root:
        raise ParamsError(f"params.yaml: data.root is required for dataset {name!r} "
                          "(the local folder holding it; see README, 'Switching dataset')")
    return str(root)


def data_config(params: Mapping[str, Any], out_root: str | Path = "outputs") -> dict[str, Any]:
    """The ``TrainConfig.data`` mapping: ``data`` minus the data stage's own keys, root resolved."""
    data = section(params, "data")
    for k in _DATA_STAGE_KEYS:
        data.pop(k, None)
    data["root"] = dataset_root(params, out_root)
    return data


def train_nproc(params: Mapping[str, Any]) -> int:
    """``train.nproc``: processes per node (>1 → the stage relaunches itself under torchrun)."""
    n = section(params, "train", required=False).get("nproc", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParamsError(f"params.yaml: train.nproc must be an integer >= 1, got {n!r}")
    return n


def train_stage_config(params: Mapping[str, Any], stage: str, *,
                       out_root: str | Path = "outputs") -> dict[str, Any]:
    """One training stage's :class:`rdd.engine.TrainConfig` dict.

    ``teacher``  = ``train`` + ``teacher`` (supervised, with its aux head);
    ``baseline`` = ``train`` + ``student`` (supervised);
    ``kd``       = … + teacher artifact + ``loss.kd = kd``;
    ``tfe_rdd``  = … + ``loss.kd = rdd.kd`` + ``loss.rdd`` (TFE then TSE), ``stop_at = tfe_iters``;
    ``tse_rdd``  = the same config, ``resume = outputs/tfe_rdd/checkpoint.pt``.
    """
    if stage not in TRAIN_STAGES:
        raise ParamsError(f"unknown training stage {stage!r} (expected one of: "
                          f"{', '.join(TRAIN_STAGES)})")
    train = section(params, "train", required=False)
    for k in _LAUNCH_KEYS:
        train.pop(k, None)
    which = "teacher" if stage == "teacher" else "student"
    recipe = section(params, which)
    base: dict[str, Any] = {
        **train,
        "out_dir": stage_dir(out_root, stage),
        "data": data_config(params, out_root),
        "teacher": None,
    }
    cfg = deep_merge(base, recipe)
    if stage == "teacher" or stage == "baseline":
        return cfg

    cfg["teacher"] = {"artifact": str(Path(stage_dir(out_root, "teacher")) / "model.pt")}
    loss = dict(cfg.get("loss") or {})
    if stage == "kd":
        kd = section(params, "kd")
        loss["kd"] = {"type": "pixel", **kd}
        cfg["loss"] = loss
        return cfg

    rdd = section(params, "rdd")
    kd = rdd.pop("kd", None)
    extra_kd = rdd.pop("extra_kd", None)
    iters = (cfg.get("optim") or {}).get("iters")
    # check iters first: "tfe_iters must be < iters (-5)" would blame the wrong key
    if iters is not None and (isinstance(iters, bool) or not isinstance(iters, int) or iters < 1):
        raise ParamsError(f"params.yaml: student.optim.iters must be > 0, got {iters!r}")
    tfe_iters = rdd.get("tfe_iters")
    if isinstance(tfe_iters, bool) or not isinstance(tfe_iters, int) or tfe_iters < 1:
        raise ParamsError(f"params.yaml: rdd.tfe_iters must be an integer >= 1 (the iteration "
                          f"where TFE-RDD hands over to TSE-RDD), got {tfe_iters!r}")
    if isinstance(iters, int) and tfe_iters >= iters:
        raise ParamsError(f"params.yaml: rdd.tfe_iters must be < student.optim.iters ({iters}) "
                          f"so that the tse_rdd stage has iterations left, got {tfe_iters}")
    loss["kd"] = kd if kd is not None else {"type": "none"}
    if extra_kd:
        loss["extra_kd"] = extra_kd
    loss["rdd"] = {"tfe": True, "tse": True, **rdd}
    cfg["loss"] = loss
    if stage == "tfe_rdd":
        cfg["stop_at"] = tfe_iters
    else:
        cfg["resume"] = str(Path(stage_dir(out_root, "tfe_rdd")) / "checkpoint.pt")
    return cfg


def _has_path(d: Any, parts: list[str]) -> bool:
    for p in parts:
        if not isinstance(d, Mapping) or p not in d:
            return False
        d = d[p]
    return True


def params_key(params: Mapping[str, Any], stage: str, key: str) -> str:
    """The ``params.yaml`` key that an engine (``TrainConfig``) key path of ``stage`` comes from.

    ``model`` / ``optim`` / ``loss`` → the ``teacher`` or ``student`` recipe; ``data.*`` → ``data``;
    ``loss.kd`` of stage ``kd`` → ``kd``; ``loss.rdd.*`` / ``loss.kd`` / ``loss.extra_kd`` of the
    RDD stages → ``rdd``; the other engine settings → ``train``. A key the recipe overrides is
    reported under the recipe (``teacher.data.batch_size``). Keys the pipeline sets itself
    (``out_dir``, ``resume``, ``stop_at``, ``teacher.artifact``) are returned unchanged.

    >>> params_key({"student": {"optim": {"iters": -5}}}, "baseline", "optim.iters")
    'student.optim.iters'
    """
    parts = key.split(".")
    bare = [p.split("[")[0] for p in parts]  # "extra_kd[0]" → "extra_kd"
    which = "teacher" if stage == "teacher" else "student"
    if bare[0] == "loss" and len(parts) >= 2:
        if stage == "kd" and bare[1] == "kd":
            return ".".join(["kd", *parts[2:]])
        if stage.endswith("_rdd"):
            if bare[1] == "rdd":
                return ".".join(["rdd", *parts[2:]])
            if bare[1] in ("kd", "extra_kd"):
                return ".".join(["rdd", *parts[1:]])
    recipe = params.get(which)
    if _has_path(recipe, bare):
        return f"{which}.{key}"
    if bare[0] in ("model", "optim", "loss"):
        return f"{which}.{key}"
    if bare[0] == "data":
        return key
    if bare[0] in _ENGINE_TRAIN_KEYS or _has_path(params.get("train"), bare[:1]):
        return f"train.{key}"
    return key


_QUOTED = re.compile(r"(unknown key |missing required key )'([^']+)'(.*)", re.S)
_LEADING = re.compile(r"([A-Za-z_][\w\[\]]*(?:\.[\w\[\]]+)*) (.*)", re.S)
_ENGINE_TOP = ("out_dir", "model", "data", "teacher", "optim", "loss", "stop_at", "resume",
               *_ENGINE_TRAIN_KEYS)


def params_message(params: Mapping[str, Any], stage: str, msg: str) -> str:
    """An engine validation message (``"optim.iters must be > 0, got -5"``) with its key paths
    mapped back to ``params.yaml`` (``"params.yaml: student.optim.iters must be > 0, got -5"``)."""
    m = _QUOTED.match(msg)
    if m:
        head, rest = f"{m[1]}'{params_key(params, stage, m[2])}'", m[3]
    else:
        m = _LEADING.match(msg)
        if not m or m[1].split(".")[0].split("[")[0] not in _ENGINE_TOP:
            return msg
        head, rest = params_key(params, stage, m[1]), " " + m[2]
    rest = re.sub(r"(?<![\w.])optim\.iters\b",
                  lambda _: params_key(params, stage, "optim.iters"), rest)
    rest = re.sub(r"(?<![\w.])loss\.rdd\.\w+", lambda k: params_key(params, stage, k[0]), rest)
    return f"params.yaml: {head}{rest}"
