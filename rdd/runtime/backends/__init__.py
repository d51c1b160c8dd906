"""Inference backends behind one interface (:class:`Backend`) and one format table.

* :mod:`~rdd.runtime.backends.base` — the :class:`Backend` interface, labels from outputs, the
  checks every backend shares; :mod:`~rdd.runtime.backends.lowres` — the exact argmax of a
  ``lowres`` head's upsampled logits, without upsampling them where it need not;
* :mod:`~rdd.runtime.backends.formats` — the format table; :func:`open_build` and
  :func:`discover_builds`, the only ways the rest of the project opens or finds builds, and
  :func:`available`, the one answer to "does this runtime run here";
* one file per runtime: :mod:`~rdd.runtime.backends.ort` (ONNX Runtime),
  :mod:`~rdd.runtime.backends.openvino`, :mod:`~rdd.runtime.backends.trt` (TensorRT engines and
  their CUDA buffers), :mod:`~rdd.runtime.backends.torch` (the PyTorch reference).

Importing this package loads numpy only; each runtime is imported when a build is opened.
"""

from rdd.runtime.backends.base import Backend, logits_to_labels, output_labels
from rdd.runtime.backends.formats import (
    BACKENDS,
    FORMATS,
    BackendEntry,
    Build,
    Format,
    available,
    backend_names,
    device_names,
    discover_builds,
    format_of,
    open_build,
    register,
    row_kinds,
)

__all__ = [
    "Backend",
    "logits_to_labels",
    "output_labels",
    "BACKENDS",
    "FORMATS",
    "BackendEntry",
    "Build",
    "Format",
    "available",
    "backend_names",
    "device_names",
    "discover_builds",
    "format_of",
    "open_build",
    "register",
    "row_kinds",
]
