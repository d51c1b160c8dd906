"""TensorRT engine build from an exported ONNX graph (FP16, or INT8 from a Q/DQ graph).

``import tensorrt`` is guarded: on a machine without TensorRT (or without a CUDA device)
:func:`build_engine` returns ``{"status": "skipped: TensorRT unavailable", ...}`` and nothing
else happens, so the export stage still succeeds on a CPU-only box.

TensorRT 10 API used (``docs.nvidia.com/deeplearning/tensorrt``):

* ``trt.Builder(logger)`` → ``builder.create_network(0)`` (explicit batch is the only mode in 10.x)
  → ``trt.OnnxParser(network, logger).parse(bytes)``;
* ``builder.create_builder_config()``: ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)``,
  ``set_flag(BuilderFlag.FP16 / INT8)``, ``add_optimization_profile(profile)`` with
  ``profile.set_shape(input, min, opt, max)`` (dynamic batch/spatial axes), for INT8
  ``int8_calibrator = IInt8EntropyCalibrator2`` + ``set_calibration_profile(profile)``;
* timing cache: ``config.create_timing_cache(bytes)`` / ``config.set_timing_cache(cache, False)``
  before, ``cache.serialize()`` after the build;
* ``builder.build_serialized_network(network, config)`` → ``IHostMemory`` (``None`` on failure),
  written atomically, followed by its JSON sidecar ``<engine file name>.json``
  (:func:`rdd.contract.write_engine_sidecar`: the ONNX ``rdd_meta`` + the optimisation profile
  + precision),
  which is how :class:`rdd.runtime.TrtBackend` learns normalisation, classes and sizes.

The INT8 calibration cache is keyed by the ONNX file's content (:func:`int8_calib_cache_path`):
a cache computed for another graph is never reused.

INT8, the supported way (explicit quantisation). TensorRT 10 deprecates implicit INT8 calibration;
given a Q/DQ graph (:func:`onnx_is_qdq`), :func:`build_engine` sets ``BuilderFlag.INT8`` (and FP16
for the layers left in float) with no calibrator, and the scales are the ones the graph carries.
TensorRT takes only symmetric signed INT8 Q/DQ (zero point 0): :data:`TRT_QDQ_OPTIONS` are the
:func:`rdd.export.quantize.quantize_int8` options that make such a graph from the same calibration
frames as the onnxruntime / OpenVINO builds (the export stage writes it as
``trt/model_int8_qdq.onnx``); :func:`check_trt_qdq` refuses an asymmetric uint8 graph with a
one-line error before the build. Implicit entropy calibration (a float graph + ``calib_frames``)
is kept for graphs without Q/DQ.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.contract import ModelMeta, engine_sidecar_path, file_sha256, read_onnx_meta, write_engine_sidecar
from rdd.runtime.measure.frames import load_frames
from rdd.runtime.stream.transforms import preprocess
from rdd.spec import as_hw, atomic_path

__all__ = [
    "tensorrt_available",
    "build_engine",
    "SKIPPED_NO_TRT",
    "shape_profile",
    "int8_calib_cache_path",
    "TRT_QDQ_OPTIONS",
    "onnx_is_qdq",
    "check_trt_qdq",
]

# quantize_int8 options for a Q/DQ graph TensorRT builds explicitly: signed INT8, zero point 0,
# float biases (TensorRT fuses them; it has no int32 bias Q/DQ)
TRT_QDQ_OPTIONS: dict[str, Any] = {
    "activation_type": "qint8",
    "weight_type": "qint8",
    "per_channel": True,
    "reduce_range": False,
    "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
}


def onnx_is_qdq(onnx_path: str | os.PathLike) -> bool:
    """Whether the graph carries QuantizeLinear/DequantizeLinear pairs (explicit quantisation)."""
    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node)


def check_trt_qdq(onnx_path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming the file unless every Q/DQ is signed INT8 with zero point 0."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    inits = {i.name: i for i in g.initializer}
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(n.input) < 3:
            continue
        zp = inits.get(n.input[2])
        if zp is None:
            continue
        z = numpy_helper.to_array(zp)
        if z.dtype != np.int8 or np.any(z != 0):
            raise ValueError(
                f"{onnx_path}: node {n.name!r} quantises to {z.dtype} with zero point "
                f"{z.reshape(-1)[:4].tolist()}; TensorRT takes symmetric int8 Q/DQ "
                "only (quantize_int8 with TRT_QDQ_OPTIONS)"
            )


CALIB_CACHE_PREFIX = "trt_int8_calib"

SKIPPED_NO_TRT = "skipped: TensorRT unavailable"


def _import_trt() -> Any | None:
    try:
        import tensorrt as trt  # noqa: PLC0415
    except Exception:  # ImportError, or a broken install failing to load libnvinfer
        return None
    return trt


def tensorrt_available() -> bool:
    """True when TensorRT runs here (:func:`rdd.runtime.backends.available`, the one answer: it
    also imports TensorRT, so a broken install is unavailable there too)."""
    from rdd.runtime.backends import available

    return available("trt", "cuda") is None


def shape_profile(
    meta: ModelMeta,
    *,
    min_size: Sequence[int] | None = None,
    opt_size: Sequence[int] | None = None,
    max_size: Sequence[int] | None = None,
    batch: Sequence[int] = (1, 1, 1),
) -> dict[str, tuple[int, ...]]:
    """min/opt/max input shapes for the optimisation profile (layout from ``meta``).

    Static axes are pinned to the graph's own values: without ``dynamic_spatial`` every size is
    ``input_size``, without ``dynamic_batch`` every batch is 1.
    """
    opt = as_hw(opt_size or meta.input_size)
    lo = as_hw(min_size or opt)
    hi = as_hw(max_size or opt)
    if not meta.dynamic_spatial:
        lo = opt = hi = as_hw(meta.input_size)
    b = tuple(int(v) for v in batch) if meta.dynamic_batch else (1, 1, 1)
    if not (b[0] <= b[1] <= b[2] and all(lo[i] <= opt[i] <= hi[i] for i in range(2))):
        raise ValueError(f"shape_profile: need min <= opt <= max, got sizes {lo}/{opt}/{hi}, batch {b}")

    def shape(n: int, hw: tuple[int, int]) -> tuple[int, ...]:
        return (n, 3, *hw) if meta.input_layout == "NCHW" else (n, *hw, 3)

    return {"min": shape(b[0], lo), "opt": shape(b[1], opt), "max": shape(b[2], hi)}


def int8_calib_cache_path(
    onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, *, prune: bool = True
) -> Path:
    """``cache_dir/trt_int8_calib_<sha256(onnx)[:16]>.cache`` for the graph ``onnx_path``.

    TensorRT reuses a calibration cache without checking which network it came from, so the
    name carries the ONNX file's content hash: re-exporting another model gives another name.
    With ``prune`` every other ``trt_int8_calib*.cache`` in ``cache_dir`` (caches of earlier
    graphs, or the un-keyed legacy ``trt_int8_calib.cache``) is deleted.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{CALIB_CACHE_PREFIX}_{file_sha256(onnx_path)[:16]}.cache"
    if prune and cache_dir.is_dir():
        for old in cache_dir.glob(f"{CALIB_CACHE_PREFIX}*.cache"):
            if old.name != path.name:
                old.unlink(missing_ok=True)
    return path


class _DeviceBuffer:
    """A CUDA buffer for calibration batches, via torch.cuda or cuda-python (both optional)."""

    def __init__(self) -> None:
        self._torch = None
        self._cudart = None
        self._ptr = None
        self._nbytes = 0
        self._keep = None
        try:
            import torch

            if torch.cuda.is_available():
                self._torch = torch
        except ImportError:
            pass
        if self._torch is None:
            try:
                from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
            except ImportError:
                try:
                    from cuda import cudart  # older cuda-python
                except ImportError:
                    cudart = None
            self._cudart = cudart
        if self._torch is None and self._cudart is None:
            raise RuntimeError("INT8 calibration needs a CUDA buffer: install torch with CUDA or cuda-python")

    def upload(self, array: np.ndarray) -> int:
        """Copy ``array`` to the device; returns the device pointer (valid until next upload)."""
        array = np.ascontiguousarray(array)
        if self._torch is not None:
            self._keep = self._torch.from_numpy(array).cuda()
            return int(self._keep.data_ptr())
        cudart = self._cudart
        if self._ptr is None or array.nbytes > self._nbytes:
            self.free()
            err, self._ptr = cudart.cudaMalloc(array.nbytes)
            _cuda_check(err, "cudaMalloc")
            self._nbytes = array.nbytes
        (err,) = cudart.cudaMemcpy(
            self._ptr, array.ctypes.data, array.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        )
        _cuda_check(err, "cudaMemcpy")
        return int(self._ptr)

    def free(self) -> None:
        if self._cudart is not None and self._ptr is not None:
            self._cudart.cudaFree(self._ptr)
        self._ptr, self._keep = None, None


def _cuda_check(err: Any, what: str) -> None:
    if int(err) != 0:
        raise RuntimeError(f"{what} failed with CUDA error {err}")


def _make_calibrator(
    trt: Any, frames: list, meta: ModelMeta, cache_path: Path | None, batch_size: int
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``frames`` preprocessed by the runtime
    (:func:`rdd.runtime.stream.transforms.preprocess`)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # required by the TensorRT bindings
            self.buffer = _DeviceBuffer()
            self.index = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index + batch_size > len(frames):
                return None
            x = np.concatenate(
                [preprocess(f.image, meta) for f in frames[self.index : self.index + batch_size]]
            )
            self.index += batch_size
            return [self.buffer.upload(x)]

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is not None and cache_path.is_file():
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is not None:
                with atomic_path(cache_path) as tmp:
                    tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    precision: str = "fp16",
    min_size: Sequence[int] | None = None,
    opt_size: Sequence[int] | None = None,
    max_size: Sequence[int] | None = None,
    batch: Sequence[int] = (1, 1, 1),
    calib_frames: Any = None,
    calib_limit: int | None = 64,
    calib_cache: str | os.PathLike | None = None,
    timing_cache: str | os.PathLike | None = None,
    workspace_gb: float = 2.0,
) -> dict[str, Any]:
    """Build a serialized TensorRT engine from ``onnx_path`` and write it atomically.

    Args:
        precision: ``"fp32" | "fp16" | "int8"`` (int8 also enables FP16 for layers that can't be
            quantised). INT8 of a Q/DQ graph (:func:`onnx_is_qdq`, e.g. made with
            :data:`TRT_QDQ_OPTIONS`) is explicit: no calibrator, ``calib_frames`` unused; of a
            float graph it needs ``calib_frames`` (implicit calibration, deprecated in TRT 10).
        min_size, opt_size, max_size: ``(H, W)`` of the optimisation profile (default: the
            graph's ``input_size``); ``batch``: min/opt/max batch.
        calib_frames: training frames for the entropy calibrator (INT8); they are fed at the
            profile's ``opt`` shape (batch and size), as TensorRT calibrates at ``kOPT``.
        calib_cache: calibration cache file (read if present, written after calibration);
            name it with :func:`int8_calib_cache_path` so it is never another graph's.
        timing_cache: tactic timing cache file (loaded if present, saved after the build).

    Returns:
        ``{"status": "ok", "path", "sidecar", "size_bytes", "seconds", "precision", "profile",
        ...}`` (the engine and its sidecar :func:`write_engine_sidecar` are both written), or
        ``{"status": "skipped: <reason>"}`` when TensorRT (or, for INT8, a CUDA buffer library)
        is unavailable. Raises ``RuntimeError`` naming the file when parsing or building fails.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"build_engine: precision must be fp32, fp16 or int8, got {precision!r}")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    base = {"precision": precision, "onnx": str(onnx_path), "path": None}
    trt = _import_trt()
    if trt is None:
        return {**base, "status": SKIPPED_NO_TRT}
    meta = read_onnx_meta(onnx_path)
    profile_shapes = shape_profile(meta, min_size=min_size, opt_size=opt_size, max_size=max_size, batch=batch)
    frames = None
    explicit = precision == "int8" and onnx_is_qdq(onnx_path)
    if explicit:
        check_trt_qdq(onnx_path)
    base["quantization"] = (
        "explicit (Q/DQ graph)"
        if explicit
        else "implicit (entropy calibration)"
        if precision == "int8"
        else None
    )
    if precision == "int8" and not explicit:
        if calib_frames is None and not (calib_cache and Path(calib_cache).is_file()):
            raise ValueError("build_engine: precision 'int8' needs calib_frames or a calib_cache")
        frames = (
            load_frames(
                calib_frames,
                size=profile_shapes["opt"][2:4]
                if meta.input_layout == "NCHW"
                else profile_shapes["opt"][1:3],
                limit=calib_limit,
            )
            if calib_frames is not None
            else []
        )
        try:
            _DeviceBuffer().free()
        except RuntimeError as e:
            return {**base, "status": f"skipped: {e}"}

    # a failed build must not leave an engine/sidecar pair of an earlier graph behind
    for stale in (engine_path, engine_sidecar_path(engine_path)):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)  # fails without a usable CUDA device / driver
    except Exception as e:  # noqa: BLE001
        return {**base, "status": f"skipped: TensorRT builder unavailable ({type(e).__name__}: {e})"}
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(meta.input_name, profile_shapes["min"], profile_shapes["opt"], profile_shapes["max"])
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if precision == "int8" and not explicit:
        config.int8_calibrator = _make_calibrator(
            trt, frames or [], meta, Path(calib_cache) if calib_cache else None, profile_shapes["opt"][0]
        )
        config.set_calibration_profile(profile)

    cache = None
    if timing_cache is not None:
        tc = Path(timing_cache)
        cache = config.create_timing_cache(tc.read_bytes() if tc.is_file() else b"")
        config.set_timing_cache(cache, False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {onnx_path} "
            f"(precision {precision}); see the TensorRT log above"
        )
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    trt_version = getattr(trt, "__version__", None)
    side = write_engine_sidecar(
        engine_path,
        meta=meta,
        profile=profile_shapes,
        precision=precision,
        onnx_path=onnx_path,
        extra={"tensorrt_version": trt_version},
    )
    if cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return {
        **base,
        "status": "ok",
        "path": str(engine_path),
        "sidecar": str(side),
        "size_bytes": engine_path.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
        "profile": {k: list(v) for k, v in profile_shapes.items()},
        "tensorrt_version": trt_version,
    }
