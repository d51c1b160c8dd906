"""Rasterising the world's planes per pixel (sky, ground, facades, fences) into a frame's
slot / shade / label / depth buffers (:class:`_Frame`), with vectorised numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from .world import BUILDING, FAR, FENCE, ROAD, SIDEWALK, SKY, _Camera, _World


# --------------------------------------------------------------------------- rendering
# Layers write four 2-D buffers: a colour *slot* (index into a per-frame palette), a shade
# multiplier, the label and the depth. Colour is only expanded to H×W×3 once, at the end —
# 3-channel numpy work is what makes naive procedural renderers slow.
class _Frame:
    """Slot / shade / label / depth buffers of one frame, plus its palette."""

    def __init__(self, cam: _Camera) -> None:
        self.cam = cam
        H, W = cam.H, cam.W
        self.slot = np.zeros((H, W), np.uint16)
        self.shade = np.ones((H, W), np.float32)
        self.lab = np.full((H, W), SKY, np.uint8)
        self.depth = np.full((H, W), FAR, np.float32)
        self.yc = np.arange(H, dtype=np.float32) + 0.5  # pixel centres
        self.xc = np.arange(W, dtype=np.float32) + 0.5
        self.colors: list[Sequence[float]] = []

    def add(self, color: Sequence[float]) -> int:
        """Register a colour; returns its slot."""
        self.colors.append(color)
        return len(self.colors) - 1

    def add_many(self, colors: np.ndarray) -> np.ndarray:
        first = len(self.colors)
        self.colors.extend(np.asarray(colors, np.float32).reshape(-1, 3))
        return np.arange(first, len(self.colors), dtype=np.uint16)

    def put(self, r0: int, c0: int, cover: np.ndarray, slot: Any, shade: Any, lab: Any, depth: Any) -> None:
        """Write values (scalars or arrays broadcastable to ``cover``) where ``cover``."""
        h, w = cover.shape
        win = (slice(r0, r0 + h), slice(c0, c0 + w))
        np.copyto(self.slot[win], slot, where=cover, casting="unsafe")
        np.copyto(self.shade[win], shade, where=cover, casting="unsafe")
        np.copyto(self.lab[win], lab, where=cover, casting="unsafe")
        np.copyto(self.depth[win], depth, where=cover, casting="unsafe")


def _fmod(a: np.ndarray, p: Any) -> np.ndarray:
    """``a mod p`` for positive ``p`` (3× faster than numpy's ``%`` on floats)."""
    return a - np.floor(a / p) * p


def _noise_field(seed: int, shape: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [0, 1]: a small random grid upsampled bilinearly."""
    g = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return cv2.resize(g, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


def _draw_sky(fr: _Frame, w: _World) -> None:
    cam = fr.cam
    rows = int(np.clip(np.ceil(cam.y_h + 1), 1, cam.H))
    n = 48  # gradient steps, top → horizon
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    grad = np.asarray(w.sky_top, np.float32) * (1 - t) + np.asarray(w.sky_horizon, np.float32) * t
    slots = fr.add_many(grad)
    step = np.clip((fr.yc[:rows] / max(cam.y_h, 1.0) * (n - 1)).astype(np.int64), 0, n - 1)
    fr.slot[:rows] = slots[step][:, None]
    if w.clouds > 0:  # brighten towards white-ish; clipped at the end
        c = _noise_field(w.cloud_seed, (5, 9), (rows, cam.W))
        fr.shade[:rows] = 1 + np.clip((c - 0.45) * 2.5, 0, 1) * (w.clouds * 0.8)
    # distant skyline just above the horizon (far buildings, low contrast in the haze)
    prof = _noise_field(w.skyline_seed, (1, 24), (1, cam.W))[0]
    steps = _noise_field(w.skyline_seed + 1, (1, 90), (1, cam.W))[0]
    top_row = cam.y_h - (prof * 0.09 + (steps > 0.55) * 0.03) * cam.H
    cover = fr.yc[:rows, None] >= top_row[None, :]
    fr.put(0, 0, cover, fr.add(np.asarray(w.sky_horizon) * 0.8 + 20), 1.0, BUILDING, 400.0)


def _draw_ground(fr: _Frame, w: _World, cam_z: float) -> None:
    cam = fr.cam
    r0 = int(np.ceil(cam.y_h + 0.5))
    if r0 >= cam.H:
        return
    yc = fr.yc[r0:]
    zg = (cam.f * cam.hc / (yc - cam.y_h)).astype(np.float32)  # per-row depth (m)
    zw = zg + np.float32(cam_z)  # world depth
    kx = (fr.xc - cam.x_v) / np.float32(cam.f)
    xg = kx[None, :] * zg[:, None] + np.float32(cam.cam_x)  # rows×W lateral position (m)
    ax = np.abs(xg)
    road = ax < w.road_half
    # world-anchored asphalt / pavement variation, evaluated on a coarse grid and upsampled
    hs, ws = max(2, (cam.H - r0) // 6), max(2, cam.W // 6)
    zs = cv2.resize(zw[:, None], (1, hs), interpolation=cv2.INTER_AREA)[:, 0]
    xs = cv2.resize(xg, (ws, hs), interpolation=cv2.INTER_AREA)
    var = 1 + 0.08 * np.sin(0.9 * xs + 0.37 * zs[:, None]) * np.sin(0.21 * zs[:, None] - 0.5 * xs)
    shade = cv2.resize(var.astype(np.float32), (cam.W, cam.H - r0), interpolation=cv2.INTER_LINEAR)
    # markings: dashed centre line, edge lines, optional zebra crossing
    dash = _fmod(zw, 9.0) < 4.0
    marks = (ax < 0.08) & dash[:, None]
    marks |= np.abs(ax - (w.road_half - 0.35)) < 0.07
    for zc in w.crosswalks:
        band = (zw >= zc) & (zw < zc + 4.0)
        if band.any():
            marks |= band[:, None] & (_fmod(xg, 1.0) < 0.5)
    marks &= road
    # sidewalk: tile grooves and a bright kerb
    tiles = (_fmod(xg, 0.9) < 0.04) | (_fmod(zw, 0.9) < 0.04)[:, None]
    kerb = (ax >= w.road_half) & (ax < w.road_half + 0.18)
    shade[tiles & ~road] *= 0.8
    shade[kerb] = 1.15
    s_road, s_side, s_mark = (fr.add(c) for c in (w.road_color, w.sidewalk_color, w.marking_color))
    slot = np.where(road, np.uint16(s_road), np.uint16(s_side))
    slot[marks] = s_mark
    # building shadows: facades on the sun side shade the ground next to them
    if w.shadow < 1.0:
        side = w.sides[0] if w.sun_side < 0 else w.sides[1]
        idx = np.clip(np.searchsorted(side.z0, zw, side="right") - 1, 0, None)
        ok = (np.searchsorted(side.z0, zw, side="right") > 0) & (zw < side.z1[idx])
        hgt = np.where(ok, side.height[idx], 0.0).astype(np.float32)
        reach = side.facade_x - w.sun_k * hgt  # |X| beyond which the ground is in shadow
        shade[(xg * side.sign) > reach[:, None]] *= w.shadow
    fr.slot[r0:] = slot
    fr.shade[r0:] = shade
    fr.lab[r0:] = np.where(road, np.uint8(ROAD), np.uint8(SIDEWALK))
    fr.depth[r0:] = zg[:, None]


def _draw_facades(fr: _Frame, w: _World, cam_z: float, z_far: float) -> None:
    cam = fr.cam
    split = int(np.clip(round(cam.x_v), 0, cam.W))
    for side in w.sides:
        c0, c1 = (0, split) if side.sign < 0 else (split, cam.W)
        if c1 <= c0:
            continue
        dx = fr.xc[c0:c1] - cam.x_v
        xrel = side.sign * side.facade_x - cam.cam_x
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = cam.f * xrel / dx  # per-column depth of the facade plane
        zw = zc + cam_z
        idx = np.clip(np.searchsorted(side.z0, zw, side="right") - 1, 0, len(side.z0) - 1)
        valid = (zc > 0.3) & (zc < z_far) & (zw >= side.z0[idx]) & (zw < side.z1[idx])
        if not valid.any():
            continue
        zc = np.where(valid, zc, 1.0).astype(np.float32)
        hgt = side.height[idx]
        y_top = np.where(valid, cam.y_h + cam.f * (cam.hc - hgt) / zc, np.inf)
        y_bot = np.where(valid, cam.y_h + cam.f * cam.hc / zc, -np.inf)
        r0 = int(np.clip(np.floor(y_top.min()), 0, cam.H))
        r1 = int(np.clip(np.ceil(y_bot.max()) + 1, 0, cam.H))
        if r1 <= r0:
            continue
        yc = fr.yc[r0:r1, None]
        cover = (yc >= y_top) & (yc < y_bot) & (zc < fr.depth[r0:r1, c0:c1])
        if not cover.any():
            continue
        big_y = np.float32(cam.hc) - (yc - np.float32(cam.y_h)) * (zc / np.float32(cam.f))
        u = (zw - side.z0[idx]).astype(np.float32)  # distance along the facade (m)
        per, fh = side.win_period[idx], side.floor_h[idx].astype(np.float32)
        wcol = (
            (_fmod(u, per) > (per - side.win_width[idx])) & (u > 0.6) & (u < (side.z1 - side.z0)[idx] - 0.6)
        )
        yin = _fmod(big_y, fh)
        win = wcol & (yin > 0.8) & (yin < 0.8 + side.win_h[idx]) & (big_y > fh) & (big_y < hgt - 0.6)
        win |= side.shop[idx] & (big_y > 0.3) & (big_y < 2.6) & (_fmod(u, 6.0) > 0.5)
        sun = 1.12 if side.sign != w.sun_side else (0.7 if w.shadow < 1 else 0.9)
        base_slots = fr.add_many(side.color)
        glass_slots = fr.add_many(side.glass)
        slot = np.where(win, glass_slots[idx], base_slots[idx])
        shade = np.float32(sun) * (1 + 0.04 * np.sin(u * 2.3)).astype(np.float32)
        shade = np.where(
            win, 0.75 + 0.5 * yin / fh, np.where((yin < 0.18) & (big_y > 1.0), shade * 0.82, shade)
        )
        fr.put(r0, c0, cover, slot, shade, BUILDING, zc)


def _draw_fences(fr: _Frame, w: _World, cam_z: float) -> None:
    cam = fr.cam
    dx = fr.xc - cam.x_v
    for side in w.sides:
        for fx, z0, z1, fh, spacing, color in side.fences:
            with np.errstate(divide="ignore", invalid="ignore"):
                zc = cam.f * (fx - cam.cam_x) / dx
            zw = zc + cam_z
            valid = (zc > 0.5) & (zw >= z0) & (zw < z1)
            if not valid.any():
                continue
            cols = np.flatnonzero(valid)
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            zc, zw = zc[c0:c1].astype(np.float32), zw[c0:c1]
            y_top = cam.y_h + cam.f * (cam.hc - fh - 0.1) / zc
            y_bot = cam.y_h + cam.f * cam.hc / zc
            r0 = int(np.clip(np.floor(y_top.min()), 0, cam.H))
            r1 = int(np.clip(np.ceil(y_bot.max()) + 1, 0, cam.H))
            if r1 <= r0:
                continue
            u = zw - z0
            m_per_px = zc / cam.f
            bar_w = np.maximum(0.05, m_per_px)  # at least ~1 px wide
            bars = (_fmod(u, spacing) < bar_w) | (u < 0.1) | (u > (z1 - z0) - 0.1)
            yc = fr.yc[r0:r1, None]
            big_y = cam.hc - (yc - cam.y_h) * m_per_px
            rail_w = np.maximum(0.06, m_per_px)
            rails = (np.abs(big_y - fh) < rail_w) | (np.abs(big_y - 0.15) < rail_w)
            cover = (
                (big_y >= 0)
                & (big_y <= fh + rail_w)
                & (bars | rails)
                & valid[c0:c1]
                & (zc < fr.depth[r0:r1, c0:c1])
            )
            if cover.any():
                fr.put(r0, c0, cover, fr.add(color), 0.85 + 0.3 * (big_y / fh), FENCE, zc)
