"""Markdown cells of the study reports: fractions shown as percentages and points."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["pct", "signed", "pm", "paired"]


def pct(v: Any, nd: int = 2) -> str:
    """A fraction as a percentage with ``nd`` decimals (``–`` for unknown)."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{nd}f}"


def signed(v: Any) -> str:
    """A fraction as signed percentage points (``–`` for unknown)."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:+.2f}"


def pm(mean: Any, std: Any) -> str:
    """``mean ± std`` in points; the std is left out when unknown (one run)."""
    sd = pct(std)
    return pct(mean) + ("" if sd == "–" else f" ± {sd}")


def paired(v: Mapping[str, Any]) -> str:
    """A paired gain as ``+d ± s`` points (the std left out when unknown)."""
    return signed(v["paired_mean"]) + ("" if pct(v["paired_std"]) == "–" else f" ± {pct(v['paired_std'])}")
