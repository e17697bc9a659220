"""Training: the Lightning task, its data module and the ``scdnn train`` orchestration."""

from .data import SegmentationDataModule
from .task import SegmentationTask

__all__ = ["SegmentationDataModule", "SegmentationTask"]
