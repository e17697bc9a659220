"""A small generated landslide-like dataset, for the offline demo and for tests.

Not real data: textured green-grey "vegetation" with brighter brown, smoother irregular
"landslide" scars. Written as an ``images/`` + ``masks/`` folder (masks 0/255), the same layout
as ../shared/data/sichuan-aerial, so it goes through exactly the same code path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


def synthetic_scene(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One (image HxWx3 uint8, mask HxW {0,1}) pair."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0.15, 0.85, 2) * size
        ry, rx = rng.uniform(0.06, 0.2, 2) * size
        angle = np.arctan2(yy - cy, xx - cx)
        wobble = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 6.3))
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < wobble**2
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (1.5, 1.5, 0))
    vegetation = np.array([70, 95, 60]) + 25 * texture
    scar = np.array([150, 120, 95]) + 10 * texture
    image = np.where(mask[..., None], scar, vegetation)
    image = ndimage.gaussian_filter(image, (0.8, 0.8, 0)) + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def write_synthetic_dataset(root: str | Path, count: int = 24, size: int = 128,
                            seed: int = 0) -> Path:
    """Write ``count`` pairs to ``root/images`` and ``root/masks`` (PNG, masks 0/255)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, mask = synthetic_scene(rng, size)
        Image.fromarray(image).save(root / "images" / f"synthetic-{i:03d}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"synthetic-{i:03d}.png")
    return root
