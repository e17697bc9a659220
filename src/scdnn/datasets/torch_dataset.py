"""The torch ``Dataset`` that feeds models: normalised tensors, optional augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .transforms import Normalization, seed_transform

__all__ = ["SegmentationDataset"]


class SegmentationDataset(Dataset):
    """Samples ``indices`` of a reader as normalised tensors.

    Parameters
    ----------
    base : a reader (:class:`ImageMaskFolder`, :class:`BijieLandslide`) whose items are
        ``dict(image=H x W x C uint8, mask=H x W uint8, name=str)``
    indices : positions in ``base`` (may repeat, e.g. several crops per image and epoch)
    normalization : per-band mean/std applied after the transform
    transform : an albumentations pipeline called as ``transform(image=..., mask=...)``
        (e.g. :func:`train_transform`); ``None`` keeps the native size (evaluation).

    Items are ``dict(image=float32 tensor C x H x W, mask=int64 tensor H x W with 0, 1 and
    255 = ignore (padding), name=str)``.

    In a DataLoader worker process an albumentations ``transform`` is reseeded once from
    the worker's torch seed (``get_worker_info().seed``), so that workers draw different
    augmentations and a seeded DataLoader stays reproducible.
    """

    def __init__(self, base: Any, indices: Sequence[int], normalization: Normalization,
                 transform: Callable[..., dict[str, Any]] | None = None):
        self.base = base
        self.indices = [int(i) for i in indices]
        self.normalization = normalization
        self.transform = transform
        self._seeded_for: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _reseed_in_worker(self) -> None:
        info = get_worker_info()
        if info is None or self._seeded_for == info.seed or self.transform is None:
            return
        if hasattr(self.transform, "set_random_state"):
            seed_transform(self.transform, info.seed % 2**63)
        self._seeded_for = info.seed

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[self.indices[i]]
        image, mask = item["image"], item["mask"]
        if self.transform is not None:
            self._reseed_in_worker()
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": torch.from_numpy(self.normalization.apply(image)),
            "mask": torch.from_numpy(np.asarray(mask, dtype=np.int64)),
            "name": item["name"],
        }
