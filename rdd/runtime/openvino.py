"""OpenVINO backend: runs the exported ONNX (or an OpenVINO IR ``.xml``) on an x86/Arm CPU.

OpenVINO reads the exported ``.onnx`` directly; its ONNX frontend keeps the graph's
``metadata_props`` in the model's runtime info (``rt_info["framework"]["rdd_meta"]``), so the
deployment contract (:class:`~rdd.contract.ModelMeta`) comes from the model file itself, as
for :class:`~rdd.runtime.backends.OrtBackend`. An IR written by :func:`save_ir` (e.g. the NNCF
INT8 build of ``rdd.export.quantize``) carries the same key.

Shapes: OpenVINO's CPU plugin runs a static shape markedly faster than a dynamic one, so the
model is compiled for the first batch shape it sees and recompiled when the shape changes (frames
rarely change size; one compiled shape is kept).

``openvino`` is imported inside the backend only (the ``[openvino]`` extra); numpy otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rdd.runtime.backends import (Backend, _apply_graph_shape, _device_choice, _existing_file,
                                  _image_input_check, _static, logits_to_labels)
from rdd.contract import META_KEY, InputError, ModelMeta, sidecar_meta

__all__ = ["OpenVinoBackend", "openvino_available", "save_ir", "OV_DEVICES"]

# --device name → OpenVINO device
OV_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}
_OV_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8"}
_UNAVAILABLE = ("OpenVINO unavailable: the 'openvino' Python package is not installed "
                "(pip install 'rdd-edge[openvino]', or use --backend ort)")


def openvino_available() -> bool:
    """Whether ``import openvino`` works here."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _rt_meta(model: Any) -> str | None:
    """The ``rdd_meta`` JSON string from an ``openvino.Model``'s runtime info, if any."""
    for path in (["framework", META_KEY], [META_KEY]):
        try:
            if model.has_rt_info(path):
                return str(model.get_rt_info(path).astype(str))
        except Exception:  # noqa: BLE001 — an rt_info of another type: treat as absent
            continue
    return None


def save_ir(model: Any, xml_path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``model`` (an ``openvino.Model``) as IR ``xml_path`` (+ ``.bin``) with ``rdd_meta``
    in its runtime info, so :class:`OpenVinoBackend` reads the contract from the file itself.
    Weights are kept as they are (no FP16 compression). Returns the ``.xml`` path."""
    import openvino as ov

    from rdd.spec import atomic_path

    xml_path = Path(xml_path)
    model.set_rt_info(json.dumps(meta), ["framework", META_KEY])
    bin_path = xml_path.with_suffix(".bin")
    with atomic_path(bin_path) as tmp_bin, atomic_path(xml_path) as tmp_xml:
        ov.serialize(model, str(tmp_xml), str(tmp_bin))
        # the xml names its .bin by the temporary name only through the call; it loads the
        # .bin next to it by stem, so nothing in the xml refers to tmp_bin
    return xml_path


class OpenVinoBackend(Backend):
    """An ONNX model (or IR ``.xml``) compiled and run by OpenVINO.

    Args:
        path: ``.onnx`` with ``metadata_props["rdd_meta"]`` or ``.xml`` written by :func:`save_ir`
            (a ``<name>.json`` sidecar works for either).
        device: ``"cpu"`` (default) | ``"gpu"`` | ``"npu"`` | ``"auto"`` (OpenVINO devices).
        threads: ``INFERENCE_NUM_THREADS`` (``None``/0 = OpenVINO's default).
        precision_hint: ``INFERENCE_PRECISION_HINT`` (``"f32"``, ``"bf16"``, ``"f16"``); ``None``
            keeps OpenVINO's default for the device (bf16 on AMX CPUs). The report records what ran.
        max_pixels: largest ``input_size`` H·W accepted from the metadata
            (:func:`rdd.contract.resolve_max_pixels`).
    """

    name = "openvino"

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
                 precision_hint: str | None = None, max_pixels: int | None = None) -> None:
        self.path = _existing_file(path)
        _device_choice(device, OV_DEVICES, "openvino")
        try:
            import openvino as ov
        except ImportError:
            raise InputError(_UNAVAILABLE) from None
        self.device = device
        self._core = ov.Core()
        if OV_DEVICES[device] not in self._core.available_devices and device != "auto":
            raise InputError(f"device {device!r}: OpenVINO sees no {OV_DEVICES[device]} device here "
                             f"(available: {', '.join(self._core.available_devices)})")
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 — OpenVINO raises its own RuntimeError types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(f"{self.path}: OpenVINO cannot read the model ({first})") from None
        raw = _rt_meta(self._model)
        if raw is not None:
            meta = ModelMeta.from_json(raw, source=str(self.path), max_pixels=max_pixels)
        else:
            meta = sidecar_meta(self.path, max_pixels=max_pixels)
            if meta is None:
                raise InputError(f"{self.path}: no '{META_KEY}' metadata (normalisation, classes, "
                                 "input size); export the model with rdd.export.export_onnx or put the "
                                 f"rdd_meta JSON in {self.path.with_suffix('.json')}")
        inputs = self._model.inputs
        if len(inputs) != 1:
            raise InputError(f"{self.path}: model has {len(inputs)} inputs; expected one image input")
        inp = inputs[0]
        pshape = inp.get_partial_shape()
        if pshape.rank.is_dynamic:
            raise InputError(f"{self.path}: model input has a dynamic rank; expected N×C×H×W")
        dims = [d.get_length() if d.is_static else "dyn" for d in pshape]
        n, h, w = _image_input_check(dims, meta.input_layout, str(self.path))
        dtype = _OV_DTYPES.get(inp.get_element_type().get_type_name())
        if dtype is None:
            raise InputError(f"{self.path}: model input is {inp.get_element_type()}; expected an "
                             "image tensor of f32, f16 or u8")
        out_names = [sorted(o.get_names())[0] if o.get_names() else f"output{i}"
                     for i, o in enumerate(self._model.outputs)]
        meta.check_output([(n, "", [d.get_length() if d.is_static else None
                                    for d in o.get_partial_shape()])
                           for n, o in zip(out_names, self._model.outputs)],
                          source=str(self.path), dtypes=False)
        out_name = meta.output_name if meta.output_name in out_names else out_names[0]
        self._out_index = out_names.index(out_name)
        in_name = sorted(inp.get_names())[0] if inp.get_names() else meta.input_name
        meta = meta.with_(input_name=in_name, input_dtype=dtype, output_name=out_name)
        self.meta = _apply_graph_shape(meta, n if n != "dyn" else "N", h, w)
        self._fixed_batch = _static(n)
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision_hint:
            self._config["INFERENCE_PRECISION_HINT"] = precision_hint
        self._compiled: Any = None
        self._shape: tuple[int, ...] | None = None
        self._request: Any = None
        if self.meta.input_size is not None:  # compile now for the usual shape: fail early
            h0, w0 = self.meta.input_size
            shape = (1, 3, h0, w0) if self.meta.input_layout == "NCHW" else (1, h0, w0, 3)
            self._compile(shape)

    def _compile(self, shape: tuple[int, ...]) -> None:
        import openvino as ov

        model = self._model.clone()
        if not model.inputs[0].get_partial_shape().is_static:
            model.reshape({0: ov.PartialShape(list(shape))})
        try:
            self._compiled = self._core.compile_model(model, OV_DEVICES[self.device], self._config)
        except Exception as e:  # noqa: BLE001
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(f"{self.path}: OpenVINO cannot compile the model for "
                             f"{OV_DEVICES[self.device]} at input {list(shape)} ({first})") from None
        self._request = self._compiled.create_infer_request()
        self._shape = tuple(shape)

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """One synchronous inference returning the raw output (for benchmarks)."""
        if tuple(batch.shape) != self._shape:
            self._compile(tuple(batch.shape))
        self._request.infer({0: batch})
        return self._request.get_output_tensor(self._out_index).data

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # labels per call: run_raw's output is the request's reused buffer
        return self._by_fixed_batch(self._check_batch(batch), lambda b: logits_to_labels(
            self.run_raw(b), self.meta.output_kind))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self._compiled is not None:
            try:
                prec = self._compiled.get_property("INFERENCE_PRECISION_HINT")
                d["inference_precision"] = (prec.get_type_name() if hasattr(prec, "get_type_name")
                                            else str(prec))
            except Exception:  # noqa: BLE001 — not every device reports it
                pass
        return d
