"""Models by name: ``rdd-infer --model camvid/rdd_16x-s0`` (standard library only).

The zoo is the manifest ``rdd/zoo.json`` shipped in the package, generated from the
committed ``studies/camvid_converged/models/index.json`` (``python -m rdd.runtime.zoo --write``;
tested to equal what the generator makes): per model its file, bytes, SHA-256, val mIoU,
parameters and input size. A name resolves to, in order:

1. the file in this clone's ``studies/<study>/models/`` (when the package runs from a checkout),
2. the user cache (``$RDD_CACHE``, else ``~/.cache/rdd-edge``) ``/zoo/<study>/<file>``,
3. a download from ``$RDD_ZOO_URL`` (a base URL serving ``<file>``: a release's assets, a
   mirror of ``studies/<study>/models/``, or ``file:///path/``) into that cache.

Every file is checked against the manifest's SHA-256 and size before it is used; a mismatch is a
one-line error and nothing is kept. Nothing else is fetched: a name not in the manifest, or a
path, is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rdd.contract import file_sha256
from rdd.runtime.errors import InputError

__all__ = ["ZOO_ENV", "CACHE_ENV", "entries", "resolve_model", "fetch", "markdown_table", "build_manifest"]

ZOO_ENV = "RDD_ZOO_URL"
CACHE_ENV = "RDD_CACHE"
#: beside the package, not in rdd/runtime: the studies' models stages hash rdd/runtime, and the
#: manifest follows their output (index.json), so inside it every models run would stale itself
MANIFEST = Path(__file__).resolve().parents[1] / "zoo.json"
#: zoo prefix → the study whose students it lists (``camvid/...``: the converged CamVid study)
STUDIES = {"camvid": "camvid_converged"}
_REPO = Path(__file__).resolve().parents[2]


def entries() -> dict[str, dict[str, Any]]:
    """The zoo: name (``camvid/rdd_16x-s0``) → entry (``file``, ``bytes``, ``sha256``, ...)."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())["models"]


def _cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rdd-edge")


def _valid(path: Path, e: dict[str, Any]) -> bool:
    return path.is_file() and path.stat().st_size == e["bytes"] and file_sha256(path) == e["sha256"]


def resolve_model(model: str | os.PathLike) -> str:
    """A path as it is; a zoo name → the path of its verified file (see the module docstring)."""
    text = str(model)
    zoo = entries()
    if text not in zoo or os.path.exists(text):
        return text
    return str(fetch(text, zoo[text]))


def fetch(name: str, e: dict[str, Any] | None = None) -> Path:
    """The verified local file of zoo model ``name`` (clone, cache, or downloaded into the cache)."""
    e = e or entries().get(name)
    if e is None:
        raise InputError(f"{name!r} is not a zoo model (python -m rdd.runtime.zoo lists them)")
    local = _REPO / "studies" / e["study"] / "models" / e["file"]
    if local.is_file():
        if not _valid(local, e):
            raise InputError(
                f"zoo model {name}: {local} does not match the manifest's SHA-256 "
                f"{e['sha256'][:16]}… (changed since the manifest was generated?)"
            )
        return local
    cached = _cache_root() / "zoo" / e["study"] / e["file"]
    if _valid(cached, e):
        return cached
    base = os.environ.get(ZOO_ENV)
    if not base:
        raise InputError(
            f"zoo model {name} is not in this clone or the cache "
            f"({cached.parent}); set {ZOO_ENV} to a base URL serving {e['file']} "
            f"(a release's assets or a mirror of studies/{e['study']}/models/)"
        )
    url = base.rstrip("/") + "/" + urllib.parse.quote(e["file"])
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise InputError(f"{ZOO_ENV} must be an http(s):// or file:// URL, got {base!r}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.part")
    try:
        h, n = hashlib.sha256(), 0
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:  # noqa: S310
            while chunk := r.read(1 << 20):
                n += len(chunk)
                if n > e["bytes"]:
                    raise InputError(
                        f"zoo model {name}: {url} sends more than the manifest's {e['bytes']} bytes"
                    )
                h.update(chunk)
                f.write(chunk)
        if n != e["bytes"] or h.hexdigest() != e["sha256"]:
            raise InputError(
                f"zoo model {name}: {url} gave {n} bytes with SHA-256 "
                f"{h.hexdigest()[:16]}…, the manifest says {e['bytes']} bytes, "
                f"{e['sha256'][:16]}…; nothing kept"
            )
        os.replace(tmp, cached)
    except OSError as err:
        raise InputError(f"zoo model {name}: cannot download {url} ({err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return cached


# ------------------------------------------------------------------------------ the manifest
def build_manifest(repo: Path = _REPO) -> dict[str, Any]:
    """The manifest from the committed studies' ``models/index.json`` (students only)."""
    models: dict[str, dict[str, Any]] = {}
    for prefix, study in STUDIES.items():
        index = json.loads((repo / "studies" / study / "models" / "index.json").read_text())
        for m in index["models"]:
            if m.get("arm") is None:  # the teacher: not an edge model
                continue
            models[f"{prefix}/{m['name']}"] = {
                "study": study,
                "file": m["file"],
                "bytes": m["bytes"],
                "sha256": m["sha256"],
                "model": m["model"],
                "arm": m["arm"],
                "seed": m["seed"],
                "iters": m["iters"],
                "input_size": m["input_size"],
                "miou_val": m["miou_val"],
                "params": _onnx_params(repo / "studies" / study / "models" / m["file"]),
            }
    return {"generated_by": "python -m rdd.runtime.zoo --write", "models": models}


def _onnx_params(path: Path) -> int | None:
    """Parameters of an ONNX graph: the elements of its floating-point initializers."""
    try:
        import onnx
    except ImportError:
        return None
    g = onnx.load(str(path), load_external_data=False).graph
    n = 0
    for t in g.initializer:
        if t.data_type in (1, 10, 11, 16):  # float, float16, double, bfloat16
            k = 1
            for d in t.dims:
                k *= d
            n += k
    return n


def markdown_table(zoo: dict[str, dict[str, Any]] | None = None) -> str:
    """The README's zoo table (generated; tested)."""
    zoo = entries() if zoo is None else zoo
    lines = ["| name | model | iterations | val mIoU % | size MB | params |", "|---|---|---:|---:|---:|---:|"]
    for name, e in zoo.items():
        params = f"{e['params'] / 1e6:.2f} M" if e.get("params") else "–"
        lines.append(
            f"| `{name}` | {e['model']} | {e['iters']} | {100 * e['miou_val']:.2f} | "
            f"{e['bytes'] / 1e6:.2f} | {params} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m rdd.runtime.zoo``: print the zoo table; ``--write`` regenerates the manifest
    from the clone's studies (for developers); ``--fetch NAME``: download and verify one."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:
        text = json.dumps(build_manifest(), indent=1, sort_keys=True) + "\n"
        MANIFEST.write_text(text)
        print(f"wrote {MANIFEST.name} ({len(entries())} models)")
        return 0
    if argv[:1] == ["--fetch"] and len(argv) == 2:
        try:
            print(fetch(argv[1]))
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    print(markdown_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
