"""TensorRT backend: a serialised TensorRT 10 engine run with ``execute_async_v3``, and its CUDA
buffers (from PyTorch when installed with CUDA, else NVIDIA's ``cuda-python``).

``tensorrt`` and the CUDA bindings are imported when an engine is opened (the ``[trt]`` extra, or
JetPack on a Jetson), so this module loads with numpy only. It cannot run on a machine without
an NVIDIA GPU; its tests there are limited to what needs no GPU (the "skipped: TensorRT
unavailable" path).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from rdd.contract import (
    InputError,
    ModelMeta,
    apply_profile,
    engine_sidecar_path,
    read_engine_sidecar,
    read_onnx_meta,
    sidecar_meta,
)
from rdd.offline import installed
from rdd.runtime.backends.base import (
    Backend,
    apply_graph_shape,
    existing_file,
    image_input_check,
    import_runtime,
    logits_to_labels,
    output_labels,
)

__all__ = ["TrtBackend", "TorchCudaBuffers", "CudaPythonBuffers", "device_status", "INSTALL"]

INSTALL = (
    "pip install 'rdd-edge[trt]' (on Jetson it comes with JetPack: python3-libnvinfer), or use --backend ort"
)


def device_status(device: str) -> str | None:
    """``None`` when TensorRT can run here on ``device`` (``cuda``), else why not."""
    if device not in ("cuda", "trt"):
        return f"TensorRT runs on the GPU (device cuda), not {device!r}"
    if not installed("tensorrt"):
        return "TensorRT unavailable"
    try:  # installed but broken (libnvinfer missing or of another CUDA): not available either
        importlib.import_module("tensorrt")
    except Exception as e:  # noqa: BLE001 - any failure to load it means it cannot run
        return (
            f"TensorRT unavailable (cannot be imported: {' '.join(str(e).split())[:120] or type(e).__name__})"
        )
    return None


class TorchCudaBuffers:
    """Device buffers and a stream from PyTorch (when it is installed with CUDA)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.stream = torch.cuda.Stream()

    @property
    def stream_handle(self) -> int:
        return self.stream.cuda_stream

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        tdt = {
            np.dtype(np.float32): self.torch.float32,
            np.dtype(np.float16): self.torch.float16,
            np.dtype(np.uint8): self.torch.uint8,
            np.dtype(np.int32): self.torch.int32,
            np.dtype(np.int64): self.torch.int64,
            np.dtype(np.int8): self.torch.int8,
        }[np.dtype(dtype)]
        return self.torch.empty(shape, dtype=tdt, device="cuda")

    def ptr(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def upload(self, buf: Any, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buf.copy_(self.torch.from_numpy(host).pin_memory(), non_blocking=True)

    def download(self, buf: Any) -> np.ndarray:
        self.stream.synchronize()
        return buf.cpu().numpy()

    def labels(self, buf: Any, kind: str) -> np.ndarray:
        """Full-size logits → labels with the argmax on the GPU (1/K of the bytes come back)."""
        with self.torch.cuda.stream(self.stream):
            out = buf.argmax(1) if kind == "logits" else buf
            out = out.to(self.torch.uint8)
        self.stream.synchronize()
        return out.cpu().numpy()


class CudaPythonBuffers:
    """Device buffers and a stream from NVIDIA's ``cuda-python`` runtime bindings."""

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python
        self.rt = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())

    def _ok(self, res: Any) -> Any:
        err, *rest = res if isinstance(res, tuple) else (res,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return (self._ok(self.rt.cudaMalloc(max(nbytes, 1))), tuple(shape), np.dtype(dtype))

    def ptr(self, buf: Any) -> int:
        return int(buf[0])

    def upload(self, buf: Any, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        self._ok(
            self.rt.cudaMemcpyAsync(
                buf[0],
                host.ctypes.data,
                host.nbytes,
                self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                self.stream,
            )
        )

    def download(self, buf: Any) -> np.ndarray:
        ptr, shape, dtype = buf
        host = np.empty(shape, dtype)
        self._ok(
            self.rt.cudaMemcpyAsync(
                host.ctypes.data, ptr, host.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream
            )
        )
        self._ok(self.rt.cudaStreamSynchronize(self.stream))
        return host

    def labels(self, buf: Any, kind: str) -> np.ndarray:
        return logits_to_labels(self.download(buf), kind)


def cuda_buffers() -> Any:
    """PyTorch's CUDA buffers when PyTorch sees a GPU, else cuda-python's (one-line error without)."""
    try:
        import torch

        if torch.cuda.is_available():
            return TorchCudaBuffers(torch)
    except ImportError:
        pass
    try:
        return CudaPythonBuffers()
    except ImportError:
        raise InputError(
            "TensorRT backend needs CUDA buffers: cuda-python is not installed: "
            "pip install 'rdd-edge[trt]' (or PyTorch with CUDA)"
        ) from None


class TrtBackend(Backend):
    """A serialised TensorRT (10.x) engine run with ``execute_async_v3``.

    An engine file has no free-form metadata, so the rdd_meta JSON is read from ``meta`` (a
    :class:`ModelMeta` or dict), else the sidecar ``<engine file name>.json`` written by
    :func:`rdd.export.tensorrt.build_engine` (:func:`~rdd.contract.read_engine_sidecar`),
    else a bare ``<engine stem>.json``, else the ONNX model ``<engine stem>.onnx``.

    The accepted input sizes come from the engine's optimisation profile 0
    (``engine.get_tensor_profile_shape``), which overrides what rdd_meta says: ``min == max``
    makes the model fixed-size, otherwise frames are resized into ``[min, max]``
    (:func:`~rdd.contract.apply_profile`). The output must have one channel per class
    (:meth:`~rdd.contract.ModelMeta.check_output`). A ``full`` head's argmax runs on the GPU; a
    ``lowres`` head's small logits come back and are upsampled exactly on the CPU
    (:func:`~rdd.runtime.backends.base.output_labels`).
    """

    name = "trt"
    devices = ("cuda",)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cuda",
        meta: ModelMeta | dict | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.path = existing_file(path, "engine file")
        if device not in ("cuda", "trt"):
            raise InputError(f"the trt backend runs on the GPU; device {device!r} is not valid")
        self._max_pixels = max_pixels
        self.device = "cuda"
        self.sidecar: dict[str, Any] | None = None
        trt = import_runtime("tensorrt", INSTALL, prefix="TensorRT unavailable: ")
        self._cuda = cuda_buffers()
        self.meta_source = self._load_meta(meta)
        logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(
                f"{self.path}: TensorRT could not deserialise the engine (built with "
                "another TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or not outs:
            raise InputError(
                f"{self.path}: engine has inputs {ins} and outputs {outs}; expected one "
                "image input and an output"
            )
        meta_ = self.meta_source
        shape = tuple(self.engine.get_tensor_shape(ins[0]))
        n, h, w = image_input_check(
            [d if d >= 0 else "dyn" for d in shape], meta_.input_layout, str(self.path)
        )
        out_name = meta_.output_name if meta_.output_name in outs else outs[0]
        in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(ins[0])))
        if in_dtype.name not in ("float32", "float16", "uint8"):
            raise InputError(f"{self.path}: engine input is {in_dtype}; expected float32/float16/uint8")
        meta_ = meta_.with_(input_name=ins[0], output_name=out_name, input_dtype=in_dtype.name)
        meta_.check_output(
            [(o, "", list(self.engine.get_tensor_shape(o))) for o in outs],
            source=str(self.path),
            dtypes=False,
        )
        meta_ = apply_graph_shape(meta_, n if n != "dyn" else "N", h, w)
        if any(d < 0 for d in shape):  # dynamic axes: the profile bounds what the engine accepts
            lo, _opt, hi = self.engine.get_tensor_profile_shape(ins[0], 0)
            meta_ = apply_profile(meta_, tuple(lo), tuple(hi), source=str(self.path), max_pixels=max_pixels)
        self.meta = meta_
        self.precision = str((self.sidecar or {}).get("precision", "unknown")).lower()
        self._out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(out_name)))
        self._outs = outs
        self._bufs: dict[tuple, dict[str, Any]] = {}

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
        raise InputError(
            f"{self.path}: no model metadata; expected the engine sidecar "
            f"{engine_sidecar_path(self.path)} written by rdd.export.build_engine "
            f"(or keep the source {onnx_path.name} beside it)"
        )

    def _buffers(self, shape: tuple[int, ...]) -> dict[str, Any]:
        bufs = self._bufs.get(shape)
        if bufs is None:
            if not self.context.set_input_shape(self.meta.input_name, shape):
                raise ValueError(
                    f"{self.path}: input shape {shape} is outside the engine's optimisation profile"
                )
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

    def _execute(self, batch: np.ndarray) -> Any:
        bufs = self._buffers(tuple(batch.shape))
        self._cuda.upload(bufs[self.meta.input_name], batch)
        if not self.context.execute_async_v3(self._cuda.stream_handle):
            raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed")
        return bufs[self.meta.output_name]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self._cuda.download(self._execute(batch))

    def forward_or_labels(self, batch: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.meta.head == "lowres":  # the small logits come back, labels on the CPU
            return self._cuda.download(self._execute(self.check_batch(batch))), None
        return None, self.infer(batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check_batch(batch)
        out = self._execute(batch)
        if self.meta.head == "lowres":
            return output_labels(self._cuda.download(out), self.meta, self.input_hw(batch))
        return self._cuda.labels(out, self.meta.output_kind)
