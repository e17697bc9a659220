"""Tests for scdnn.datasets: readers, errors, splits, normalisation, augmentation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import (
    BIJIE_LANDSLIDE,
    BIJIE_NON_LANDSLIDE,
    FOLDER_PAIRS,
    bijie_dem,
    box_mask,
    random_rgb,
    write_image,
)
from scdnn.datasets import (
    IGNORE_INDEX,
    BijieLandslide,
    ImageMaskFolder,
    Normalization,
    Sample,
    SegmentationDataset,
    compute_normalization,
    load_split,
    make_split,
    open_dataset,
    read_image,
    read_mask,
    save_split,
    train_transform,
)
from scdnn.datasets.transforms import RGBBrightnessContrast
from scdnn.errors import UserError


def raises_user_error(match: str, path: Path | None = None):
    """Context manager: a UserError whose message matches and (optionally) names ``path``."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(UserError, match=match)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            if suppressed and path is not None:
                assert self.info.value.path == str(path), self.info.value.path
            return suppressed

    return _Check()


# --------------------------------------------------------------------------- read_image / read_mask

def test_read_image_modes(tmp_path):
    rgb = random_rgb(6, 7, seed=1)
    out = read_image(write_image(tmp_path / "rgb.png", rgb))
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    np.testing.assert_array_equal(out, rgb)
    out[0, 0, 0] = 1  # writable

    gray = rgb[:, :, 0]
    assert read_image(write_image(tmp_path / "gray.png", gray)).shape == (6, 7, 1)

    rgba = np.dstack([rgb, np.full((6, 7), 128, np.uint8)])
    out = read_image(write_image(tmp_path / "rgba.png", rgba))
    assert out.shape == (6, 7, 3)  # alpha dropped
    np.testing.assert_array_equal(out, rgb)

    assert read_image(tmp_path / "rgb.png", channels=3).shape[2] == 3
    with raises_user_error("image has 3 band", tmp_path / "rgb.png"):
        read_image(tmp_path / "rgb.png", channels=4)


def test_read_image_truncated_png(tmp_path):
    path = write_image(tmp_path / "cut.png", random_rgb(40, 48, seed=2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with raises_user_error("cannot read image", path):
        read_image(path)


def test_read_image_not_an_image(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("this is not a PNG\n")
    with raises_user_error("cannot read image: not an image", path):
        read_image(path)
    with raises_user_error("cannot read mask: not an image", path):
        read_mask(path)
    with raises_user_error("file does not exist", tmp_path / "missing.png"):
        read_image(tmp_path / "missing.png")


def test_read_image_refuses_16_bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 5), 1000, np.uint16)).save(path)
    with raises_user_error("more than 8 bits", path):
        read_image(path)


def test_masks_0_255_and_0_1_read_as_binary(tmp_path):
    expected = box_mask(8, 9, 2, 3, 5, 7, value=1)  # 3 x 4 = 12 landslide pixels
    a = read_mask(write_image(tmp_path / "m255.png", expected * 255))
    b = read_mask(write_image(tmp_path / "m01.png", expected))
    for m in (a, b):
        assert m.dtype == np.uint8 and m.shape == (8, 9)
        np.testing.assert_array_equal(m, expected)
        assert int(m.sum()) == 12
    zeros = read_mask(write_image(tmp_path / "zeros.png", np.zeros((3, 3), np.uint8)))
    np.testing.assert_array_equal(zeros, np.zeros((3, 3), np.uint8))
    ones = read_mask(write_image(tmp_path / "all255.png", np.full((3, 3), 255, np.uint8)))
    np.testing.assert_array_equal(ones, np.ones((3, 3), np.uint8))


def test_read_mask_rejects_other_values(tmp_path):
    mask = box_mask(6, 6, 0, 0, 2, 2, value=255)
    mask[5, 5] = 7
    path = write_image(tmp_path / "seven.png", mask)
    with raises_user_error(r"mask has values other than 0/1 or 0/255: found \[0, 7, 255\]", path):
        read_mask(path)


def test_read_mask_multiband(tmp_path):
    m = box_mask(5, 5, 1, 1, 3, 3)
    same = read_mask(write_image(tmp_path / "rgb-same.png", np.dstack([m, m, m])))
    np.testing.assert_array_equal(same, m // 255)
    diff = np.dstack([m, np.zeros_like(m), m])
    path = write_image(tmp_path / "rgb-diff.png", diff)
    with raises_user_error("bands that differ", path):
        read_mask(path)


# --------------------------------------------------------------------------- ImageMaskFolder

def test_folder_pairs_by_stem_with_mixed_extensions(folder_dataset):
    ds = ImageMaskFolder(folder_dataset)
    assert len(ds) == 5
    assert [s.name for s in ds.samples] == ["a", "b", "c", "d", "e"]
    for sample in ds.samples:
        image_name, mask_name, _, _ = FOLDER_PAIRS[sample.name]
        assert isinstance(sample, Sample)
        assert sample.image_path == folder_dataset / "images" / image_name
        assert sample.mask_path == folder_dataset / "masks" / mask_name
        assert sample.extra_paths == {}
    expected_sums = {"a": 100, "b": 200, "c": 6, "d": 0, "e": 180}
    for i, sample in enumerate(ds.samples):
        item = ds[i]
        assert item["name"] == sample.name
        assert item["image"].shape == (40, 48, 3) and item["image"].dtype == np.uint8
        assert item["mask"].shape == (40, 48) and item["mask"].dtype == np.uint8
        assert set(np.unique(item["mask"]).tolist()) <= {0, 1}
        assert int(item["mask"].sum()) == expected_sums[sample.name]
    np.testing.assert_array_equal(ds[0]["image"], random_rgb(40, 48, seed=0))  # PNG is lossless
    ds.validate()
    seen = []
    ds.validate(progress=lambda items: (seen.append(i) or i for i in items))
    assert seen == [0, 1, 2, 3, 4]


def test_folder_ignores_hidden_and_other_files(folder_dataset):
    (folder_dataset / "images" / ".hidden.png").write_text("x")
    (folder_dataset / "images" / "notes.txt").write_text("x")
    (folder_dataset / "masks" / "._a.png").write_text("x")
    assert len(ImageMaskFolder(folder_dataset)) == 5


def test_folder_missing_root_and_not_a_folder(tmp_path):
    with raises_user_error("does not exist", tmp_path / "nope"):
        ImageMaskFolder(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with raises_user_error("is not a folder", tmp_path / "file"):
        ImageMaskFolder(tmp_path / "file")


def test_folder_missing_subfolder(folder_dataset):
    for f in (folder_dataset / "masks").iterdir():
        f.unlink()
    (folder_dataset / "masks").rmdir()
    with raises_user_error("no masks/ subfolder", folder_dataset):
        ImageMaskFolder(folder_dataset)


def test_folder_no_pairs(tmp_path):
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "masks").mkdir()
    with raises_user_error("no image/mask pairs", tmp_path / "ds" / "images"):
        ImageMaskFolder(tmp_path / "ds")


def test_folder_image_without_mask(folder_dataset):
    (folder_dataset / "masks" / "c.TIF").unlink()
    with raises_user_error("image has no mask in", folder_dataset / "images" / "c.png"):
        ImageMaskFolder(folder_dataset)


def test_folder_mask_without_image(folder_dataset):
    extra = write_image(folder_dataset / "masks" / "zz.png", np.zeros((40, 48), np.uint8))
    with raises_user_error("mask has no image in", extra):
        ImageMaskFolder(folder_dataset)


def test_folder_duplicate_stem(folder_dataset):
    write_image(folder_dataset / "images" / "a.tif", random_rgb(40, 48, seed=9))
    with raises_user_error("share the name 'a'"):
        ImageMaskFolder(folder_dataset)


def test_folder_size_mismatch(folder_dataset):
    mask_path = write_image(folder_dataset / "masks" / "a.png", np.zeros((40, 47), np.uint8))
    ds = ImageMaskFolder(folder_dataset)
    with raises_user_error(f"image is 40x48 but its mask {mask_path} is 40x47",
                           folder_dataset / "images" / "a.png") as info:
        ds[0]
    assert "40x48" in str(info.value)
    with raises_user_error("image is 40x48 but its mask"):
        ds.validate()


def test_folder_validate_finds_bad_mask_and_truncated_image(folder_dataset):
    bad = box_mask(40, 48, 0, 0, 3, 3, value=7)
    bad_path = write_image(folder_dataset / "masks" / "d.png", bad)
    ds = ImageMaskFolder(folder_dataset)
    with raises_user_error(r"found \[0, 7\]", bad_path):
        ds.validate()
    write_image(bad_path, np.zeros((40, 48), np.uint8))
    image = folder_dataset / "images" / "c.png"
    image.write_bytes(image.read_bytes()[:300])
    with raises_user_error("cannot read image", image):
        ImageMaskFolder(folder_dataset).validate()


def test_folder_validate_band_mismatch(folder_dataset):
    gray = folder_dataset / "images" / "c.png"
    write_image(gray, random_rgb(40, 48, seed=3)[:, :, 0])
    with raises_user_error("image has 1 band", gray):
        ImageMaskFolder(folder_dataset).validate()


# --------------------------------------------------------------------------- Bijie

def test_bijie_landslide_only(bijie_dataset):
    ds = BijieLandslide(bijie_dataset)
    assert ds.names == ["df001", "df002", "df003"]
    for i, (stem, (h, w)) in enumerate(BIJIE_LANDSLIDE.items()):
        item = ds[i]
        assert item["name"] == stem
        assert item["image"].shape == (h, w, 3)
        assert item["mask"].shape == (h, w)
        assert int(item["mask"].sum()) == 100  # top-left 10 x 10
    ds.validate()


def test_bijie_with_non_landslide(bijie_dataset):
    ds = BijieLandslide(bijie_dataset, include_non_landslide=True)
    assert ds.names == ["df001", "df002", "df003", "non-landslide/df001", "non-landslide/nd002"]
    for name, (h, w) in BIJIE_NON_LANDSLIDE.items():
        i = ds.names.index("non-landslide/" + name)
        item = ds[i]
        assert ds.samples[i].mask_path is None
        assert item["image"].shape == (h, w, 3)
        np.testing.assert_array_equal(item["mask"], np.zeros((h, w), np.uint8))
    ds.validate()


def test_bijie_with_dem(bijie_dataset):
    ds = BijieLandslide(bijie_dataset, use_dem=True, include_non_landslide=True)
    item = ds[0]  # df001, 30 x 40, DEM stored at full size
    assert item["image"].shape == (30, 40, 4)
    np.testing.assert_array_equal(item["image"][:, :, 3], bijie_dem(30, 40))
    np.testing.assert_array_equal(item["image"][:, :, :3], random_rgb(30, 40, seed=10))
    assert ds.samples[0].extra_paths["dem"] == bijie_dataset / "landslide" / "dem" / "df001.png"
    assert ds[2]["image"].shape == (64, 64, 4)  # df003: 32 x 32 DEM resampled onto the image
    assert ds[ds.names.index("non-landslide/nd002")]["image"].shape == (20, 28, 4)
    ds.validate()


def test_bijie_missing_dem_and_missing_folders(bijie_dataset):
    (bijie_dataset / "landslide" / "dem" / "df002.png").unlink()
    assert len(BijieLandslide(bijie_dataset)) == 3  # DEM not needed
    with raises_user_error("image has no DEM tile",
                           bijie_dataset / "landslide" / "image" / "df002.png"):
        BijieLandslide(bijie_dataset, use_dem=True)
    for f in (bijie_dataset / "non-landslide" / "image").iterdir():
        f.unlink()
    (bijie_dataset / "non-landslide" / "image").rmdir()
    with raises_user_error("no non-landslide/image/ folder"):
        BijieLandslide(bijie_dataset, include_non_landslide=True)


def test_bijie_mask_without_image(bijie_dataset):
    extra = write_image(bijie_dataset / "landslide" / "mask" / "df999.png",
                        np.zeros((5, 5), np.uint8))
    with raises_user_error("mask has no image", extra):
        BijieLandslide(bijie_dataset)


# --------------------------------------------------------------------------- open_dataset

def test_open_dataset_detects_layout(folder_dataset, bijie_dataset, tmp_path):
    assert isinstance(open_dataset(bijie_dataset), BijieLandslide)
    ds = open_dataset(bijie_dataset, use_dem=True)
    assert isinstance(ds, BijieLandslide) and ds.use_dem
    assert isinstance(open_dataset(folder_dataset), ImageMaskFolder)
    assert isinstance(open_dataset(folder_dataset, use_dem=False, include_non_landslide=False),
                      ImageMaskFolder)
    with raises_user_error("use_dem applies only to the Bijie"):
        open_dataset(folder_dataset, use_dem=True)
    (tmp_path / "empty").mkdir()
    with raises_user_error("is not a dataset folder: expected images/ \\+ masks/",
                           tmp_path / "empty"):
        open_dataset(tmp_path / "empty")
    with raises_user_error("does not exist", tmp_path / "nowhere"):
        open_dataset(tmp_path / "nowhere")


# --------------------------------------------------------------------------- split

def test_split_paper_proportions_and_coverage():
    names = [f"df{i:03d}" for i in range(770)]
    split = make_split(names)  # 70 % train / 30 % test, 10 % validation out of train
    assert len(split["test"]) == 231
    assert len(split["val"]) == 77
    assert len(split["train"]) == 770 - 231 - 77
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(names)
    for k in ("train", "val", "test"):
        assert split[k] == sorted(split[k])
    assert (split["seed"], split["test_fraction"], split["val_fraction"]) == (0, 0.3, 0.1)


def test_split_deterministic():
    names = [f"n{i}" for i in range(50)]
    assert make_split(names, seed=3) == make_split(names, seed=3)
    assert make_split(names, seed=3) == make_split(list(reversed(names)), seed=3)  # order-free
    assert make_split(names, seed=3)["test"] != make_split(names, seed=4)["test"]


def test_split_small_datasets():
    two = make_split(["a", "b"])
    assert (len(two["train"]), len(two["val"]), len(two["test"])) == (1, 0, 1)
    three = make_split(["a", "b", "c"])  # round(0.9) = 1 test, round(0.3) = 0 val
    assert (len(three["train"]), len(three["val"]), len(three["test"])) == (2, 0, 1)
    with raises_user_error("at least 2 samples"):
        make_split(["a"])
    assert make_split(["a"], test_fraction=0.0, val_fraction=0.0)["train"] == ["a"]
    with raises_user_error("must be at least 0 and below 1"):
        make_split(["a", "b"], test_fraction=1.5)
    with raises_user_error("must be below 1"):
        make_split(["a", "b"], test_fraction=0.6, val_fraction=0.5)


def test_split_save_load_round_trip(tmp_path):
    names = [f"n{i}" for i in range(20)]
    split = make_split(names, seed=7)
    path = tmp_path / "run" / "split.json"
    save_split(split, path)
    assert load_split(path, names) == split
    assert json.loads(path.read_text())["test"] == split["test"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temp file left
    assert load_split(path, names + ["extra"]) == split  # the dataset may have more samples


def test_load_split_errors(tmp_path):
    names = [f"n{i}" for i in range(10)]
    path = tmp_path / "split.json"
    save_split(make_split(names), path)
    missing_one = [n for n in names if n != make_split(names)["test"][0]]
    with raises_user_error(f"names sample '{make_split(names)['test'][0]}' \\(test\\) which is "
                           "not in the dataset", path):
        load_split(path, missing_one)
    with raises_user_error("split file does not exist", tmp_path / "nope.json"):
        load_split(tmp_path / "nope.json", names)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with raises_user_error("not valid JSON", bad):
        load_split(bad, names)
    bad.write_text(json.dumps({"train": ["n1"]}))
    with raises_user_error("no 'test' list", bad):
        load_split(bad, names)
    bad.write_text(json.dumps({"train": ["n1"], "test": ["n1"]}))
    with raises_user_error("twice", bad):
        load_split(bad, names)


# --------------------------------------------------------------------------- normalisation

def test_normalization_hand_computed():
    class Two:
        # image A: constant (10, 20, 30); image B: constant (30, 20, 50); 2 x 3 pixels each
        images = [np.broadcast_to(np.array([10, 20, 30], np.uint8), (2, 3, 3)),
                  np.broadcast_to(np.array([30, 20, 50], np.uint8), (2, 3, 3))]

        def __getitem__(self, i):
            return {"image": self.images[i]}

    norm = compute_normalization(Two(), [0, 1])
    np.testing.assert_allclose(norm.mean, [20.0, 20.0, 40.0])
    np.testing.assert_allclose(norm.std, [10.0, 1.0, 10.0])  # band 2 is constant: floored at 1
    out = norm.apply(np.array([[[30, 20, 20]]], np.uint8))
    assert out.dtype == np.float32 and out.shape == (3, 1, 1)
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 0.0, -2.0])
    assert Normalization.from_dict(norm.to_dict()) == norm
    assert json.loads(json.dumps(norm.to_dict())) == {"mean": [20.0, 20.0, 40.0],
                                                      "std": [10.0, 1.0, 10.0]}
    with raises_user_error("image has 4 band"):
        norm.apply(np.zeros((2, 2, 4), np.uint8))
    with raises_user_error("one mean and one std per band"):
        Normalization.from_dict({"mean": [1.0], "std": [1.0, 2.0]})
    with raises_user_error("malformed normalization"):
        Normalization.from_dict({"mean": [1.0]})


def test_normalization_on_dataset_subsamples(folder_dataset):
    ds = ImageMaskFolder(folder_dataset)
    full = compute_normalization(ds, [0, 1, 2])
    pixels = np.concatenate([ds[i]["image"].reshape(-1, 3) for i in (0, 1, 2)]).astype(np.float64)
    np.testing.assert_allclose(full.mean, pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(full.std, pixels.std(axis=0), rtol=1e-9)
    sampled = compute_normalization(ds, [0, 1, 2], max_pixels=600)  # 200 of 1920 pixels per image
    np.testing.assert_allclose(sampled.mean, full.mean, atol=20)
    assert sampled.mean != full.mean
    with raises_user_error("no training images"):
        compute_normalization(ds, [])


# --------------------------------------------------------------------------- augmentation

def _padding_count(mask: np.ndarray) -> int:
    return int((mask == IGNORE_INDEX).sum())


def test_train_transform_pads_small_images():
    t = train_transform(32, seed=0)
    image = random_rgb(20, 24, seed=4)
    mask = box_mask(20, 24, 0, 0, 5, 5, value=1)
    for _ in range(5):
        out = t(image=image, mask=mask)
        assert out["image"].shape == (32, 32, 3) and out["image"].dtype == np.uint8
        assert out["mask"].shape == (32, 32)
        assert _padding_count(out["mask"]) == 32 * 32 - 20 * 24  # = 544
        assert int((out["mask"] == 1).sum()) == 25
        assert set(np.unique(out["mask"]).tolist()) == {0, 1, IGNORE_INDEX}
        assert (out["image"][out["mask"] == IGNORE_INDEX] == 0).all()  # image padded with 0


def test_train_transform_crops_large_images_and_keeps_dem_band():
    t = train_transform(16, seed=1)
    image = np.dstack([random_rgb(40, 48, seed=5), np.full((40, 48), 77, np.uint8)])  # RGB + DEM
    mask = box_mask(40, 48, 10, 10, 30, 30, value=1)
    for _ in range(20):
        out = t(image=image, mask=mask)
        assert out["image"].shape == (16, 16, 4)
        assert out["mask"].shape == (16, 16)
        assert _padding_count(out["mask"]) == 0
        assert (out["image"][:, :, 3] == 77).all()  # colour jitter leaves the DEM alone
    smaller = t(image=image[:10, :12], mask=mask[:10, :12])
    assert smaller["image"].shape == (16, 16, 4)
    assert (smaller["image"][:, :, 3][smaller["mask"] == IGNORE_INDEX] == 0).all()


def test_train_transform_seeding_and_independent_flips():
    mask = np.arange(16, dtype=np.uint8).reshape(4, 4)  # the transform does not care about values
    image = np.zeros((4, 4, 3), np.uint8)
    dihedral = {}
    for k in range(4):
        r = np.rot90(mask, k)
        dihedral[r.tobytes()] = ("rot", k)
        dihedral[r[:, ::-1].tobytes()] = ("fliprot", k)
    assert len(dihedral) == 8

    def orientations(t, n=200):
        return [dihedral[t(image=image, mask=mask)["mask"].tobytes()] for _ in range(n)]

    seq = orientations(train_transform(4, seed=11))
    assert len(set(seq)) == 8  # flips and rotations drawn independently: all 8 orientations
    assert seq == orientations(train_transform(4, seed=11))
    assert seq != orientations(train_transform(4, seed=12))
    random.seed(5)
    a = orientations(train_transform(4))
    random.seed(5)
    assert a == orientations(train_transform(4))  # seed=None follows the global random seed
    with raises_user_error("positive integer"):
        train_transform(0)


def test_brightness_contrast_hand_computed():
    jitter = RGBBrightnessContrast(brightness=0.1, contrast=0.1, bands=3, p=1.0)
    image = np.array([[[100, 250, 0, 9]]], np.uint8)
    out = jitter.apply(image, alpha=1.1, beta=0.0)
    np.testing.assert_array_equal(out, [[[110, 255, 0, 9]]])  # 250 * 1.1 = 275 -> 255
    out = jitter.apply(image, alpha=1.0, beta=-0.1)  # -25.5
    np.testing.assert_array_equal(out, [[[74, 224, 0, 9]]])  # rint(74.5) = 74, rint(224.5) = 224
    gray = jitter.apply(np.array([[[100]]], np.uint8), alpha=0.9, beta=0.0)
    np.testing.assert_array_equal(gray, [[[90]]])


# --------------------------------------------------------------------------- SegmentationDataset

def test_segmentation_dataset_eval_and_train(folder_dataset):
    base = ImageMaskFolder(folder_dataset)
    norm = Normalization(mean=[100.0, 100.0, 100.0], std=[50.0, 50.0, 50.0])
    ds = SegmentationDataset(base, [0, 4], norm)
    assert len(ds) == 2
    item = ds[1]
    assert item["name"] == "e"
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (3, 40, 48)
    assert item["mask"].dtype == torch.int64 and tuple(item["mask"].shape) == (40, 48)
    raw = base[4]
    expected = (raw["image"][7, 9].astype(np.float32) - 100.0) / 50.0
    np.testing.assert_allclose(item["image"][:, 7, 9].numpy(), expected, rtol=1e-6)
    assert int(item["mask"].sum()) == 180

    train = SegmentationDataset(base, [0, 1, 2], norm, transform=train_transform(64, seed=0))
    item = train[0]
    assert tuple(item["image"].shape) == (3, 64, 64) and tuple(item["mask"].shape) == (64, 64)
    assert set(torch.unique(item["mask"]).tolist()) <= {0, 1, IGNORE_INDEX}
    assert int((item["mask"] == IGNORE_INDEX).sum()) == 64 * 64 - 40 * 48
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert tuple(batch["image"].shape) == (3, 3, 64, 64) and batch["name"] == ["a", "b", "c"]


def test_segmentation_dataset_with_dem(bijie_dataset):
    base = BijieLandslide(bijie_dataset, use_dem=True)
    norm = compute_normalization(base, range(len(base)))
    assert len(norm.mean) == 4
    item = SegmentationDataset(base, [1], norm, transform=train_transform(32, seed=0))[0]
    assert tuple(item["image"].shape) == (4, 32, 32)


def test_segmentation_dataset_workers_draw_different_augmentations(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "images" / "x.png", random_rgb(64, 64, seed=6))
    write_image(root / "masks" / "x.png", np.zeros((64, 64), np.uint8))
    base = ImageMaskFolder(root)
    norm = Normalization(mean=[0.0] * 3, std=[1.0] * 3)
    data = SegmentationDataset(base, [0] * 8, norm, transform=train_transform(16, seed=0))
    loader = DataLoader(data, batch_size=1, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    crops = [b["image"][0] for b in loader]  # items alternate between worker 0 and worker 1
    same = [torch.equal(crops[2 * k], crops[2 * k + 1]) for k in range(4)]
    assert not all(same)


# --------------------------------------------------------------------------- real data

@pytest.mark.realdata
@pytest.mark.parametrize("name, size, landslide_share", [("sichuan-aerial", 1024, 0.192),
                                                         ("hokkaido-iburi", 512, 0.116)])
def test_real_datasets_open_and_validate(shared_data, name, size, landslide_share):
    root = shared_data / name
    if not root.is_dir():
        pytest.skip(f"real data not available: {root} does not exist")
    ds = open_dataset(root)
    assert isinstance(ds, ImageMaskFolder)
    assert len(ds) == 36
    positives = total = 0
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (size, size, 3)
        assert item["mask"].shape == (size, size)
        positives += int(item["mask"].sum())
        total += item["mask"].size
    assert positives / total == pytest.approx(landslide_share, abs=0.001)  # README's figure
    split = make_split(ds.names)
    assert len(split["test"]) == 11 and len(split["val"]) == 4 and len(split["train"]) == 21
