"""Where a figure was measured: the device/provenance block of every report.

:func:`device_info` is the one description of the machine that the runner report
(``rdd-infer --report``), ``export_metrics.json`` and ``rdd-bench`` carry under the key
``"device"``: CPU model, core count, the ISA flags that decide INT8 speed (AVX2, AVX-512,
AVX-512 VNNI / AVX-VNNI, AMX, Arm dot-product), the GPU name if any, and the versions of the
runtimes. Versions are read from the installed distributions' metadata, so nothing heavy (torch,
TensorRT) is imported. Torch-free; standard library only.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["device_info", "cpu_info", "gpu_name", "package_versions", "ISA_FLAGS"]

# /proc/cpuinfo flags worth naming beside an INT8 figure (x86 and Arm spellings).
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "asimdhp",
    "sve",
    "i8mm",
    "bf16",
)

# report key → candidate distribution names (first installed wins)
_PACKAGES = {
    "numpy": ("numpy",),
    "opencv": (
        "opencv-python",
        "opencv-python-headless",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
    ),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "openvino": ("openvino",),
    "nncf": ("nncf",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_libs"),
    "torch": ("torch",),
}


def _parse_cpuinfo(text: str) -> dict[str, Any]:
    """``/proc/cpuinfo`` text → ``{"model", "flags"}`` (first processor block; x86 or Arm)."""
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key in ("model name", "hardware", "cpu model") and model is None and value:
            model = value
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {"model": model, "flags": flags}


def cpu_info(cpuinfo_text: str | None = None) -> dict[str, Any]:
    """``{"cpu", "arch", "cores", "isa"}``; ``isa`` is the space-separated subset of
    :data:`ISA_FLAGS` the CPU reports (``"avx2 avx512f avx512_vnni"``), ``None`` when unknown."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo_text = ""
    parsed = _parse_cpuinfo(cpuinfo_text)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    isa = [f for f in ISA_FLAGS if f in parsed["flags"]]
    return {
        "cpu": parsed["model"] or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores": cores,
        "isa": " ".join(isa) if parsed["flags"] else None,
    }


def gpu_name() -> str | None:
    """Name(s) of the NVIDIA GPU(s) from ``nvidia-smi`` (Jetson: the device-tree model), or ``None``."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        names = [n.strip() for n in out.splitlines() if n.strip()]
        if names:
            return ", ".join(names)
    tree = Path("/proc/device-tree/model")
    try:
        model = tree.read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return None
    return model if "jetson" in model.lower() or "nvidia" in model.lower() else None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the runtimes (``None`` = not installed), without importing them."""
    out: dict[str, str | None] = {}
    for key, dists in _PACKAGES.items():
        out[key] = None
        for d in dists:
            try:
                out[key] = metadata.version(d)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


@functools.lru_cache(maxsize=1)
def _cached() -> dict[str, Any]:
    return {
        **cpu_info(),
        "gpu": gpu_name(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        **package_versions(),
    }


def device_info() -> dict[str, Any]:
    """The device/provenance block (a fresh dict each call; probed once per process).

    Keys: ``cpu`` (model name), ``arch``, ``cores`` (usable by this process), ``isa``
    (space-separated flags of :data:`ISA_FLAGS`), ``gpu`` (name or ``None``), ``os``, ``python``,
    and the versions ``numpy``, ``opencv``, ``onnx``, ``onnxruntime``, ``openvino``, ``nncf``,
    ``tensorrt``, ``torch`` (``None`` = not installed).
    """
    return dict(_cached())
