"""ONNX Runtime backend: an exported ``.onnx`` on the CPU, CUDA or the TensorRT execution provider.

``onnxruntime`` is imported when a session is made (the ``[cpu]`` / ``[gpu]`` extras), so this
module loads with numpy only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.contract import META_KEY, InputError, meta_from_props, ort_session_io, sidecar_meta
from rdd.runtime.backends.base import (
    Backend,
    device_choice,
    existing_file,
    import_runtime,
    onnx_precision,
    static_dim,
)

__all__ = ["OrtBackend", "ORT_PROVIDERS", "SPIN", "make_session", "onnx_precision"]

# device name → onnxruntime execution providers, in priority order (CPU last as a fallback for
# nodes the accelerator provider does not support).
ORT_PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_ORT_LEVELS = ("disable", "basic", "extended", "all")
INSTALL = "pip install 'rdd-edge[cpu]' (or [gpu] for onnxruntime-gpu)"
#: Whether intra-op threads busy-wait between calls. Off everywhere the project runs or times a
#: session (runner, ``rdd-bench``, the export stage): the runtime always shares the CPU with its
#: own decode / overlay threads and, when benchmarking, with other builds (docs/BENCH.md,
#: "Process and threading model", has the measurement behind this choice).
SPIN = False


def make_session(
    path: str | os.PathLike | bytes,
    *,
    providers: Sequence[Any] | None = None,
    threads: int | None = None,
    inter_op_threads: int | None = None,
    opt_level: str = "all",
    parallel: bool = False,
    spin: bool = SPIN,
) -> Any:
    """The one place an ``onnxruntime.InferenceSession`` is made.

    Args:
        path: an ONNX file, or a serialized model (``bytes``: a graph edited in memory).
        providers: execution providers (default CPU), optionally ``(name, options)`` pairs.
        threads / inter_op_threads: intra-/inter-op pool sizes (``None``/0 = ORT default).
        opt_level: ``"disable" | "basic" | "extended" | "all"`` graph optimisation level.
        parallel: ``ORT_PARALLEL`` execution mode (rarely helps for a CNN chain).
        spin: let idle intra-op threads busy-wait (:data:`SPIN`).
    """
    ort = import_runtime("onnxruntime", INSTALL)
    if opt_level not in _ORT_LEVELS:
        raise ValueError(f"make_session: opt_level must be one of {list(_ORT_LEVELS)}, got {opt_level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        so.intra_op_num_threads = int(threads)
    if inter_op_threads:
        so.inter_op_num_threads = int(inter_op_threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3  # errors only: no provider-assignment warnings on stdout
    model = path if isinstance(path, bytes) else str(Path(path))
    return ort.InferenceSession(model, sess_options=so, providers=list(providers or ["CPUExecutionProvider"]))


def device_status(device: str) -> str | None:
    """``None`` when onnxruntime here runs ``device`` (cpu / cuda / trt), else why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime unavailable"
    if device not in ORT_PROVIDERS:
        return f"onnxruntime has no device {device!r}"
    want = ORT_PROVIDERS[device][0]
    if want not in ort.get_available_providers():
        return f"onnxruntime has no {want}"
    return None


class OrtBackend(Backend):
    """An ONNX model run with onnxruntime.

    Args:
        path: ``.onnx`` file carrying ``metadata_props["rdd_meta"]`` (or a ``<name>.json``
            sidecar with the same JSON).
        device: ``"cpu"`` | ``"cuda"`` | ``"trt"`` → ``CPUExecutionProvider`` /
            ``CUDAExecutionProvider`` / ``TensorrtExecutionProvider`` (with fallbacks behind it).
        threads / inter_op_threads: onnxruntime thread pools (``None``/0 = its default).
        provider_options: extra options for the first provider (e.g. ``{"device_id": 1}``).
        spin: busy-waiting intra-op threads (:data:`SPIN`).
        max_pixels: largest ``input_size`` H·W accepted from the metadata
            (:func:`rdd.contract.resolve_max_pixels`).
    """

    name = "ort"
    devices = tuple(ORT_PROVIDERS)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        threads: int | None = None,
        inter_op_threads: int | None = None,
        provider_options: dict[str, Any] | None = None,
        spin: bool = SPIN,
        max_pixels: int | None = None,
    ) -> None:
        ort = import_runtime("onnxruntime", INSTALL)
        self.path = existing_file(path)
        self.device = device_choice(device, ORT_PROVIDERS, "ort")
        available = ort.get_available_providers()
        wanted = ORT_PROVIDERS[device]
        if wanted[0] not in available:
            hint = (
                "; install rdd-edge[gpu] (onnxruntime-gpu) instead of [cpu], see docs/DEPLOY.md"
                if "CUDAExecutionProvider" not in available
                else ""
            )
            raise InputError(
                f"device {device!r} needs onnxruntime's {wanted[0]}, which this "
                f"onnxruntime build does not have (available: {', '.join(available)})"
                f"{hint}"
            )
        providers: list[Any] = [p for p in wanted if p in available]
        if provider_options:
            providers[0] = (providers[0], dict(provider_options))
        try:
            self.session = make_session(
                self.path, providers=providers, threads=threads, inter_op_threads=inter_op_threads, spin=spin
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"{self.path}: cannot load ONNX model ({first})") from None
        active = self.session.get_providers()
        if active[0] != wanted[0]:
            raise InputError(
                f"device {device!r}: onnxruntime could not initialise {wanted[0]} "
                f"(session runs on {active}); check the CUDA/TensorRT libraries"
            )
        self.providers = active
        props, inputs, outputs = ort_session_io(self.session)
        meta = meta_from_props(props, source=str(self.path), max_pixels=max_pixels) or sidecar_meta(
            self.path, max_pixels=max_pixels
        )
        if meta is None:
            raise InputError(
                f"{self.path}: no '{META_KEY}' metadata (normalisation, classes, "
                "input size); export the model with rdd.export.export_onnx or put the "
                f"rdd_meta JSON in {self.path.with_suffix('.json')}"
            )
        self.meta = meta.check_graph(inputs, outputs, source=str(self.path))
        self.precision = onnx_precision(props)
        self.fixed_batch = static_dim(inputs[0][2][0])

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """One ``session.run``: the raw output (logits or labels) of a model input batch."""
        return self.session.run([self.meta.output_name], {self.meta.input_name: batch})[0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": list(self.providers)}
