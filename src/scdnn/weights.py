"""Weights files: safetensors with the model card (``model.json``) embedded.

A weights file carries everything needed to rebuild its network: the card travels in the
safetensors metadata under the key ``scdnn``, and is also written beside it as ``model.json``
for people to read. Loading never executes code: safetensors holds tensors and strings only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import InputFileError, InputFileNotFoundError, InvalidValueError
from .models import create_model
from .models.rescaled import base_network
from .records import LEGACY_MODEL_KWARGS, ModelCard
from .runs import atomic_path, write_json

METADATA_KEY = "scdnn"


def save_weights(model: torch.nn.Module, path: str | os.PathLike, card: ModelCard) -> None:
    """Write ``model``'s state as safetensors at ``path`` and ``card`` as model.json beside it.

    The options of :data:`scdnn.records.LEGACY_MODEL_KWARGS` are written in the card's
    ``model_kwargs`` as ``model`` has them (its tensors' shapes depend on them), whatever the
    card said: a card without them is read with their old values."""
    path = Path(path)
    network = base_network(model)
    recorded = {key: getattr(network, key) for key in LEGACY_MODEL_KWARGS.get(card.model, {})
                if hasattr(network, key)}
    card = dataclasses.replace(card, model_kwargs={**card.model_kwargs, **recorded})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(card.to_dict(), default=str)})
    write_json(path.with_name("model.json"), card.to_dict())


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card embedded in a weights file, every field checked."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError("weights file does not exist", path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(f"not a safetensors weights file ({exc})", path) from None
    if METADATA_KEY not in metadata:
        raise InvalidValueError("safetensors file has no scdnn model card (not written by scdnn)",
                                path)
    try:
        data = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError:
        raise InvalidValueError("the model card in the weights file is not valid JSON",
                                path) from None
    return ModelCard.from_dict(data, path)


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the network a weights file describes and load its tensors (eval mode).

    The network is always float32; a file stored in half precision is cast on load."""
    card = read_card(path)
    try:
        model = create_model(
            card.model,
            in_channels=card.in_channels,
            num_classes=card.num_classes,
            **card.model_kwargs,
        )
    except (InvalidValueError, TypeError) as exc:
        raise InvalidValueError(f"model card: {exc}", path) from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise InputFileError(f"cannot read weights ({exc})", path) from None
    # A file stored in half precision (card "dtype": "float16", e.g. the bundled weights)
    # loads into the float32 network: floating tensors are cast to the model's own dtypes.
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point()
             and own[k].is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise InvalidValueError(f"weights do not match model '{card.model}': {first}",
                                path) from None
    model.eval()
    return model, card
