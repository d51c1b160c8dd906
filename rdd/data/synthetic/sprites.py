"""Sprites (trees, poles, signs, lights, cars, people, cyclists, clutter): shapes in metres drawn
with OpenCV on a canvas and composited into the frame through its depth buffer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from .raster import _Frame
from .world import _NONE, BICYCLIST, CAR, PEDESTRIAN, POLE, ROAD, SIDEWALK, SIGN, TREE, VOID, _Camera, _Sprite


# ---- sprites: shapes in metres (u right, v up, origin at the sprite's ground point) ---------
class _Canvas:
    """Rasterises shapes given in metres into a local patch of slots / labels / shade."""

    SHIFT = 4

    def __init__(self, cam: _Camera, x: float, z: float, ops: list[tuple], extent: tuple) -> None:
        umin, umax, vmin, vmax = extent
        self.s = cam.f / z  # pixels per metre at this depth
        self.ax = cam.x_v + cam.f * (x - cam.cam_x) / z
        self.ay = cam.y_h + cam.f * cam.hc / z
        self.x0 = int(np.floor(self.ax + umin * self.s)) - 1
        self.y0 = int(np.floor(self.ay - vmax * self.s)) - 1
        self.w = int(np.ceil((umax - umin) * self.s)) + 3
        self.h = int(np.ceil((vmax - vmin) * self.s)) + 3
        self.ops = ops

    def pts(self, uv: Sequence[tuple[float, float]]) -> np.ndarray:
        k = 1 << self.SHIFT
        ax, ay, s = self.ax - self.x0, self.ay - self.y0, self.s
        return np.array(
            [(int(round((ax + u * s) * k)), int(round((ay - v * s) * k))) for u, v in uv], np.int32
        )

    def render(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """Draw the ops (later ones on top) → (slots, labels, shade) patches; label 254 = empty.

        Shapes are drawn once, as op numbers 1..n into a uint8 patch; slots and labels follow
        from the op number by table lookup.
        """
        n = len(self.ops)
        if n > 253:
            raise ValueError(f"a sprite may have at most 253 shapes, got {n}")
        ids = np.zeros((self.h, self.w), np.uint8)
        first = len(fr.colors)
        labels = np.full(n + 1, _NONE, np.uint8)
        shade: np.ndarray | float = 1.0
        sh = self.SHIFT
        # transform every anchor point of every shape at once (metres → fixed-point pixels)
        flat: list[tuple[float, float]] = []
        for op in self.ops:
            if op[0] == "poly":
                flat.extend(op[3])
            elif op[0] in ("ellipse", "crown"):
                flat.append(op[3])
            else:
                flat.extend((op[3], op[4]))
        if flat:
            uv = np.array(flat, np.float64)
            k16 = 1 << sh
            pts = np.empty(uv.shape, np.int32)
            np.rint((self.ax - self.x0 + uv[:, 0] * self.s) * k16, out=pts[:, 0], casting="unsafe")
            np.rint((self.ay - self.y0 - uv[:, 1] * self.s) * k16, out=pts[:, 1], casting="unsafe")
            pl = pts.tolist()
        i = 0
        for k, op in enumerate(self.ops, 1):
            kind = op[0]
            fr.add(op[1])
            labels[k] = op[2]
            if kind == "poly":
                m = len(op[3])
                cv2.fillPoly(ids, [pts[i : i + m]], k, cv2.LINE_8, sh)
                i += m
            elif kind == "ellipse":  # center (u, v), radii (ru, rv), thickness m (-1: filled)
                (ru, rv), th = op[4], op[5]
                axes = (
                    max(1, int(round(ru * self.s * (1 << sh)))),
                    max(1, int(round(rv * self.s * (1 << sh)))),
                )
                t = -1 if th < 0 else max(1, int(round(th * self.s)))
                cv2.ellipse(ids, tuple(pl[i]), axes, 0, 0, 360, k, t, cv2.LINE_8, sh)
                i += 1
            elif kind == "line":  # (u0, v0), (u1, v1), width m
                t = max(1, int(round(op[5] * self.s)))
                cv2.line(ids, tuple(pl[i]), tuple(pl[i + 1]), k, t, cv2.LINE_8, sh)
                i += 2
            elif kind == "crown":  # textured foliage blob: (cu, cv), (ru, rv), seed
                if isinstance(shade, float):
                    shade = np.ones((self.h, self.w), np.float32)
                self._crown(ids, shade, k, *op[3:])
                i += 1
            else:
                raise ValueError(f"unknown shape {kind!r}")
        slot = ids.astype(np.uint16)
        slot += np.uint16(first)
        slot -= np.uint16(1)  # op k → colour slot first + k - 1 (uncovered pixels: don't care)
        return slot, labels[ids], shade

    def _crown(self, ids, shade, k, center, radii, seed) -> None:
        (cu, cv_), (ru, rv) = center, radii
        p = self.pts([(cu - ru, cv_ + rv), (cu + ru, cv_ - rv)]) >> self.SHIFT
        px0, py0, px1, py1 = int(p[0, 0]), int(p[0, 1]), int(p[1, 0]) + 1, int(p[1, 1]) + 1
        if px1 - px0 < 2 or py1 - py0 < 2:
            return
        field, tex = _crown_template(seed)
        both = cv2.resize(np.dstack([field, tex]), (px1 - px0, py1 - py0), interpolation=cv2.INTER_LINEAR)
        x0, y0 = max(px0, 0), max(py0, 0)
        x1, y1 = min(px1, self.w), min(py1, self.h)
        both = both[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
        inside = both[..., 0] < 0.85
        ids[y0:y1, x0:x1][inside] = k
        shade[y0:y1, x0:x1][inside] = both[..., 1][inside]


@lru_cache(maxsize=512)
def _crown_template(seed: int, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Foliage of a tree crown on an ``n×n`` grid over the unit ellipse's bounding box:
    ``field < 0.85`` is inside (a lobed, noisy blob with holes), ``tex`` the leaf shading."""
    uv = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    d = uv[None, :] ** 2 + uv[:, None] ** 2
    g = np.random.default_rng(seed)
    lobes = cv2.resize(g.random((5, 5), dtype=np.float32), (n, n), interpolation=cv2.INTER_LINEAR)
    leaves = cv2.resize(g.random((16, 16), dtype=np.float32), (n, n), interpolation=cv2.INTER_LINEAR)
    field = d + 0.7 * (lobes - 0.5) + 0.25 * (leaves - 0.5)
    tex = 0.5 + 0.9 * leaves * (1.1 - 0.4 * np.clip(d, 0, 1))
    return field.astype(np.float32), tex.astype(np.float32)


def _composite(fr: _Frame, canvas: _Canvas, depth: float) -> None:
    cam = fr.cam
    x0, y0 = canvas.x0, canvas.y0
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + canvas.w, cam.W), min(y0 + canvas.h, cam.H)
    if xb <= xa or yb <= ya:
        return
    slot, lab, shade = canvas.render(fr)
    win = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    lab = lab[win]
    cover = (lab != _NONE) & (fr.depth[ya:yb, xa:xb] > depth)
    fr.put(ya, xa, cover, slot[win], shade if isinstance(shade, float) else shade[win], lab, depth)


def _sprite_ops(sp: _Sprite, cam: _Camera, t: float, z: float) -> tuple[list[tuple], tuple]:
    """Draw operations and (umin, umax, vmin, vmax) extent of a sprite at depth ``z``."""
    p = sp.params
    ops: list[tuple] = []
    if sp.kind == "tree":
        ru, rv, th = p["ru"], p["rv"], p["trunk_h"]
        ops.append(
            (
                "poly",
                p["trunk"],
                TREE,
                [
                    (-p["trunk_w"] / 2, 0),
                    (p["trunk_w"] / 2, 0),
                    (p["trunk_w"] / 3, th + rv),
                    (-p["trunk_w"] / 3, th + rv),
                ],
            )
        )
        ops.append(("crown", p["green"], TREE, (0.0, th + rv * 0.8), (ru, rv), p["seed"]))
        return ops, (-ru, ru, 0.0, th + 1.8 * rv)
    if sp.kind == "pole":
        h, pw, c = p["height"], p["width"], p["color"]
        ops.append(("poly", c, POLE, [(-pw / 2, 0), (pw / 2, 0), (pw / 2, h), (-pw / 2, h)]))
        umin, umax, vmax = -0.6, 0.6, h + 0.2
        if p["kind"] == "sign":
            s, sh, col = p["sign_size"], p["sign_h"], p["sign_color"]
            sh = min(sh, h - s / 2)
            if p["sign_shape"] == "circle":
                ops.append(("ellipse", (235, 235, 235), SIGN, (0.0, sh), (s / 2, s / 2), -1))
                ops.append(("ellipse", col, SIGN, (0.0, sh), (s * 0.42, s * 0.42), -1))
            elif p["sign_shape"] == "rect":
                ops.append(
                    (
                        "poly",
                        col,
                        SIGN,
                        [
                            (-s / 2, sh - s * 0.4),
                            (s / 2, sh - s * 0.4),
                            (s / 2, sh + s * 0.4),
                            (-s / 2, sh + s * 0.4),
                        ],
                    )
                )
                ops.append(("line", (240, 240, 240), SIGN, (-s * 0.3, sh), (s * 0.3, sh), 0.06))
            else:
                ops.append(
                    (
                        "poly",
                        (235, 235, 235),
                        SIGN,
                        [(-s / 2, sh - s * 0.4), (s / 2, sh - s * 0.4), (0, sh + s * 0.45)],
                    )
                )
                ops.append(
                    (
                        "poly",
                        col,
                        SIGN,
                        [(-s * 0.3, sh - s * 0.27), (s * 0.3, sh - s * 0.27), (0, sh + s * 0.22)],
                    )
                )
        elif p["kind"] == "light":
            top = h
            ops.append(
                (
                    "poly",
                    (35, 35, 35),
                    SIGN,
                    [(-0.18, top - 0.95), (0.18, top - 0.95), (0.18, top), (-0.18, top)],
                )
            )
            lamp_cols = [(230, 40, 30), (240, 180, 30), (40, 220, 90)]
            for k in range(3):
                col = lamp_cols[k] if k == p["lit"] else (60, 60, 55)
                ops.append(("ellipse", col, SIGN, (0.0, top - 0.17 - 0.3 * k), (0.1, 0.1), -1))
        elif p["kind"] == "lamp":
            d = p["toward_road"] * 1.6
            ops.append(("line", c, POLE, (0.0, h - 0.1), (d, h + 0.15), max(pw * 0.5, 0.05)))
            ops.append(
                (
                    "poly",
                    (200, 200, 180),
                    POLE,
                    [(d - 0.25, h + 0.05), (d + 0.25, h + 0.05), (d + 0.2, h + 0.2), (d - 0.2, h + 0.2)],
                )
            )
            umin, umax, vmax = min(umin, d - 0.3), max(umax, d + 0.3), h + 0.4
        return ops, (umin, umax, 0.0, vmax)
    if sp.kind == "void":
        ww, hh = p["w"], p["h"]
        ops.append(("poly", p["color"], VOID, [(-ww / 2, 0), (ww / 2, 0), (ww / 2, hh), (-ww / 2, hh)]))
        return ops, (-ww / 2, ww / 2, 0.0, hh)
    if sp.kind == "person":
        return _person_ops(p, t), (-0.6, 0.6, 0.0, p["height"] + 0.05)
    if sp.kind == "cyclist":
        return _cyclist_ops(p, t), (-1.1, 1.1, 0.0, 1.9)
    if sp.kind == "car":
        return _car_ops(sp, cam, z)
    raise ValueError(f"unknown sprite kind {sp.kind!r}")


def _person_ops(p: dict, t: float) -> list[tuple]:
    h, side = p["height"], p["view"] == "side"
    ph = p["phase"] + t * 7.0
    hip, sh = h * 0.52, h * 0.82
    stride = (0.28 if side else 0.05) * np.sin(ph)
    tw = 0.16 if side else 0.22
    ops: list[tuple] = []
    for sgn in (-1, 1):  # legs
        fu = sgn * stride + (0.0 if side else sgn * 0.09)
        hu = sgn * (0.02 if side else 0.08)
        ops.append(("line", p["pants"], PEDESTRIAN, (hu, hip), (fu, 0.05), 0.13))
    ops.append(
        (
            "poly",
            p["shirt"],
            PEDESTRIAN,
            [(-tw * 0.8, hip - 0.05), (tw * 0.8, hip - 0.05), (tw, sh), (-tw, sh)],
        )
    )
    swing = (0.2 if side else 0.04) * np.sin(ph + np.pi)
    for sgn in (-1, 1):  # arms
        su = 0.0 if side else sgn * tw
        ops.append(
            (
                "line",
                p["shirt"],
                PEDESTRIAN,
                (su, sh - 0.03),
                (su + sgn * swing + (0 if side else sgn * 0.05), hip - 0.02),
                0.09,
            )
        )
    ops.append(("ellipse", p["skin"], PEDESTRIAN, (0.0, h - 0.12), (0.09, 0.12), -1))
    ops.append(("ellipse", p["hair"], PEDESTRIAN, (0.0, h - 0.07), (0.095, 0.07), -1))
    return ops


def _cyclist_ops(p: dict, t: float) -> list[tuple]:
    ph = p["phase"] + t * 6.0
    f = p["facing"]
    ops: list[tuple] = []
    if p["view"] == "side":
        r = 0.34
        for cu in (-0.55, 0.55):
            ops.append(("ellipse", (25, 25, 25), BICYCLIST, (cu, r), (r, r), 0.05))
        ops.append(("line", p["frame"], BICYCLIST, (-0.55, r), (0.0, r + 0.05), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (0.0, r + 0.05), (0.45 * f, 0.9), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (-0.1 * f, 0.95), (0.0, r + 0.05), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (0.45 * f, 0.9), (0.55 * f, r), 0.04))
        seat, shoulder = (-0.1 * f, 1.0), (0.25 * f, 1.5)
        pedal = (0.12 * np.cos(ph), r + 0.05 + 0.15 * np.sin(ph))
        ops.append(("line", p["pants"], BICYCLIST, seat, pedal, 0.12))
        ops.append(("line", p["shirt"], BICYCLIST, seat, shoulder, 0.3))
        ops.append(("line", p["shirt"], BICYCLIST, shoulder, (0.45 * f, 0.95), 0.08))
        ops.append(("ellipse", p["skin"], BICYCLIST, (0.33 * f, 1.72), (0.1, 0.12), -1))
    else:  # seen from behind: wheels are thin vertical ellipses
        ops.append(("ellipse", (25, 25, 25), BICYCLIST, (0.0, 0.34), (0.035, 0.34), -1))
        for sgn in (-1, 1):
            k = 0.12 * np.sin(ph + (0 if sgn < 0 else np.pi))
            ops.append(("line", p["pants"], BICYCLIST, (sgn * 0.1, 0.98), (sgn * 0.12, 0.45 + k), 0.12))
        ops.append(
            ("poly", p["shirt"], BICYCLIST, [(-0.17, 0.95), (0.17, 0.95), (0.22, 1.55), (-0.22, 1.55)])
        )
        ops.append(("line", p["frame"], BICYCLIST, (-0.3, 1.15), (0.3, 1.15), 0.04))
        ops.append(("ellipse", p["skin"], BICYCLIST, (0.0, 1.7), (0.1, 0.12), -1))
    return ops


def _car_ops(sp: _Sprite, cam: _Camera, z: float) -> tuple[list[tuple], tuple]:
    p = sp.params
    w, h, c = p["w"], p["h"], np.asarray(p["color"], np.float64)
    hb = h * 0.55
    dark = (25, 25, 28)
    glass = tuple(np.clip(c * 0.25 + 30, 0, 255))
    ops: list[tuple] = []
    extent = [-w / 2, w / 2, 0.0, h]
    # side face, visible when the car is off the camera axis (depth z → z + length)
    xrel = sp.x - cam.cam_x
    if abs(xrel) > w / 2:
        sgn = -1.0 if xrel > 0 else 1.0  # the face towards the camera axis
        xs = xrel + sgn * w / 2
        z2 = z + p["length"]

        def far(u_rel: float, v: float) -> tuple[float, float]:  # a point at depth z2
            return (u_rel * z / z2 - xrel, cam.hc - (cam.hc - v) * z / z2)

        near_u = sgn * w / 2
        side_poly = [
            (near_u, 0.25),
            far(xs, 0.25),
            far(xs, hb),
            far(xs - sgn * 0.15, h * 0.95),
            (near_u - sgn * 0.15 * 0, h * 0.95),
            (near_u, hb),
        ]
        ops.append(("poly", tuple(c * 0.72), CAR, side_poly))
        win = [(near_u, hb + 0.05), far(xs, hb + 0.05), far(xs - sgn * 0.1, h * 0.9), (near_u, h * 0.9)]
        ops.append(("poly", tuple(np.asarray(glass) * 0.9), CAR, win))
        for zz in (z + 0.7, z2 - 0.7):  # wheels on the side
            uw, vw = (xs * z / zz - xrel, cam.hc - (cam.hc - 0.33) * z / zz)
            r = 0.33 * z / zz
            ops.append(("ellipse", dark, CAR, (uw, vw), (r * 0.35, r), -1))
        us = [pt[0] for pt in side_poly]
        vs = [pt[1] for pt in side_poly]
        extent = [min(extent[0], *us), max(extent[1], *us), min(0.0, *vs), max(h, *vs)]
    # rear / front face
    ops.append(
        (
            "poly",
            dark,
            CAR,
            [(-w / 2 + 0.05, 0), (-w / 2 + 0.35, 0), (-w / 2 + 0.35, 0.4), (-w / 2 + 0.05, 0.4)],
        )
    )
    ops.append(
        ("poly", dark, CAR, [(w / 2 - 0.35, 0), (w / 2 - 0.05, 0), (w / 2 - 0.05, 0.4), (w / 2 - 0.35, 0.4)])
    )
    ops.append(
        (
            "poly",
            tuple(c),
            CAR,
            [
                (-w / 2, 0.22),
                (w / 2, 0.22),
                (w / 2, hb * 0.95),
                (w * 0.45, hb),
                (-w * 0.45, hb),
                (-w / 2, hb * 0.95),
            ],
        )
    )
    ops.append(
        ("poly", tuple(c * 0.9), CAR, [(-w * 0.43, hb), (w * 0.43, hb), (w * 0.36, h), (-w * 0.36, h)])
    )
    ops.append(
        (
            "poly",
            glass,
            CAR,
            [(-w * 0.38, hb + 0.05), (w * 0.38, hb + 0.05), (w * 0.33, h - 0.07), (-w * 0.33, h - 0.07)],
        )
    )
    ops.append(("poly", dark, CAR, [(-w / 2, 0.22), (w / 2, 0.22), (w / 2, 0.36), (-w / 2, 0.36)]))
    light = (240, 240, 225) if p["front"] else (200, 30, 25)
    for sgn in (-1, 1):
        u0 = sgn * (w / 2 - 0.08)
        ops.append(
            (
                "poly",
                light,
                CAR,
                [(u0, hb * 0.72), (u0 - sgn * 0.3, hb * 0.72), (u0 - sgn * 0.3, hb * 0.88), (u0, hb * 0.88)],
            )
        )
    ops.append(
        ("poly", (220, 220, 220), CAR, [(-0.25, 0.42), (0.25, 0.42), (0.25, 0.55), (-0.25, 0.55)])
    )  # number plate
    return ops, tuple(extent)  # type: ignore[return-value]


def _op_size(op: tuple) -> float:
    """Largest extent of a shape in metres (shapes under ~1 px are skipped when drawing)."""
    kind = op[0]
    if kind == "poly":
        us = [p[0] for p in op[3]]
        vs = [p[1] for p in op[3]]
        return max(max(us) - min(us), max(vs) - min(vs))
    if kind == "line":
        (u0, v0), (u1, v1) = op[3], op[4]
        return max(abs(u1 - u0), abs(v1 - v0), op[5])
    if kind in ("ellipse", "crown"):
        return 2 * max(op[4])
    return float("inf")


def _sprite_shadow(fr: _Frame, sp: _Sprite, z: float) -> None:
    """A soft dark ellipse on the ground under cars, people and cyclists."""
    cam = fr.cam
    half = {"car": sp.params.get("w", 1.8) * 0.6, "person": 0.35, "cyclist": 0.45}[sp.kind]
    depth = sp.params.get("length", 0.8) if sp.kind != "person" else 0.5
    s = cam.f / z
    cx = cam.x_v + cam.f * (sp.x - cam.cam_x) / z
    y_near = cam.y_h + cam.f * cam.hc / z
    y_far = cam.y_h + cam.f * cam.hc / (z + depth)
    cy, ry = 0.5 * (y_near + y_far), max(1.0, 0.5 * (y_near - y_far) + 0.08 * s)
    rx = max(1.0, half * s)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, cam.W)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, cam.H)
    if x1 <= x0 or y1 <= y0:
        return
    dx = (fr.xc[x0:x1] - cx) / rx
    dy = (fr.yc[y0:y1] - cy) / ry
    a = np.clip(1.2 - (dx[None, :] ** 2 + dy[:, None] ** 2), 0, 1) * 0.55
    lab = fr.lab[y0:y1, x0:x1]
    fr.shade[y0:y1, x0:x1] *= 1 - a * ((lab == ROAD) | (lab == SIDEWALK))
