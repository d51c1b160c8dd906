"""The deployment contract: what an exported model expects and predicts (torch-free).

One place for the ``rdd_meta`` JSON that export writes and the runtime reads:

* :class:`ModelMeta` — the parsed, validated contract; :meth:`ModelMeta.build` (what export
  writes), :meth:`ModelMeta.from_dict` / :meth:`ModelMeta.to_dict` (the JSON, key order and
  values byte-compatible with every file written since ``rdd-edge/1``),
  :meth:`ModelMeta.check_graph` (the metadata against the graph's inputs/outputs);
* :func:`read_onnx_meta` — ``metadata_props["rdd_meta"]`` of an ONNX file, checked against its
  graph (via ``onnx`` when installed, else ``onnxruntime``);
* the TensorRT engine sidecar ``<engine file name>.json``: :func:`engine_sidecar_path`,
  :func:`write_engine_sidecar`, :func:`read_engine_sidecar`, :func:`apply_profile`; and the
  plain ``<model stem>.json`` sidecar of a foreign ONNX file or an artifact (:func:`sidecar_meta`).

Schema (``docs/DESIGN.md``, "ONNX metadata")::

    {"format": "rdd-edge/1", "model": "lraspp_mobilenetv2",
     "input_name": "image", "input_layout": "NCHW" | "NHWC", "input_dtype": "float32" | "uint8",
     "output_name": "logits" | "labels", "output_kind": "logits" | "labels",
     "normalization": {"mean": [...], "std": [...], "color": "RGB"},
     "classes": {"names": [...], "palette": [[r, g, b], ...], "ignore_index": 255},
     "input_size": [H, W], "dynamic_batch": true, "dynamic_spatial": true,
     "head": {"kind": "lowres", "upsample": "bilinear", "coordinate_transformation": "half_pixel",
              "output_stride": 8}}                 # optional; absent = "full"

plus, in a parsed TensorRT engine's meta only, optional ``min_size`` / ``max_size`` ``[H, W]``.
Every violation is an :class:`InputError` whose one-line message starts with the file and names
the key (``m.onnx: rdd_meta.normalization.std[1] must be a finite number in [0.0001, 10000],
got 1e-30``).
The input size is bounded by ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, raised with the
``RDD_MAX_INPUT_PIXELS`` environment variable or ``rdd-infer --max-input-pixels``), so a tampered
``input_size`` fails at load instead of allocating gigabytes.
"""

from rdd.contract.fields import DEFAULT_MAX_PIXELS, HEADS, MAX_PIXELS_ENV, MEAN_RANGE, STD_RANGE
from rdd.contract.files import (
    apply_profile,
    describe_onnx_io,
    engine_sidecar_path,
    file_sha256,
    meta_from_props,
    ort_session_io,
    read_engine_sidecar,
    read_onnx_meta,
    read_onnx_props,
    sidecar_meta,
    write_engine_sidecar,
)
from rdd.contract.model_meta import (
    ENGINE_SIDECAR_FORMAT,
    META_FORMAT,
    META_KEY,
    PRECISION_KEY,
    InputError,
    IOSpec,
    ModelMeta,
    resolve_max_pixels,
)

__all__ = [
    "META_KEY",
    "PRECISION_KEY",
    "META_FORMAT",
    "ENGINE_SIDECAR_FORMAT",
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "HEADS",
    "MEAN_RANGE",
    "STD_RANGE",
    "InputError",
    "ModelMeta",
    "IOSpec",
    "resolve_max_pixels",
    "describe_onnx_io",
    "ort_session_io",
    "meta_from_props",
    "read_onnx_meta",
    "read_onnx_props",
    "engine_sidecar_path",
    "write_engine_sidecar",
    "read_engine_sidecar",
    "apply_profile",
    "sidecar_meta",
    "file_sha256",
]
