"""The interface every inference backend implements, and the checks they share (numpy only).

A backend opens one build (a model file) on one device and exposes

* ``.meta`` – the :class:`~rdd.contract.ModelMeta` read from the model's *own* metadata (ONNX
  ``metadata_props["rdd_meta"]``, an OpenVINO IR's runtime info, an engine's JSON sidecar, an
  artifact's JSON) and checked against the graph at load;
* ``.forward(batch) -> output`` – the model's raw output for the model input ``batch``
  (``N×3×H×W`` float32 made by :func:`rdd.runtime.stream.transforms.preprocess`, or
  ``N×H×W×3`` uint8 for a graph with folded preprocessing): logits ``N×K×h×w`` or labels;
* ``.infer(batch) -> labels`` – ``uint8 N×H×W`` class ids (``uint16`` above 256 classes) at the
  input's size: :func:`output_labels` of ``forward``;
* ``.precision`` – the numeric precision that actually runs (``fp32``, ``int8``, ``bf16`` …),
  read back from the runtime where it can say;
* ``.describe()`` – the facts a report names (backend, device, model, precision).

Backends are opened through :func:`rdd.runtime.backends.open_build` (the format table), never
constructed by the rest of the project.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.contract import InputError, ModelMeta
from rdd.offline import no_telemetry

__all__ = [
    "Backend",
    "onnx_precision",
    "logits_to_labels",
    "output_labels",
    "existing_file",
    "device_choice",
    "image_input_check",
    "static_dim",
    "apply_graph_shape",
    "import_runtime",
]


def logits_to_labels(out: np.ndarray, kind: str) -> np.ndarray:
    """Model output → ``uint8 N×H×W`` class ids (``uint16`` for logits of more than 256 classes).

    ``kind == "logits"``: ``out`` is ``N×K×H×W``, labels = ``argmax_k``. ``kind == "labels"``:
    ``out`` is ``N×H×W`` (or ``N×1×H×W``) integer ids.
    """
    out = np.asarray(out)
    if kind == "logits":
        if out.ndim != 4:
            raise InputError(f"expected N×K×H×W logits from the model, got shape {out.shape}")
        return out.argmax(axis=1).astype(np.uint8 if out.shape[1] <= 256 else np.uint16)
    if out.ndim == 4 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 3:
        raise InputError(f"expected N×H×W labels from the model, got shape {out.shape}")
    return out.astype(np.uint8, copy=False)


def output_labels(out: np.ndarray, meta: ModelMeta, size: tuple[int, int]) -> np.ndarray:
    """Labels ``N×H×W`` at the input size ``size`` from a model's raw output.

    A ``full`` head's logits are already at the input size (``argmax``); a ``lowres`` head's
    logits ``N×K×h×w`` are turned into the argmax of their bilinear upsampling to ``size``
    exactly as the dropped graph op computed it (:mod:`rdd.runtime.backends.lowres`).
    """
    if meta.output_kind == "logits" and meta.head == "lowres":
        from rdd.runtime.backends.lowres import upsample_argmax

        return upsample_argmax(np.asarray(out), tuple(size))
    return logits_to_labels(out, meta.output_kind)


class Backend:
    """Common interface; see the module docstring."""

    name: str = "base"
    device: str = "cpu"
    precision: str = "fp32"
    meta: ModelMeta
    path: Path
    #: the graph's static batch size (``None``: dynamic); a fixed batch of 1 runs frame by frame
    fixed_batch: int | None = None

    def forward(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Labels ``N×H×W`` of a model input batch (:func:`output_labels` of :meth:`forward`)."""
        batch = self.check_batch(batch)
        return self.by_fixed_batch(
            batch, lambda b: output_labels(self.forward(b), self.meta, self.input_hw(b))
        )

    def forward_or_labels(self, batch: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(outputs, None)`` when labels are made from the raw outputs on the CPU (the frame
        stream does it in its writer thread, beside the next inference), or ``(None, labels)``
        when the runtime makes them itself (TensorRT's and torch's argmax on the device)."""
        return self.by_fixed_batch(self.check_batch(batch), self.forward), None

    def input_hw(self, batch: np.ndarray) -> tuple[int, int]:
        """``(H, W)`` of a model input batch (its layout's spatial axes)."""
        return tuple(batch.shape[1:3] if self.meta.input_layout == "NHWC" else batch.shape[2:4])

    def describe(self) -> dict[str, Any]:
        """Facts for the report: backend, the device it runs on, model path/name, precision.

        (The report's ``"device"`` key is the machine's provenance block,
        :func:`rdd.runtime.provenance.device_info`.)"""
        return {
            "backend": self.name,
            "backend_device": self.device,
            "model_path": str(self.path),
            "model": self.meta.model,
            "precision": self.precision,
        }

    def by_fixed_batch(self, batch: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``run(batch)``; a graph with a fixed batch of 1 gets the frames one at a time, another
        fixed batch must be matched (``ValueError``)."""
        fixed = self.fixed_batch
        if fixed and batch.shape[0] != fixed:
            if fixed != 1:
                raise ValueError(
                    f"{self.path}: model has a fixed batch of {fixed}, got {batch.shape[0]} frames"
                )
            return np.concatenate([run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return run(batch)

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` as a contiguous array of the model's input dtype and layout (``ValueError``)."""
        m = self.meta
        want = np.dtype(m.input_dtype)
        batch = np.asarray(batch)
        if batch.dtype != want:
            raise ValueError(f"{self.name}: model input must be {want}, got {batch.dtype}")
        c_axis = 1 if m.input_layout == "NCHW" else 3
        if batch.ndim != 4 or batch.shape[c_axis] != 3:
            raise ValueError(
                f"{self.name}: model input must be {m.input_layout} with 3 channels, got shape {batch.shape}"
            )
        return np.ascontiguousarray(batch)


def existing_file(path: str | os.PathLike, what: str = "model file") -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`InputError` naming it if it is no file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def device_choice(device: str, devices: Any, backend: str) -> str:
    """``device`` if it is one of ``devices`` (names or a mapping), else a one-line InputError."""
    if device not in devices:
        raise InputError(f"device must be one of {sorted(devices)} for the {backend} backend, got {device!r}")
    return device


def image_input_check(shape: Sequence[Any], layout: str, where: str) -> tuple[Any, Any, Any]:
    """Validate an input shape (ints or symbolic names); return its (N, H, W) dims."""
    if len(shape) != 4:
        raise InputError(
            f"{where}: model input has shape {list(shape)} (rank {len(shape)}); "
            f"expected an image batch {layout} of rank 4"
        )
    n, c, h, w = (
        (shape[0], shape[1], shape[2], shape[3])
        if layout == "NCHW"
        else (shape[0], shape[3], shape[1], shape[2])
    )
    if isinstance(c, (int, np.integer)) and c >= 0 and c != 3:
        raise InputError(
            f"{where}: model input has shape {list(shape)}: {c} channels, expected an "
            f"RGB image batch {layout} with 3 channels"
        )
    return n, h, w


def static_dim(d: Any) -> int | None:
    """A positive static dimension as an int, else ``None`` (symbolic or unknown)."""
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


def apply_graph_shape(meta: ModelMeta, n: Any, h: Any, w: Any) -> ModelMeta:
    """The graph's static dims win over what rdd_meta claims."""
    hs, ws = static_dim(h), static_dim(w)
    if hs and ws:
        meta = meta.with_(input_size=(hs, ws), dynamic_spatial=False)
    return meta.with_(dynamic_batch=static_dim(n) is None)


def import_runtime(module: str, install: str, prefix: str = "") -> Any:
    """Import an inference runtime, or raise a one-line :class:`InputError` naming what to install
    (the base ``pip install rdd-edge`` carries no runtime: the extras pick one)."""
    if module.split(".")[0] in ("openvino", "nncf"):
        no_telemetry()  # their usage events stay off (rdd.offline)
    try:
        return importlib.import_module(module)
    except ImportError as e:  # absent, or present but broken (a missing shared library, ...)
        if isinstance(e, ModuleNotFoundError) and e.name == module.split(".")[0]:
            raise InputError(f"{prefix}{module} is not installed: {install}") from None
        first = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{prefix}{module} cannot be imported ({first}); {install}") from None


def onnx_precision(props: Mapping[str, str]) -> str:
    """A graph's precision from its ``metadata_props`` (``rdd_precision``; ``fp32`` when absent):
    the one rule, for the format table and the onnxruntime backend."""
    return str(props.get("rdd_precision", "fp32")).lower()
