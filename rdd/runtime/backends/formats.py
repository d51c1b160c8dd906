"""The one format table: which files are builds, what opens them, where they run, what they cost.

Everything the project knows about model formats and inference runtimes is in two tables here,
and every other part (the runner, ``rdd-bench``, export's gates, ``--compare``) goes through
:func:`open_build` and :func:`discover_builds`:

* :data:`BACKENDS` — a backend: the runtime it needs (and the extra that installs it), the
  module holding its class and its ``device_status(device)``, its devices, and the bench row
  each device yields (``kind``, label);
* :data:`FORMATS` — a file format: its suffixes, the backends that open it (``auto`` picks the
  first one that runs here), how its precision is read from the file, the files that belong to
  a build (an IR's ``.bin``, an engine's sidecar), and the bench rows every report lists for it
  (measured, or skipped with the reason).

Adding a runtime (TFLite, NCNN, an NPU SDK) is one :class:`BackendEntry`, one :class:`Format`
(or a backend added to an existing format) and one backend file; :func:`register` adds them at
run time (the tests register a fake one). numpy only; each runtime is imported when a build is
opened or its availability is asked.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from rdd.contract import InputError, engine_sidecar_path, file_sha256, read_engine_sidecar, read_onnx_props
from rdd.runtime.backends.base import Backend, onnx_precision

__all__ = [
    "BackendEntry",
    "Format",
    "Build",
    "BACKENDS",
    "FORMATS",
    "register",
    "format_of",
    "available",
    "open_build",
    "discover_builds",
    "backend_names",
    "device_names",
    "row_kinds",
]


@dataclass(frozen=True)
class BackendEntry:
    """One inference backend (see the module docstring).

    ``rows`` maps each device to its bench row ``(kind, label)``; ``options`` are the keyword
    options of :func:`open_build` the backend's class takes (others are refused unless unset)."""

    name: str
    runtime: str
    extra: str
    module: str
    cls: str
    rows: Mapping[str, tuple[str, str]]
    options: tuple[str, ...] = ("threads",)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def status(self, device: str) -> str | None:
        """``None`` when this backend runs on ``device`` here, else the reason it does not."""
        if device not in self.rows:
            return f"the {self.name} backend has no device {device!r} (it runs on {', '.join(self.rows)})"
        return importlib.import_module(self.module).device_status(device)

    def backend_class(self) -> type[Backend]:
        return getattr(importlib.import_module(self.module), self.cls)


@dataclass(frozen=True)
class Format:
    """One model file format (see the module docstring)."""

    name: str
    suffixes: tuple[str, ...]
    backends: tuple[str, ...]
    precision: Callable[[Path], str]
    companions: Callable[[Path], list[Path]] = lambda p: []
    expected: tuple[tuple[str, str, str], ...] = ()
    what: str = "model"


@dataclass(frozen=True)
class Build:
    """One model file of a known format, with its precision (read from the file)."""

    path: Path
    format: str
    precision: str
    error: str | None = None  # why the file could not be read (discover_builds(strict=False))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def files(self) -> list[Path]:
        """The model file and the files that belong to it (an IR's ``.bin``, sidecars)."""
        return [self.path, *[p for p in FORMATS[self.format].companions(self.path) if p.is_file()]]

    @property
    def size_bytes(self) -> int:
        comp = FORMATS[self.format].companions(self.path)
        return self.path.stat().st_size + sum(
            p.stat().st_size for p in comp if p.suffix == ".bin" and p.is_file()
        )

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the model file (what a report names a build by, with its file name)."""
        return file_sha256(self.path)


# ------------------------------------------------------------------------------ precision readers
def _onnx_precision(path: Path) -> str:
    """``metadata_props["rdd_precision"]`` of an ONNX (``fp32`` when absent), read through
    whichever of onnx / onnxruntime / OpenVINO is installed."""
    return onnx_precision(read_onnx_props(path))


_RT_PRECISION = re.compile(r'<rdd_precision\s+value="([A-Za-z0-9_]+)"')


def _ir_precision(path: Path) -> str:
    """An OpenVINO IR's ``rdd_precision`` runtime info (written by ``rdd.export``), else ``int8``
    when the graph holds FakeQuantize ops (an NNCF build from elsewhere), else ``fp32``."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise InputError(f"{path}: cannot read the OpenVINO IR ({e.strerror})") from None
    m = _RT_PRECISION.search(text)
    if m:
        return m.group(1).lower()
    return "int8" if "FakeQuantize" in text else "fp32"


def _engine_precision(path: Path) -> str:
    side = read_engine_sidecar(path)
    return str(side[1].get("precision", "unknown")).lower() if side else "unknown"


# ------------------------------------------------------------------------------ the tables
BACKENDS: dict[str, BackendEntry] = {}
FORMATS: dict[str, Format] = {}


def register(
    *,
    backend: BackendEntry | None = None,
    format: Format | None = None,
    format_backend: tuple[str, str] | None = None,
) -> None:
    """Add a backend, a format, or a backend to an existing format (``(format, backend)``,
    appended to its ``auto`` order)."""
    if backend is not None:
        BACKENDS[backend.name] = backend
    if format is not None:
        FORMATS[format.name] = format
    if format_backend is not None:
        fmt, be = format_backend
        f = FORMATS[fmt]
        if be not in f.backends:
            FORMATS[fmt] = Format(**{**f.__dict__, "backends": (*f.backends, be)})


register(
    backend=BackendEntry(
        "ort",
        runtime="onnxruntime",
        extra="cpu",
        module="rdd.runtime.backends.ort",
        cls="OrtBackend",
        rows={
            "cpu": ("ort_cpu", "ORT CPU"),
            "cuda": ("ort_cuda", "ORT CUDA"),
            "trt": ("ort_trt", "ORT TensorRT EP"),
        },
    )
)
register(
    backend=BackendEntry(
        "openvino",
        runtime="openvino",
        extra="openvino",
        module="rdd.runtime.backends.openvino",
        cls="OpenVinoBackend",
        options=("threads", "precision"),
        rows={
            "cpu": ("openvino_cpu", "OpenVINO CPU"),
            "gpu": ("openvino_gpu", "OpenVINO GPU"),
            "npu": ("openvino_npu", "OpenVINO NPU"),
            "auto": ("openvino_auto", "OpenVINO AUTO"),
        },
    )
)
register(
    backend=BackendEntry(
        "trt",
        runtime="tensorrt",
        extra="trt",
        module="rdd.runtime.backends.trt",
        cls="TrtBackend",
        rows={"cuda": ("tensorrt", "TensorRT")},
        options=(),
    )
)
register(
    backend=BackendEntry(
        "torch",
        runtime="torch",
        extra="train",
        module="rdd.runtime.backends.torch",
        cls="TorchBackend",
        rows={"cpu": ("torch", "torch eager"), "cuda": ("torch_cuda", "torch eager CUDA")},
    )
)
register(
    format=Format(
        "onnx",
        (".onnx",),
        ("ort", "openvino"),
        _onnx_precision,
        what="ONNX",
        companions=lambda p: [p.with_suffix(".json")],
        expected=(
            ("ort", "cpu", "fp32"),
            ("ort", "cpu", "int8"),
            ("ort", "cuda", "fp32"),
            ("ort", "trt", "fp32"),
            ("openvino", "cpu", "fp32"),
            ("openvino", "cpu", "int8"),
        ),
    )
)
register(
    format=Format(
        "ir",
        (".xml",),
        ("openvino",),
        _ir_precision,
        what="OpenVINO IR",
        companions=lambda p: [p.with_suffix(".bin"), p.with_suffix(".json")],
    )
)
register(
    format=Format(
        "engine",
        (".engine", ".plan", ".trt"),
        ("trt",),
        _engine_precision,
        what="TensorRT engine",
        companions=lambda p: [engine_sidecar_path(p), p.with_suffix(".json"), p.with_suffix(".onnx")],
        expected=(("trt", "cuda", "fp16"), ("trt", "cuda", "int8")),
    )
)
register(
    format=Format(
        "artifact",
        (".pt", ".pth"),
        ("torch",),
        lambda p: "fp32",
        what=".pt artifact",
        companions=lambda p: [p.with_suffix(".json")],
        expected=(("torch", "cpu", "fp32"),),
    )
)


# ------------------------------------------------------------------------------ lookups
def backend_names() -> list[str]:
    """``--backend`` values: ``auto`` and every registered backend."""
    return ["auto", *BACKENDS]


def device_names() -> list[str]:
    """Every device some backend runs on (``--device`` values), in table order."""
    return list(dict.fromkeys(d for b in BACKENDS.values() for d in b.devices))


def row_kinds() -> dict[str, tuple[str, str, str]]:
    """Bench row kind → ``(backend, device, label)``."""
    return {kind: (b.name, dev, label) for b in BACKENDS.values() for dev, (kind, label) in b.rows.items()}


def format_of(path: str | os.PathLike) -> Format | None:
    """The :class:`Format` of a file by its suffix (``None``: not a model file)."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FORMATS.values() if suffix in f.suffixes), None)


def available(backend: str, device: str = "cpu") -> str | None:
    """The one answer to "does ``backend`` run on ``device`` here": ``None``, or the reason
    (``"onnxruntime unavailable (pip install 'rdd-edge[cpu]' ...)"``)."""
    entry = BACKENDS.get(backend)
    if entry is None:
        return f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})"
    return entry.status(device)


# ------------------------------------------------------------------------------ opening
def open_build(
    model: str | os.PathLike | Build,
    *,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
    max_pixels: int | None = None,
) -> Backend:
    """Open a build (a model file) with ``backend`` on ``device``: the one factory.

    ``backend="auto"`` takes the first backend of the file's format (:data:`FORMATS`) that runs
    here on ``device`` (an ``.onnx`` on a device with only OpenVINO opens with OpenVINO). Options
    a backend does not take (``precision`` for onnxruntime, ``threads`` for TensorRT) must be left
    unset. ``max_pixels`` bounds the metadata's input size
    (:func:`rdd.contract.resolve_max_pixels`). Errors are one-line :class:`InputError`.
    """
    path = Path(model.path if isinstance(model, Build) else model)
    fmt = format_of(path)
    if backend == "auto":
        if fmt is None:
            raise InputError(
                f"cannot tell the backend from the model suffix {path.suffix!r} of "
                f"{path} (known: {', '.join(s for f in FORMATS.values() for s in f.suffixes)}"
                f"); name a backend ({', '.join(BACKENDS)})"
            )
        # the first backend that runs here; when none does, the first one's own error (it
        # names what to install) is the one to show
        backend = next((b for b in fmt.backends if available(b, device) is None), fmt.backends[0])
    entry = BACKENDS.get(backend)
    if entry is None:
        raise InputError(f"unknown backend {backend!r}; expected one of {backend_names()}")
    if fmt is not None and backend not in fmt.backends:
        opens = [s for f in FORMATS.values() if backend in f.backends for s in f.suffixes]
        raise InputError(
            f"the {backend} backend does not open {fmt.what} files ({path.name}); it opens {', '.join(opens)}"
        )
    kw: dict[str, Any] = {"device": device, "max_pixels": max_pixels}
    for opt, value in (("threads", threads), ("precision", precision)):
        if opt in entry.options:
            if value is not None:
                kw[opt] = value
        elif value is not None and not (opt == "precision" and value == "fp32"):
            raise InputError(f"{opt} {value!r}: the {backend} backend does not take this option")
    return entry.backend_class()(path, **kw)


def discover_builds(paths: Sequence[str | os.PathLike], *, strict: bool = True) -> list[Build]:
    """Builds given directly or found in folders: a folder's model files and those of its
    immediate subfolders (an export folder: ``model.onnx``, ``model_int8.onnx``,
    ``openvino/*.xml``, ``trt/*.engine``, ``variants/*.onnx``); each build once, in order.
    A file whose precision cannot be read is an error, or with ``strict=False`` a build with
    ``error`` set (the benchmark lists it as failed and goes on)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in [*p.glob("*"), *p.glob("*/*")] if f.is_file() and format_of(f) is not None
            )
            if not found:
                raise InputError(
                    f"{p}: no model file in this folder or its subfolders "
                    f"({', '.join(s for f in FORMATS.values() for s in f.suffixes)})"
                )
            files.extend(found)
        elif p.is_file():
            if format_of(p) is None:
                raise InputError(
                    f"{p}: not a model file; expected one of "
                    f"{', '.join(s for f in FORMATS.values() for s in f.suffixes)}"
                )
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    builds = []
    for f in dict.fromkeys(files):
        fmt = format_of(f)
        try:
            builds.append(Build(f, fmt.name, fmt.precision(f)))
        except (InputError, OSError) as e:
            if strict:
                raise
            builds.append(Build(f, fmt.name, "unknown", error=" ".join(str(e).split())))
    return builds
