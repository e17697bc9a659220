"""scdnn: landslide boundary segmentation with SCDnn (Li et al. 2024, China Geology).

The Python API::

    import scdnn

    predictor = scdnn.Predictor.from_file("run/weights.safetensors")   # or an ONNX model
    mask = predictor.predict(image)                  # H x W x C uint8 -> H x W 0/1
    scdnn.map_scene("scene.tif", predictor, "map-out", tiling=scdnn.Tiling(tile=1024),
                    cleaning=scdnn.OutlineCleaning())   # None: the raw mask
    metrics = scdnn.evaluate_masks([mask], [truth])  # the metrics of scdnn evaluate
    net = scdnn.create_model("scdnn", in_channels=3)  # a fresh network

``import scdnn`` is cheap: the names below (and the subpackages, ``scdnn.mapping``...) are
imported on first use (PEP 562), so torch is loaded only when a model is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Predictor": "scdnn.predictor",
    "map_scene": "scdnn.mapping",
    "predict_scene": "scdnn.mapping",
    "Tiling": "scdnn.mapping",
    "OutlineCleaning": "scdnn.outlines",
    "create_model": "scdnn.models",
    "MODEL_NAMES": "scdnn.models",
    "evaluate_masks": "scdnn.metrics",
    "evaluate": "scdnn.evaluation",
    "train": "scdnn.trainers",
    "TrainConfig": "scdnn.trainers",
    "open_source": "scdnn.datasets.source",
    "ModelCard": "scdnn.records",
    "MappingUnit": "scdnn.records",
    "Normalization": "scdnn.records",
    "ScdnnError": "scdnn.errors",
    "InvalidValueError": "scdnn.errors",
    "InputFileError": "scdnn.errors",
    "InputFileNotFoundError": "scdnn.errors",
}

_SUBMODULES = ("benchmark", "cli", "datasets", "demo", "engines", "errors", "evaluation",
               "export", "inference", "mapping", "metrics", "models", "outlines", "overlay",
               "predictor",
               "records", "report", "runs", "trainers", "weights")

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .datasets.source import open_source as open_source
    from .errors import InputFileError as InputFileError
    from .errors import InputFileNotFoundError as InputFileNotFoundError
    from .errors import InvalidValueError as InvalidValueError
    from .errors import ScdnnError as ScdnnError
    from .evaluation import evaluate as evaluate
    from .mapping import Tiling as Tiling
    from .mapping import map_scene as map_scene
    from .mapping import predict_scene as predict_scene
    from .metrics import evaluate_masks as evaluate_masks
    from .models import MODEL_NAMES as MODEL_NAMES
    from .models import create_model as create_model
    from .outlines import OutlineCleaning as OutlineCleaning
    from .predictor import Predictor as Predictor
    from .records import MappingUnit as MappingUnit
    from .records import ModelCard as ModelCard
    from .records import Normalization as Normalization
    from .trainers import TrainConfig as TrainConfig
    from .trainers import train as train


def __getattr__(name: str) -> Any:
    """Import a public name (or a subpackage) on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
