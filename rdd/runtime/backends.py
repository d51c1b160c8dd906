"""Inference backends: ONNX Runtime, TensorRT engines and PyTorch artifacts behind one interface.

Every backend exposes

* ``.meta`` – :class:`~rdd.contract.ModelMeta` read from the model's *own* metadata
  (ONNX ``metadata_props["rdd_meta"]``, an engine's JSON sidecar, an artifact's JSON) and
  checked against the graph at load (:meth:`~rdd.contract.ModelMeta.check_graph`);
* ``.infer(batch) -> labels`` – ``batch`` is the model input (``N×3×H×W`` float32 made by
  :func:`rdd.runtime.pipeline.preprocess`, or ``N×H×W×3`` uint8 for models with folded
  preprocessing); ``labels`` is ``uint8 N×H×W`` (the argmax is taken here for logits models).

This module imports numpy only at import time. ``onnxruntime``, ``tensorrt`` / CUDA bindings and
``torch`` are imported inside the backend that needs them, so ``--backend ort`` runs on a device
without PyTorch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rdd.contract import (META_KEY, InputError, ModelMeta, apply_profile, engine_sidecar_path,
                          meta_from_props, ort_session_io, read_engine_sidecar, read_onnx_meta,
                          sidecar_meta)

__all__ = ["Backend", "OrtBackend", "TrtBackend", "TorchBackend", "create_backend",
           "logits_to_labels", "ORT_PROVIDERS", "make_session"]

# --device name → onnxruntime execution providers, in priority order (CPU last as a fallback for
# nodes the accelerator provider does not support).
ORT_PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_ORT_LEVELS = ("disable", "basic", "extended", "all")


def make_session(path: str | os.PathLike, *, providers: Sequence[Any] | None = None,
                 threads: int | None = None, inter_op_threads: int | None = None,
                 opt_level: str = "all", parallel: bool = False, spin: bool = True) -> Any:
    """The one place an ``onnxruntime.InferenceSession`` is made (backend, gates, benchmarks).

    Args:
        providers: execution providers (default CPU), optionally ``(name, options)`` pairs.
        threads / inter_op_threads: intra-/inter-op pool sizes (``None``/0 = ORT default).
        opt_level: ``"disable" | "basic" | "extended" | "all"`` graph optimisation level.
        parallel: ``ORT_PARALLEL`` execution mode (rarely helps for a CNN chain).
        spin: let idle intra-op threads busy-wait (lowest latency on a dedicated CPU; turn off
            for throughput jobs or on a shared machine).
    """
    ort = _import_runtime("onnxruntime", _ORT_INSTALL)
    if opt_level not in _ORT_LEVELS:
        raise ValueError(f"make_session: opt_level must be one of {list(_ORT_LEVELS)}, "
                         f"got {opt_level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[opt_level]
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if parallel
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    if threads:
        so.intra_op_num_threads = int(threads)
    if inter_op_threads:
        so.inter_op_num_threads = int(inter_op_threads)
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: no provider-assignment warnings on stdout
    return ort.InferenceSession(str(Path(path)), sess_options=so,
                                providers=list(providers or ["CPUExecutionProvider"]))


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


class Backend:
    """Common interface; see the module docstring."""

    name: str = "base"
    device: str = "cpu"
    meta: ModelMeta
    path: Path

    def infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts for the report: backend, the device it runs on, model path/name.

        (The report's ``"device"`` key is the machine's provenance block,
        :func:`rdd.runtime.provenance.device_info`.)"""
        return {"backend": self.name, "backend_device": self.device, "model_path": str(self.path),
                "model": self.meta.model}

    def _by_fixed_batch(self, batch: np.ndarray, run: Callable[[np.ndarray], np.ndarray]
                        ) -> np.ndarray:
        """``run(batch)``; a graph with a fixed batch of 1 (``self._fixed_batch``) gets the frames
        one at a time, another fixed batch must be matched (``ValueError``)."""
        fixed = getattr(self, "_fixed_batch", None)
        if fixed and batch.shape[0] != fixed:
            if fixed != 1:
                raise ValueError(f"{self.path}: model has a fixed batch of {fixed}, "
                                 f"got {batch.shape[0]} frames")
            return np.concatenate([run(batch[i:i + 1]) for i in range(batch.shape[0])])
        return run(batch)

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        m = self.meta
        want = np.dtype(m.input_dtype)
        batch = np.asarray(batch)
        if batch.dtype != want:
            raise ValueError(f"{self.name}: model input must be {want}, got {batch.dtype}")
        c_axis = 1 if m.input_layout == "NCHW" else 3
        if batch.ndim != 4 or batch.shape[c_axis] != 3:
            raise ValueError(f"{self.name}: model input must be {m.input_layout} with 3 channels, "
                             f"got shape {batch.shape}")
        return np.ascontiguousarray(batch)


def _existing_file(path: str | os.PathLike, what: str = "model file") -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`InputError` naming it if it is no file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def _device_choice(device: str, devices: Any, backend: str) -> str:
    """``device`` if it is one of ``devices`` (names or a mapping), else a one-line InputError."""
    if device not in devices:
        raise InputError(f"--device must be one of {sorted(devices)} for the {backend} backend, "
                         f"got {device!r}")
    return device


def _image_input_check(shape: Sequence[Any], layout: str, where: str) -> tuple[Any, Any, Any]:
    """Validate an input shape (ints or symbolic names); return its (N, H, W) dims."""
    if len(shape) != 4:
        raise InputError(f"{where}: model input has shape {list(shape)} (rank {len(shape)}); "
                         f"expected an image batch {layout} of rank 4")
    n, c, h, w = (shape[0], shape[1], shape[2], shape[3]) if layout == "NCHW" else \
        (shape[0], shape[3], shape[1], shape[2])
    if isinstance(c, (int, np.integer)) and c >= 0 and c != 3:
        raise InputError(f"{where}: model input has shape {list(shape)}: {c} channels, expected an "
                         f"RGB image batch {layout} with 3 channels")
    return n, h, w


def _static(d: Any) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


def _apply_graph_shape(meta: ModelMeta, n: Any, h: Any, w: Any) -> ModelMeta:
    """The graph's static dims win over what rdd_meta claims."""
    hs, ws = _static(h), _static(w)
    if hs and ws:
        meta = meta.with_(input_size=(hs, ws), dynamic_spatial=False)
    return meta.with_(dynamic_batch=_static(n) is None)


def _import_runtime(module: str, install: str, prefix: str = "") -> Any:
    """Import an inference runtime, or raise a one-line :class:`InputError` naming what to install
    (the base ``pip install rdd-edge`` carries no runtime: the extras pick one)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # absent, or present but broken (a missing shared library, ...)
        if isinstance(e, ModuleNotFoundError) and e.name == module.split(".")[0]:
            raise InputError(f"{prefix}{module} is not installed: {install}") from None
        first = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{prefix}{module} cannot be imported ({first}); {install}") from None


_ORT_INSTALL = "pip install 'rdd-edge[cpu]' (or [gpu] for onnxruntime-gpu)"


# =========================================================================== onnxruntime
class OrtBackend(Backend):
    """An ONNX model run with onnxruntime.

    Args:
        path: ``.onnx`` file carrying ``metadata_props["rdd_meta"]`` (or a ``<name>.json``
            sidecar with the same JSON).
        device: ``"cpu"`` | ``"cuda"`` | ``"trt"`` → ``CPUExecutionProvider`` /
            ``CUDAExecutionProvider`` / ``TensorrtExecutionProvider`` (with fallbacks behind it).
        intra_op_threads / inter_op_threads: onnxruntime thread pools (``None``/0 = its default).
        provider_options: extra options for the first provider (e.g. ``{"device_id": 1}``).
        spin: busy-waiting intra-op threads (:func:`make_session`).
        max_pixels: largest ``input_size`` H·W accepted from the metadata
            (:func:`rdd.contract.resolve_max_pixels`).
    """

    name = "ort"

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu",
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 provider_options: dict[str, Any] | None = None, spin: bool = True,
                 max_pixels: int | None = None) -> None:
        ort = _import_runtime("onnxruntime", _ORT_INSTALL)

        self.path = _existing_file(path)
        self.device = _device_choice(device, ORT_PROVIDERS, "ort")
        available = ort.get_available_providers()
        wanted = ORT_PROVIDERS[device]
        if wanted[0] not in available:
            hint = ("; install rdd-edge[gpu] (onnxruntime-gpu) instead of [cpu], see docs/DEPLOY.md"
                    if "CUDAExecutionProvider" not in available else "")
            raise InputError(f"device {device!r} needs onnxruntime's {wanted[0]}, which this "
                             f"onnxruntime build does not have (available: {', '.join(available)})"
                             f"{hint}")
        providers: list[Any] = [p for p in wanted if p in available]
        if provider_options:
            providers[0] = (providers[0], dict(provider_options))

        try:
            self.session = make_session(self.path, providers=providers, threads=intra_op_threads,
                                        inter_op_threads=inter_op_threads, spin=spin)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"{self.path}: cannot load ONNX model ({first})") from None
        active = self.session.get_providers()
        if active[0] != wanted[0]:
            raise InputError(f"device {device!r}: onnxruntime could not initialise {wanted[0]} "
                             f"(session runs on {active}); check the CUDA/TensorRT libraries")
        self.providers = active

        props, inputs, outputs = ort_session_io(self.session)
        meta = (meta_from_props(props, source=str(self.path), max_pixels=max_pixels)
                or sidecar_meta(self.path, max_pixels=max_pixels))
        if meta is None:
            raise InputError(f"{self.path}: no '{META_KEY}' metadata (normalisation, classes, "
                             "input size); export the model with rdd.export.export_onnx or put the "
                             f"rdd_meta JSON in {self.path.with_suffix('.json')}")
        self.meta = meta.check_graph(inputs, outputs, source=str(self.path))
        self._fixed_batch = _static(inputs[0][2][0])

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """One ``session.run`` returning the raw output (for benchmarks)."""
        return self.session.run([self.meta.output_name], {self.meta.input_name: batch})[0]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output (logits ``N×K×H×W`` or labels) for a checked input batch;
        :meth:`infer` is ``logits_to_labels(forward(batch))``."""
        return self._by_fixed_batch(self._check_batch(batch), self.run_raw)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return logits_to_labels(self.forward(batch), self.meta.output_kind)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": list(self.providers)}


# =========================================================================== TensorRT
class TrtBackend(Backend):
    """A serialised TensorRT (10.x) engine run with ``execute_async_v3``.

    An engine file has no free-form metadata, so the rdd_meta JSON is read from ``meta`` (a
    :class:`ModelMeta` or dict), else the sidecar ``<engine file name>.json`` written by
    :func:`rdd.export.tensorrt.build_engine` (:func:`~rdd.contract.read_engine_sidecar`),
    else a bare ``<engine stem>.json``, else the ONNX model ``<engine stem>.onnx``.

    The accepted input sizes come from the engine's optimisation profile 0
    (``engine.get_tensor_profile_shape``), which overrides what rdd_meta says: ``min == max``
    makes the model fixed-size, otherwise frames are resized into ``[min, max]``
    (:func:`~rdd.contract.apply_profile`). Device buffers come from PyTorch when it is
    installed with CUDA, otherwise from ``cuda-python``. The output must have one channel per
    class (:meth:`~rdd.contract.ModelMeta.check_output`).
    """

    name = "trt"

    def __init__(self, engine_path: str | os.PathLike, *, meta: ModelMeta | dict | None = None,
                 max_pixels: int | None = None) -> None:
        self.path = _existing_file(engine_path, "engine file")
        self._max_pixels = max_pixels
        self.device = "cuda"
        self.sidecar: dict[str, Any] | None = None
        trt = _import_runtime("tensorrt", "pip install 'rdd-edge[trt]' (on Jetson it comes with "
                              "JetPack: python3-libnvinfer), or use --backend ort",
                              prefix="TensorRT unavailable: ")
        self._cuda = self._cuda_buffers()
        self.meta_source = self._load_meta(meta)
        logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(f"{self.path}: TensorRT could not deserialise the engine (built with "
                             "another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or not outs:
            raise InputError(f"{self.path}: engine has inputs {ins} and outputs {outs}; expected one "
                             "image input and an output")
        meta_ = self.meta_source
        shape = tuple(self.engine.get_tensor_shape(ins[0]))
        n, h, w = _image_input_check([d if d >= 0 else "dyn" for d in shape], meta_.input_layout,
                                     str(self.path))
        out_name = meta_.output_name if meta_.output_name in outs else outs[0]
        in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(ins[0])))
        if in_dtype.name not in ("float32", "float16", "uint8"):
            raise InputError(f"{self.path}: engine input is {in_dtype}; expected float32/float16/uint8")
        meta_ = meta_.with_(input_name=ins[0], output_name=out_name, input_dtype=in_dtype.name)
        meta_.check_output([(o, "", list(self.engine.get_tensor_shape(o))) for o in outs],
                           source=str(self.path), dtypes=False)
        meta_ = _apply_graph_shape(meta_, n if n != "dyn" else "N", h, w)
        if any(d < 0 for d in shape):  # dynamic axes: the profile bounds what the engine accepts
            lo, _opt, hi = self.engine.get_tensor_profile_shape(ins[0], 0)
            meta_ = apply_profile(meta_, tuple(lo), tuple(hi), source=str(self.path),
                                  max_pixels=max_pixels)
        self.meta = meta_
        self._out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(out_name)))
        self._outs = outs
        self._bufs: dict[tuple, dict[str, Any]] = {}

    @staticmethod
    def _cuda_buffers() -> Any:
        from rdd.runtime.cuda import CudaPythonBuffers, TorchCudaBuffers

        try:
            import torch

            if torch.cuda.is_available():
                return TorchCudaBuffers(torch)
        except ImportError:
            pass
        try:
            return CudaPythonBuffers()
        except ImportError:
            raise InputError("TensorRT backend needs CUDA buffers: cuda-python is not installed: "
                             "pip install 'rdd-edge[trt]' (or PyTorch with CUDA)") from None

    def _load_meta(self, meta: ModelMeta | dict | None) -> ModelMeta:
        if isinstance(meta, ModelMeta):
            return meta
        mp = self._max_pixels
        if isinstance(meta, dict):
            return ModelMeta.from_dict(meta, source=str(self.path), max_pixels=mp)
        side = read_engine_sidecar(self.path, max_pixels=mp)
        if side is not None:
            self.sidecar = side[1]
            return side[0]
        found = sidecar_meta(self.path, max_pixels=mp)
        if found is not None:
            return found
        onnx_path = self.path.with_suffix(".onnx")
        if onnx_path.is_file():
            return read_onnx_meta(onnx_path, max_pixels=mp)
        raise InputError(f"{self.path}: no model metadata; expected the engine sidecar "
                         f"{engine_sidecar_path(self.path)} written by rdd.export.build_engine "
                         f"(or keep the source {onnx_path.name} beside it)")

    def _buffers(self, shape: tuple[int, ...]) -> dict[str, Any]:
        bufs = self._bufs.get(shape)
        if bufs is None:
            if not self.context.set_input_shape(self.meta.input_name, shape):
                raise ValueError(f"{self.path}: input shape {shape} is outside the engine's "
                                 "optimisation profile")
            bufs = {self.meta.input_name: self._cuda.empty(shape, np.dtype(self.meta.input_dtype))}
            for name in self._outs:
                oshape = tuple(self.context.get_tensor_shape(name))
                dt = self._out_dtype if name == self.meta.output_name else np.float32
                bufs[name] = self._cuda.empty(oshape, dt)
            self._bufs = {shape: bufs}  # keep one shape's buffers (frames rarely change size)
        for name, buf in bufs.items():
            self.context.set_tensor_address(name, self._cuda.ptr(buf))
        self.context.set_input_shape(self.meta.input_name, shape)
        return bufs

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.sidecar is not None:
            d["precision"] = self.sidecar.get("precision")
        return d

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        bufs = self._buffers(tuple(batch.shape))
        self._cuda.upload(bufs[self.meta.input_name], batch)
        if not self.context.execute_async_v3(self._cuda.stream_handle):
            raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed")
        return self._cuda.labels(bufs[self.meta.output_name], self.meta.output_kind)


# =========================================================================== PyTorch
class TorchBackend(Backend):
    """A training artifact (``NAME.pt`` + ``NAME.json``, see ``rdd.artifacts``) run in PyTorch."""

    name = "torch"

    def __init__(self, artifact_path: str | os.PathLike, *, device: str = "cpu",
                 threads: int | None = None, max_pixels: int | None = None) -> None:
        self.path = _existing_file(artifact_path, "artifact")
        try:
            import torch
        except ImportError:
            raise InputError("--backend torch needs PyTorch, which is not installed here; export the "
                             "model to ONNX and use --backend ort") from None
        if device not in ("cpu", "cuda"):
            raise InputError(f"--device must be 'cpu' or 'cuda' for the torch backend, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: PyTorch sees no CUDA device here")
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
        self.meta = ModelMeta.from_artifact_json(d, source=str(self.path.with_suffix(".json")),
                                                 max_pixels=max_pixels)
        k = getattr(model, "num_classes", self.meta.num_classes)
        if k != self.meta.num_classes:
            raise InputError(f"{self.path.with_suffix('.json')}: the model predicts {k} classes but "
                             f"classes.names lists {self.meta.num_classes}")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            out = self.model(x)
            if isinstance(out, dict):
                out = out["out"]
            return out.argmax(1).to(torch.uint8).cpu().numpy()


# =========================================================================== factory
_SUFFIX_BACKEND = {".onnx": "ort", ".engine": "trt", ".plan": "trt", ".trt": "trt", ".pt": "torch",
                   ".pth": "torch", ".xml": "openvino"}


def create_backend(model: str | os.PathLike, *, backend: str = "auto", device: str = "cpu",
                   threads: int | None = None, max_pixels: int | None = None) -> Backend:
    """Open ``model`` with ``backend`` (``auto`` picks by suffix: .onnx→ort, .engine/.plan→trt,
    .pt→torch, .xml→openvino; ``openvino`` also runs an .onnx, see :mod:`rdd.runtime.openvino`).
    ``max_pixels`` bounds the metadata's input size (:func:`rdd.contract.resolve_max_pixels`)."""
    path = Path(model)
    if backend == "auto":
        backend = _SUFFIX_BACKEND.get(path.suffix.lower(), "")
        if not backend:
            raise InputError(f"cannot tell the backend from the model suffix {path.suffix!r} of "
                             f"{path}; pass --backend ort|trt|torch|openvino")
    if backend == "ort":
        return OrtBackend(path, device=device, intra_op_threads=threads, max_pixels=max_pixels)
    if backend == "trt":
        if device not in ("cuda", "trt"):
            raise InputError(f"the trt backend runs on the GPU; --device {device!r} is not valid")
        return TrtBackend(path, max_pixels=max_pixels)
    if backend == "torch":
        return TorchBackend(path, device=device, threads=threads, max_pixels=max_pixels)
    if backend == "openvino":
        from rdd.runtime.openvino import OpenVinoBackend

        return OpenVinoBackend(path, device=device, threads=threads, max_pixels=max_pixels)
    raise InputError(f"unknown backend {backend!r}; expected auto, ort, trt, torch or openvino")
