"""torchvision-format ImageNet weights for the backbones: :data:`TORCHVISION_URLS` and
:func:`load_backbone_weights` (a local path or a URL, an optional ``#sha256=`` check, read with
``torch.load(weights_only=True)``, keys matched strictly).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from rdd.serialization import fetch_url, is_url, load_torch_file, sha256_file

__all__ = ["TORCHVISION_URLS", "IGNORED_PREFIXES", "split_sha256", "load_backbone_weights"]

#: torchvision's ImageNet checkpoints (for convenience; pass any URL or local path instead).
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "mobilenetv2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}

#: Key prefixes of torchvision classification checkpoints that a backbone does not build.
IGNORED_PREFIXES = ("fc.", "classifier.", "features.18.")


def split_sha256(source: str | os.PathLike) -> tuple[str, str | None]:
    """``"https://host/w.pth#sha256=<64 hex>"`` → ``("https://host/w.pth", "<64 hex>")``.

    The ``#sha256=`` fragment (as in pip requirement URLs) is how ``model.kwargs.backbone_weights``
    asks for a digest check; a plain path or URL gives ``(source, None)``.
    """
    src = str(source)
    if is_url(src) and "#" in src:
        base, frag = src.split("#", 1)
        if frag.startswith("sha256="):
            return base, frag[len("sha256=") :]
        raise ValueError(
            f"backbone weights {src}: unknown URL fragment #{frag} (expected #sha256=<64 hex digits>)"
        )
    return src, None


def _read_state_dict(source: str | os.PathLike, sha256: str | None = None) -> Mapping[str, Tensor]:
    src, frag_sha = split_sha256(source)
    if sha256 is not None and frag_sha is not None and sha256.lower() != frag_sha.lower():
        raise ValueError(f"backbone weights {source}: the URL's #sha256 differs from sha256={sha256}")
    sha256 = sha256 or frag_sha
    if is_url(src):
        # downloaded into the torch hub cache, then read exactly like a local file
        path = fetch_url(src, sha256=sha256, what="backbone weights")
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        got = sha256_file(path) if sha256 is not None else None
        if got is not None and got != sha256.lower():
            raise ValueError(
                f"backbone weights {path}: sha256 mismatch: expected {sha256}, the file has {got}"
            )
    # weights_only=True: a crafted pickle is refused before anything in it runs
    obj = load_torch_file(
        path, what=f"backbone weights {src}, cached at" if is_url(src) else "backbone weights"
    )
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise ValueError(
            f"backbone weights {src}: expected a state dict (str → Tensor), got {type(obj).__name__}"
        )
    return obj


def load_backbone_weights(
    backbone: nn.Module, source: str | os.PathLike, *, sha256: str | None = None, max_report: int = 5
) -> None:
    """Load a torchvision-format state dict into ``backbone``, strictly.

    ``source`` is a local path or an ``http(s)://`` / ``file://`` URL, downloaded once into
    ``$TORCH_HOME/hub/checkpoints`` (:func:`rdd.serialization.fetch_url`); either way the file is
    read with ``torch.load(weights_only=True)`` (:func:`rdd.serialization.load_torch_file`), so a
    crafted pickle is refused (``TorchFileError``) before anything in it runs. ``sha256`` (or a
    ``#sha256=<hex>`` URL fragment) must then match the file's digest, else ``ValueError``.

    ``fc.*``, ``classifier.*`` and ``features.18.*`` are ignored; a leading ``module.`` (DDP) is
    stripped; missing ``num_batches_tracked`` buffers (old checkpoints) are accepted. Anything else
    — missing or unexpected keys, wrong shapes — raises ``ValueError`` naming the file and the
    first mismatching keys.
    """
    width = getattr(backbone, "width_mult", 1.0)
    if width != 1.0:
        raise ValueError(
            f"backbone weights {source}: ImageNet weights exist only for width_mult=1.0, "
            f"this backbone has width_mult={width}"
        )
    state = _read_state_dict(source, sha256)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    own = backbone.state_dict()
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros_like(own[k])
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", wrong),
        ):
            if keys:
                more = f" (+{len(keys) - max_report} more)" if len(keys) > max_report else ""
                parts.append(f"{len(keys)} {label}: {keys[:max_report]}{more}")
        raise ValueError(
            f"backbone weights {source} do not match {type(backbone).__name__}: " + "; ".join(parts)
        )
    backbone.load_state_dict(state, strict=True)
