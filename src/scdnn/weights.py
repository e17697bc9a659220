"""Weights files: safetensors with the model card (``model.json``) embedded.

A weights file carries everything needed to rebuild its network: the card travels in the
safetensors metadata under the key ``scdnn``, and is also written beside it as ``model.json``
for people to read. Loading never executes code: safetensors holds tensors and strings only.

The card's ``dtype`` says how the tensors are stored, and :func:`save_weights` stores them so:
float32 (``None``), ``"float16"``, or ``"int8"``: every floating tensor of at least
:data:`INT8_MIN_ELEMENTS` elements (the large convolution kernels) as int8 with one float32
scale per slice of its first axis (symmetric, the slice's largest magnitude / 127, kept under
the tensor's name + :data:`INT8_SCALE_SUFFIX`), the other floating tensors as float16.
:func:`load_model` always rebuilds the float32 network. A compact file is checked against the
float32 one before it is shipped (``benchmarks/bundle.py``: equal masks on ≥ 99.9 % of the
test pixels).
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
#: Storage dtypes of a weights file (the card's ``dtype``; None is float32).
STORAGE_DTYPES = (None, "float32", "float16", "int8")
#: ``dtype="int8"``: floating tensors with at least this many elements are stored as int8.
INT8_MIN_ELEMENTS = 65536
#: ``dtype="int8"``: the per-slice scales of tensor ``k`` are stored as ``k + INT8_SCALE_SUFFIX``.
INT8_SCALE_SUFFIX = ".int8_scale"


def stored_state(model: torch.nn.Module, dtype: str | None) -> dict[str, torch.Tensor]:
    """``model``'s state as a file of storage ``dtype`` holds it (module docstring)."""
    if dtype not in STORAGE_DTYPES:
        raise InvalidValueError(f"unknown weights storage dtype {dtype!r}; choose from: "
                                "float32, float16, int8", option="dtype")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype in (None, "float32"):
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    stored = {}
    for key, value in state.items():
        if not value.is_floating_point():
            stored[key] = value
        elif dtype == "int8" and value.dim() >= 1 and value.numel() >= INT8_MIN_ELEMENTS:
            flat = value.float().reshape(value.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127
            stored[key] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(
                torch.int8).reshape(value.shape).contiguous()
            stored[key + INT8_SCALE_SUFFIX] = scale.contiguous()
        else:
            stored[key] = value.half()
    return stored


def _float_state(state: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """An ``int8`` file's tensors back in floating point (int8 × its scales)."""
    out = {}
    for key, value in state.items():
        if key.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = state.get(key + INT8_SCALE_SUFFIX)
        if scale is None and value.dtype == torch.int8:
            raise InvalidValueError(f"weights tensor '{key}' is int8 without its scales", path)
        if scale is not None:
            if value.dtype != torch.int8 or scale.shape != value.shape[:1]:
                raise InvalidValueError(f"weights tensor '{key}' does not match its int8 "
                                        "scales", path)
            value = value.float() * scale.float().reshape(-1, *([1] * (value.dim() - 1)))
        out[key] = value
    return out


def save_weights(model: torch.nn.Module, path: str | os.PathLike, card: ModelCard) -> None:
    """Write ``model``'s state as safetensors at ``path`` and ``card`` as model.json beside it.

    The tensors are stored as the card's ``dtype`` says (:func:`stored_state`).

    The options of :data:`scdnn.records.LEGACY_MODEL_KWARGS` are written in the card's
    ``model_kwargs`` as ``model`` has them (its tensors' shapes depend on them), whatever the
    card said: a card without them is read with their old values."""
    path = Path(path)
    network = base_network(model)
    recorded = {key: getattr(network, key) for key in LEGACY_MODEL_KWARGS.get(card.model, {})
                if hasattr(network, key)}
    card = dataclasses.replace(card, model_kwargs={**card.model_kwargs, **recorded})
    state = stored_state(model, card.dtype)
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

    The network is always float32; a file stored in float16 or int8 is converted on load."""
    card = read_card(path)
    if card.dtype not in STORAGE_DTYPES:
        raise InvalidValueError(f"model card: unknown storage dtype {card.dtype!r} (this "
                                "version reads float32, float16 and int8)", path)
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
    # A file stored in float16 or int8 (card "dtype", e.g. the bundled weights) loads into
    # the float32 network: floating tensors are cast to the model's own dtypes.
    if card.dtype == "int8":
        state = _float_state(state, path)
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
