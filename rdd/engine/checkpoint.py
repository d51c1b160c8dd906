"""Full training-state checkpoints (``out_dir/checkpoint.pt``).

A checkpoint holds everything needed to continue a run *bit-for-bit* (on CPU; CUDA kernels may
be non-deterministic): model, optimizer, LR scheduler, AMP grad scaler, the global step, the RNG
states of every rank (python ``random``, numpy, torch CPU, torch CUDA), the training time so far,
and the config hash (:meth:`rdd.engine.config.TrainConfig.config_hash`). The data order needs no
state: each iteration's batch and augmentation seed are a function of ``(seed, step)`` (see
:mod:`rdd.engine.data`).

Files are written atomically (temporary file + ``os.replace`` via :func:`rdd.spec.atomic_path`):
a crash never leaves a truncated ``checkpoint.pt``.

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

from rdd.spec import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "ConfigMismatchWarning", "get_rng_state", "set_rng_state",
           "save_checkpoint", "load_checkpoint", "check_config_hash"]

CHECKPOINT_FORMAT = "rdd-edge-checkpoint/1"


class ConfigMismatchWarning(UserWarning):
    """Resuming a checkpoint written under a different training config."""


def get_rng_state() -> dict[str, Any]:
    """Snapshot of python, numpy, torch-CPU and (if initialised) all CUDA generators."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
        "torch_version": torch.__version__,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (validated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    # weights_only=False: the payload holds numpy RNG state and python tuples.
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an rdd-edge training checkpoint "
                         f"(expected format {CHECKPOINT_FORMAT!r}); a stage artifact (model.pt) "
                         "holds weights only and cannot be resumed")
    missing = [k for k in ("step", "model", "optimizer", "scheduler", "rng", "config_hash")
               if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint is missing {missing}")
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
