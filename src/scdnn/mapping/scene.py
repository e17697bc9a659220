"""The scene reader lives in :mod:`scdnn.datasets.scene` (training and mapping share it)."""

from ..datasets.scene import Scene, open_scene

__all__ = ["Scene", "open_scene"]
