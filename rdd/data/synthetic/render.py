"""One frame: planes, sprites, lighting, haze, blur and sensor noise (:func:`render_scene`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rdd.spec import as_hw

from .raster import _draw_facades, _draw_fences, _draw_ground, _draw_sky, _Frame
from .sprites import _Canvas, _composite, _op_size, _sprite_ops, _sprite_shadow
from .world import FAR, _Camera, _make_world, _World

_NOISE_LUT = None


def _gauss_lut() -> np.ndarray:
    """256 standard-normal quantiles: uint8 uniform noise → Gaussian noise by table lookup
    (luminance noise, the same on the three channels)."""
    global _NOISE_LUT
    if _NOISE_LUT is None:
        from statistics import NormalDist

        nd = NormalDist()
        _NOISE_LUT = np.array([nd.inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)
    return _NOISE_LUT


def _render(
    world: _World, size: tuple[int, int], cam_z: float, t: float, noise_rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    H, W = size
    k = world.camera_kw
    cam = _Camera(
        H=H,
        W=W,
        f=k["f_rel"] * W,
        hc=k["hc"],
        y_h=k["y_h_rel"] * H,
        x_v=k["x_v_rel"] * W,
        cam_x=k["cam_x_rel"] * world.road_half,
    )
    fr = _Frame(cam)
    _draw_sky(fr, world)
    _draw_ground(fr, world, cam_z)
    _draw_facades(fr, world, cam_z, z_far=300.0)
    _draw_fences(fr, world, cam_z)
    # sprites at their current depth; behind the camera, too close or under ~3 px: culled
    visible = []
    for sp in world.sprites:
        z = sp.z + sp.vz * t - cam_z
        if 2.0 < z < 150.0 and cam.f * 1.6 / z >= 4.0:
            visible.append((z, sp))
    for z, sp in visible:
        if sp.kind in ("car", "person", "cyclist"):
            _sprite_shadow(fr, sp, z)
    for z, sp in visible:
        ops, extent = _sprite_ops(sp, cam, t, z)
        ops = [op for op in ops if _op_size(op) * (cam.f / z) >= 1.0]  # level of detail
        _composite(fr, _Canvas(cam, sp.x, z, ops, extent), z)
    # colour = palette[slot] · shade, hazed towards the horizon colour, blurred, plus sensor
    # noise — done channel by channel on 2-D arrays (cheaper than H×W×3 temporaries)
    pal = np.asarray(fr.colors, np.float32).reshape(-1, 3)
    pal *= np.asarray(world.tint, np.float32) * np.float32(world.gain)
    d = fr.depth / np.float32(world.fog)
    haze = 1 - 1 / (1 + d + 0.5 * d * d)  # ≈ 1 - exp(-depth / fog)
    haze[fr.depth >= FAR] = 0
    keep = fr.shade * (1 - haze)
    horizon = np.asarray(world.sky_horizon, np.float32) * np.float32(world.gain)
    noise = np.take(
        _gauss_lut() * np.float32(world.noise), noise_rng.integers(0, 256, (H, W), dtype=np.uint8)
    )
    noise += np.float32(0.5)  # rounding offset for the final truncation
    chans = []
    for c in range(3):
        ch = np.take(pal[:, c], fr.slot)
        ch *= keep
        ch += horizon[c] * haze
        if world.blur == "gauss":
            ch = cv2.GaussianBlur(ch, (0, 0), world.blur_amount)
        elif world.blur == "motion":
            n = max(3, int(round(world.blur_amount * 6)) | 1)
            ch = cv2.blur(ch, (n, 1))
        ch += noise
        chans.append(ch)
    img = cv2.merge(chans)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), fr.lab


# --------------------------------------------------------------------------- public API
def render_scene(seed: int, size: int | Sequence[int] = (360, 480)) -> tuple[np.ndarray, np.ndarray]:
    """Render one random street scene.

    Args:
        seed: any non-negative int; the same seed gives the same scene (bit-exact).
        size: ``(H, W)`` or one int.
    Returns:
        ``image``: uint8 ``H×W×3`` RGB; ``mask``: uint8 ``H×W`` CamVid train ids
        ``[0, 11)`` plus 255 for unlabelled clutter.
    """
    H, W = as_hw(size)
    if H < 8 or W < 8:
        raise ValueError(f"render_scene: size must be at least 8×8, got {(H, W)}")
    ss = np.random.SeedSequence(int(seed))
    world_rng, noise_rng = (np.random.default_rng(s) for s in ss.spawn(2))
    world = _make_world(world_rng, 0.0, 110.0)
    return _render(world, (H, W), cam_z=0.0, t=0.0, noise_rng=noise_rng)
