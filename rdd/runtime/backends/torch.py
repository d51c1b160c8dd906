"""PyTorch reference backend: a training artifact (``NAME.pt`` + ``NAME.json``, see
:mod:`rdd.artifacts`) run in eager mode. The only backend that needs torch; it is imported when
the artifact is opened, and the artifact's weights are read without running anything in them."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rdd.contract import InputError, ModelMeta
from rdd.offline import installed
from rdd.runtime.backends.base import Backend, existing_file

__all__ = ["TorchBackend", "device_status"]


def device_status(device: str) -> str | None:
    """``None`` when PyTorch here runs ``device`` (cpu / cuda), else why not."""
    if not installed("torch"):
        return "torch unavailable"
    if device not in ("cpu", "cuda"):
        return f"torch has no device {device!r}"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "PyTorch sees no CUDA device here"
    return None


class TorchBackend(Backend):
    """A training artifact run in PyTorch (eager), the reference the exported builds are checked
    against; ``device`` ``cpu`` or ``cuda``; ``threads`` sets ``torch.set_num_threads``."""

    name = "torch"
    devices = ("cpu", "cuda")

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        threads: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.path = existing_file(path, "artifact")
        try:
            import torch
        except ImportError:
            raise InputError(
                "the torch backend needs PyTorch, which is not installed here; export "
                "the model to ONNX and use the ort backend"
            ) from None
        if device not in ("cpu", "cuda"):
            raise InputError(f"device must be 'cpu' or 'cuda' for the torch backend, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("device cuda: PyTorch sees no CUDA device here")
        if threads:
            torch.set_num_threads(int(threads))
        from rdd.artifacts import load_artifact

        self.torch = torch
        self.device = device
        try:
            model, d = load_artifact(self.path, map_location=device)
        except ValueError as e:  # refused / corrupt weights (TorchFileError), bad sidecar: bad input
            raise InputError(" ".join(str(e).split())) from e
        self.model = model.eval().to(device)
        self.meta = ModelMeta.from_artifact_json(
            d, source=str(self.path.with_suffix(".json")), max_pixels=max_pixels
        )
        k = getattr(model, "num_classes", self.meta.num_classes)
        if k != self.meta.num_classes:
            raise InputError(
                f"{self.path.with_suffix('.json')}: the model predicts {k} classes but "
                f"classes.names lists {self.meta.num_classes}"
            )

    def _logits(self, batch: np.ndarray) -> Any:
        torch = self.torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out["out"] if isinstance(out, dict) else out

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self._logits(self.check_batch(batch)).float().cpu().numpy()

    def forward_or_labels(self, batch: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return None, self.infer(batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # the argmax in torch (on the GPU for cuda): labels come back, not logits
        return self._logits(self.check_batch(batch)).argmax(1).to(self.torch.uint8).cpu().numpy()
