"""The bad-input corpus: every mistake ends with exit status 2 and one line naming the file or
the option, no traceback, and nothing under the output's final name.

Option values are taken from the command line's own parser (every numeric option of every
subcommand, so a new option is covered the day it is added) and from hypothesis; the
library's own checks (:meth:`TrainConfig.check`, :meth:`ModelCard.from_dict`) are driven by
hypothesis too. Everything here is refused before any network runs: the whole file takes a
few seconds.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY, random_rgb, spread_weights
from scdnn.cli import build_parser, main
from scdnn.errors import InvalidValueError

#: Each subcommand's required arguments (the files exist; every case adds one bad option).
REQUIRED = {
    "models": [],
    "train": ["{data}", "--out", "{out}"],
    "evaluate": ["{data}", "--weights", "{weights}", "--out", "{out}"],
    "predict": ["{images}", "--weights", "{weights}", "--out", "{out}"],
    "map": ["{scene}", "--weights", "{weights}", "--out", "{out}"],
    "export": ["--weights", "{weights}", "--out", "{out}"],
    "report": ["{data}"],
    "benchmark": ["{data}", "--out", "{out}"],
    "demo": ["--out", "{out}"],
}

#: Values no numeric option accepts.
NEVER = ["nan", "inf", "-inf", "-1", "abc", "1e400"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _is_numeric(action: argparse.Action) -> bool:
    if not action.option_strings or action.type in (None, str) or not callable(action.type):
        return False
    for probe in ("1", "0.5", "100"):  # one of them fits each option's range
        try:
            return isinstance(action.type(probe), (int, float))
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    return False


def numeric_options() -> list[tuple[str, str, int]]:
    """(subcommand, flag, nargs) for every option whose value is a number."""
    found = []
    for command, sub in _subparsers().items():
        for action in sub._actions:
            if _is_numeric(action):
                nargs = action.nargs if isinstance(action.nargs, int) else 1
                found.append((command, action.option_strings[-1], nargs))
    return found


def test_the_corpus_covers_every_subcommand_and_the_usual_numeric_options() -> None:
    options = numeric_options()
    assert set(REQUIRED) == set(_subparsers())
    flags = {(c, f) for c, f, _ in options}
    for case in [("train", "--lr"), ("train", "--seed"), ("train", "--class-weights"),
                 ("train", "--image-size"), ("map", "--tile"), ("map", "--overlap"),
                 ("map", "--threshold"), ("evaluate", "--tile"), ("benchmark", "--seeds"),
                 ("export", "--opset")]:
        assert case in flags, case


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    from scdnn.datasets.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("inputs")
    data = write_synthetic_dataset(root / "data", count=2, size=40, seed=1)
    weights = spread_weights(root / "weights.safetensors", random_rgb(40, 48, seed=3), TINY)
    scene = root / "scene.tif"
    scene.write_bytes(b"")  # never opened: the option is refused first
    return {"data": str(data), "images": str(data / "images"), "weights": str(weights),
            "scene": str(scene), "root": str(root)}


def _argv(command: str, inputs: dict[str, str], out: Path) -> list[str]:
    return [command] + [a.format(out=out, **inputs) for a in REQUIRED[command]]


def assert_refused(code: int, capsys, needle: str, out: Path) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert needle in err, err
    assert not out.exists(), f"{out} was written"
    return err


@pytest.mark.parametrize("command,flag,nargs", numeric_options(),
                         ids=[f"{c}{f}" for c, f, _ in numeric_options()])
def test_numeric_options_refuse_what_no_number_can_mean(command, flag, nargs, inputs, tmp_path,
                                                        capsys) -> None:
    out = tmp_path / "o"
    for value in NEVER:
        argv = _argv(command, inputs, out) + [flag] + [value] * nargs
        assert_refused(main(argv), capsys, flag, out)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lr=st.floats(allow_nan=True, allow_infinity=True),
       seed=st.integers(min_value=-2**40, max_value=2**40))
def test_train_lr_and_seed_are_refused_in_one_line_unless_usable(lr, seed, inputs, tmp_path,
                                                                 capsys) -> None:
    out = tmp_path / "o"
    ok_lr = math.isfinite(lr) and lr > 0
    ok_seed = 0 <= seed < 2**32
    if ok_lr and ok_seed:
        return  # a usable run: not this corpus's business
    argv = _argv("train", inputs, out) + ["--lr", repr(lr), "--seed", str(seed)]
    assert_refused(main(argv), capsys, "--lr" if not ok_lr else "--seed", out)


@settings(max_examples=150, deadline=None)
@given(lr=st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none(),
       weights=st.none() | st.lists(st.floats(allow_nan=True, allow_infinity=True)
                                    | st.integers(-3, 3), min_size=0, max_size=3),
       seed=st.integers(min_value=-2**40, max_value=2**40) | st.booleans(),
       epochs=st.integers(-5, 5) | st.floats(allow_nan=True))
def test_train_config_check_accepts_only_usable_values(lr, weights, seed, epochs) -> None:
    """The Python API refuses what the command line refuses, naming the field."""
    from scdnn.trainers.fit import TrainConfig

    config = TrainConfig(data="d", out="o", lr=lr, class_weights=weights, seed=seed,
                         epochs=epochs)
    usable = (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
              and lr > 0
              and (weights is None or (len(weights) == 2 and all(
                  math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0))
              and isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32
              and isinstance(epochs, int) and epochs > 0)
    if usable:
        config.check()
        return
    with pytest.raises(InvalidValueError) as err:
        config.check()
    assert err.value.option in {"lr", "class_weights", "seed", "epochs"}


def test_train_devices_and_class_weights_are_checked_before_anything_is_written(
        inputs, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    for extra, needle in [(["--devices", "abc"], "--devices"),
                          (["--devices", "0"], "--devices"),
                          (["--class-weights", "0", "0"], "--class-weights"),
                          (["--class-weights", "nan", "1"], "--class-weights"),
                          (["--test-fraction", "0.6", "--val-fraction", "0.5"],
                           "--test-fraction")]:
        assert_refused(main(_argv("train", inputs, out) + extra), capsys, needle, out)


def test_a_crop_far_larger_than_every_image_is_refused_before_allocation(inputs, tmp_path,
                                                                         capsys) -> None:
    """128 px images and --image-size 4096 were killed by the kernel after 88 s."""
    out = tmp_path / "o"
    err = assert_refused(main(_argv("train", inputs, out) + ["--image-size", "4096"]), capsys,
                         "--image-size", out)
    assert "40 px" in err  # the largest training image, so the user knows what fits


# --- scenes: band choice, tiles below the network's stride, paths that are not files ------

def _scene(path: Path, count: int, photometric: str | None = None) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    extra = {"photometric": photometric} if photometric else {}
    with rasterio.open(path, "w", driver="GTiff", width=48, height=40, count=count,
                       dtype="uint8", crs="EPSG:32647",
                       transform=Affine(0.5, 0, 500000.0, 0, -0.5, 3400000.0), **extra) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (count, 40, 48), dtype=np.uint8))
    return path


def test_a_scene_with_more_bands_than_the_model_takes_needs_bands(inputs, tmp_path,
                                                                  capsys) -> None:
    """RGB + near-infrared without an alpha band was mapped from bands scdnn chose."""
    scene = _scene(tmp_path / "rgbn.tif", 4, photometric="MINISBLACK")
    out = tmp_path / "o"
    argv = ["map", str(scene), "--weights", inputs["weights"], "--out", str(out)]
    err = assert_refused(main(argv), capsys, str(scene), out)
    assert "--bands" in err and "4 bands" in err
    assert_refused(main(argv + ["--bands", "1", "2", "5"]), capsys, "--bands", out)
    assert_refused(main(argv + ["--bands", "1", "1", "2"]), capsys, "--bands", out)
    assert main(argv + ["--bands", "4", "2", "1"]) == 0
    assert "bands read: 4 2 1" in capsys.readouterr().out
    assert json.loads((out / "map.json").read_text())["bands"] == [4, 2, 1]


def test_a_tile_below_the_networks_stride_is_refused(inputs, tmp_path, capsys) -> None:
    """--tile 7 --overlap 0 ended in a traceback (windows stepped past the scene)."""
    scene = _scene(tmp_path / "rgb.tif", 3)
    out = tmp_path / "o"
    code = main(["map", str(scene), "--weights", inputs["weights"], "--out", str(out),
                 "--tile", "7", "--overlap", "0"])
    assert "stride" in assert_refused(code, capsys, "--tile", out)


def test_inputs_that_are_folders_or_bad_links_are_named_as_such(inputs, tmp_path,
                                                                capsys) -> None:
    out = tmp_path / "o"
    loop = tmp_path / "loop.tif"
    loop.symlink_to(loop)
    broken = tmp_path / "broken.tif"
    broken.symlink_to(tmp_path / "nowhere.tif")
    for scene, needle in [(tmp_path, "is a folder"), (loop, "link loop"),
                          (broken, "broken symbolic link")]:
        code = main(["map", str(scene), "--weights", inputs["weights"], "--out", str(out)])
        assert needle in assert_refused(code, capsys, str(scene), out)
    code = main(["map", str(_scene(tmp_path / "rgb.tif", 3)), "--weights", str(tmp_path),
                 "--out", str(out)])
    assert "is a folder" in assert_refused(code, capsys, str(tmp_path), out)


def test_an_image_that_is_a_link_loop_is_named_not_reported_as_a_lonely_mask(
        tmp_path, capsys) -> None:
    """An image that was a symlink loop was skipped, and its mask reported as 'has no image'."""
    from scdnn.datasets.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", count=2, size=40, seed=1)
    image = sorted((data / "images").iterdir())[0]
    image.unlink()
    image.symlink_to(image)
    out = tmp_path / "o"
    err = assert_refused(main(["train", str(data), "--out", str(out)]), capsys, str(image), out)
    assert "link loop" in err


@pytest.mark.parametrize("error", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_a_file_system_that_refuses_to_write_ends_in_one_line(error, inputs, tmp_path, capsys,
                                                             monkeypatch) -> None:
    """export --out on a read-only file system ended in a 30-line traceback (predict here:
    the same writer, atomic_path, and seconds faster)."""
    import os

    import scdnn.runs

    def refuse(src, dst):
        raise OSError(error, os.strerror(error), str(dst))

    monkeypatch.setattr(scdnn.runs.os, "replace", refuse)
    out = tmp_path / "o"
    code = main(["predict", inputs["images"], "--weights", inputs["weights"], "--out", str(out)])
    err = assert_refused(code, capsys, str(out), out)
    assert os.strerror(error) in err


def test_an_error_that_is_not_the_file_systems_keeps_its_traceback(inputs, tmp_path,
                                                                   monkeypatch) -> None:
    import scdnn.runs

    def broken(src, dst):
        raise OSError(errno.EIO, "bug", str(dst))

    monkeypatch.setattr(scdnn.runs.os, "replace", broken)
    with pytest.raises(OSError):
        main(["predict", inputs["images"], "--weights", inputs["weights"], "--out",
              str(tmp_path / "o")])


def test_report_on_a_map_whose_rasters_are_cut_short(inputs, tmp_path, capsys) -> None:
    """report on a map folder with truncated mask.tif/probability.tif: a 35-line traceback."""
    scene = _scene(tmp_path / "rgb.tif", 3)
    run = tmp_path / "map"
    assert main(["map", str(scene), "--weights", inputs["weights"], "--out", str(run),
                 "--raw"]) == 0
    capsys.readouterr()
    for name in ("probability.tif", "mask.tif"):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    report = run / "report.html"
    err = assert_refused(main(["report", str(run)]), capsys, str(run), report)
    assert "cannot read" in err


@pytest.mark.parametrize("mistake", ["mask values", "mask size"])
def test_demo_refuses_a_bad_sample_before_writing_anything(mistake, inputs, tmp_path,
                                                          capsys) -> None:
    """demo --sample with 0/128/255 masks, or masks of another size, failed only after
    mapping, leaving maps/<image>/ with all four outputs."""
    import numpy as np
    from PIL import Image

    from scdnn.datasets.synthetic import write_synthetic_dataset

    sample = write_synthetic_dataset(tmp_path / "sample", count=2, size=40, seed=1)
    mask = sorted((sample / "masks").iterdir())[-1]
    if mistake == "mask values":
        values = np.zeros((40, 40), np.uint8)
        values[:10], values[10:20] = 128, 255
    else:
        values = np.zeros((24, 40), np.uint8)
    Image.fromarray(values).save(mask)
    out = tmp_path / "demo"
    code = main(["demo", "--weights", inputs["weights"], "--sample", str(sample), "--out",
                 str(out)])
    assert_refused(code, capsys, str(sample), out)


def test_a_tile_or_batch_beyond_memory_is_refused_before_reading(inputs, tmp_path, capsys,
                                                                 monkeypatch) -> None:
    """A 100,000 px tile or a batch of 10,000 windows: refused in one line, never killed by
    the kernel. The scene here is small, so the memory is made small instead."""
    import scdnn.mapping.tiling as tiling

    scene = _scene(tmp_path / "rgb.tif", 3)  # 48 x 40: two 32 px windows across
    out = tmp_path / "o"
    base = ["map", str(scene), "--weights", inputs["weights"], "--out", str(out), "--overlap",
            "0"]
    one_window = 32 * 32 * tiling.BYTES_PER_WINDOW_PIXEL
    monkeypatch.setattr(tiling, "available_memory", lambda: one_window)
    assert main(base + ["--tile", "32"]) == 0  # one window at a time fits exactly
    capsys.readouterr()
    err = assert_refused(main(base + ["--tile", "32", "--batch-size", "2", "--overwrite"]),
                         capsys, "--batch-size", tmp_path / "nothing")
    assert "GiB" in err
    monkeypatch.setattr(tiling, "available_memory", lambda: one_window - 1)
    out2 = tmp_path / "o2"
    base[5] = str(out2)
    assert_refused(main(base + ["--tile", "32"]), capsys, "--tile", out2)
    # a batch larger than the grid is only as large as the grid
    monkeypatch.setattr(tiling, "available_memory", lambda: 4 * one_window)
    assert main(base + ["--tile", "32", "--batch-size", "10000"]) == 0
