"""Full training-state checkpoints (``out_dir/checkpoint.pt``).

A checkpoint holds everything needed to continue a run *bit-for-bit* (on CPU; CUDA kernels may
be non-deterministic): model, optimizer, LR scheduler, AMP grad scaler, the global step, the RNG
states of every rank (python ``random``, numpy, torch CPU, torch CUDA), the config hash
(:meth:`rdd.engine.config.TrainConfig.config_hash`) and the ``origin``. The data order needs no
state: each iteration's batch and augmentation seed are a function of ``(seed, step)`` (see
:mod:`rdd.engine.data`).

Files are written atomically (:func:`rdd.serialization.save_torch_file`): a crash never leaves a
truncated ``checkpoint.pt``. The same training state gives the same bytes (DVC then retrains
nothing below a re-run stage whose result did not change, e.g. ``tse_rdd`` below ``tfe_rdd``):
wall-clock values (``extra``: the training time so far) go to a JSON sidecar
``checkpoint.json`` instead, which :func:`load_checkpoint` merges back when its step matches.
Checkpoints are read with ``torch.load(weights_only=True)``
(:func:`rdd.serialization.load_torch_file`), so the payload holds only tensors, numbers, strings
and plain containers: the numpy and python ``random`` RNG states are stored as a tensor / lists
(:func:`get_rng_state`), and a crafted or corrupt file is refused with a one-line
:class:`~rdd.serialization.TorchFileError` naming it, before anything in it runs.

**Resuming a stage after an interruption** (``kill -9`` included): the trainer first looks at its
own ``out_dir/checkpoint.pt`` (:func:`own_checkpoint_verdict`). It continues from it when the
checkpoint's config hash equals the current one, its step is before the end of this run, and it
descends from the same ``resume:`` checkpoint as the current run (``origin``, see
:func:`checkpoint_identity`; this is how ``tse_rdd`` tells its own progress from a stale run
after ``tfe_rdd`` was retrained). Otherwise it logs one line saying why and starts as if the
file were absent (from ``resume:``, else from scratch); the file is overwritten at the next
save. A refused own checkpoint (it asks for non-allow-listed objects) is an error, except one
written by the format-/1 code (numpy RNG state), which is treated as stale.

Resuming with a **different config hash** (another recipe: model, data, loss, optimizer, ...)
emits a :class:`ConfigMismatchWarning` and continues: changing e.g. ``optim.iters`` on resume
is sometimes intended. Keys that legitimately differ between the two stages of a split run
(``out_dir``, ``resume``, ``stop_at``, intervals, device, workers) are not part of the hash.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdd.serialization import TorchFileError, load_torch_file, save_torch_file, torch_bytes
from rdd.spec import loads_json, write_json_atomic

__all__ = [
    "CHECKPOINT_FORMAT",
    "ConfigMismatchWarning",
    "CheckpointError",
    "get_rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "check_config_hash",
    "checkpoint_identity",
    "own_checkpoint_verdict",
    "config_diff",
]

#: /2: RNG states as tensors / lists (loadable with ``weights_only=True``); /1 held numpy arrays.
CHECKPOINT_FORMAT = "rdd-edge-checkpoint/2"


class CheckpointError(TorchFileError):
    """A checkpoint that is refused, unreadable, or not an rdd-edge training checkpoint."""


class ConfigMismatchWarning(UserWarning):
    """Resuming a checkpoint written under a different training config."""


def get_rng_state() -> dict[str, Any]:
    """Snapshot of python, numpy, torch-CPU and (if initialised) all CUDA generators.

    Only tensors, numbers, strings and lists (``torch.load(weights_only=True)`` rebuilds them):
    ``python`` = ``[version, [625 ints], gauss_next]`` (:func:`random.getstate`), ``numpy`` =
    ``{"kind", "keys": int64 tensor (624,), "pos", "has_gauss", "cached_gaussian"}``
    (:func:`numpy.random.get_state`), ``torch`` / ``cuda`` = uint8 tensors.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a :func:`get_rng_state` snapshot."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            int(n["pos"]),
            int(n["has_gauss"]),
            float(n["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.manual_seed_all(int(torch.initial_seed()) % (2**63))


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    step: int,
    config_hash: str,
    config: dict[str, Any],
    rng_states: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    origin: str | None = None,
) -> Path:
    """Write the full training state atomically to ``path``.

    Args:
        model: the *unwrapped* model (not the DDP wrapper).
        step: number of optimizer steps taken (the next iteration to run).
        rng_states: one :func:`get_rng_state` per rank (index = rank).
        extra: free-form JSON-able values (train time, last metrics, ...), written to the sidecar
            ``<path stem>.json`` (after the ``.pt``), so that they never change the ``.pt`` bytes.
        origin: :func:`checkpoint_identity` of the ``resume:`` checkpoint this run started from
            (``None`` for a run from scratch); inherited when a run continues its own checkpoint.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states,
        "config_hash": config_hash,
        "config": config,
        "origin": origin,
        "torch_version": str(torch.__version__),  # TorchVersion is not a plain str
    }
    save_torch_file(payload, path)
    write_json_atomic(
        path.with_suffix(".json"), {"format": CHECKPOINT_FORMAT, "step": int(step), "extra": extra or {}}
    )
    return path


def _read_extra(path: Path, step: int) -> dict[str, Any]:
    """The sidecar's ``extra`` when it belongs to this step's checkpoint, else ``{}`` (it is
    informational: a missing or stale sidecar never stops a resume)."""
    try:
        side = loads_json(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(side, dict) or side.get("step") != step or not isinstance(side.get("extra"), dict):
        return {}
    return side["extra"]


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``, validated).

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (one line naming
    the file) for a refused, truncated or corrupt file or one that is not a training checkpoint.
    """
    path = Path(path)
    try:
        ckpt = load_torch_file(path, what="checkpoint", map_location=map_location)
    except TorchFileError as e:
        raise CheckpointError(str(e), path=path, refused=e.refused, unsafe_globals=e.unsafe_globals) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {path}: not an rdd-edge training checkpoint of format "
            f"{CHECKPOINT_FORMAT!r} (found {got!r}); a stage artifact (model.pt) holds weights "
            "only and cannot be resumed",
            path=path,
        )
    missing = [k for k in ("step", "model", "optimizer", "scheduler", "rng", "config_hash") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path}: is missing {missing}", path=path)
    ckpt["extra"] = _read_extra(path, ckpt["step"])
    return ckpt


def checkpoint_identity(ckpt: dict[str, Any]) -> str:
    """``"<step>:<sha256 of the model weights, 16 hex>"``: names a training state independently
    of the file's bytes (train time, torch version), so a retrained run with identical weights
    keeps the identity and any other weights change it."""
    digest = hashlib.sha256(torch_bytes(dict(ckpt["model"]))).hexdigest()[:16]
    return f"{int(ckpt['step'])}:{digest}"


#: Globals of a format-/1 checkpoint (numpy RNG arrays, ``torch.__version__``): stale, not hostile.
_LEGACY_GLOBALS = ("numpy.", "torch.torch_version.")


def own_checkpoint_verdict(
    path: str | Path, *, config_hash: str, config: dict[str, Any], end_iter: int, origin: str | None
) -> tuple[dict[str, Any] | None, str]:
    """Can a run continue from its own ``out_dir/checkpoint.pt``? → ``(ckpt, "")`` or
    ``(None, why not)``.

    ``origin``: :func:`checkpoint_identity` of the current run's ``resume:`` checkpoint (``None``
    without one). Raises :class:`CheckpointError` for a file that asks for non-allow-listed
    objects (a crafted pickle), unless it is a format-/1 checkpoint (then: stale).
    """
    path = Path(path)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        legacy = (
            e.refused and e.unsafe_globals and all(g.startswith(_LEGACY_GLOBALS) for g in e.unsafe_globals)
        )
        if e.refused and not legacy:
            raise CheckpointError(
                f"{e}; it is this stage's own checkpoint: delete it to train the stage from scratch",
                path=path,
                refused=True,
                unsafe_globals=e.unsafe_globals,
            ) from None
        if legacy:
            return None, "it was written by an older rdd-edge (checkpoint format /1)"
        if "torch.load" in str(e):
            return None, "it cannot be read (truncated or corrupt)"
        return None, f"it is not a training checkpoint of format {CHECKPOINT_FORMAT!r}"
    if ckpt["config_hash"] != config_hash:
        keys = config_diff(ckpt.get("config"), config)
        return None, (
            "it was written under another config" + (f" (differing keys: {', '.join(keys)})" if keys else "")
        )
    step = int(ckpt["step"])
    if step >= end_iter:
        return None, f"it is complete (iteration {step} of {end_iter})"
    if ckpt.get("origin") != origin:
        return None, (
            "it continues another start point than the current resume checkpoint "
            f"({ckpt.get('origin')} vs {origin})"
        )
    return ckpt, ""


def config_diff(saved: Any, current: dict[str, Any]) -> list[str]:
    """Key paths of the training-relevant config that differ (``[]`` if ``saved`` is no dict)."""
    if not isinstance(saved, dict):
        return []
    ignore = (
        "out_dir",
        "resume",
        "stop_at",
        "eval_interval",
        "log_interval",
        "device",
        "data.num_workers",
        "data.val_batch_size",
    )
    return [k for k in _diff_keys(saved, current) if not k.startswith(ignore)]


def check_config_hash(
    ckpt: dict[str, Any],
    config_hash: str,
    *,
    config: dict[str, Any] | None = None,
    path: str | Path = "checkpoint",
) -> bool:
    """Warn (:class:`ConfigMismatchWarning`) when ``ckpt`` was written under another config.

    Returns ``True`` when the hashes match. With ``config`` (the current ``TrainConfig.to_dict()``)
    the warning lists the key paths that differ.
    """
    if ckpt.get("config_hash") == config_hash:
        return True
    keys = config_diff(ckpt.get("config"), config) if config is not None else []
    diff = f" (differing keys: {', '.join(keys)})" if keys else ""
    warnings.warn(
        f"resume: {path} was written with config hash {str(ckpt.get('config_hash'))[:12]} but the "
        f"current config hashes to {config_hash[:12]}{diff}; continuing with the current config",
        ConfigMismatchWarning,
        stacklevel=2,
    )
    return False


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix or "<root>"]
