"""Training: the Lightning task, its data module and the ``scdnn train`` orchestration."""

from .data import SceneDataModule, SegmentationDataModule
from .fit import TrainConfig, train
from .mapping_unit import choose_mapping_unit
from .task import SegmentationTask

__all__ = ["TrainConfig", "train", "SegmentationTask", "SegmentationDataModule",
           "SceneDataModule", "choose_mapping_unit"]
