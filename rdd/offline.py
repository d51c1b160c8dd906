"""Third-party imports: whether one is installed, and those that must not phone home.

:func:`installed` is the project's one "is package X here" test (nothing is imported).

``import openvino`` sends a usage event to Google Analytics (``openvino/tools/ovc/__init__.py``,
through the ``openvino-telemetry`` package) and writes a client id under ``~/intel``; ``import
nncf`` and each ``nncf.quantize`` send more. Both treat a missing consent file as a yes. The
project sends nothing anywhere: before OpenVINO or NNCF is first imported, :func:`no_telemetry`
marks ``openvino_telemetry`` absent in this process (``sys.modules[name] = None`` makes its import
raise ``ImportError``), and both fall back to their built-in no-op stubs. Nothing is written to
disk or the environment; a process that imported OpenVINO before the project did keeps whatever
it chose. Every OpenVINO / NNCF import in the project goes through :func:`import_openvino` /
:func:`import_nncf`.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["installed", "no_telemetry", "import_openvino", "import_nncf"]

TELEMETRY_MODULE = "openvino_telemetry"


def installed(name: str) -> bool:
    """Whether ``import name`` would find a module; nothing is imported. ``sys.modules[name] =
    None`` (how a test hides a package, and how :func:`no_telemetry` blocks one) counts as absent."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def no_telemetry() -> None:
    """Make ``import openvino_telemetry`` fail in this process, unless something imported it."""
    sys.modules.setdefault(TELEMETRY_MODULE, None)


def import_openvino() -> Any:
    """``import openvino``, its telemetry off (:func:`no_telemetry`); ``ImportError`` if absent."""
    no_telemetry()
    import openvino

    return openvino


def import_nncf() -> Any:
    """``import nncf``, its telemetry off (:func:`no_telemetry`); ``ImportError`` if absent."""
    no_telemetry()
    import nncf

    return nncf
