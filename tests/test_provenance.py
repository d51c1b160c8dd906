"""rdd.runtime.provenance: the device block of the runner report, export metrics and rdd-bench."""

from __future__ import annotations

import platform

import numpy as np

from rdd.runtime.provenance import ISA_FLAGS, _parse_cpuinfo, cpu_info, device_info, package_versions

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8 hypervisor

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2
"""
ARM = """processor\t: 0
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes asimdhp asimddp
CPU implementer\t: 0x41
"""


def test_parse_cpuinfo_x86_golden():
    p = _parse_cpuinfo(X86)
    assert p["model"] == "Intel(R) Xeon(R) Processor"
    assert "avx512_vnni" in p["flags"] and "hypervisor" in p["flags"]  # first block only
    info = cpu_info(X86)
    assert info["cpu"] == "Intel(R) Xeon(R) Processor"
    assert info["isa"] == "sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8"


def test_parse_cpuinfo_arm_and_empty():
    assert cpu_info(ARM)["isa"] == "asimd asimddp asimdhp"
    empty = cpu_info("")
    assert empty["isa"] is None and empty["cpu"]  # falls back to platform


def test_device_info_block():
    d = device_info()
    assert {
        "cpu",
        "arch",
        "cores",
        "isa",
        "gpu",
        "os",
        "python",
        "numpy",
        "opencv",
        "onnxruntime",
        "openvino",
        "tensorrt",
        "torch",
    } <= set(d)
    assert d["python"] == platform.python_version() and d["numpy"] == np.__version__
    assert d["cores"] >= 1 and set((d["isa"] or "").split()) <= set(ISA_FLAGS)
    d["cpu"] = "changed"
    assert device_info()["cpu"] != "changed"  # callers get their own copy


def test_package_versions_missing_is_none():
    v = package_versions()
    assert set(v) >= {"numpy", "tensorrt"} and v["numpy"] == np.__version__
    assert all(x is None or isinstance(x, str) for x in v.values())
