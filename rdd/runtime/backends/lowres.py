"""Exact ``argmax(Resize(logits))`` from low-resolution logits, without upsampling them.

For ``N×K×h×w`` logits: the ``N×H×W`` labels of ONNX ``Resize`` (``mode="linear"``,
``coordinate_transformation_mode="half_pixel"``, ``sizes``; what ``F.interpolate(x, size,
mode="bilinear", align_corners=False)`` exports to) then ``ArgMax`` over K (first max on ties),
numpy + OpenCV only and several times faster than computing them (``benchmarks/lowres.py``).

Math. Along each axis output pixel ``x`` samples ``x_src = (x + 0.5)·in/out − 0.5`` (ONNX:
``(x + 0.5)/scale − 0.5``, ``scale = out/in``) clamped to ``[0, in−1]``, i.e. samples the
edge-replicated input. So each output pixel lies in one *cell* ``c ∈ [0, in]`` of the padded grid
(source rows ``c−1``, ``c``, clamped) and its logit vector is a convex combination ``Σ wᵢ·lᵢ``
(``wᵢ ≥ 0``, ``Σ wᵢ = 1``) of the cell's 4 corner vectors. If the 4 corners share one argmax
``c``, then ``l_c − l_k > 0`` at each corner for every class ``k`` (``≥ 0`` for ``k > c``, which
ties resolve to ``c``), so also for every convex combination: the whole cell is ``c``. Only cells
whose corners disagree (the boundary band, ~20 % of the pixels on CamVid) are interpolated,
vectorised per cell, and only for the classes that can win there, typically 2 or 3 of K: ``k`` is
dropped when some ``j`` beats it at all 4 corners (hence everywhere in the cell), tested for ``j``
= the corners' winners and the ``j`` attaining ``max_j min_corners l_j``.

Floating point. ORT's CPU kernel computes ``((w11·X11 + w21·X21) + w12·X12) + w22·X22`` in
float32 with ``w = fl(dx·dy)`` (``upsample(exact=True)`` reproduces it bit for bit); the fast
paths round differently, so they decide only with a margin ``tol = max|logits| · 2⁻²⁴ ·
(32·max(h, w) + 256)`` that bounds the difference: low-res pixels whose two best logits are within
``tol`` make their cells "disagreeing", and pixels whose two best candidates are within ``tol``
are recomputed with ORT's formula over all K. So the labels equal ORT's ``Resize`` + ``ArgMax``
exactly, near-ties included (tested on random, tied, ulp-apart and real logits). The caveat: at a
near-tie (two interpolated logits within a few float32 roundings) rounding decides, and another
implementation (PyTorch, a GPU, TensorRT, fp16) may pick the other class; elsewhere all agree.
Logits must be finite; float16 / float64 input is converted to float32 first.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from rdd.contract import InputError

__all__ = ["LabelUpsampler", "upsample_argmax"]

_ULP = 2.0**-24  # float32 unit roundoff
_LOW = np.float32(-3e38)  # the logit of an unused candidate slot: never the best


class _Axis:
    """Per-axis tables for one (in, out) pair: the cells of the edge-padded grid, and ORT's own
    sampling. Each cell owns ``S`` *slots*; a cell's output pixels fill its slots in order (the
    first cell's right-aligned), so integer scales make the slots one contiguous virtual axis."""

    def __init__(self, n_in: int, n_out: int) -> None:
        p = (np.arange(n_out) + 0.5) * n_in / n_out + 0.5  # out: padded coordinate in (0.5, in+.5)
        cell = np.floor(p).astype(np.intp)  # out: its cell
        self.cnt = np.bincount(cell, minlength=n_in + 1)  # in+1: output pixels per cell
        self.has = self.cnt > 0
        s = self.slots = int(self.cnt.max())
        slot = np.arange(n_out) - (np.cumsum(self.cnt) - self.cnt)[cell]
        slot[cell == cell[0]] += s - self.cnt[cell[0]]
        self.map = cell * s + slot  # out: position on the virtual axis
        self.crop = (
            slice(int(self.map[0]), int(self.map[0]) + n_out) if (np.diff(self.map) == 1).all() else None
        )
        # (in+1)×S: the output pixel in each slot (an unused slot: a neighbour) and its fraction
        self.idx = np.searchsorted(self.map, np.arange((n_in + 1) * s)).clip(0, n_out - 1)
        self.idx = self.idx.reshape(n_in + 1, s)
        self.frac_t = (p - cell).astype(np.float32)[self.idx].T.copy()  # S×(in+1)
        self.pad = np.clip(np.arange(-1, n_in + 1), 0, n_in - 1)  # in+2: edge-replicating gather
        self.lo, self.hi = self.pad[:-1], self.pad[1:]  # in+1: a cell's 2 source rows
        # ORT (onnxruntime/core/providers/cpu/tensor/upsample.cc): float32, clamped, 0.5/0.5 at
        # the clamped edges; i1/i2 and d2/d1 are the source indices and their weights.
        scale = np.float32(n_out) / np.float32(n_in)
        xf = np.arange(n_out, dtype=np.float32)
        src = xf if scale == 1 else (xf + np.float32(0.5)) / scale - np.float32(0.5)
        src = np.clip(src, np.float32(0), np.float32(n_in - 1))
        self.i1 = np.minimum(src.astype(np.intp), n_in - 1)
        self.i2 = np.minimum(self.i1 + 1, n_in - 1)
        self.d1 = np.abs(src - self.i1.astype(np.float32))
        self.d2 = np.abs(src - self.i2.astype(np.float32))
        same = self.i1 == self.i2
        self.d1[same] = self.d2[same] = np.float32(0.5)

    def gather(self, a: np.ndarray, axis: int) -> np.ndarray:
        """The virtual axis ``axis`` of ``a`` → the output pixels (a view for integer scales)."""
        if self.crop is not None:
            return a[(slice(None),) * axis + (self.crop,)]
        return a.take(self.map, axis=axis)


class LabelUpsampler:
    """``argmax`` over K of the half-pixel bilinear resize ``in_hw → out_hw``, computed exactly
    from the low-resolution logits (module docstring); index maps and weights are built once.

    ``up(logits)``: ``N×K×h×w`` → ``N×H×W`` uint8 labels (uint16 for K > 256).
    ``up.upsample(logits)``: → ``N×K×H×W`` float32, the interpolated logits themselves.
    ``up.band(logits)``: → ``N×H×W`` bool, the pixels that had to be interpolated.
    """

    _WIDTHS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # candidate buckets; then all K classes

    def __init__(self, in_hw: Sequence[int], out_hw: Sequence[int]) -> None:
        self.in_hw, self.out_hw = _hw(in_hw, "in_hw"), _hw(out_hw, "out_hw")
        (h, w), (H, W) = self.in_hw, self.out_hw
        self._ay, self._ax = _Axis(h, H), _Axis(w, W)
        self._tol = _ULP * (32 * max(h, w) + 256)
        self._local = threading.local()  # per-thread label grid, reused between calls

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        x = self._input(logits)  # N×K×h×w float32
        ay, ax = self._ay, self._ax
        lab, c00, dis, tol = self._cells(x)
        shape = (x.shape[0], c00.shape[1], ay.slots, c00.shape[2], ax.slots)
        grid = getattr(self._local, "grid", None)  # N×(h+1)×Sy×(w+1)×Sx
        if grid is None or grid.shape != shape or grid.dtype != c00.dtype:
            grid = self._local.grid = np.empty(shape, c00.dtype)
        rows = grid.view(np.dtype((np.void, ax.slots * grid.itemsize)))[..., 0]  # Sx labels =
        rows[...] = np.repeat(c00, ax.slots, axis=2).view(rows.dtype)[:, :, None]  # one item
        redo = self._boundary(x, lab, dis, rows, tol) if dis.any() else []
        out = grid.reshape(shape[0], shape[1] * shape[2], shape[3] * shape[4])
        out = np.array(ax.gather(ay.gather(out, 1), 2), order="C")  # N×H×W, a fresh array
        if redo:
            b, y, xo = (np.concatenate(a) for a in zip(*redo))
            out[b, y, xo] = self._exact(x, b, y, xo).argmax(axis=1)
        return out

    def band(self, logits: np.ndarray) -> np.ndarray:
        """``N×H×W`` bool: the pixels of the cells whose corners disagree (or nearly tie)."""
        dis = self._cells(self._input(logits))[2]
        return np.repeat(np.repeat(dis, self._ay.cnt, axis=1), self._ax.cnt, axis=2)

    def _input(self, logits: np.ndarray) -> np.ndarray:
        x = np.asarray(logits)
        if x.ndim != 4 or tuple(x.shape[2:]) != self.in_hw or x.shape[1] < 1:
            raise InputError(
                f"LabelUpsampler: expected N×K×{self.in_hw[0]}×{self.in_hw[1]} logits, got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"LabelUpsampler: expected float logits, got {x.dtype}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _cells(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """→ labels ``N×h×w``; per cell (``N×(h+1)×(w+1)``) a corner's label, "disagreeing"; tol."""
        ay, ax = self._ay, self._ax
        top = x.max(axis=1)  # N×h×w
        tol = max(float(top.max()), -float(x.min())) * self._tol
        near = (x >= (top - tol)[:, None]).sum(axis=1, dtype=np.uint16) > 1  # near-ties
        lab = x.argmax(axis=1).astype(np.uint8 if x.shape[1] <= 256 else np.uint16)
        lp = lab[:, ay.pad][:, :, ax.pad]  # N×(h+2)×(w+2), edge-padded
        tp = near[:, ay.pad][:, :, ax.pad]
        c00 = lp[:, :-1, :-1]
        dis = (
            (c00 != lp[:, 1:, :-1])
            | (c00 != lp[:, :-1, 1:])
            | (c00 != lp[:, 1:, 1:])
            | tp[:, :-1, :-1]
            | tp[:, 1:, :-1]
            | tp[:, :-1, 1:]
            | tp[:, 1:, 1:]
        )
        return lab, c00, dis & ay.has[:, None] & ax.has, tol

    def _boundary(
        self, x: np.ndarray, labels: np.ndarray, dis: np.ndarray, rows: np.ndarray, tol: float
    ) -> list[tuple[np.ndarray, ...]]:
        """Write the blocks of the disagreeing cells into the grid's ``rows``
        (``N×(h+1)×Sy×(w+1)``, an item = Sx labels); return the near-tie pixels ``(b, y, x)``.
        The m cells of a bucket run along the last, contiguous axis of every array."""
        ay, ax = self._ay, self._ax
        k, h, w = x.shape[1:]
        dtype = np.uint8 if k <= 256 else np.uint16
        b, cy, cx = np.nonzero(dis)  # n cells
        base = b * (k * h * w) + np.stack(
            [
                ay.lo[cy] * w + ax.lo[cx],
                ay.lo[cy] * w + ax.hi[cx],
                ay.hi[cy] * w + ax.lo[cx],
                ay.hi[cy] * w + ax.hi[cx],
            ]
        )
        xv = x.reshape(-1)
        corners = xv.take(base[:, None] + np.arange(0, k * h * w, h * w)[:, None])  # 4×K×n
        lb = corners.min(axis=0).max(axis=0)  # n: some class stays >= lb
        cand = corners.max(axis=0) >= lb - tol  # K×n: the classes that may win
        win = labels.reshape(-1).take(base - b * ((k - 1) * h * w)).astype(np.intp)  # 4×n: the
        win = xv.take(base[:, None] + win * (h * w))  # corner winners' logits, 4×4×n
        gap = (win[:, :, None] - corners[:, None]).min(axis=0)  # 4×K×n: k is out if a
        cand &= ~(gap > tol).any(axis=0)  # winner beats it everywhere
        count = cand.sum(axis=0)  # n (>= 2)
        i, cls = np.nonzero(cand.T)
        table = np.zeros((k, b.size), np.intp)  # K×n: candidates first
        table[np.arange(i.size) - (np.cumsum(count) - count)[i], i] = cls
        redo, lo = [], 0
        for width in sorted({min(v, k) for v in self._WIDTHS} | {k}):
            sel = np.flatnonzero((count > lo) & (count <= width))  # m cells, T = width
            lo = width
            if not sel.size:
                continue
            cls = table[:width, sel]  # T×m
            c = xv.take(base[:, None, sel] + cls * (h * w))  # 4×T×m corner logits
            c[:, np.arange(width)[:, None] >= count[sel]] = _LOW
            fy, fx = ay.frac_t[:, cy[sel]], ax.frac_t[:, cx[sel]]  # Sy×m, Sx×m
            ids = cls.astype(dtype)
            if width == 2:  # the sign of l_a − l_b
                d = _bilinear(c[:, 0] - c[:, 1], fy, fx)  # Sy×Sx×m
                lab = ids[0] + (d < 0) * (ids[1] - ids[0])  # (wraps around: = ids[1])
                tie = np.abs(d) <= tol
            else:  # the candidates within tol
                v = _bilinear(c, fy, fx)  # of the best (T×Sy×Sx×m):
                near = v.max(axis=0) - tol  # one wins, several tie
                one = 1 << (8 * np.dtype(dtype).itemsize)  # acc = hits·one + Σ ids
                acc = np.zeros(near.shape, np.uint16 if one == 256 and width < 128 else np.uint64)
                for t, code in enumerate(ids.astype(acc.dtype) + one):
                    acc += (v[t] >= near) * code
                lab, tie = acc.astype(dtype), acc >= 2 * one
            lab = np.ascontiguousarray(lab.transpose(2, 0, 1)).view(rows.dtype)[..., 0]  # m×Sy
            rows[b[sel], cy[sel], :, cx[sel]] = lab
            r, q, i = np.unravel_index(np.flatnonzero(tie), tie.shape)
            if i.size:
                redo.append((b[sel][i], ay.idx[cy[sel][i], r], ax.idx[cx[sel][i], q]))
        return redo

    def _exact(self, x: np.ndarray, b: np.ndarray, y: np.ndarray, xo: np.ndarray) -> np.ndarray:
        """ORT's float32 interpolation at output pixels ``(b, y, xo)`` (m each) → m×K."""
        ay, ax = self._ay, self._ax
        y1, y2, x1, x2 = ay.i1[y], ay.i2[y], ax.i1[xo], ax.i2[xo]
        dy1, dy2, dx1, dx2 = (d[:, None] for d in (ay.d1[y], ay.d2[y], ax.d1[xo], ax.d2[xo]))
        return (
            ((dx2 * dy2) * x[b, :, y1, x1] + (dx1 * dy2) * x[b, :, y1, x2]) + (dx2 * dy1) * x[b, :, y2, x1]
        ) + (dx1 * dy1) * x[b, :, y2, x2]

    def upsample(self, logits: np.ndarray, *, exact: bool = False) -> np.ndarray:
        """``N×K×h×w`` → ``N×K×H×W`` float32, the full interpolation (for full-size logits or
        probabilities). Default: ``cv2.resize`` (INTER_LINEAR: the same clamped half-pixel
        sampling) per channel, within ~1e-6 relative of ORT; ``exact=True``: ORT's float32
        formula, bit-identical to ONNX Runtime's CPU ``Resize``, tens of times slower."""
        x = self._input(logits)
        (H, W), ay, ax = self.out_hw, self._ay, self._ax
        if exact:
            c1, c2 = x.take(ax.i1, axis=3), x.take(ax.i2, axis=3)  # N×K×h×W
            t = [c.take(i, axis=2) for i in (ay.i1, ay.i2) for c in (c1, c2)]  # X11 X21 X12 X22
            w = [dx * dy[:, None] for dy in (ay.d2, ay.d1) for dx in (ax.d2, ax.d1)]  # H×W each
            return ((w[0] * t[0] + w[1] * t[1]) + w[2] * t[2]) + w[3] * t[3]
        out = np.empty(x.shape[:2] + (H, W), np.float32)
        for i, j in np.ndindex(*x.shape[:2]):
            cv2.resize(x[i, j], (W, H), dst=out[i, j], interpolation=cv2.INTER_LINEAR)
        return out


def _bilinear(c: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Corner values ``4×…×m`` (``(y0,x0), (y0,x1), (y1,x0), (y1,x1)``) and fractions ``Sy×m``,
    ``Sx×m`` → ``…×Sy×Sx×m``, separably: ``a + f·(b − a)`` along x, then along y."""
    top = c[0][..., None, :] + fx * (c[1] - c[0])[..., None, :]  # …×Sx×m
    bot = c[2][..., None, :] + fx * (c[3] - c[2])[..., None, :]
    return top[..., None, :, :] + fy[:, None] * (bot - top)[..., None, :, :]


def _hw(v: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(a) for a in v)
        if h > 0 and w > 0:
            return h, w
    except (TypeError, ValueError):
        pass
    raise InputError(f"LabelUpsampler: {name} must be a positive (height, width), got {v!r}")


@functools.lru_cache(maxsize=8)
def _cached(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> LabelUpsampler:
    return LabelUpsampler(in_hw, out_hw)


def upsample_argmax(logits: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``argmax(Resize(logits, size), axis=1)`` for ``N×K×h×w`` logits → ``N×H×W`` labels, via
    a :class:`LabelUpsampler` from a small LRU cache (8) keyed by ``((h, w), (H, W))``."""
    shape = np.shape(logits)
    if len(shape) != 4:
        raise InputError(f"upsample_argmax: expected N×K×h×w logits, got shape {shape}")
    return _cached(_hw(shape[2:], "the logits' h×w"), _hw(size, "size"))(logits)
