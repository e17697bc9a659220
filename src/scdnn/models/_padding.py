"""Pad an input to a multiple of a network's output stride, and crop the logits back.

Every network in :mod:`scdnn.models` accepts images of any height and width. Its forward pass
pads the input with **zeros at the bottom and right** up to a multiple of its output stride
(16 for SCDnn and DeepLab v3+, 32 for SegNet, 4 for SSSN), runs the network, and crops the
logits back to the input's height and width. Zero padding works for every size, a 1x1 image
included (reflect padding fails when the pad is as large as the image), and padding only at
the bottom and right keeps pixel (0, 0) of the output on pixel (0, 0) of the input, so the
crop is a plain slice.

Inference works for any H, W >= 1. Training mode needs more than one value per channel at
the deepest BatchNorm (batch size > 1, or a padded input larger than one output stride), as
for any network with batch normalization.

Exported graphs (``scdnn export``, :mod:`scdnn.export`) keep the padding symbolic: they pad
by what each input needs, not by what the example input of the export needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pad_to_multiple", "crop", "PaddedSegmentationModel"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two dimensions of ``x`` at the bottom and right to a multiple.

    Parameters
    ----------
    x : torch.Tensor
        Tensor of shape (..., H, W).
    multiple : int
        The height and width of the result are the smallest multiples of this >= H, W.

    Returns
    -------
    tuple
        The padded tensor (``x`` itself when nothing is needed) and the original (H, W).
        While a graph is recorded (torch.export / ONNX export, torch.compile, tracing) the
        pad is always an op and (H, W) stay symbolic, so the graph works for every size.
    """
    if _tracing():
        # Keep the sizes symbolic (no int(), no branch on them): an exported graph (ONNX,
        # torch.export) must pad by however much *its* input needs, not by the amount the
        # example input needed (0 for a multiple of the stride).
        h, w = x.shape[-2], x.shape[-1]
        return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), value=0.0), (h, w)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=0.0)
    return x, (h, w)


def _tracing() -> bool:
    """True while torch.export, torch.compile or the TorchScript tracer records the graph."""
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.7
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or is_exporting()


def crop(logits: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Keep the top-left ``h`` x ``w`` window of ``logits`` (undoes :func:`pad_to_multiple`)."""
    return logits[..., :h, :w]


class PaddedSegmentationModel(nn.Module):
    """Base class: pad the input to ``output_stride``, run :meth:`forward_padded`, crop.

    Subclasses set ``self.in_channels``, ``self.num_classes`` and the class attribute
    ``output_stride``, and implement :meth:`forward_padded` for inputs whose height and width
    are multiples of ``output_stride``.
    """

    output_stride: int = 1
    in_channels: int
    num_classes: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes, H, W) for an input (N, in_channels, H, W); no softmax."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:  # a caller's bug, as in torch
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        padded, (h, w) = pad_to_multiple(x, self.output_stride)
        return crop(self.forward_padded(padded), h, w)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits for an input whose height and width are multiples of ``output_stride``."""
        raise NotImplementedError
