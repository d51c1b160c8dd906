"""Writing rendered scenes to disk: a dataset in the ``folder`` layout and a demo video."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rdd.spec import CAMVID_CLASSES, as_hw, atomic_path, temp_sibling, write_json_atomic, write_text_atomic

from .render import _render, render_scene
from .world import NUM_CLASSES, _make_world


def _scene_seed(seed: int, split: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), split, index]).generate_state(1)[0])


def _classes_yaml() -> str:
    lines = [
        "# CamVid 11-class label space (synthetic street scenes)",
        "names: [" + ", ".join(CAMVID_CLASSES.names) + "]",
        "palette:",
    ]
    lines += [f"  - [{r}, {g}, {b}]" for r, g, b in CAMVID_CLASSES.palette]
    lines.append(f"ignore_index: {CAMVID_CLASSES.ignore_index}")
    return "\n".join(lines) + "\n"


def _imwrite(path: Path, arr: np.ndarray) -> None:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), arr, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"could not write {path}")


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Move the finished ``tmp`` folder onto ``dst`` (replacing an old one) by renames."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():  # left over by a crash
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_synthetic_dataset(
    root: str | os.PathLike,
    n_train: int = 300,
    n_val: int = 60,
    size: int | Sequence[int] = (360, 480),
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``n_train`` + ``n_val`` scenes in the ``folder`` layout, atomically::

        root/images/{train,val}/000000.png  root/masks/{train,val}/000000.png
        root/classes.yaml  root/summary.json

    Everything is written to a temporary sibling folder that is renamed onto ``root`` at the
    end (an existing ``root`` is replaced). Returns the summary (also in ``summary.json``):
    counts, size, seed, class names and per-split class pixel frequencies.
    """
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise ValueError(
            f"write_synthetic_dataset: need n_train, n_val >= 0 and at least one "
            f"scene, got n_train={n_train}, n_val={n_val}"
        )
    H, W = as_hw(size)
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(root, directory=True)  # mode as mkdir gives under the umask
    try:
        freqs: dict[str, list[float]] = {}
        ignore: dict[str, float] = {}
        for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "masks" / split).mkdir(parents=True)
            counts = np.zeros(256, np.int64)
            it = range(n)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc=f"synthetic {split}")
            for i in it:
                image, mask = render_scene(_scene_seed(seed, split_id, i), (H, W))
                _imwrite(tmp / "images" / split / f"{i:06d}.png", image)
                _imwrite(tmp / "masks" / split / f"{i:06d}.png", mask)
                counts += np.bincount(mask.ravel(), minlength=256)
            labelled = max(int(counts[:NUM_CLASSES].sum()), 1)
            freqs[split] = [round(float(c) / labelled, 6) for c in counts[:NUM_CLASSES]]
            ignore[split] = round(float(counts[255]) / max(int(counts.sum()), 1), 6)
        summary = {
            "n_train": n_train,
            "n_val": n_val,
            "size": [H, W],
            "seed": int(seed),
            "classes": list(CAMVID_CLASSES.names),
            "class_pixel_frequency": freqs,
            "ignore_fraction": ignore,
        }
        write_text_atomic(tmp / "classes.yaml", _classes_yaml())
        write_json_atomic(tmp / "summary.json", summary)
        _replace_dir(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


def write_synthetic_video(
    video_path: str | os.PathLike,
    masks_dir: str | os.PathLike | None,
    n_frames: int,
    size: int | Sequence[int] = (360, 480),
    seed: int = 0,
    fps: float = 15.0,
    *,
    images_dir: str | os.PathLike | None = None,
    speed: float = 8.0,
) -> dict[str, Any]:
    """Write a clip of one moving street: the camera drives forward at ``speed`` m/s, traffic,
    cyclists and pedestrians move, lighting stays fixed.

    Writes ``video_path`` (mp4, ``mp4v`` codec, BGR frames via ``cv2.VideoWriter``), per-frame
    label masks ``masks_dir/frame_000000.png ...`` and, when ``images_dir`` is given, lossless
    PNG frames ``images_dir/frame_000000.png ...``. Each output is written atomically (temp file
    / temp folder, then rename). ``video_path=None`` skips the mp4. Returns a summary dict.
    """
    if n_frames < 1:
        raise ValueError(f"write_synthetic_video: n_frames must be >= 1, got {n_frames}")
    if fps <= 0:
        raise ValueError(f"write_synthetic_video: fps must be > 0, got {fps}")
    H, W = as_hw(size)
    ss = np.random.SeedSequence(int(seed))
    world_rng, noise_seq = ss.spawn(2)
    duration = n_frames / fps
    world = _make_world(np.random.default_rng(world_rng), 0.0, 110.0 + speed * duration, cam_speed=speed)
    noise_seeds = noise_seq.spawn(n_frames)

    outs: dict[str, tuple[Path, Path]] = {}  # kind → (temporary folder, final folder)
    counts = np.zeros(256, np.int64)
    try:
        for kind, d in (("masks", masks_dir), ("images", images_dir)):
            if d is not None:
                d = Path(d)
                d.parent.mkdir(parents=True, exist_ok=True)
                outs[kind] = (temp_sibling(d, directory=True), d)
        with ExitStack() as stack:
            writer = None
            if video_path is not None:
                tmp_video = stack.enter_context(atomic_path(video_path))  # renamed on success
                writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (W, H))
                if not writer.isOpened():
                    raise OSError(f"cv2.VideoWriter could not open {video_path} (mp4v codec)")
                stack.callback(writer.release)  # LIFO: released before the rename
            for i in range(n_frames):
                t = i / fps
                image, mask = _render(
                    world, (H, W), cam_z=speed * t, t=t, noise_rng=np.random.default_rng(noise_seeds[i])
                )
                counts += np.bincount(mask.ravel(), minlength=256)
                if writer is not None:
                    writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                if "masks" in outs:
                    _imwrite(outs["masks"][0] / f"frame_{i:06d}.png", mask)
                if "images" in outs:
                    _imwrite(outs["images"][0] / f"frame_{i:06d}.png", image)
        for tmp, dst in outs.values():
            _replace_dir(tmp, dst)
    finally:
        for tmp, _ in outs.values():
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    labelled = max(int(counts[:NUM_CLASSES].sum()), 1)
    return {
        "video": None if video_path is None else str(video_path),
        "masks_dir": None if masks_dir is None else str(masks_dir),
        "images_dir": None if images_dir is None else str(images_dir),
        "n_frames": n_frames,
        "fps": float(fps),
        "size": [H, W],
        "seed": int(seed),
        "speed_mps": speed,
        "class_pixel_frequency": [round(float(c) / labelled, 6) for c in counts[:NUM_CLASSES]],
    }
