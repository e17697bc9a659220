"""Pretrained encoder weights for the smp DeepLab v3+ baselines, from a local file.

Nothing is downloaded: ``scdnn train --encoder-weights FILE`` reads FILE, which is either a
safetensors file or a torch file that ``torch.load(..., weights_only=True)`` accepts (tensors
in dicts and lists). A plain pickle is never unpickled: ``weights_only`` refuses anything
that would run code, and so does this module, with one line naming the file.

The file holds the encoder's state dict: the keys of the smp encoder (``conv1.weight``,
``layer1.0.conv1.weight`` ... for ResNet50; ``features.0.0.weight`` ... for MobileNetV2),
as torchvision's ImageNet checkpoints have them; a classifier head (``fc.*``,
``classifier.*``) is dropped, an ``encoder.`` prefix (a whole smp model's state dict) is
stripped, and a ``{"state_dict": ...}`` wrapper is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError, param
from .rescaled import base_network

__all__ = ["encoder_of", "load_encoder_weights", "read_encoder_weights"]

_HEADS = ("fc.", "classifier.")


def encoder_of(model: nn.Module, name: str = "") -> nn.Module:
    """The smp encoder of ``model`` (a :class:`~scdnn.models.DeepLabV3Plus`).

    Raises
    ------
    InvalidValueError
        The network has no smp encoder (SCDnn, SSSN, SegNet).
    """
    encoder = getattr(getattr(base_network(model), "net", None), "encoder", None)
    if not isinstance(encoder, nn.Module):
        network = name or type(model).__name__
        raise InvalidValueError(f"{param('encoder_weights')}: network '{network}' has no "
                                "pretrained-encoder backbone; only deeplabv3plus"
                                "-resnet50 and deeplabv3plus-mobilenetv2 take encoder weights")
    return encoder


def read_encoder_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` (safetensors, or a torch file loaded with
    ``weights_only=True``), with a classifier head and an ``encoder.`` prefix removed.

    Raises
    ------
    InputFileError
        Missing file, a pickle that would run code, or no tensors in it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError("encoder weights file does not exist", path)
    with open(path, "rb") as handle:
        head = handle.read(16)
    state = None
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            if path.suffix == ".safetensors":
                raise InputFileError(f"not a readable safetensors file: {_first_line(exc)}",
                                     path) from None
    if state is None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is refused
            raise InputFileError("not a safetensors file nor a torch file of plain tensors "
                                 "(loaded with weights_only=True; pickled code is refused): "
                                 f"{_first_line(exc)}", path) from None
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputFileError("holds no state dict (a mapping of names to tensors)", path)
    if all(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(_HEADS)}


def load_encoder_weights(model: nn.Module, path: str | os.PathLike,
                         name: str = "") -> nn.Module:
    """Copy the encoder weights of ``path`` into ``model``'s smp encoder; returns ``model``.

    Every encoder tensor must be in the file with its shape, and the file must hold nothing
    else (besides a classifier head).

    Raises
    ------
    InvalidValueError
        The network has no smp encoder.
    InputFileError
        Unreadable or unsafe file, or keys or shapes that do not match the encoder.
    """
    encoder = encoder_of(model, name)
    state = read_encoder_weights(path)
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("of another shape", wrong)):
            if keys:
                shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
                parts.append(f"{len(keys)} {label} ({shown})")
        kind = getattr(model, "encoder_name", "the")
        raise InputFileError(f"does not fit the {kind} encoder: keys " + "; ".join(parts), path)
    with torch.no_grad():
        for key, value in expected.items():
            value.copy_(state[key].to(value.dtype))
    return model


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    return len(head) > 9 and head[8:9] == b"{"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
