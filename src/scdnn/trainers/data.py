"""Lightning data module over any scdnn dataset reader and a train/val/test split."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, get_worker_info

from ..datasets import Normalization, SegmentationDataset, seed_transform, train_transform
from ..datasets.scenes import (
    RandomWindowSampler,
    SceneCollection,
    SceneWindowDataset,
    validation_windows,
)


class SegmentationDataModule(L.LightningDataModule):
    """Random ``image_size`` crops (with augmentation) for training; whole native-size images
    (batch size 1, since sizes vary) for validation.

    Parameters
    ----------
    dataset : a reader from :mod:`scdnn.datasets` (``ImageMaskFolder``, ``BijieLandslide``)
    train_indices, val_indices : positions in ``dataset``
    crops_per_image : random crops drawn from each training image per epoch (an epoch is
        ``len(train_indices) * crops_per_image`` samples)
    strong_augmentation : :func:`~scdnn.datasets.train_transform`'s ``strong`` (the
        ``default`` recipe)
    """

    def __init__(self, dataset, train_indices: list[int], val_indices: list[int],
                 normalization: Normalization, image_size: int = 256, batch_size: int = 8,
                 crops_per_image: int = 1, workers: int = 0, seed: int = 0,
                 strong_augmentation: bool = False) -> None:
        super().__init__()
        self.dataset = dataset
        self.strong_augmentation = strong_augmentation
        self.train_indices = list(train_indices) * crops_per_image
        self.val_indices = list(val_indices)
        self.normalization = normalization
        self.image_size = image_size
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        data = SegmentationDataset(self.dataset, self.train_indices, self.normalization,
                                   transform=train_transform(self.image_size,
                                                             strong=self.strong_augmentation))
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, generator=generator,
                          num_workers=self.workers, persistent_workers=self.workers > 0,
                          drop_last=len(data) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        data = SegmentationDataset(self.dataset, self.val_indices, self.normalization)
        return DataLoader(data, batch_size=1, num_workers=self.workers,
                          persistent_workers=self.workers > 0)

    def held_out_dataloader(self) -> DataLoader | None:
        """The validation images (whole, batch 1; no worker processes), None if there are
        none."""
        if not self.val_indices:
            return None
        return DataLoader(self.val_dataloader().dataset, batch_size=1)


def _reseed_worker_transform(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed the dataset's augmentation pipeline from the
    worker's torch seed. Every worker starts with a copy of the same seeded pipeline;
    without this, the workers would draw the same augmentations in step."""
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if hasattr(transform, "set_random_state"):
        seed_transform(transform, info.seed % 2**63)


class SceneDataModule(L.LightningDataModule):
    """Random training windows over georeferenced scenes; held-out blocks for validation.

    An epoch is ``sampler.length`` windows of ``sampler.size`` pixels (augmented like image
    crops); validation runs on every held-out block of the split (batch size 1: blocks at
    scene edges are smaller), scoring only valid labelled pixels.
    """

    def __init__(self, collection: SceneCollection, split: dict, sampler: RandomWindowSampler,
                 normalization: Normalization, batch_size: int = 8, workers: int = 0,
                 strong_augmentation: bool = False) -> None:
        super().__init__()
        self.strong_augmentation = strong_augmentation
        self.collection = collection
        self.split = split
        self.sampler = sampler
        self.normalization = normalization
        self.batch_size = batch_size
        self.workers = workers

    def train_dataloader(self) -> DataLoader:
        data = SceneWindowDataset(self.collection, self.normalization,
                                  transform=train_transform(self.sampler.size,
                                                            seed=self.split["seed"],
                                                            strong=self.strong_augmentation),
                                  sampler=self.sampler)
        return DataLoader(data, batch_size=self.batch_size, sampler=self.sampler,
                          num_workers=self.workers, persistent_workers=self.workers > 0,
                          drop_last=len(self.sampler) > self.batch_size,
                          worker_init_fn=_reseed_worker_transform if self.workers else None)

    def val_dataloader(self) -> DataLoader:
        windows = validation_windows(self.split)
        if not windows:  # nothing held out: validate on a fixed draw of training windows
            windows = [(n, r, c, s, s) for n, r, c, s in
                       self.sampler.fixed(8, self.split["seed"] + 2)]
        data = SceneWindowDataset(self.collection, self.normalization, windows=windows)
        return DataLoader(data, batch_size=1, num_workers=self.workers,
                          persistent_workers=self.workers > 0)

    def held_out_dataloader(self) -> DataLoader | None:
        """The validation windows held out of training (batch 1; no worker processes); None
        when nothing is held out (validation then draws training windows)."""
        if not validation_windows(self.split):
            return None
        return DataLoader(self.val_dataloader().dataset, batch_size=1)
