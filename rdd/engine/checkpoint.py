"""Full training-state checkpoints (``out_dir/checkpoint.pt``).

A checkpoint holds everything needed to continue a run *bit-for-bit* (on CPU; CUDA kernels may
be non-deterministic): model, optimizer, LR scheduler, AMP grad scaler, the global step, the RNG
states of every rank (python ``random``, numpy, torch CPU, torch CUDA), the training time so far,
and the config hash (:meth:`rdd.engine.config.TrainConfig.config_hash`). The data order needs no
state: each iteration's batch and augmentation seed are a function of ``(seed, step)`` (see
:mod:`rdd.engine.data`).

Files are written atomically (:func:`rdd.serialization.save_torch_file`): a crash never leaves a
truncated ``checkpoint.pt``. They are read with ``torch.load(weights_only=True)``
(:func:`rdd.serialization.load_torch_file`), so the payload holds only tensors, numbers, strings
and plain containers: the numpy and python ``random`` RNG states are stored as a tensor / lists
(:func:`get_rng_state`), and a crafted or corrupt file is refused with a one-line
:class:`~rdd.serialization.TorchFileError` naming it, before anything in it runs.

Resuming with a **different config hash** (another recipe: model, data, loss, optimizer, ...)
emits a :class:`ConfigMismatchWarning` and continues: changing e.g. ``optim.iters`` on resume
is sometimes intended. Keys that legitimately differ between the two stages of a split run
(``out_dir``, ``resume``, ``stop_at``, intervals, device, workers) are not part of the hash.
"""
from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdd.serialization import TorchFileError, load_torch_file, save_torch_file

__all__ = ["CHECKPOINT_FORMAT", "ConfigMismatchWarning", "CheckpointError", "get_rng_state",
           "set_rng_state", "save_checkpoint", "load_checkpoint", "check_config_hash"]

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
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
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
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.manual_seed_all(int(torch.initial_seed()) % (2 ** 63))


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, step: int, config_hash: str,
                    config: dict[str, Any], rng_states: list[dict[str, Any]],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the full training state atomically to ``path``.

    Args:
        model: the *unwrapped* model (not the DDP wrapper).
        step: number of optimizer steps taken (the next iteration to run).
        rng_states: one :func:`get_rng_state` per rank (index = rank).
        extra: free-form JSON-able values (train time, last metrics, ...).
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
        "extra": extra or {},
        "torch_version": str(torch.__version__),   # TorchVersion is not a plain str
    }
    return save_torch_file(payload, path)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``, validated).

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (one line naming
    the file) for a refused, truncated or corrupt file or one that is not a training checkpoint.
    """
    path = Path(path)
    try:
        ckpt = load_torch_file(path, what="checkpoint", map_location=map_location)
    except TorchFileError as e:
        raise CheckpointError(str(e), path=path, refused=e.refused,
                              unsafe_globals=e.unsafe_globals) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {path}: not an rdd-edge training checkpoint of format "
            f"{CHECKPOINT_FORMAT!r} (found {got!r}); a stage artifact (model.pt) holds weights "
            "only and cannot be resumed", path=path)
    missing = [k for k in ("step", "model", "optimizer", "scheduler", "rng", "config_hash")
               if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path}: is missing {missing}", path=path)
    return ckpt


def check_config_hash(ckpt: dict[str, Any], config_hash: str, *, config: dict[str, Any] | None = None,
                      path: str | Path = "checkpoint") -> bool:
    """Warn (:class:`ConfigMismatchWarning`) when ``ckpt`` was written under another config.

    Returns ``True`` when the hashes match. With ``config`` (the current ``TrainConfig.to_dict()``)
    the warning lists the key paths that differ.
    """
    if ckpt.get("config_hash") == config_hash:
        return True
    diff = ""
    if config is not None and isinstance(ckpt.get("config"), dict):
        ignore = ("out_dir", "resume", "stop_at", "eval_interval", "log_interval", "device",
                  "data.num_workers", "data.val_batch_size")
        keys = [k for k in _diff_keys(ckpt["config"], config) if not k.startswith(ignore)]
        if keys:
            diff = f" (differing keys: {', '.join(keys)})"
    warnings.warn(
        f"resume: {path} was written with config hash {str(ckpt.get('config_hash'))[:12]} but the "
        f"current config hashes to {config_hash[:12]}{diff}; continuing with the current config",
        ConfigMismatchWarning, stacklevel=2)
    return False


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix or "<root>"]
