"""--encoder-weights: pretrained encoders for the DeepLab v3+ baselines from local files
(safetensors, or torch files read with weights_only=True; pickled code refused)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import box_mask, random_rgb, write_image
from scdnn.cli import main
from scdnn.errors import InputFileError, InvalidValueError
from scdnn.models import create_model
from scdnn.models.pretrained import load_encoder_weights, read_encoder_weights

pytestmark = pytest.mark.usefixtures("one_thread", "quiet_lightning")

MODEL = "deeplabv3plus-mobilenetv2"



@pytest.fixture(scope="module")
def pretrained() -> dict[str, torch.Tensor]:
    """A MobileNetV2 encoder state as torchvision writes it (with its classifier head)."""
    torch.manual_seed(123)
    encoder = create_model(MODEL).net.encoder
    state = {k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    state["classifier.1.weight"] = torch.randn(1000, 1280)
    state["classifier.1.bias"] = torch.zeros(1000)
    return state


def encoder_matches(model, state: dict[str, torch.Tensor]) -> bool:
    own = model.net.encoder.state_dict()
    return all(torch.equal(own[k], state[k]) for k in own)


def test_safetensors_encoder_weights_are_loaded(pretrained, tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.safetensors"
    save_file(pretrained, str(path))
    torch.manual_seed(0)
    model = create_model(MODEL)
    assert not encoder_matches(model, pretrained)
    decoder_before = {k: v.clone() for k, v in model.net.decoder.state_dict().items()}
    load_encoder_weights(model, path, MODEL)
    assert encoder_matches(model, pretrained)
    assert all(torch.equal(decoder_before[k], v)
               for k, v in model.net.decoder.state_dict().items())


def test_weights_only_torch_file_and_smp_prefix(pretrained, tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pth"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in pretrained.items()
                               if not k.startswith("classifier.")}}, path)
    model = create_model(MODEL)
    load_encoder_weights(model, path, MODEL)
    assert encoder_matches(model, pretrained)


class Payload:
    """Unpickling this runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_with_a_reduce_payload_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": Payload(marker)}, handle)
    with pytest.raises(InputFileError) as exc:
        read_encoder_weights(path)
    assert "evil.pt" in str(exc.value) and "weights_only" in str(exc.value)
    assert not marker.exists()
    # the same payload inside torch's zip format
    zipped = tmp_path / "evil-zip.pt"
    torch.save({"conv1.weight": Payload(marker)}, zipped)
    with pytest.raises(InputFileError):
        read_encoder_weights(zipped)
    assert not marker.exists()


def test_keys_that_do_not_fit_the_encoder_are_refused(pretrained, tmp_path: Path) -> None:
    state = {k: v for k, v in pretrained.items() if k != "features.0.0.weight"}
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputFileError, match="1 missing .*features.0.0.weight.*1 unexpected"):
        load_encoder_weights(create_model(MODEL), path, MODEL)
    resnet = create_model("deeplabv3plus-resnet50")
    with pytest.raises(InputFileError, match="does not fit the resnet50 encoder"):
        load_encoder_weights(resnet, tmp_path / "partial.safetensors")


def test_networks_without_an_smp_encoder_refuse_encoder_weights(pretrained,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.safetensors"
    save_file(pretrained, str(path))
    with pytest.raises(InvalidValueError, match="network 'scdnn' has no pretrained-encoder"):
        load_encoder_weights(create_model("scdnn"), path, "scdnn")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for k in range(6):
        write_image(root / "images" / f"i{k}.png", random_rgb(40, 48, seed=k))
        write_image(root / "masks" / f"i{k}.png", box_mask(40, 48, 4, 6, 24, 30, value=255))
    return root


def train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(dataset), "--out", str(out), "--steps", "1", "--batch-size", "2",
            "--image-size", "32", "--accelerator", "cpu", "--devices", "1", *extra]


@pytest.mark.parametrize("case", ["pickle", "mismatch", "scdnn", "missing"])
def test_cli_refuses_bad_encoder_weights_in_one_line(case: str, pretrained, dataset: Path,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    model = MODEL
    if case == "pickle":
        path = tmp_path / "evil.pth"
        with open(path, "wb") as handle:
            pickle.dump(Payload(marker), handle)
    elif case == "mismatch":
        path = tmp_path / "resnet.safetensors"
        save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(path))
    elif case == "scdnn":
        path = tmp_path / "mobilenet.safetensors"
        save_file(pretrained, str(path))
        model = "scdnn"
    else:
        path = tmp_path / "nowhere.safetensors"
    out = tmp_path / "run"
    code = main(train_args(dataset, out, "--model", model, "--encoder-weights", str(path)))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert (path.name in err) if case != "scdnn" else ("--encoder-weights" in err)
    assert not marker.exists() and not out.exists()


def test_train_starts_from_the_encoder_weights_and_records_them(pretrained, dataset: Path,
                                                                tmp_path: Path) -> None:
    """With lr 1e-30 the paper recipe leaves the weights as loaded (an update below float32
    resolution): the saved encoder is the file's (its batch-norm statistics aside, which
    training updates)."""
    path = tmp_path / "mobilenet.safetensors"
    save_file(pretrained, str(path))
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--model", MODEL, "--recipe", "paper", "--lr", "1e-30",
                           "--encoder-weights", str(path))) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["encoder_weights"] == str(path) and config["recipe"] == "paper"
    card = json.loads((out / "model.json").read_text())
    assert card["config"]["encoder_weights"] == str(path)
    saved = load_file(str(out / "weights.safetensors"))
    conv = [k for k, v in pretrained.items() if k.endswith(".weight") and v.ndim == 4]
    assert conv and all(torch.equal(saved[f"net.encoder.{k}"], pretrained[k]) for k in conv)
