"""OpenVINO backend: the exported ONNX (or an OpenVINO IR ``.xml``) on a CPU, Intel GPU or NPU.

OpenVINO reads the exported ``.onnx`` directly; its ONNX frontend keeps the graph's
``metadata_props`` in the model's runtime info (``rt_info["framework"]["rdd_meta"]``), so the
deployment contract (:class:`~rdd.contract.ModelMeta`) comes from the model file itself. An IR
written by :func:`rdd.export.openvino.save_ir` (e.g. the NNCF INT8 build) carries the same key.

Precision: OpenVINO's CPU plugin runs bf16 by default on CPUs with ``avx512_bf16`` / AMX; this
backend asks for ``fp32`` unless told otherwise (``precision``), and :attr:`precision` is what
the compiled model reports it runs.

Shapes: the CPU plugin runs a static shape markedly faster than a dynamic one, so the model is
compiled for the first batch shape it sees and recompiled when the shape changes (frames rarely
change size; one compiled shape is kept).

``openvino`` is imported inside the backend only (the ``[openvino]`` extra); numpy otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rdd.contract import META_KEY, PRECISION_KEY, InputError, ModelMeta, sidecar_meta
from rdd.offline import import_openvino
from rdd.runtime.backends.base import (
    Backend,
    apply_graph_shape,
    device_choice,
    existing_file,
    image_input_check,
    import_runtime,
    output_labels,
    static_dim,
)

__all__ = ["OpenVinoBackend", "OV_DEVICES", "PRECISIONS", "read_rt_info", "device_status"]

#: device name → OpenVINO device
OV_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}
#: precision name → ``INFERENCE_PRECISION_HINT`` (floating-point parts; INT8 layers stay INT8)
PRECISIONS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
_HINT_NAMES = {v: k for k, v in PRECISIONS.items()}
_OV_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8"}
INSTALL = "pip install 'rdd-edge[openvino]', or use --backend ort"


def read_rt_info(model: Any, key: str) -> str | None:
    """A string of an ``openvino.Model``'s runtime info (``rt_info["framework"][key]``, where the
    ONNX frontend puts ``metadata_props``, or ``rt_info[key]``), or ``None``."""
    for path in (["framework", key], [key]):
        try:
            if model.has_rt_info(path):
                return str(model.get_rt_info(path).astype(str))
        except Exception:  # noqa: BLE001 — an rt_info of another type: treat as absent
            continue
    return None


def device_status(device: str) -> str | None:
    """``None`` when OpenVINO here runs ``device`` (cpu / gpu / npu / auto), else why not."""
    try:
        ov = import_openvino()
    except ImportError:
        return f"OpenVINO unavailable ({INSTALL})"
    if device not in OV_DEVICES:
        return f"OpenVINO has no device {device!r}"
    if device != "auto" and OV_DEVICES[device] not in ov.Core().available_devices:
        return f"OpenVINO sees no {OV_DEVICES[device]} device here"
    return None


def _read_model(core: Any, path: Any) -> Any:
    """An ``.onnx`` through OpenVINO's ONNX frontend only (``read_model`` would try every
    frontend on a file that is not ONNX and let TensorFlow's print to stderr); an IR as usual."""
    if str(path).lower().endswith(".onnx"):
        from openvino.frontend import FrontEndManager

        fe = FrontEndManager().load_by_framework("onnx")
        return fe.convert(fe.load(str(path)))
    return core.read_model(str(path))


class OpenVinoBackend(Backend):
    """An ONNX model (or IR ``.xml``) compiled and run by OpenVINO.

    Args:
        path: ``.onnx`` with ``metadata_props["rdd_meta"]`` or ``.xml`` written by ``save_ir``
            (a ``<name>.json`` sidecar works for either).
        device: ``"cpu"`` (default) | ``"gpu"`` | ``"npu"`` | ``"auto"`` (OpenVINO devices).
        threads: ``INFERENCE_NUM_THREADS`` (``None``/0 = OpenVINO's default).
        precision: floating-point precision asked for (``fp32`` default, ``fp16``, ``bf16``;
            :data:`PRECISIONS`); INT8 layers of a quantised model stay INT8.
        max_pixels: largest ``input_size`` H·W accepted from the metadata
            (:func:`rdd.contract.resolve_max_pixels`).
    """

    name = "openvino"
    devices = tuple(OV_DEVICES)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        max_pixels: int | None = None,
    ) -> None:
        self.path = existing_file(path)
        device_choice(device, OV_DEVICES, "openvino")
        if precision not in PRECISIONS:
            raise InputError(
                f"precision must be one of {list(PRECISIONS)} for the openvino backend, got {precision!r}"
            )
        ov = import_runtime("openvino", INSTALL, prefix="OpenVINO unavailable: ")
        self.device = device
        self._core = ov.Core()
        if OV_DEVICES[device] not in self._core.available_devices and device != "auto":
            raise InputError(
                f"device {device!r}: OpenVINO sees no {OV_DEVICES[device]} device here "
                f"(available: {', '.join(self._core.available_devices)})"
            )
        try:
            self._model = _read_model(self._core, self.path)
        except Exception as e:  # noqa: BLE001 — OpenVINO raises its own RuntimeError types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(f"{self.path}: OpenVINO cannot read the model ({first})") from None
        raw = read_rt_info(self._model, META_KEY)
        if raw is not None:
            meta = ModelMeta.from_json(raw, source=str(self.path), max_pixels=max_pixels)
        else:
            meta = sidecar_meta(self.path, max_pixels=max_pixels)
            if meta is None:
                raise InputError(
                    f"{self.path}: no '{META_KEY}' metadata (normalisation, classes, "
                    "input size); export the model with rdd.export.export_onnx or put the "
                    f"rdd_meta JSON in {self.path.with_suffix('.json')}"
                )
        self.file_precision = str(read_rt_info(self._model, PRECISION_KEY) or "fp32").lower()
        inputs = self._model.inputs
        if len(inputs) != 1:
            raise InputError(f"{self.path}: model has {len(inputs)} inputs; expected one image input")
        inp = inputs[0]
        pshape = inp.get_partial_shape()
        if pshape.rank.is_dynamic:
            raise InputError(f"{self.path}: model input has a dynamic rank; expected N×C×H×W")
        dims = [d.get_length() if d.is_static else "dyn" for d in pshape]
        n, h, w = image_input_check(dims, meta.input_layout, str(self.path))
        dtype = _OV_DTYPES.get(inp.get_element_type().get_type_name())
        if dtype is None:
            raise InputError(
                f"{self.path}: model input is {inp.get_element_type()}; expected an "
                "image tensor of f32, f16 or u8"
            )
        out_names = [
            sorted(o.get_names())[0] if o.get_names() else f"output{i}"
            for i, o in enumerate(self._model.outputs)
        ]
        meta.check_output(
            [
                (n, "", [d.get_length() if d.is_static else None for d in o.get_partial_shape()])
                for n, o in zip(out_names, self._model.outputs)
            ],
            source=str(self.path),
            dtypes=False,
        )
        out_name = meta.output_name if meta.output_name in out_names else out_names[0]
        self._out_index = out_names.index(out_name)
        in_name = sorted(inp.get_names())[0] if inp.get_names() else meta.input_name
        meta = meta.with_(input_name=in_name, input_dtype=dtype, output_name=out_name)
        self.meta = apply_graph_shape(meta, n if n != "dyn" else "N", h, w)
        self.fixed_batch = static_dim(n)
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        }
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled: Any = None
        self._shape: tuple[int, ...] | None = None
        self._request: Any = None
        self.precision = precision
        if self.meta.input_size is not None:  # compile now for the usual shape: fail early
            h0, w0 = self.meta.input_size
            shape = (1, 3, h0, w0) if self.meta.input_layout == "NCHW" else (1, h0, w0, 3)
            self._compile(shape)

    def _compile(self, shape: tuple[int, ...]) -> None:
        import time

        ov = import_openvino()

        t0 = time.perf_counter()
        model = self._model.clone()
        if not model.inputs[0].get_partial_shape().is_static:
            model.reshape({0: ov.PartialShape(list(shape))})
        try:
            self._compiled = self._core.compile_model(model, OV_DEVICES[self.device], self._config)
        except Exception as e:  # noqa: BLE001
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(
                f"{self.path}: OpenVINO cannot compile the model for "
                f"{OV_DEVICES[self.device]} at input {list(shape)} ({first})"
            ) from None
        self._request = self._compiled.create_infer_request()
        self._shape = tuple(shape)
        self.precision = self._ran_precision()
        self.compile_ms = 1e3 * (time.perf_counter() - t0)

    def _ran_precision(self) -> str:
        """What the compiled model runs: ``int8`` for a quantised file, else its float precision
        as the device reports it (``INFERENCE_PRECISION_HINT`` read back)."""
        if self.file_precision == "int8":
            return "int8"
        try:
            prec = self._compiled.get_property("INFERENCE_PRECISION_HINT")
            name = prec.get_type_name() if hasattr(prec, "get_type_name") else str(prec)
        except Exception:  # noqa: BLE001 — not every device reports it
            return self.precision
        return _HINT_NAMES.get(str(name).lower(), str(name).lower())

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One synchronous inference → the request's output buffer (reused by the next call)."""
        if tuple(batch.shape) != self._shape:
            self._compile(tuple(batch.shape))
        self._request.infer({0: batch})
        return self._request.get_output_tensor(self._out_index).data

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The raw output of a model input batch (a copy: the request reuses its buffer)."""
        return np.array(self._run(batch))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # labels straight from the request's buffer, without copying the logits
        return self.by_fixed_batch(
            self.check_batch(batch), lambda b: output_labels(self._run(b), self.meta, self.input_hw(b))
        )

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self._compiled is not None:
            try:
                prec = self._compiled.get_property("INFERENCE_PRECISION_HINT")
                d["inference_precision"] = (
                    prec.get_type_name() if hasattr(prec, "get_type_name") else str(prec)
                )
            except Exception:  # noqa: BLE001 — not every device reports it
                pass
        return d
