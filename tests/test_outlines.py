"""Outline cleaning (scdnn.outlines, scdnn.mapping.clean): hand-computed cases, whole array
and strip by strip."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage

from scdnn.errors import InvalidValueError
from scdnn.mapping.clean import clean_raster
from scdnn.outlines import (
    DEFAULTS_PX,
    OutlineCleaning,
    PixelCleaning,
    clean_mask,
    cleaning_record,
    disk,
)

#: no smoothing: only the object and hole steps act
SIZES = PixelCleaning(min_area=10, max_hole=5, smooth=0, simplify=0)


def square(mask: np.ndarray, top: int, left: int, size: int, value=True) -> np.ndarray:
    mask[top:top + size, left:left + size] = value
    return mask


def test_speck_below_min_area_removed_and_object_at_min_area_kept():
    mask = np.zeros((20, 20), bool)
    square(mask, 1, 1, 3)          # 9 px < 10: removed
    mask[10:12, 10:15] = True       # 10 px: kept (objects smaller than min_area go)
    out = clean_mask(mask, SIZES)
    assert not out[1:4, 1:4].any()
    assert out[10:12, 10:15].all() and out.sum() == 10


def test_objects_are_eight_connected():
    mask = np.zeros((12, 12), bool)
    for i in range(6):  # a diagonal line of 6 px: one 8-connected object of 6 (+ fixes)
        mask[2 + i, 2 + i] = True
    out = clean_mask(mask, PixelCleaning(min_area=6, max_hole=0, smooth=0, simplify=0))
    assert out[2:8, 2:8].diagonal().all()  # kept whole, corners bridged
    assert ndimage.label(out, structure=np.ones((3, 3)))[1] == 1
    assert ndimage.label(out)[1] == 1  # and one 4-connected polygon


def test_hole_below_max_hole_filled_and_larger_hole_kept():
    mask = square(np.zeros((30, 30), bool), 2, 2, 26)
    square(mask, 5, 5, 2, False)    # 4 px < 5: filled
    square(mask, 15, 15, 3, False)  # 9 px: kept
    out = clean_mask(mask, SIZES)
    assert out[5:7, 5:7].all()
    assert not out[15:18, 15:18].any()
    assert out.sum() == 26 * 26 - 9


def test_background_touching_edge_or_nodata_is_not_a_hole():
    mask = square(np.zeros((12, 12), bool), 0, 0, 8)
    mask[0, 3] = False                 # a notch at the array's edge: open
    mask[4, 4] = False                 # a pixel next to no data: open
    valid = np.ones_like(mask)
    valid[4, 5] = False
    out = clean_mask(mask, SIZES, valid=valid)
    assert not out[0, 3] and not out[4, 4] and not out[4, 5]


def test_nodata_preserved_uint8():
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 7:] = 255                  # no data
    mask[2, 2] = 1                     # speck: removed
    mask[:, 6] = 1                     # 10 px cut by no data: judged by what is seen, kept
    out = clean_mask(mask, SIZES)
    assert out.dtype == np.uint8
    assert (out[:, 7:] == 255).all()
    assert out[2, 2] == 0 and (out[:, 6] == 1).all()


def test_smoothing_closes_a_slit_removes_a_line_and_keeps_edges_in_place():
    mask = square(np.zeros((40, 40), bool), 10, 10, 20)
    mask[12:28, 19] = False            # a 1-px slit inside: closed by the radius-2 disk
    mask[35, 5:35] = True              # a 1-px line: opened away
    out = clean_mask(mask, PixelCleaning(min_area=0, max_hole=0, smooth=2, simplify=0))
    assert out[12:28, 19].all()
    assert not out[33:].any()
    # straight edges stay where they were (only the corners are rounded)
    assert out[10, 12:28].all() and out[29, 12:28].all()
    assert out[12:28, 10].all() and out[12:28, 29].all()
    assert not out[9].any() and not out[30].any() and not out[:, 9].any()
    assert not out[:, 30].any()
    assert not out[10, 10] and out[11, 11]  # a corner pixel goes


def test_disk():
    assert disk(1).sum() == 5 and disk(2).sum() == 13 and disk(0.5).sum() == 1


def write_mask(path, mask: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1],
                           height=mask.shape[0], count=1, dtype="uint8", nodata=255) as dst:
            dst.write(mask, 1)


def read_mask(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(1)


def test_object_and_hole_crossing_strips_are_judged_whole(tmp_path):
    # a 3 px wide, 12 px tall bar (36 px, kept with min_area 30) crossing four strips of 4
    # rows; each strip alone holds at most 12 px of it. A ring of landslide around a 3 x 3
    # hole (9 px, filled with max_hole 10) crossing two strips.
    mask = np.zeros((16, 20), np.uint8)
    mask[2:14, 2:5] = 1
    mask[1:8, 10:17] = 1
    mask[3:6, 12:15] = 0
    write_mask(tmp_path / "m.tif", mask)
    cleaning = PixelCleaning(min_area=30, max_hole=10, smooth=0, simplify=0)
    counts = clean_raster(tmp_path / "m.tif", tmp_path / "c.tif", cleaning, strip_rows=4)
    out = read_mask(tmp_path / "c.tif")
    assert (out[2:14, 2:5] == 1).all()
    assert (out[1:8, 10:17] == 1).all()
    assert counts["landslide_pixels"] == 36 + 49
    assert np.array_equal(out, clean_mask(mask, cleaning))


@pytest.mark.parametrize("smooth", [0, 1, 2.5])
def test_strips_equal_whole_array(tmp_path, smooth):
    rng = np.random.default_rng(int(smooth * 10))
    h, w = 61, 53
    landslide = ndimage.gaussian_filter(rng.random((h, w)), 1.5) > 0.5
    landslide |= rng.random((h, w)) < 0.04
    valid = np.ones((h, w), bool)
    valid[:, :6] = False
    valid[30:37, 20:28] = False
    mask = np.where(valid, landslide, 255).astype(np.uint8)
    write_mask(tmp_path / "m.tif", mask)
    cleaning = PixelCleaning(min_area=15, max_hole=12, smooth=smooth, simplify=0)
    whole = clean_mask(mask, cleaning)
    assert not np.array_equal(whole, mask)  # the cleaning does something here
    for rows in (3, 7, 61):
        clean_raster(tmp_path / "m.tif", tmp_path / f"c{rows}.tif", cleaning, strip_rows=rows)
        assert np.array_equal(read_mask(tmp_path / f"c{rows}.tif"), whole), rows


def test_metres_to_pixels():
    cleaning = OutlineCleaning()  # 100 m², 100 m², 1 m, 0.5 m
    assert cleaning.resolve(0.5) == PixelCleaning(400.0, 400.0, 2.0, 1.0)
    assert cleaning.resolve(2.0) == PixelCleaning(25.0, 25.0, 0.5, 0.25)
    assert OutlineCleaning(min_area=50).resolve(0.5).min_area == 200.0
    # no pixel size (a PNG): pixel defaults; given values are taken as pixels
    assert cleaning.resolve(None) == PixelCleaning(*DEFAULTS_PX.values())
    assert OutlineCleaning(min_area=50).resolve(None).min_area == 50.0
    assert OutlineCleaning(smooth=3, units="px").resolve(0.5).smooth == 3.0
    record = cleaning_record(cleaning, 0.5)
    assert record["units"] == "m" and record["min_area"] == 100.0
    assert record["pixels"]["min_area"] == 400.0 and record["pixel_size"] == 0.5
    assert cleaning_record(cleaning, None)["units"] == "px"
    assert cleaning_record(None, 0.5) is None


@pytest.mark.parametrize("name", ["min_area", "max_hole", "smooth", "simplify"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_values_refused(name, value):
    with pytest.raises(InvalidValueError, match=name):
        OutlineCleaning(**{name: value})


def test_bad_units_refused():
    with pytest.raises(InvalidValueError, match="units"):
        OutlineCleaning(units="ft")


def test_predict_folder_cleans_masks_in_pixels(folder_dataset, tmp_path):
    from conftest import TINY, spread_weights
    from scdnn.datasets import read_image
    from scdnn.datasets import read_mask as read_png_mask
    from scdnn.inference import predict_folder

    weights = spread_weights(tmp_path / "w.safetensors",
                             read_image(folder_dataset / "images" / "a.png"), TINY)
    cleaning = OutlineCleaning(min_area=40, max_hole=40, smooth=1, units="px")
    predict_folder(folder_dataset, weights, tmp_path / "raw")
    predict_folder(folder_dataset, weights, tmp_path / "clean", cleaning=cleaning)
    changed = False
    for path in sorted((tmp_path / "raw" / "masks").glob("*.png")):
        raw = read_png_mask(path).astype(bool)
        clean = read_png_mask(tmp_path / "clean" / "masks" / path.name).astype(bool)
        assert np.array_equal(clean, clean_mask(raw, cleaning))
        changed |= not np.array_equal(clean, raw)
        assert (tmp_path / "clean" / "probabilities" / path.name).read_bytes() == \
            (tmp_path / "raw" / "probabilities" / path.name).read_bytes()
    assert changed


@pytest.mark.slow
def test_demo_records_its_cleaning(tmp_path):
    from scdnn.demo import run_demo
    from test_demo import tiny_sample, tiny_weights

    weights = tiny_weights(tmp_path / "w" / "weights.safetensors")
    sample = tiny_sample(tmp_path / "sample")
    raw = run_demo(tmp_path / "raw", weights=weights, sample=sample)
    clean = run_demo(tmp_path / "clean", weights=weights, sample=sample,
                     cleaning=OutlineCleaning(min_area=2500))
    assert raw["cleaning"] is None and raw["maps"]["scene-a"]["cleaning"] is None
    assert clean["cleaning"]["units"] == "px" and clean["cleaning"]["min_area"] == 2500.0
    assert clean["maps"]["scene-a"]["cleaning"]["pixels"]["min_area"] == 2500.0
    changed = False
    for name in ("scene-a", "scene-b"):
        before = read_mask(tmp_path / "raw" / "maps" / name / "mask.tif")
        after = read_mask(tmp_path / "clean" / "maps" / name / "mask.tif")
        # the tiny network's objects are smaller than 2500 px (the images are 48 x 48)
        assert np.array_equal(after, clean_mask(before, OutlineCleaning(min_area=2500)))
        changed = changed or not np.array_equal(after, before)
    assert changed


def test_cli_cleaning_options_are_refused_with_predictions(folder_dataset, tmp_path, capsys):
    from scdnn.cli import main

    code = main(["evaluate", str(folder_dataset), "--predictions",
                 str(folder_dataset / "masks"), "--out", str(tmp_path / "e"), "--smooth", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--predictions are scored as given" in err and not (tmp_path / "e").exists()
    # --raw with them is accepted (nothing to clean)
    assert main(["evaluate", str(folder_dataset), "--predictions",
                 str(folder_dataset / "masks"), "--out", str(tmp_path / "r"), "--raw",
                 "--all"]) == 0


@pytest.mark.parametrize("smooth", [0, 2.5])
def test_sparse_raster_cleans_and_polygonizes_as_whole_array(tmp_path, smooth):
    """A sparse GeoTIFF (blocks holding only no data left out, as ``scdnn map`` writes it):
    strips skip what it does not store, and give the whole-array result all the same."""
    from scdnn.datasets.scene import stored_blocks
    from scdnn.mapping.outputs import BlockWriter, polygonize

    rng = np.random.default_rng(7)
    h, w, block = 96, 112, 16
    landslide = ndimage.gaussian_filter(rng.random((h, w)), 1.5) > 0.5
    landslide |= rng.random((h, w)) < 0.04
    stored = rng.random((h // block, w // block)) < 0.45
    stored[0, 0] = stored[-1, -1] = True  # data on the scene's edges too
    stored[2] = False  # a whole strip of blocks without data
    valid = np.kron(stored, np.ones((block, block), bool))
    valid[block * 3 + 5:block * 3 + 9, :] = False  # no data inside stored blocks too
    mask = np.where(valid, landslide, 255).astype(np.uint8)
    grid = dict(width=w, height=h, crs=None, transform=rasterio.Affine.identity())
    with BlockWriter(tmp_path / "m.tif", dtype="uint8", nodata=255, block=block, **grid) as out:
        out.write(0, 0, mask)
    prob = np.where(mask == 1, 0.8, 0.2).astype(np.float32)
    with BlockWriter(tmp_path / "p.tif", dtype="float32", nodata=-1, block=block, **grid) as out:
        out.write(0, 0, np.where(valid, prob, -1).astype(np.float32))
    index = stored_blocks(tmp_path / "m.tif")
    assert index is not None and np.array_equal(index.stored, stored)
    assert np.array_equal(read_mask(tmp_path / "m.tif"), mask)
    cleaning = PixelCleaning(min_area=15, max_hole=12, smooth=smooth, simplify=0)
    whole = clean_mask(mask, cleaning)
    for rows in (block, 8):
        counts = clean_raster(tmp_path / "m.tif", tmp_path / f"c{rows}.tif", cleaning,
                              strip_rows=rows)
        assert np.array_equal(read_mask(tmp_path / f"c{rows}.tif"), whole), rows
        assert counts["valid_pixels"] == int(valid.sum())
    write_mask(tmp_path / "dense.tif", whole)  # not sparse: read whole
    cleaned = polygonize(tmp_path / f"c{block}.tif", tmp_path / "p.tif", strip_rows=8)
    dense = polygonize(tmp_path / "dense.tif", tmp_path / "p.tif", strip_rows=8)
    assert len(cleaned) == len(dense) > 3
    for a, b in zip(cleaned, dense, strict=True):
        assert a.geometry.equals(b.geometry)
        assert (a.pixels, a.probability_sum, a.probability_max) == (
            b.pixels, b.probability_sum, b.probability_max)
