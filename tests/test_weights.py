"""Weights files: storage dtypes (float32, float16, int8) and what loading refuses."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from scdnn import weights as W
from scdnn.datasets import Normalization
from scdnn.errors import InvalidValueError
from scdnn.models import create_model
from scdnn.records import ModelCard


def _card(model: str = "scdnn", **kw) -> ModelCard:
    return ModelCard(model=model, in_channels=3,
                     normalization=Normalization(mean=[0.0] * 3, std=[1.0] * 3), **kw)


def test_int8_storage_hand_computed(monkeypatch):
    monkeypatch.setattr(W, "INT8_MIN_ELEMENTS", 4)
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -0.5], [0.25, 0.1]]))
        layer.bias.copy_(torch.tensor([0.5, -2.0]))
    state = W.stored_state(layer, "int8")
    # scales: the largest magnitude of each row / 127; values round(w / scale)
    assert state["weight"].dtype == torch.int8
    assert state["weight"].tolist() == [[127, -64], [127, 51]]  # -63.5 -> -64, 50.8 -> 51
    assert torch.allclose(state["weight" + W.INT8_SCALE_SUFFIX],
                          torch.tensor([1.0 / 127, 0.25 / 127]))
    assert state["bias"].dtype == torch.float16  # 2 elements: below the threshold
    assert set(state) == {"weight", "weight" + W.INT8_SCALE_SUFFIX, "bias"}
    with pytest.raises(InvalidValueError, match="float32, float16, int8"):
        W.stored_state(layer, "int4")


def test_int8_file_is_smaller_and_loads_within_half_a_step(tmp_path):
    torch.manual_seed(0)
    model = create_model("scdnn", in_channels=3).eval()
    W.save_weights(model, tmp_path / "w16.safetensors", _card(dtype="float16"))
    W.save_weights(model, tmp_path / "w8.safetensors", _card(dtype="int8"))
    size16 = (tmp_path / "w16.safetensors").stat().st_size
    size8 = (tmp_path / "w8.safetensors").stat().st_size
    assert size8 < 0.6 * size16
    raw = load_file(str(tmp_path / "w8.safetensors"))
    assert any(v.dtype == torch.int8 for v in raw.values())
    loaded, card = W.load_model(tmp_path / "w8.safetensors")
    assert card.dtype == "int8"
    own = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert value.dtype == own[key].dtype
        if key + W.INT8_SCALE_SUFFIX in raw:  # within half a quantisation step
            step = raw[key + W.INT8_SCALE_SUFFIX].reshape(-1, *([1] * (value.dim() - 1)))
            assert ((value - own[key]).abs() <= step / 2 + 1e-7).all()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        p = torch.softmax(model(x), 1)
        q = torch.softmax(loaded(x), 1)
    assert (p - q).abs().max() < 0.05


def test_loading_refuses_an_unknown_dtype_and_mismatched_scales(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "INT8_MIN_ELEMENTS", 1000)  # SSSN's kernels are small
    model = create_model("sssn", in_channels=3).eval()
    path = tmp_path / "w.safetensors"
    W.save_weights(model, path, _card(model="sssn", dtype="int8"))
    state = load_file(str(path))
    key = next(k for k in state if k.endswith(W.INT8_SCALE_SUFFIX))
    state[key] = state[key][:-1]  # one scale short
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(state, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(InvalidValueError, match="does not match its int8 scales"):
        W.load_model(tmp_path / "bad.safetensors")
    del state[key]  # an int8 tensor without its scales
    save_file(state, str(tmp_path / "bare.safetensors"), metadata=metadata)
    with pytest.raises(InvalidValueError, match="is int8 without its scales"):
        W.load_model(tmp_path / "bare.safetensors")
    card = dataclasses.replace(_card(model="sssn"), dtype="int4")
    import json
    save_file(load_file(str(path)), str(tmp_path / "int4.safetensors"),
              metadata={W.METADATA_KEY: json.dumps(card.to_dict())})
    with pytest.raises(InvalidValueError, match="unknown storage dtype 'int4'"):
        W.load_model(tmp_path / "int4.safetensors")


def test_a_file_written_before_the_kernel_option_loads_with_4x4_kernels(tmp_path):
    """SCDnn weights written before ``upsampling_kernel`` existed (the bundled weights up to
    0.1) name no kernel: they load as the 4x4 kernels they were trained with."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    old = create_model("scdnn", upsampling_kernel=4).eval()
    W.save_weights(old, tmp_path / "new.safetensors", _card())
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as handle:
        written = json.loads(handle.metadata()[W.METADATA_KEY])
    assert written["model_kwargs"] == {"upsampling_kernel": 4}
    del written["model_kwargs"]  # as a file from before the option
    save_file(load_file(str(tmp_path / "new.safetensors")), str(tmp_path / "old.safetensors"),
              metadata={W.METADATA_KEY: json.dumps(written)})
    model, card = W.load_model(tmp_path / "old.safetensors")
    assert card.model_kwargs == {"upsampling_kernel": 4} and model.upsampling_kernel == 4
    x = torch.randn(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(model(x), old(x))
