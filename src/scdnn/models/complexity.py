"""Model size and compute: trainable parameters and forward GFLOPs."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "gflops"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gflops(model: nn.Module, in_channels: int = 3, size: int = 256) -> float:
    """Forward-pass GFLOPs for one ``size`` x ``size`` image.

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as
    2 FLOPs; convolutions, transposed convolutions and matrix products are counted, pooling,
    normalization and activations are not), with the model in eval mode and without
    gradients. The model's training mode is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        The network.
    in_channels : int
        Input bands.
    size : int
        Image height and width.

    Returns
    -------
    float
        FLOPs / 1e9.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, in_channels, size, size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9
