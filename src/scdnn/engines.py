"""Inference engines: the PyTorch network, or its ONNX export run by ONNX Runtime.

:meth:`scdnn.Predictor.from_file` loads a model for either engine. Both models take a
normalised float32 batch ``N x C x H x W`` (a torch tensor) and return the logits
``N x num_classes x H x W``, so the callers (``scdnn predict``, ``scdnn map``) do not care
which engine runs:

- ``torch``: a weights file (safetensors with the model card), loaded by
  :func:`scdnn.weights.load_model`;
- ``onnxruntime``: an ONNX model written by ``scdnn export`` (:mod:`scdnn.export`), which
  carries the card in its metadata; run on the CPU by ONNX Runtime (:class:`OnnxModel`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .errors import InputFileError, InputFileNotFoundError, InvalidValueError, ScdnnError, param
from .records import ModelCard
from .weights import METADATA_KEY

__all__ = ["ENGINES", "OnnxModel"]

#: The engines :meth:`scdnn.Predictor.from_file` knows, the default first.
ENGINES: tuple[str, ...] = ("torch", "onnxruntime")


class OnnxModel:
    """An ONNX model from ``scdnn export``, run by ONNX Runtime on the CPU, that stands in for
    the PyTorch network: ``model(x)`` returns the logits of a normalised float32 batch.

    Parameters
    ----------
    path : path
        The ONNX file; it must carry the scdnn model card (``metadata_props["scdnn"]``).
    threads : int, optional
        ONNX Runtime's intra-op threads; None lets ONNX Runtime choose (one per physical
        core).

    Attributes
    ----------
    card : ModelCard
        The model card embedded by ``scdnn export``.
    in_channels, num_classes : int
        From the card.
    path : Path
        The ONNX file.
    """

    engine = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ScdnnError(f"{param('engine')} onnxruntime needs the 'onnxruntime' package: "
                             f"pip install 'scdnn[export]'") from None
        if not self.path.is_file():
            raise InputFileNotFoundError("model file does not exist", self.path)
        if _is_safetensors(self.path):
            raise InputFileError(f"is a safetensors weights file, not an ONNX model; convert it "
                                 f"with 'scdnn export --weights FILE --out MODEL.onnx' or use "
                                 f"{param('engine')} torch", self.path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; no optimizer chatter on stderr
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(f"not an ONNX model ONNX Runtime can load ({first})",
                                 self.path) from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise InvalidValueError("ONNX model has no scdnn model card (not written by scdnn "
                                    "export; run scdnn export on the weights file first)",
                                    self.path)
        try:
            data = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError:
            raise InvalidValueError("the model card in the ONNX model is not valid JSON",
                                    self.path) from None
        self.card = ModelCard.from_dict(data, self.path)
        self.in_channels = self.card.in_channels
        self.num_classes = self.card.num_classes
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or isinstance(shape[1], int) and shape[1] != self.in_channels:
            raise InvalidValueError(f"ONNX model does not take one N x {self.in_channels} x H x W "
                                    f"input as its card says", self.path)
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N x num_classes x H x W`` (float32, CPU) of a normalised batch ``x``
        (``N x in_channels x H x W``)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InvalidValueError(f"{self.path.name} expects input of shape "
                                    f"(N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        logits = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(logits)

    def to(self, device: str | torch.device) -> "OnnxModel":
        """Return self for the CPU; any other device is refused (InvalidValueError): this
        engine runs on the CPU only."""
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError, ValueError):
            kind = str(device)
        if kind != "cpu":
            raise InvalidValueError(f"engine onnxruntime runs on the CPU only; cannot use device "
                                    f"'{device}' (use {param('engine')} torch)")
        return self

    def eval(self) -> "OnnxModel":
        """Return self (an ONNX model is always in inference mode)."""
        return self

    def __repr__(self) -> str:
        return f"OnnxModel('{self.path}', model={self.card.model!r})"


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte little-endian header
    length that fits in the file, then a JSON object."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    return head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def _is_onnx(path: Path) -> bool:
    """Whether ``path`` parses as an ONNX model with a graph (only asked on error paths)."""
    try:
        import onnx

        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any failure means "not ONNX"
        return False
    return len(proto.graph.node) > 0
