"""``scdnn export``: a weights file as a self-describing ONNX model.

:func:`export_onnx` rebuilds the network of a weights file and writes it as ONNX with
PyTorch's ``torch.export``-based exporter (the default and recommended one since PyTorch 2.9;
it needs the ``onnxscript`` package, in the ``export`` extra). The ONNX model:

- takes one input ``image``, float32 ``N x C x H x W``, already normalised with the card's
  ``normalization`` (as the PyTorch network does), and returns ``logits``, float32
  ``N x num_classes x H x W`` (no softmax); batch, height and width are dynamic
  (``batch``, ``height``, ``width``): any size works, the graph pads to the output stride and
  crops back as the PyTorch network does (:mod:`scdnn.models._padding`);
- carries the model card (the same JSON as in the safetensors file) in its
  ``metadata_props`` under the key ``scdnn``, so it runs without the weights file
  (``scdnn predict/map --engine onnxruntime``, :mod:`scdnn.engines`).

Every export is checked before it is written: :func:`onnx.checker.check_model`, and
ONNX Runtime's logits on an input of another batch size and an odd size than the example the
graph was recorded with must match PyTorch's (a graph that froze the example's sizes fails
here, not later in a user's hands).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import InputFileError, InvalidValueError, param
from .runs import atomic_path
from .weights import METADATA_KEY, load_model

__all__ = ["export_onnx", "MIN_OPSET", "INPUT_NAME", "OUTPUT_NAME"]

#: The lowest opset the torch.export-based exporter implements: it records opset 18 and
#: cannot convert SCDnn down to 17 (no Pad adapter), so lower opsets are refused.
MIN_OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: Names of the dynamic dimensions of ``image`` and ``logits``.
DIM_NAMES = ("batch", None, "height", "width")

#: Loggers that report the exporter's internal steps (warnings a user cannot act on).
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "onnxscript",
                  "onnx_ir")


def export_onnx(weights: str | os.PathLike, out: str | os.PathLike, opset: int = MIN_OPSET, *,
                overwrite: bool = False) -> Path:
    """Write the network of ``weights`` (a safetensors file with a model card) as ONNX.

    Parameters
    ----------
    weights : path
        A weights file written by ``scdnn train`` (:func:`scdnn.weights.save_weights`).
    out : path
        The ONNX file to write (atomically: a temporary name, renamed when complete).
    opset : int
        ONNX opset of the default domain, at least :data:`MIN_OPSET` (18).
    overwrite : bool
        Replace ``out`` if it exists (otherwise an existing ``out`` is refused).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ScdnnError
        A missing or unreadable weights file, an existing ``out`` without ``overwrite``,
        ``out`` naming a folder, an opset the exporter cannot write, or ``onnx``/``onnxscript``
        missing.
    RuntimeError
        The exported graph does not reproduce PyTorch's logits (a bug, not a user mistake).
    """
    out = Path(out)
    if out.is_dir():
        raise InputFileError("output path is a folder; give the .onnx file to write", out)
    if out.exists() and not overwrite:
        raise InputFileError(f"output file exists (use {param('overwrite')})", out)
    onnx = _import("onnx")
    _import("onnxscript")
    opset = _check_opset(opset)
    model, card = load_model(weights)
    model = model.cpu().eval()

    proto = _to_onnx(model, card.in_channels, opset)
    _name_dimensions(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(card.to_dict(), default=str)
    proto.doc_string = (f"scdnn {card.model}: landslide segmentation; input '{INPUT_NAME}' "
                        f"N x {card.in_channels} x H x W float32, normalised as the "
                        f"'{METADATA_KEY}' model card says; output '{OUTPUT_NAME}' "
                        f"N x {card.num_classes} x H x W")
    onnx.checker.check_model(proto, full_check=True)
    _verify(model, proto, card.in_channels)

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    return out


def _check_opset(opset: Any) -> int:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if int(opset) != opset or not MIN_OPSET <= opset <= newest:
        raise InvalidValueError(f"{param('opset')} must be an integer from {MIN_OPSET} to {newest} "
                                f"(the ONNX exporter of PyTorch writes opset {MIN_OPSET} or "
                                f"newer), got {opset}")
    return int(opset)


def _import(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise InvalidValueError(f"ONNX export needs the '{name}' package: "
                        f"pip install 'scdnn[export]'") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's log warnings and progress lines for the duration."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


def _to_onnx(model: torch.nn.Module, in_channels: int, opset: int):
    """The ONNX ModelProto of ``model`` with dynamic batch, height and width.

    The example batch is 2 and the example size two output strides (at least 64): a batch or
    size of 1 would be specialised into the graph (torch.export treats 0 and 1 as constants),
    and the deepest feature map must not be 1 x 1 for the same reason. ``Dim.DYNAMIC`` accepts
    the guards torch.export derives (e.g. "deepest map is not 1 x 1"); ONNX's broadcasting
    makes the graph right for those sizes too, which :func:`_verify` checks at 1 x 1.
    """
    stride = int(getattr(model, "output_stride", 16))
    size = max(64, 2 * stride)
    example = (torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(0)),)
    dynamic = torch.export.Dim.DYNAMIC
    with _quiet(), torch.no_grad():
        program = torch.export.export(model, example, strict=False,
                                      dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},))
        onnx_program = torch.onnx.export(program, example, dynamo=True, opset_version=opset,
                                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                         external_data=False, optimize=True, verbose=False)
    proto = onnx_program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise InvalidValueError(f"the exporter could not write opset {opset} (it wrote {written}); "
                        f"use {param('opset')} {written}")
    return proto


def _name_dimensions(proto) -> None:
    """Call the dynamic dimensions of input and output ``batch``, ``height``, ``width``.

    The exporter names them after its symbols (``s77``) and writes the output's as
    expressions of the padded size; the output has the input's batch, height and width by
    construction (it is cropped back), so both get the same three names.
    """
    rename: dict[str, str] = {}
    for dim, name in zip(proto.graph.input[0].type.tensor_type.shape.dim, DIM_NAMES, strict=False):
        if name is not None and dim.dim_param:
            rename[dim.dim_param] = name
            dim.dim_param = name
    for dim, name in zip(proto.graph.output[0].type.tensor_type.shape.dim, DIM_NAMES, strict=False):
        if name is not None:
            dim.dim_param = name
    for info in proto.graph.value_info:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]


def _verify(model: torch.nn.Module, proto, in_channels: int) -> None:
    """Compare ONNX Runtime's logits with PyTorch's on sizes the example did not have."""
    try:
        import onnxruntime as ort
    except ImportError:  # export works without onnxruntime; only the check is skipped
        return
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in ((1, in_channels, 37, 23), (3, in_channels, 1, 1)):
        x = torch.randn(*shape, generator=generator)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-3):
            detail = (f"shape {got.shape} instead of {expected.shape}"
                      if got.shape != expected.shape
                      else f"max difference {np.abs(got - expected).max():.3g}")
            raise RuntimeError(f"the exported ONNX graph does not reproduce the PyTorch network "
                               f"on input {shape}: {detail}")
