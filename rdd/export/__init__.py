"""Export of the distilled student: ONNX, parity gate, INT8 (onnxruntime) and TensorRT.

Importing this package does **not** import torch: every name is resolved lazily from its
submodule. The deployment contract (``rdd_meta``: ``ModelMeta``, ``read_onnx_meta``, the engine
sidecar) is :mod:`rdd.contract`, below both export and the runtime; the gates run the exported
graphs through :mod:`rdd.runtime` (``open_build`` + ``preprocess``).

* :mod:`rdd.export.onnx`: ``export_onnx``.
* :mod:`rdd.export.parity`: ``compare_parity``, ``check_parity``, ``evaluate_onnx``,
  ``evaluate_torch``, ``miou_gate``, ``agreement``, ``ParityError`` (frames are the runtime's
  :mod:`rdd.runtime.measure.frames`).
* :mod:`rdd.export.openvino`: ``quantize_openvino``, ``save_ir``.
* :mod:`rdd.export.quantize`: ``quantize_int8``, ``FrameCalibrationReader``.
* :mod:`rdd.export.tensorrt`: ``build_engine``, ``tensorrt_available``, ``shape_profile``,
  ``int8_calib_cache_path``.
* :mod:`rdd.export.run`: ``run_export`` (the DVC export stage), ``export_config``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": "onnx",
    "ParityError": "parity",
    "agreement": "parity",
    "compare_parity": "parity",
    "check_parity": "parity",
    "evaluate_onnx": "parity",
    "evaluate_torch": "parity",
    "miou_gate": "parity",
    "DEFAULT_THRESHOLDS": "parity",
    "quantize_openvino": "openvino",
    "save_ir": "openvino",
    "quantize_int8": "quantize",
    "FrameCalibrationReader": "quantize",
    "build_engine": "tensorrt",
    "tensorrt_available": "tensorrt",
    "shape_profile": "tensorrt",
    "int8_calib_cache_path": "tensorrt",
    "run_export": "run",
    "export_config": "run",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
