"""A loaded model: the network, its model card and the device it runs on.

::

    from scdnn import Predictor

    predictor = Predictor.from_file("run/weights.safetensors")
    probability = predictor.probability(image)   # H x W x C uint8 -> H x W float32
    mask = predictor.predict(image)              # H x W uint8, 1 = landslide

:class:`Predictor` is what every prediction in the package goes through: ``scdnn predict``
(:func:`scdnn.inference.predict_folder`), ``scdnn map`` (:func:`scdnn.mapping.map_scene`,
window by window through :mod:`scdnn.mapping.core`) and ``scdnn evaluate`` on scenes. The
network is either a torch module (a weights file, :func:`scdnn.weights.load_model`) or an
ONNX model run by ONNX Runtime on the CPU (:class:`scdnn.engines.OnnxModel`); both take a
normalised float32 batch ``N x C x H x W`` and return logits ``N x classes x H x W``, so
nothing else cares which one runs.

Test-time augmentation (``tta``): ``"flips"`` averages the landslide probabilities of the
image as it is and flipped left-right and upside down, ``"d4"`` those of its 8 dihedral
transforms (4 rotations by 90°, each also mirrored); each prediction is transformed back
before the average. It happens on the normalised batch, around the network (either engine),
so a window of ``scdnn map`` is the same window with or without it; it costs 3 or 8 forward
passes instead of 1 (``benchmarks/results/tta-cost.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .engines import ENGINES, OnnxModel, _is_onnx, _is_safetensors
from .errors import InputFileError, InputFileNotFoundError, InvalidValueError, ScdnnError, param
from .records import ModelCard, Normalization
from .weights import load_model

__all__ = ["Predictor", "TTA_MODES", "tta_transforms"]

#: Test-time augmentations: ``none``, ``flips`` (identity, left-right, upside down), ``d4``
#: (the 8 rotations and reflections of the square).
TTA_MODES: tuple[str, ...] = ("none", "flips", "d4")

_Transform = Callable[[torch.Tensor], torch.Tensor]


def _flip_w(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-1,))


def _flip_h(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-2,))


def _rotation(k: int, mirror: bool) -> tuple[_Transform, _Transform]:
    """``x -> rot90(mirror(x), k)`` and its inverse, on the last two axes."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(_flip_w(x) if mirror else x, k, dims=(-2, -1))

    def inverse(y: torch.Tensor) -> torch.Tensor:
        y = torch.rot90(y, -k, dims=(-2, -1))
        return _flip_w(y) if mirror else y

    return forward, inverse


def tta_transforms(tta: str) -> list[tuple[_Transform, _Transform]]:
    """The (transform, inverse) pairs of a test-time augmentation (:data:`TTA_MODES`), on the
    last two (height, width) axes; the identity first."""
    if tta == "none":
        return [(_identity, _identity)]
    if tta == "flips":
        return [(_identity, _identity), (_flip_w, _flip_w), (_flip_h, _flip_h)]
    if tta == "d4":
        return [_rotation(k, mirror) for mirror in (False, True) for k in range(4)]
    raise InvalidValueError(f"unknown test-time augmentation '{tta}'; choose from: "
                            f"{', '.join(TTA_MODES)}", option="tta")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Predictor:
    """A network with its model card, on a device, ready to predict landslides.

    Parameters
    ----------
    model : torch.nn.Module or scdnn.engines.OnnxModel
        The network: maps a normalised float32 batch ``N x C x H x W`` to logits
        ``N x classes x H x W`` (class 1 is landslide). It is put in evaluation mode and
        moved to ``device``.
    card : ModelCard
        The network's card: input bands, their names and normalisation.
    device : str or torch.device
        Where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); an ONNX model runs
        on the CPU only.
    source : path, optional
        The file the model was loaded from (:meth:`from_file` sets it; ``scdnn map`` writes
        it into map.json).
    tta : {"none", "flips", "d4"}
        Test-time augmentation: average the landslide probabilities over the identity and
        the two flips, or over the 8 dihedral transforms, each transformed back (module
        docstring). ``"none"`` (default): one pass.

    Raises
    ------
    InvalidValueError
        ``card`` is not a :class:`ModelCard`, an unknown ``tta``, or the model cannot be
        moved to ``device``.
    """

    def __init__(self, model: Any, card: ModelCard, device: str | torch.device = "cpu", *,
                 source: str | os.PathLike | None = None, tta: str = "none"):
        if not isinstance(card, ModelCard):
            raise InvalidValueError(f"must be a ModelCard, got {type(card).__name__}",
                                    option="card")
        tta_transforms(tta)  # an unknown mode fails here
        self.tta = tta
        self.model = model
        self._card = card
        self._source = source
        self.device = move_to_device(model, device)
        model.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike, engine: str = "torch",
                  device: str | torch.device = "cpu", tta: str = "none") -> Predictor:
        """Load the model in ``path``.

        Parameters
        ----------
        path : path
            ``engine="torch"``: a weights file (``.safetensors`` with its model card, as
            ``scdnn train`` writes); ``engine="onnxruntime"``: an ONNX model from
            ``scdnn export``.
        engine : {"torch", "onnxruntime"}
            What runs the network.
        device : str or torch.device
            Where it runs (the CPU only for ONNX Runtime).
        tta : {"none", "flips", "d4"}
            Test-time augmentation (see the class).

        Raises
        ------
        InvalidValueError
            An unknown engine, device or tta, or a model card that does not fit the tensors.
        InputFileNotFoundError
            ``path`` does not exist.
        InputFileError
            ``path`` is unreadable, or a file for the other engine.
        """
        if engine not in ENGINES:
            raise InvalidValueError(f"unknown engine '{engine}'; choose from: "
                                    f"{', '.join(ENGINES)}")
        tta_transforms(tta)  # an unknown mode fails before the file is read
        file = Path(path)
        if not file.is_file():
            raise InputFileNotFoundError("model file does not exist" if engine == "onnxruntime"
                                         else "weights file does not exist", file)
        if engine == "onnxruntime":
            model = OnnxModel(file)
            card = model.card
        else:
            if not _is_safetensors(file) and _is_onnx(file):
                raise InputFileError(f"is an ONNX model, not a weights file; use "
                                     f"{param('engine')} onnxruntime", file)
            model, card = load_model(file)
        return cls(model, card, device, source=path, tta=tta)

    # --- what the model is ---------------------------------------------------------------

    @property
    def card(self) -> ModelCard:
        """The model card (network, inputs, normalisation, training configuration)."""
        return self._card

    @property
    def normalization(self) -> Normalization:
        """Per-band mean and std the network's input is normalised with."""
        return self._card.normalization

    @property
    def in_channels(self) -> int:
        """Number of input bands."""
        return self._card.in_channels

    @property
    def inputs(self) -> list[str]:
        """Names of the input bands (``red, green, blue[, slope, relative_elevation]``)."""
        return list(self._card.inputs)

    @property
    def engine(self) -> str:
        """``"onnxruntime"`` for an ONNX model, else ``"torch"``."""
        return getattr(self.model, "engine", "torch")

    @property
    def source(self) -> str | os.PathLike | None:
        """The file the model was loaded from, as given (None when built from a module)."""
        return self._source

    @cached_property
    def output_stride(self) -> int:
        """The network's output stride: windows of a scene start at multiples of it
        (:mod:`scdnn.mapping.tiling`). The network's own ``output_stride`` attribute; for an
        ONNX model, that of the network its card names; 1 for a torch module without one."""
        stride = getattr(self.model, "output_stride", None)
        if stride is None and isinstance(self.model, torch.nn.Module):
            return 1
        if stride is None:
            from .models import create_model

            card = self._card
            stride = getattr(create_model(card.model, in_channels=card.in_channels,
                                          **card.model_kwargs), "output_stride", 1)
        return int(stride)

    # --- predicting ----------------------------------------------------------------------

    def probabilities(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """Landslide probability (softmax of class 1) of a normalised batch, averaged over
        the transforms of :attr:`tta` (each transformed back).

        Parameters
        ----------
        batch : torch.Tensor or numpy array
            ``N x in_channels x H x W``, already normalised (:attr:`normalization`); moved to
            the predictor's device.

        Returns
        -------
        numpy array
            ``N x H x W`` float32 in [0, 1].

        Raises
        ------
        InvalidValueError
            ``batch`` is not ``N x in_channels x H x W``.
        """
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if batch.ndim != 4 or batch.shape[1] != self.in_channels:
            raise InvalidValueError(f"must be N x {self.in_channels} x H x W, got shape "
                                    f"{tuple(batch.shape)}", option="batch")
        if batch.dtype != torch.float32:
            batch = batch.float()
        return landslide_softmax(self.model, batch.to(self.device), self.tta)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """Landslide probability of one image, predicted whole at its own size.

        Parameters
        ----------
        image : numpy array
            ``H x W x C`` uint8, the bands the model takes in the order of :attr:`inputs`
            (``H x W`` for a one-band model). Images larger than memory allows: map them as
            a scene, window by window (:func:`scdnn.mapping.map_scene`).

        Returns
        -------
        numpy array
            ``H x W`` float32 in [0, 1].

        Raises
        ------
        InvalidValueError
            The image is not uint8, not 2- or 3-dimensional, empty, or has another number of
            bands than the model takes.
        """
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or 0 in image.shape[:2]:
            raise InvalidValueError(f"must be an H x W x C array, got shape {image.shape}",
                                    option="image")
        if image.dtype != np.uint8:
            raise InvalidValueError(f"must be uint8 (pixel values 0-255, as the model was "
                                    f"trained on), got {image.dtype}", option="image")
        if image.shape[2] != self.in_channels:
            raise InvalidValueError(f"has {image.shape[2]} band(s) but the model takes "
                                    f"{self.in_channels}{_names(self.inputs)}", option="image")
        x = torch.from_numpy(self.normalization.apply(image))[None]
        return self.probabilities(x)[0]

    def predict(self, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Landslide mask of one image: ``H x W`` uint8, 1 where the probability is at least
        ``threshold``, else 0 (see :meth:`probability`)."""
        if not 0 < threshold < 1:
            raise InvalidValueError(f"must be strictly between 0 and 1, got {threshold}",
                                    option="threshold")
        return (self.probability(image) >= threshold).astype(np.uint8)

    def __repr__(self) -> str:
        source = f", source='{self._source}'" if self._source is not None else ""
        tta = f", tta={self.tta!r}" if self.tta != "none" else ""
        return (f"Predictor(model={self._card.model!r}, inputs={self.inputs}, "
                f"engine={self.engine!r}, device='{self.device}'{tta}{source})")


def landslide_softmax(model: Any, batch: torch.Tensor, tta: str = "none") -> np.ndarray:
    """Softmax probability of class 1 (landslide) of ``model`` on a normalised batch that is
    already on the model's device: ``N x H x W`` float32. With ``tta`` other than
    ``"none"``, the mean over its transforms of the probabilities of the transformed batch,
    each transformed back (:func:`tta_transforms`); one transform at a time, so memory is that
    of one pass."""
    transforms = tta_transforms(tta)
    total = None
    with torch.inference_mode():
        for forward, inverse in transforms:
            logits = model(forward(batch))
            probability = inverse(torch.softmax(logits.float(), dim=1)[:, 1])
            total = probability if total is None else total + probability
    if len(transforms) > 1:
        total = total / len(transforms)
    return total.cpu().numpy()


def move_to_device(model: Any, device: str | torch.device) -> torch.device:
    """Move ``model`` to ``device``; InvalidValueError when that device cannot be used."""
    try:
        target = torch.device(device)
        model.to(target)
    except ScdnnError:  # the model's own refusal (ONNX Runtime: the CPU only)
        raise
    except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(f"cannot use device '{device}': {first}") from None
    return target


def _names(inputs: list[str]) -> str:
    return f" ({', '.join(inputs)})" if inputs else ""
