"""CUDA device buffers and a stream for :class:`rdd.runtime.TrtBackend` (TensorRT inference).

Two interchangeable providers with one interface (``stream_handle``, ``empty``, ``ptr``,
``upload``, ``labels``): PyTorch's CUDA tensors when PyTorch with CUDA is installed, else NVIDIA's
``cuda-python`` runtime bindings. Both are imported by the caller only when a TensorRT engine is
opened, so this module needs numpy only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rdd.runtime.backends import logits_to_labels

__all__ = ["TorchCudaBuffers", "CudaPythonBuffers"]


class TorchCudaBuffers:
    """Device buffers and a stream from PyTorch (when it is installed with CUDA)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.stream = torch.cuda.Stream()

    @property
    def stream_handle(self) -> int:
        return self.stream.cuda_stream

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        tdt = {np.dtype(np.float32): self.torch.float32, np.dtype(np.float16): self.torch.float16,
               np.dtype(np.uint8): self.torch.uint8, np.dtype(np.int32): self.torch.int32,
               np.dtype(np.int64): self.torch.int64, np.dtype(np.int8): self.torch.int8}[np.dtype(dtype)]
        return self.torch.empty(shape, dtype=tdt, device="cuda")

    def ptr(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def upload(self, buf: Any, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buf.copy_(self.torch.from_numpy(host).pin_memory(), non_blocking=True)

    def labels(self, buf: Any, kind: str) -> np.ndarray:
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
        self._ok(self.rt.cudaMemcpyAsync(buf[0], host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))

    def labels(self, buf: Any, kind: str) -> np.ndarray:
        ptr, shape, dtype = buf
        host = np.empty(shape, dtype)
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        self._ok(self.rt.cudaStreamSynchronize(self.stream))
        return logits_to_labels(host, kind)
