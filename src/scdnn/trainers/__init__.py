"""Training: the Lightning task, its data module and the ``scdnn train`` orchestration."""

from .data import SceneDataModule, SegmentationDataModule
from .fit import TrainConfig, train
from .task import SegmentationTask

__all__ = ["TrainConfig", "train", "SegmentationTask", "SegmentationDataModule",
           "SceneDataModule"]
