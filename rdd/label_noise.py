"""Synthetic label noise of a known amount, for studying RDD under noisy annotations.

RDD's target-selection stage (TSE; Liang et al., arXiv 2407.03719, Sec. 3.2) trains the student
on the XOR of the teacher's and the student's hard pixels and argues that pixels hard for *both*
networks are likely label noise. To test that claim we corrupt a known share of the training
labels with two kinds of noise a human annotator produces:

* **boundary noise** (kind 1) — sloppy polygons: inside the *boundary band* (valid pixels within
  ``radius`` px of another valid class) a pixel takes the label of a real neighbour of another
  class, so boundaries shift / erode by up to ``radius`` px;
* **random noise** (kind 2) — wrong-class blobs: ``patch``×``patch`` squares set to a class that
  none of the covered pixels has (a mislabelled region, not per-pixel salt).

Ignore pixels (``ignore_index``) are never changed and never used as a new label, and every
changed pixel differs from its original label. This module needs numpy, OpenCV and PyYAML only.

Public API::

    band_hw = boundary_band(mask_hw, radius=3)                      # bool H×W
    noisy_hw, kinds_hw = corrupt_mask(mask_hw, rate=0.2, num_classes=11, rng=rng)
    summary = corrupt_split("outputs/data/synthetic", "train", rate=0.2, seed=0)  # in place
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rdd.labels import read_classes_yaml
from rdd.spec import atomic_path

UNCHANGED, BOUNDARY, RANDOM = 0, 1, 2  # values of ``kinds_hw``
KIND_NAMES = {UNCHANGED: "unchanged", BOUNDARY: "boundary", RANDOM: "random"}


# --------------------------------------------------------------------------- helpers
def _check_mask(mask_hw: np.ndarray, ignore_index: int) -> np.ndarray:
    mask_hw = np.asarray(mask_hw)
    if mask_hw.ndim != 2 or mask_hw.size == 0:
        raise ValueError(f"expected a non-empty H×W label mask, got shape {mask_hw.shape}")
    if not np.issubdtype(mask_hw.dtype, np.integer):
        raise ValueError(f"expected an integer label mask, got dtype {mask_hw.dtype}")
    if not 0 <= int(ignore_index) <= 255:
        raise ValueError(f"ignore_index must be in [0, 255], got {ignore_index}")
    return mask_hw


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}")
    return int(radius)


def _offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(dy, dx)`` in ``[-radius, radius]²`` except ``(0, 0)``: two int arrays of length M."""
    r = np.arange(-radius, radius + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(r, r, indexing="ij"))
    keep = (dy != 0) | (dx != 0)
    return dy[keep], dx[keep]


def _smooth_field(shape_hw: tuple[int, int], cell: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency random field ``H×W`` float32 (uniform noise on a ``cell``-px grid,
    bicubically upsampled, plus a tiny per-pixel jitter that breaks ties)."""
    H, W = shape_hw
    coarse = rng.random((H // cell + 2, W // cell + 2)).astype(np.float32)
    field = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    return field + rng.random((H, W)).astype(np.float32) * np.float32(1e-3)


# --------------------------------------------------------------------------- public API
def boundary_band(mask_hw: np.ndarray, *, radius: int, ignore_index: int = 255) -> np.ndarray:
    """Valid pixels within ``radius`` px of a pixel of *another valid* class → bool ``H×W``.

    Distance is **Chebyshev** (a ``(2·radius+1)²`` square window): pixel ``p`` is in the band iff
    some pixel ``q`` with ``max(|Δy|, |Δx|) <= radius`` has ``mask[q] != mask[p]`` and neither is
    ``ignore_index``. Ignore pixels are never in the band, and a class touching only ignore
    pixels has no band there. Pixels outside the image do not count.

    Implemented as a grey dilation / erosion of the labels (ignore mapped to −1 for the max and
    to +1000 for the min): ``p`` is in the band iff the window's max or min differs from its label.
    """
    mask_hw = _check_mask(mask_hw, ignore_index)
    radius = _check_radius(radius)
    valid_hw = mask_hw != ignore_index
    lab_hw = mask_hw.astype(np.float32)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    hi_hw = cv2.dilate(np.where(valid_hw, lab_hw, np.float32(-1.0)), kernel)
    lo_hw = cv2.erode(np.where(valid_hw, lab_hw, np.float32(1000.0)), kernel)
    return valid_hw & ((hi_hw != lab_hw) | (lo_hw != lab_hw))


def corrupt_mask(
    mask_hw: np.ndarray,
    *,
    rate: float,
    boundary_share: float = 0.5,
    radius: int = 3,
    patch: int = 5,
    num_classes: int,
    ignore_index: int = 255,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Change ``round(rate · #valid)`` pixels of ``mask_hw`` (exactly, see below) → noisy mask.

    Args:
        mask_hw: integer ``H×W`` train ids in ``[0, num_classes)`` or ``ignore_index``.
        rate: share of the *valid* (non-ignore) pixels to change, in ``[0, 1]``.
        boundary_share: share of that budget spent on boundary noise, in ``[0, 1]``.
        radius: boundary band width and the farthest neighbour a boundary pixel copies (px,
            Chebyshev; see :func:`boundary_band`).
        patch: side of the square random-noise blobs (px).
        num_classes: ``K``; random blobs take a class in ``[0, K)``.
        rng: the only source of randomness; the same generator state gives the same output.
    Returns:
        ``noisy_hw`` (same dtype as ``mask_hw``) and ``kinds_hw`` uint8 ``H×W``:
        0 unchanged, 1 boundary noise, 2 random noise.

    **Boundary noise** (``round(boundary_share · budget)`` pixels, at most the band). Each image
    draws a random order of the classes; a band pixel of class ``a`` is *directed* if some valid
    pixel within ``radius`` has a class ``b`` ranked above ``a``. Directed band pixels are taken
    first, in decreasing value of a smooth random field (cells of ``4·radius`` px), then (only if
    the budget exceeds them, about half the band) the other band pixels in the same order. Each
    taken pixel copies the class of a uniformly drawn neighbour within ``radius`` of another
    valid class (ranked above its own if it is directed). The field makes the changed pixels come
    in contiguous stretches of boundary, and the class order makes one side of each boundary grow
    into the other, so a stretch's boundary *moves* by up to ``radius`` px (a sloppy polygon)
    rather than being speckled. The new label is always a real neighbour's (original) class.

    **Random noise** (the rest of the budget). Blob centres are visited in a random order of the
    still-unchanged valid pixels (skipping ones changed meanwhile); each ``patch``×``patch`` blob
    (shifted to lie inside the image) takes one class drawn uniformly among those *no* valid
    pixel under it originally has (if it covers every class: any class but the centre's) and
    changes its valid, still-unchanged pixels. The last blob is trimmed (raster order) to hit
    the budget exactly.

    When the band has fewer pixels than the boundary budget, the shortfall goes to
    random noise, so the realised total is still ``round(rate · #valid)`` (exact: every blob
    changes at least its centre). ``rate = 0`` returns a copy of ``mask_hw`` and all-zero kinds.
    """
    mask_hw = _check_mask(mask_hw, ignore_index)
    for name, v in (("rate", rate), ("boundary_share", boundary_share)):
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float, np.floating, np.integer))
            or not 0.0 <= float(v) <= 1.0
        ):
            raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    radius = _check_radius(radius)
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 1:
        raise ValueError(f"patch must be an integer >= 1, got {patch!r}")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or not 2 <= num_classes <= 255
    ):
        raise ValueError(f"num_classes must be an integer in [2, 255], got {num_classes!r}")
    if ignore_index < num_classes:
        raise ValueError(f"ignore_index ({ignore_index}) must be >= num_classes ({num_classes})")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    valid_hw = mask_hw != ignore_index
    bad = valid_hw & ((mask_hw < 0) | (mask_hw >= num_classes))
    if bad.any():
        raise ValueError(
            f"mask holds label {int(mask_hw[bad][0])} outside [0, {num_classes}) "
            f"that is not ignore_index {ignore_index}"
        )

    H, W = mask_hw.shape
    noisy_hw = mask_hw.copy()
    kinds_hw = np.zeros((H, W), np.uint8)
    n_valid = int(valid_hw.sum())
    budget = int(round(float(rate) * n_valid))
    if budget == 0:
        return noisy_hw, kinds_hw
    lab_hw = mask_hw.astype(np.int64)

    # ---- boundary noise: eligible band pixels, top of a smooth field, copy a neighbour
    n_boundary = int(round(float(boundary_share) * budget))
    if n_boundary > 0:
        rank_k = np.full(256, -1, np.int64)  # per-image class order; ignore ranks lowest
        rank_k[:num_classes] = rng.permutation(num_classes)
        field_hw = _smooth_field((H, W), 4 * radius, rng)
        ys, xs = np.nonzero(boundary_band(mask_hw, radius=radius, ignore_index=ignore_index))
        dy_m, dx_m = _offsets(radius)
        padded = np.pad(lab_hw, radius, constant_values=ignore_index)
        nb_nm = padded[ys[:, None] + radius + dy_m[None], xs[:, None] + radius + dx_m[None]]
        own_n = lab_hw[ys, xs]
        any_nm = (nb_nm != ignore_index) & (nb_nm != own_n[:, None])  # ≥ 1 per band pixel
        up_nm = any_nm & (rank_k[nb_nm] > rank_k[own_n][:, None])
        up_n = up_nm.any(axis=1)
        # first the pixels that can grow a higher-ranked class over them, then the rest
        order = np.lexsort((-field_hw[ys, xs], ~up_n))
        sel = order[:n_boundary]
        ok_sm = np.where(up_n[sel, None], up_nm[sel], any_nm[sel])
        keys = rng.random((sel.size, dy_m.size))
        keys[~ok_sm] = -1.0
        pick = np.argmax(keys, axis=1)
        noisy_hw[ys[sel], xs[sel]] = nb_nm[sel, pick].astype(mask_hw.dtype)
        kinds_hw[ys[sel], xs[sel]] = BOUNDARY
        n_boundary = int(sel.size)

    # ---- random noise: wrong-class blobs until the budget is spent
    need = budget - n_boundary
    if need > 0:
        p_h, p_w = min(patch, H), min(patch, W)
        half = patch // 2
        centres = rng.permutation(np.flatnonzero(valid_hw.ravel() & (kinds_hw.ravel() == 0)))
        kinds_flat = kinds_hw.ravel()
        for idx in centres:
            if kinds_flat[idx] != UNCHANGED:
                continue
            y, x = divmod(int(idx), W)
            y0 = min(max(y - half, 0), H - p_h)
            x0 = min(max(x - half, 0), W - p_w)
            win = (slice(y0, y0 + p_h), slice(x0, x0 + p_w))
            orig = lab_hw[win]
            present = np.bincount(orig[valid_hw[win]], minlength=num_classes)[:num_classes] > 0
            choices = np.flatnonzero(~present)
            if choices.size == 0:
                choices = np.flatnonzero(np.arange(num_classes) != lab_hw[y, x])
            c = int(choices[rng.integers(choices.size)])
            change = valid_hw[win] & (kinds_hw[win] == UNCHANGED) & (orig != c)
            n = int(change.sum())
            if n > need:  # trim the last blob to the budget
                flat = np.flatnonzero(change)
                change = np.zeros_like(change)
                change.ravel()[flat[:need]] = True
                n = need
            noisy_hw[win][change] = c
            kinds_hw[win][change] = RANDOM
            need -= n
            if need == 0:
                break
    return noisy_hw, kinds_hw


def corrupt_split(
    root: str | os.PathLike, split: str = "train", *, rate: float, seed: int, **kw: Any
) -> dict[str, Any]:
    """Corrupt every mask ``root/masks/<split>/*.png`` **in place** (folder layout).

    Each file is rewritten atomically (temporary file + rename) with
    :func:`corrupt_mask` (``num_classes`` and ``ignore_index`` from ``root/classes.yaml``;
    ``kw`` = ``boundary_share``, ``radius``, ``patch``), using a generator seeded from
    ``(seed, file index)`` in sorted file order, so the result is deterministic. Running it twice
    corrupts twice: start from a clean copy (the ``noisy_data`` stage regenerates the data first).

    Returns a JSON-ready summary: ``rate`` (requested), ``seed``, ``split``, ``num_files``,
    ``num_valid_pixels``, ``realised_rate`` (changed / valid over the split), ``boundary_rate``
    and ``random_rate`` (same denominator), ``per_class_rate`` (class name → changed / valid
    pixels of that *original* class; ``null`` when absent), the noise parameters, and the
    min / max per-file realised rate.
    """
    root = Path(root)
    unknown = set(kw) - {"boundary_share", "radius", "patch"}
    if unknown:
        raise TypeError(
            f"corrupt_split: unexpected keyword {sorted(unknown)[0]!r} "
            "(expected boundary_share, radius, patch)"
        )
    mask_dir = root / "masks" / split
    files = sorted(mask_dir.glob("*.png")) if mask_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no masks to corrupt: {mask_dir} has no *.png files")
    classes = read_classes_yaml(root / "classes.yaml")
    K, ignore = classes.num_classes, classes.ignore_index
    changed_k = np.zeros(K, np.int64)
    valid_k = np.zeros(K, np.int64)
    kinds_count = np.zeros(3, np.int64)
    per_file: list[float] = []
    for i, path in enumerate(files):
        mask_hw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask_hw is None or mask_hw.ndim != 2 or mask_hw.dtype != np.uint8:
            raise ValueError(
                f"{path}: expected a single-channel uint8 PNG label mask, got "
                f"{None if mask_hw is None else (mask_hw.shape, mask_hw.dtype)}"
            )
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
        try:
            noisy_hw, kinds_hw = corrupt_mask(
                mask_hw, rate=rate, num_classes=K, ignore_index=ignore, rng=rng, **kw
            )
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), noisy_hw, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
                raise OSError(f"could not write {path}")
        valid_hw = mask_hw != ignore
        changed_hw = kinds_hw != UNCHANGED
        valid_k += np.bincount(mask_hw[valid_hw], minlength=K)[:K]
        changed_k += np.bincount(mask_hw[changed_hw], minlength=K)[:K]
        kinds_count += np.bincount(kinds_hw.ravel(), minlength=3)[:3]
        per_file.append(float(changed_hw.sum()) / max(int(valid_hw.sum()), 1))
    n_valid = int(valid_k.sum())
    denom = max(n_valid, 1)
    return {
        "split": split,
        "rate": float(rate),
        "seed": int(seed),
        "num_files": len(files),
        "num_valid_pixels": n_valid,
        "realised_rate": round(float(kinds_count[1:].sum()) / denom, 6),
        "boundary_rate": round(float(kinds_count[BOUNDARY]) / denom, 6),
        "random_rate": round(float(kinds_count[RANDOM]) / denom, 6),
        "per_class_rate": {
            name: (round(float(changed_k[k]) / valid_k[k], 6) if valid_k[k] else None)
            for k, name in enumerate(classes.names)
        },
        "per_file_rate": {"min": round(min(per_file), 6), "max": round(max(per_file), 6)},
        "params": {
            "boundary_share": kw.get("boundary_share", 0.5),
            "radius": kw.get("radius", 3),
            "patch": kw.get("patch", 5),
        },
    }
