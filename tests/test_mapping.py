"""``scdnn map``: tiled, blended scene mapping to COGs and polygons, on tiny generated scenes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from conftest import TINY, spread_weights
from scdnn.cli import main
from scdnn.datasets import Normalization
from scdnn.errors import UserError
from scdnn.inference import landslide_probability
from scdnn.mapping import Tiling, map_scene, open_scene, plan_windows, polygonize, predict_scene
from scdnn.mapping.outputs import (
    PROBABILITY_SCALE,
    landslide_table,
    probability_percent,
    read_probability,
    write_cog,
)
from scdnn.mapping.tiling import blend_weights, window_grid, window_offsets
from scdnn.predictor import Predictor
from scdnn.weights import load_model, read_card

H, W = 150, 230
TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.7, 3400000.0)  # non-square pixels, 0.35 m²
CRS = "EPSG:32647"
SMALL = ["--tile", "64", "--overlap", "16"]
#: With tile 64 / overlap 16: rows at 0, 48, 86 and columns at 0, 48, 96, 144, 166.
#: Columns < 100 are invalid, so the 3 windows of column 0 have no valid pixel; the notch
#: (rows > 120, columns > 200) leaves window (86, 166) partly valid.
ROWS, COLS = np.mgrid[0:H, 0:W]
VALID = (COLS >= 100) & ~((ROWS > 120) & (COLS > 200))
VALID_PIXELS = H * (W - 100) - 29 * 29  # 18659


def rgb(seed: int = 0) -> np.ndarray:
    """3 x H x W uint8: smooth structure plus noise, so the network's output varies."""
    rng = np.random.default_rng(seed)
    base = 128 + 90 * np.sin(ROWS / 9.0)[None] * np.cos(COLS / 13.0)[None]
    return np.clip(base + rng.normal(0, 25, (3, H, W)), 1, 255).astype(np.uint8)  # no 0: nodata


def write_scene(path: Path, variant: str = "plain", image: np.ndarray | None = None,
                valid: np.ndarray = VALID, crs: str | None = CRS, **profile) -> Path:
    """A GeoTIFF scene; ``variant`` says how no data is stored: ``mask`` (internal mask
    band), ``nodata`` (value 0 in every band), ``alpha`` (4th band), ``plain`` (none)."""
    image = rgb() if image is None else image
    kw = dict(driver="GTiff", width=image.shape[2], height=image.shape[1], dtype=image.dtype,
              **({"transform": TRANSFORM, "crs": crs} if crs else {}), **profile)
    if variant == "nodata":
        image = np.where(valid, image, 0).astype(image.dtype)
        kw["nodata"] = 0
    if variant == "alpha":
        image = np.concatenate([image, np.where(valid, 255, 0)[None].astype(np.uint8)])
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the scene without CRS
        with rasterio.open(path, "w", count=image.shape[0], **kw) as dst:
            dst.write(image)
            if variant == "alpha":
                colors = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
                dst.colorinterp = ([*colors] if len(image) == 4 else
                                   [ColorInterp.gray] * (len(image) - 1)) + [ColorInterp.alpha]
            if variant == "mask":
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Full-size SCDnn weights, no training, probabilities spread over (0, 1)."""
    return spread_weights(tmp_path_factory.mktemp("weights") / "weights.safetensors",
                          np.moveaxis(rgb(1)[:, :64, :64], 0, -1))


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, weights) -> dict[str, Path]:
    """The same scene mapped with no data stored three ways: variant -> output folder."""
    root = tmp_path_factory.mktemp("mapped")
    outs = {}
    for variant in ("mask", "nodata", "alpha"):
        scene = write_scene(root / f"{variant}.tif", variant)
        map_scene(scene, weights, root / variant, tiling=Tiling(64, 16), cog_blocksize=64)
        outs[variant] = root / variant
    return outs


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def read_prob(path: Path) -> np.ma.MaskedArray:
    """A probability.tif as probabilities (percent x scale), masked where no data."""
    with rasterio.open(path) as src:
        return read_probability(src)


def blended(model, scene: Path, tiling: Tiling) -> np.ndarray:
    """The blended probability of ``scene`` (in memory, unrounded), as map_scene writes it."""
    predictor = model if isinstance(model, Predictor) else Predictor.from_file(model)
    with open_scene(scene, 3, predictor.inputs) as sc:
        rows = predict_scene(predictor, sc, plan_windows(predictor, sc, tiling))
        return np.concatenate([p for _, p, _ in rows])

#: The largest difference between a probability and what probability.tif stores of it
#: (rounded to a percent).
ROUNDING = 0.005 + 1e-6


def one_pass(weights: Path, image: np.ndarray) -> np.ndarray:
    model, card = load_model(weights)
    return landslide_probability(model, np.moveaxis(image, 0, -1),
                                 card.normalization)


def assert_user_error(code: int, capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def no_files(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# --- tiling ----------------------------------------------------------------------------------

def test_window_offsets_end_on_the_scene_edge() -> None:
    assert window_offsets(230, 64, 16) == [0, 48, 96, 144, 166]
    assert window_offsets(112, 64, 16) == [0, 48]  # 112 - 64 is exactly one stride
    assert window_offsets(64, 64, 16) == [0]
    assert window_offsets(40, 64, 16) == [0]
    grid = window_grid(40, 50, 64, 16)  # smaller than a tile: one window, the whole scene
    assert [(w.row_off, w.col_off, w.height, w.width) for w in grid] == [(0, 0, 40, 50)]
    assert len(window_grid(H, W, 64, 16)) == 15


def test_blend_weights_raised_cosine_ramp() -> None:
    row = blend_weights(8, 8, 2)[3]  # a core row: the column profile alone
    # sin²(π/8) = 0.146447, sin²(3π/8) = 0.853553, flat core, symmetric
    np.testing.assert_allclose(row, [0.146447, 0.853553, 1, 1, 1, 1, 0.853553, 0.146447],
                               atol=1e-6)
    ramp = blend_weights(64, 64, 16)[32]
    # over an overlap of exactly 16 pixels, falling and rising ramps sum to 1
    np.testing.assert_allclose(ramp[-16:] + ramp[:16], 1.0, atol=1e-6)
    assert ramp.min() > 0
    np.testing.assert_array_equal(blend_weights(3, 4, 0), np.ones((3, 4), np.float32))
    two_d = blend_weights(8, 8, 2)
    assert two_d[0, 0] == pytest.approx(0.146447 ** 2, abs=1e-6)


# --- outputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["mask", "nodata", "alpha"])
def test_outputs_on_the_scene_grid_with_nodata_outside_valid(mapped, variant: str) -> None:
    out = mapped[variant]
    assert sorted(p.name for p in out.iterdir()) == ["landslides.gpkg", "map.json", "mask.tif",
                                                    "probability.tif"]
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(out / name) as src:
            assert (src.width, src.height, src.count, src.dtypes[0]) == (W, H, 1, "uint8")
            assert src.crs == rasterio.crs.CRS.from_string(CRS)
            assert src.transform == TRANSFORM
            assert src.nodata == 255
    with rasterio.open(out / "probability.tif") as src:  # percent: value x 0.01
        assert src.scales == (PROBABILITY_SCALE,) and src.offsets == (0.0,)
        assert src.units == ("percent",)
    percent, mask = read(out / "probability.tif"), read(out / "mask.tif")
    assert np.all(percent[~VALID] == 255) and np.all(mask[~VALID] == 255)
    assert np.all(percent[VALID] <= 100)
    # the mask is thresholded on the unrounded probability: p >= 0.5 rounds to >= 50 percent,
    # p < 0.5 to <= 50
    assert np.all(percent[VALID][mask[VALID] == 1] >= 50)
    assert np.all(percent[VALID][mask[VALID] == 0] <= 50)
    np.testing.assert_array_equal(read_prob(out / "probability.tif").mask, ~VALID)
    assert 0 < mask[VALID].sum() < VALID_PIXELS  # the rescaled network says both
    summary = json.loads((out / "map.json").read_text())
    assert summary["windows"] == {"total": 15, "run": 12, "skipped_no_valid_pixel": 3,
                                  "masks_read": 15}
    assert summary["valid_pixels"] == VALID_PIXELS
    assert summary["landslide_pixels"] == int(mask[VALID].sum())
    assert summary["landslide_area"] == pytest.approx(mask[VALID].sum() * 0.35)
    assert summary["units"] == "metre" and summary["crs"] == CRS
    assert (summary["tile"], summary["overlap"], summary["threshold"]) == (64, 16, 0.5)
    assert summary["model"] == "scdnn" and summary["provenance"]["scdnn_version"]
    assert not list(out.parent.rglob("*.part*"))


def test_nodata_stored_any_way_gives_the_same_map(mapped) -> None:
    # invalid pixels are zeroed after normalisation, so what fills them (random RGB under a
    # mask band, zeros under a nodata value, anything under alpha) cannot change the result
    reference = read(mapped["mask"] / "probability.tif").astype(int)
    for variant in ("nodata", "alpha"):
        # equal to 1e-5 before rounding: at most one percent apart (a value on a half percent)
        difference = read(mapped[variant] / "probability.tif").astype(int) - reference
        assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.001


def test_outputs_are_cloud_optimized_geotiffs_with_overviews(mapped) -> None:
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(mapped["mask"] / name) as src:
            profile = src.profile
            assert profile["tiled"] and profile["blockxsize"] == 64
            assert profile["compress"] == "deflate"
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.overviews(1) == [2, 4]  # 230 x 150 halves to below one 64 block
            overview = src.read(1, out_shape=(H // 4 + 1, W // 4 + 1))
            assert overview.shape[0] > 0
    with rasterio.open(mapped["mask"] / "mask.tif") as src:
        overview = src.read(1, out_shape=(38, 58))
        assert set(np.unique(overview)) <= {0, 1, 255}  # mode resampling keeps classes


def test_polygons_of_the_mapped_scene(mapped) -> None:
    import geopandas as gpd

    table = gpd.read_file(mapped["mask"] / "landslides.gpkg", layer="landslides")
    assert list(table.columns) == ["id", "area_m2", "perimeter_m", "mean_probability",
                                   "max_probability", "geometry"]
    assert table.crs.to_epsg() == 32647
    mask = read(mapped["mask"] / "mask.tif")
    # polygons tile the landslide pixels exactly: same total area
    assert table.area_m2.sum() == pytest.approx((mask == 1).sum() * 0.35)
    assert (table.mean_probability >= 0.5).all() and (table.max_probability <= 1).all()
    assert (table.max_probability >= table.mean_probability).all()
    assert list(table.id) == list(range(1, len(table) + 1))


# --- seamless blending -----------------------------------------------------------------------

def test_scene_smaller_than_one_tile_equals_one_pass(tmp_path: Path, weights: Path) -> None:
    scene = write_scene(tmp_path / "plain.tif", "plain")
    summary = map_scene(scene, weights, tmp_path / "out")  # tile 512 > 230 x 150
    assert summary["windows"] == {"total": 1, "run": 1, "skipped_no_valid_pixel": 0,
                                  "masks_read": 1}
    np.testing.assert_allclose(read_prob(tmp_path / "out" / "probability.tif"),
                               one_pass(weights, rgb()), atol=ROUNDING)
    with rasterio.open(tmp_path / "out" / "mask.tif") as src:
        assert src.profile["blockxsize"] == 512 and src.profile["tiled"]


@pytest.mark.slow
def test_overlap_blending_is_closer_to_one_pass_than_plain_tiling(tmp_path: Path,
                                                                   weights: Path) -> None:
    # SCDnn's receptive field (atrous rates up to 18 at 1/16 scale) is far larger than a
    # 64-pixel tile, so no tiling reproduces one pass; more overlap must come closer
    scene = write_scene(tmp_path / "plain.tif", "plain")
    reference = one_pass(weights, rgb())
    errors = {}
    for overlap in (0, 16, 32):
        probability = blended(weights, scene, Tiling(64, overlap))
        errors[overlap] = np.abs(probability - reference).mean()
    assert errors[32] < errors[16] < errors[0], errors


def test_blending_removes_seams_of_a_small_receptive_field_network(tmp_path: Path,
                                                                   weights: Path) -> None:
    # two 3x3 convolutions see 2 pixels around: plain tiles differ from one pass at their
    # seams; a 16-pixel blended overlap leaves only the ramps' tiny outer weights
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.Conv2d(8, 2, 3, padding=1)).eval()
    predictor = Predictor(net, read_card(weights))
    scene = write_scene(tmp_path / "plain.tif", "plain")
    reference = landslide_probability(net, np.moveaxis(rgb(), 0, -1),
                                      Normalization(mean=[128.0] * 3, std=[60.0] * 3))
    errors = {}
    for overlap in (0, 16):
        errors[overlap] = np.abs(blended(predictor, scene, Tiling(64, overlap)) - reference)
    assert errors[0].max() > 0.05  # seams of plain tiling
    assert np.all(errors[0][2:62, 2:62] < 1e-5)  # ... but exact inside the first tile
    assert errors[16].max() < 0.005 and errors[16].mean() < 1e-4


def test_windows_aligned_to_the_output_stride_agree_with_one_pass(tmp_path: Path) -> None:
    # a strided network is not shift-equivariant: windows starting at offsets that are not a
    # multiple of its output stride predict another map than one pass over the scene does
    weights = spread_weights(tmp_path / "w.safetensors", np.moveaxis(rgb(1)[:, :64, :64], 0, -1),
                             TINY)
    predictor = Predictor.from_file(weights)
    assert predictor.output_stride > 1
    reference = one_pass(weights, rgb())
    scene = write_scene(tmp_path / "plain.tif", "plain")
    probability, errors = {}, {}
    with open_scene(scene, 3, predictor.inputs) as sc:
        for align in (None, 1):  # None: the model's output stride
            plan = plan_windows(predictor, sc, Tiling(96, 32), align=align)
            rows = predict_scene(predictor, sc, plan)
            probability[align] = np.concatenate([p for _, p, _ in rows])
            error = np.abs(probability[align] - reference)
            errors[align] = float(error[:-32, :-32].mean())  # away from the overhanging edges
    assert errors[None] < errors[1] / 3, errors
    map_scene(scene, predictor, tmp_path / "map", tiling=Tiling(96, 32))  # aligned
    # the file holds the aligned windows' probability, rounded to a percent
    np.testing.assert_array_equal(read(tmp_path / "map" / "probability.tif"),
                                  probability_percent(probability[None], True))


def test_windows_without_valid_pixels_never_reach_the_network(tmp_path: Path,
                                                              weights: Path) -> None:
    batches: list[int] = []

    class Spy(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            batches.append(x.shape[0])
            return self.model(x)

    model, card = load_model(weights)
    scene = write_scene(tmp_path / "s.tif", "mask")
    # Spy has no output_stride: a plain grid, 3 of its 15 windows without a valid pixel
    map_scene(scene, Predictor(Spy(model), card), tmp_path / "out", tiling=Tiling(64, 16, 5))
    assert batches == [5, 5, 2]  # 12 of 15 windows


def test_sparse_scene_of_large_declared_size_maps_only_its_data(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A 20,000 x 20,000 px sparse GeoTIFF (nodata 0) storing one 640 x 640 px region: only the
    windows touching the region are read, the outputs store only the blocks near it, and the
    map of the region's interior equals the map of a scene holding just the region."""
    from scdnn.datasets.scene import Scene, stored_blocks

    size, tile, overlap, region = 20_000, 256, 64, 640  # region = tile + 2 steps of 192
    off = 13 * 768  # a multiple of the window step (192) and of the block size (256)
    rng = np.random.default_rng(3)
    base = 128 + 90 * np.sin(np.arange(region) / 9.0)[:, None] * np.cos(
        np.arange(region) / 13.0)[None]
    image = np.clip(base[None] + rng.normal(0, 25, (3, region, region)), 1, 255).astype(np.uint8)
    weights = spread_weights(tmp_path / "w.safetensors", np.moveaxis(image[:, :64, :64], 0, -1),
                             TINY)
    big = tmp_path / "big.tif"
    with rasterio.open(big, "w", driver="GTiff", width=size, height=size, count=3,
                       dtype="uint8", nodata=0, tiled=True, blockxsize=256, blockysize=256,
                       compress="deflate", sparse_ok=True, crs=CRS, transform=TRANSFORM) as dst:
        dst.write(image, window=rasterio.windows.Window(off, off, region, region))
    assert big.stat().st_size < 2_000_000
    small = tmp_path / "small.tif"
    with rasterio.open(small, "w", driver="GTiff", width=region, height=region, count=3,
                       dtype="uint8", crs=CRS, transform=TRANSFORM @ Affine.translation(off, off)
                       ) as dst:
        dst.write(image)
    reads: list[tuple[int, int]] = []
    read_window = Scene.read

    def counting_read(self, window):
        reads.append((int(window.row_off), int(window.col_off)))
        return read_window(self, window)

    monkeypatch.setattr(Scene, "read", counting_read)
    tiling = Tiling(tile, overlap)
    summary = map_scene(big, weights, tmp_path / "big", tiling=tiling)
    image_reads = [r for r in reads if r != (size - 1, size - 1)]  # open_scene's probe
    # 5 x 5 windows touch the region (one step before it to one step past it); they are the
    # only ones whose mask is read, and they all hold data
    offsets = [off + k * 192 for k in range(-1, 4)]
    assert sorted(set(image_reads)) == sorted((r, c) for r in offsets for c in offsets)
    assert summary["windows"]["run"] == summary["windows"]["masks_read"] == 25
    assert summary["windows"]["total"] == 104 * 104
    assert summary["valid_pixels"] == region * region
    for name in ("probability.tif", "mask.tif"):
        stored = stored_blocks(tmp_path / "big" / name)
        rows, cols = np.nonzero(stored.stored)
        assert 0 < len(rows) <= 4 and rows.min() * 512 >= off - 512, name

    map_scene(small, weights, tmp_path / "small", tiling=tiling)
    # the interior, [overlap, region - overlap), is covered by the same windows in both maps
    # (the big scene's windows one step before and after the region reach overlap px into it)
    inner = slice(overlap, region - overlap)
    with rasterio.open(tmp_path / "big" / "mask.tif") as src:
        window = rasterio.windows.Window(off, off, region, region)
        big_mask = src.read(1, window=window)
        assert src.read(1, window=rasterio.windows.Window(0, 0, 1024, 1024)).max() == 255
    with rasterio.open(tmp_path / "big" / "probability.tif") as src:
        big_prob = src.read(1, window=window)
    small_mask = read(tmp_path / "small" / "mask.tif")
    small_prob = read(tmp_path / "small" / "probability.tif")
    np.testing.assert_array_equal(big_prob[inner, inner], small_prob[inner, inner])
    np.testing.assert_array_equal(big_mask[inner, inner], small_mask[inner, inner])
    assert 0 < small_mask[inner, inner].sum() < (region - 2 * overlap) ** 2
    assert (big_mask != 255).sum() == region * region


# --- polygons --------------------------------------------------------------------------------

def write_mask(path: Path, mask: np.ndarray, prob: np.ndarray | None = None) -> tuple[Path, Path]:
    kw = dict(driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
              crs=CRS, transform=TRANSFORM)
    with rasterio.open(path, "w", dtype="uint8", nodata=255, **kw) as dst:
        dst.write(mask, 1)
    prob = np.where(mask == 1, 0.75, 0.25).astype(np.float32) if prob is None else prob
    prob_path = path.with_name("probability.tif")
    with rasterio.open(prob_path, "w", dtype="float32", nodata=-1, **kw) as dst:
        dst.write(prob, 1)
    return path, prob_path


def test_gdal_block_cache_is_bounded_while_mapping_and_restored_after(
        tmp_path: Path, weights: Path, monkeypatch) -> None:
    """GDAL's block cache would keep every block of the scene read so far (its default bound
    is 5 % of the machine's memory): map_scene bounds it for the run, every step included."""
    from rasterio.env import get_gdal_config, set_gdal_config

    from scdnn.mapping import predict

    seen: dict[str, int] = {}

    def spy(name: str):
        step = getattr(predict, name)

        def run(*args, **kwargs):
            seen[name] = get_gdal_config("GDAL_CACHEMAX")
            return step(*args, **kwargs)
        return run

    for name in ("plan_windows", "write_rasters", "polygonize", "write_polygons", "copy_to_cog"):
        monkeypatch.setattr(predict, name, spy(name))
    before = get_gdal_config("GDAL_CACHEMAX")
    big = max(before, 4 * predict.GDAL_CACHE_BYTES)
    set_gdal_config("GDAL_CACHEMAX", big)  # as on a machine with 80 GiB or more
    try:
        map_scene(write_scene(tmp_path / "s.tif", "mask"), weights, tmp_path / "out",
                  tiling=Tiling(64, 16))
        assert get_gdal_config("GDAL_CACHEMAX") == big  # restored
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)
    assert set(seen) == {"plan_windows", "write_rasters", "polygonize", "write_polygons",
                         "copy_to_cog"}
    assert all(v == predict.GDAL_CACHE_BYTES for v in seen.values()), seen
    # a cache bounded lower already is left as it is
    small = predict.GDAL_CACHE_BYTES // 2
    set_gdal_config("GDAL_CACHEMAX", small)
    try:
        with predict.bounded_gdal_cache():
            assert get_gdal_config("GDAL_CACHEMAX") == small
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def test_write_rasters_lets_a_band_go_before_the_next_is_predicted(tmp_path: Path) -> None:
    """The bands of blended rows span the scene's width; the next band is produced (the
    network run on the next window) only after the previous one is no longer held."""
    import types
    import weakref

    from scdnn.mapping.predict import write_rasters

    width, rows = 1024, 256
    held: list[weakref.ref] = []

    def band(top: int) -> tuple:
        probability = np.full((rows, width), 0.75, np.float32)
        valid = np.ones((rows, width), bool)
        held[:] = [weakref.ref(probability), weakref.ref(valid)]
        return top, rows, [(top, 0, probability, valid)]

    def bands():
        for top in range(0, 4 * rows, rows):
            assert all(ref() is None for ref in held), "the previous band is still held"
            yield band(top)

    scene = types.SimpleNamespace(width=width, height=4 * rows, crs=CRS, transform=TRANSFORM)
    counts = write_rasters(bands(), scene, 0.5, tmp_path / "p.tif", tmp_path / "m.tif")
    assert counts == {"valid_pixels": 4 * rows * width, "landslide_pixels": 4 * rows * width}
    assert (read(tmp_path / "m.tif") == 1).all()


def test_a_landslide_across_strip_seams_is_one_polygon(tmp_path: Path) -> None:
    mask = np.zeros((40, 30), np.uint8)
    mask[3:37, 2:8] = 1    # left leg, crosses every seam of 8-row strips
    mask[3:37, 20:26] = 1  # right leg
    mask[30:37, 2:26] = 1  # joined at the bottom only: a U, seen as two pieces until row 30
    mask[10:12, 12:14] = 1  # a 2 x 2 speck inside one strip
    mask[15:17, 12:14] = 1  # a 2 x 2 speck straddling the seam at row 16
    mask[0:2, 28:30] = 255  # no data is not landslide
    mask[23, 15] = 1        # two pixels touching only diagonally across the seam at row 24:
    mask[24, 16] = 1        # separate landslides (4-connectivity, as GDAL's polygonize)
    paths = write_mask(tmp_path / "mask.tif", mask)
    strips = polygonize(*paths, strip_rows=8)
    whole = polygonize(*paths, strip_rows=1000)
    assert len(strips) == len(whole) == 5
    for a, b in zip(strips, whole, strict=False):
        assert a.geometry.geom_type == "Polygon"
        assert a.geometry.equals(b.geometry)
        assert (a.pixels, a.probability_sum, a.probability_max) == (b.pixels, b.probability_sum,
                                                                    b.probability_max)
    u = max(strips, key=lambda p: p.pixels)
    assert u.pixels == 34 * 6 * 2 + 7 * 12 and u.geometry.area == u.pixels  # pixel units
    speck = [p for p in strips if p.geometry.bounds == (12, 15, 14, 17)]
    assert len(speck) == 1 and speck[0].pixels == 4


def test_polygon_attributes_min_area_and_simplify(tmp_path: Path) -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[2:4, 2:5] = 1   # 2 x 3 pixels: 3 * 0.5 m wide, 2 * 0.7 m high
    mask[10, 10] = 1     # a one-pixel speck, 0.35 m²
    prob = np.full((20, 20), 0.1, np.float32)
    prob[2:4, 2:5] = [[0.6, 0.7, 0.8], [0.9, 0.6, 0.6]]
    prob[10, 10] = 0.55
    landslides = polygonize(*write_mask(tmp_path / "mask.tif", mask, prob))
    table = landslide_table(landslides, TRANSFORM, CRS)
    assert list(table.id) == [1, 2]
    np.testing.assert_allclose(table.area_m2, [6 * 0.35, 0.35])
    np.testing.assert_allclose(table.perimeter_m, [2 * (1.5 + 1.4), 2 * (0.5 + 0.7)])
    np.testing.assert_allclose(table.mean_probability, [4.2 / 6, 0.55], rtol=1e-6)
    np.testing.assert_allclose(table.max_probability, [0.9, 0.55], rtol=1e-6)
    assert table.geometry[0].bounds == pytest.approx((500001.0, 3399997.2, 500002.5, 3399998.6))
    dropped = landslide_table(landslides, TRANSFORM, CRS, min_area=1.0)
    assert list(dropped.id) == [1] and dropped.area_m2[0] == pytest.approx(2.1)

    stairs = np.tril(np.ones((12, 12), np.uint8))  # a staircase hypotenuse
    stairs_ls = polygonize(*write_mask(tmp_path / "stairs.tif", stairs))
    plain = landslide_table(stairs_ls, TRANSFORM, CRS).geometry[0]
    simple = landslide_table(stairs_ls, TRANSFORM, CRS, simplify=1.0).geometry[0]
    assert len(simple.exterior.coords) < len(plain.exterior.coords)


def test_polygon_probabilities_from_a_percent_raster(tmp_path: Path) -> None:
    """probability.tif as scdnn map writes it (percent, scale 0.01): the attributes are
    probabilities; a float32 raster (maps written before percent) reads the same way."""
    from scdnn.mapping.outputs import BlockWriter

    mask = np.zeros((20, 20), np.uint8)
    mask[2:4, 2:5] = 1
    prob = np.full((20, 20), 0.1, np.float32)
    prob[2:4, 2:5] = [[0.6, 0.7, 0.8], [0.904, 0.6, 0.596]]  # 90 % and 60 % once rounded
    mask_path, float_path = write_mask(tmp_path / "mask.tif", mask, prob)
    percent_path = tmp_path / "percent.tif"
    with BlockWriter(percent_path, width=20, height=20, dtype="uint8", nodata=255, crs=CRS,
                     transform=TRANSFORM, scale=PROBABILITY_SCALE, units="percent") as out:
        out.write(0, 0, probability_percent(prob, np.ones_like(mask, bool)))
    (landslide,) = polygonize(mask_path, percent_path)
    assert landslide.probability_sum == pytest.approx(4.2, abs=1e-5)
    assert landslide.probability_max == pytest.approx(0.9, abs=1e-6)
    (exact,) = polygonize(mask_path, float_path)
    assert exact.probability_max == pytest.approx(0.904, abs=1e-6)


def test_cli_map_geojson_and_summary(tmp_path: Path, weights: Path, capsys) -> None:
    import geopandas as gpd

    scene = write_scene(tmp_path / "s.tif", "mask")
    code = main(["map", str(scene), "--weights", str(weights), "--out", str(tmp_path / "out"),
                 *SMALL, "--format", "geojson", "--min-area", "1e9"])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 run, 3 skipped" in out
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["landslides.geojson", "map.json", "mask.tif", "probability.tif"]
    table = gpd.read_file(tmp_path / "out" / "landslides.geojson")
    assert len(table) == 0  # every polygon is below 1e9 m²
    summary = json.loads((tmp_path / "out" / "map.json").read_text())
    assert summary["min_area"] == 1e9 and summary["landslides"] == 0
    assert summary["cleaning"]["min_area"] == 1e9 and summary["cleaning"]["units"] == "m"
    assert summary["landslide_pixels"] == 0


def test_scene_without_crs_maps_in_pixel_units(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "plain.tif", "mask", crs=None)
    code = main(["map", str(scene), "--weights", str(weights), "--out", str(tmp_path / "out"),
                 *SMALL])
    err = capsys.readouterr().err
    assert code == 0
    assert [line for line in err.splitlines() if "warning" in line] == [err.strip()]
    assert "pixel" in err
    with rasterio.open(tmp_path / "out" / "mask.tif") as src:
        assert src.crs is None and src.transform == Affine.identity()
        mask = src.read(1)
    summary = json.loads((tmp_path / "out" / "map.json").read_text())
    assert summary["units"] == "pixel" and summary["crs"] is None
    assert summary["landslide_area"] == (mask == 1).sum()  # one pixel = one unit


# --- bad input: one line, exit 2, nothing under a final name ---------------------------------

def run_map(scene: Path, weights: Path, out: Path, *extra: str) -> int:
    return main(["map", str(scene), "--weights", str(weights), "--out", str(out), *SMALL, *extra])


def test_not_a_raster(tmp_path: Path, weights: Path, capsys) -> None:
    scene = tmp_path / "notes.tif"
    scene.write_text("not an image\n")
    assert_user_error(run_map(scene, weights, tmp_path / "out"), capsys, str(scene),
                      "not a raster")
    assert no_files(tmp_path / "out")


def test_truncated_geotiff(tmp_path: Path, weights: Path, capsys) -> None:
    full = write_scene(tmp_path / "full.tif", "plain", tiled=True, blockxsize=32, blockysize=32)
    data = full.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    assert_user_error(run_map(cut, weights, tmp_path / "out"), capsys, str(cut),
                      "truncated or corrupt")
    assert no_files(tmp_path / "out")


def test_failure_mid_run_leaves_no_file(tmp_path: Path, weights: Path, monkeypatch) -> None:
    # a read error half-way (a block that cannot be decoded, a full disk, Ctrl-C): no output
    # under a final name and no temporary file left behind
    from scdnn.mapping.scene import Scene

    scene = write_scene(tmp_path / "s.tif", "mask")
    calls = []
    real_read = Scene.read

    def failing_read(self, window):
        calls.append(window)
        if len(calls) == 8:
            raise UserError("cannot read pixels: file truncated or corrupt", self.path)
        return real_read(self, window)

    monkeypatch.setattr(Scene, "read", failing_read)
    with pytest.raises(UserError, match="truncated or corrupt"):
        map_scene(scene, weights, tmp_path / "out", tiling=Tiling(64, 16))
    assert not (tmp_path / "out").exists()  # the folder it made is removed again


def test_band_count_the_model_cannot_take(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "grey.tif", "plain", image=rgb()[:1])
    assert_user_error(run_map(scene, weights, tmp_path / "out"), capsys, str(scene),
                      "scene has 1 band but the model takes 3 (red, green, blue)")
    alpha = write_scene(tmp_path / "ga.tif", "alpha", image=rgb()[:2])  # 2 bands + alpha
    assert_user_error(run_map(alpha, weights, tmp_path / "out"), capsys,
                      "scene has 2 bands besides its alpha band but the model takes 3")
    assert no_files(tmp_path / "out")


def test_scene_that_is_not_uint8(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "u16.tif", "plain", image=rgb().astype(np.uint16))
    assert_user_error(run_map(scene, weights, tmp_path / "out"), capsys, "uint16", "uint8")
    assert no_files(tmp_path / "out")


def test_scene_without_a_valid_pixel(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "empty.tif", "nodata", valid=np.zeros((H, W), bool))
    assert_user_error(run_map(scene, weights, tmp_path / "out"), capsys, str(scene),
                      "no valid pixel")
    assert no_files(tmp_path / "out")


def test_output_folder_not_empty(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "s.tif", "mask")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    assert_user_error(run_map(scene, weights, out), capsys, "not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert run_map(scene, weights, out, "--overwrite") == 0
    assert (out / "mask.tif").is_file() and (out / "old.txt").read_text() == "keep me"


@pytest.mark.parametrize("tile, overlap, needle", [
    ("64", "40", "smaller than twice --overlap"),
    ("0", "16", "argument --tile: must be a positive integer"),
    ("64", "-1", "argument --overlap: must be an integer ≥ 0"),
])
def test_bad_tile_and_overlap(tmp_path: Path, weights: Path, capsys, tile, overlap, needle) -> None:
    scene = write_scene(tmp_path / "s.tif", "mask")
    args = ["map", str(scene), "--weights", str(weights), "--out", str(tmp_path / "out"),
            "--tile", tile, "--overlap", overlap]
    assert_user_error(main(args), capsys, needle)
    assert no_files(tmp_path / "out")


@pytest.mark.parametrize("threshold", ["0", "1", "1.5", "-0.2"])
def test_threshold_outside_zero_one(tmp_path: Path, weights: Path, capsys, threshold) -> None:
    scene = write_scene(tmp_path / "s.tif", "mask")
    code = run_map(scene, weights, tmp_path / "out", "--threshold", threshold)
    assert_user_error(code, capsys, "--threshold", "strictly between 0 and 1")
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        map_scene(scene, weights, tmp_path / "out", threshold=float(threshold))
    assert no_files(tmp_path / "out")


def test_write_cog_can_be_asked_for_small_blocks(tmp_path: Path) -> None:
    src = tmp_path / "src.tif"
    with rasterio.open(src, "w", driver="GTiff", width=W, height=H, count=1, dtype="float32",
                       crs=CRS, transform=TRANSFORM, nodata=-1) as dst:
        dst.write(np.full((H, W), 0.5, np.float32), 1)
    write_cog(src, tmp_path / "cog.tif", resampling="average", predictor=True, blocksize=32)
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.block_shapes == [(32, 32)] and cog.overviews(1) == [2, 4, 8]
        assert cog.nodata == -1 and cog.transform == TRANSFORM


# --- outline cleaning ------------------------------------------------------------------------

def test_map_cleaning_mask_and_polygons_agree_and_map_json_records_it(tmp_path: Path,
                                                                     weights: Path) -> None:
    import geopandas as gpd
    from scipy import ndimage

    from scdnn.outlines import OutlineCleaning, clean_mask

    scene = write_scene(tmp_path / "s.tif", "mask")
    raw = map_scene(scene, weights, tmp_path / "raw", tiling=Tiling(64, 16))
    cleaning = OutlineCleaning(min_area=3.0, max_hole=3.0, smooth=0.6, simplify=0.3)
    summary = map_scene(scene, weights, tmp_path / "clean", tiling=Tiling(64, 16),
                        cleaning=cleaning)
    before, after = read(tmp_path / "raw" / "mask.tif"), read(tmp_path / "clean" / "mask.tif")
    px = 0.35 ** 0.5  # pixels of 0.5 x 0.7 m: metres -> pixels with the side of their area
    assert np.array_equal(after, clean_mask(before, cleaning, pixel_size=px))
    assert (after == 255).sum() == (before == 255).sum()
    objects_before = ndimage.label(before == 1, structure=np.ones((3, 3)))[1]
    objects = ndimage.label(after == 1, structure=np.ones((3, 3)))[1]
    assert 0 < objects < objects_before
    table = gpd.read_file(tmp_path / "clean" / "landslides.gpkg")
    assert len(table) == objects == summary["landslides"]  # mask and polygons agree
    assert summary["landslide_pixels"] == (after == 1).sum()
    assert raw["cleaning"] is None and raw["min_area"] == 0.0
    record = summary["cleaning"]
    assert record["units"] == "m" and record["min_area"] == 3.0
    assert record["pixel_size"] == pytest.approx(px)
    assert record["pixels"]["min_area"] == pytest.approx(3.0 / 0.35)
    assert record["pixels"]["smooth"] == pytest.approx(0.6 / px)
    assert summary["min_area"] == 3.0 and summary["simplify"] == 0.3
    on_disk = json.loads((tmp_path / "clean" / "map.json").read_text())
    assert on_disk["cleaning"] == record


def test_cli_map_raw_is_the_uncleaned_map(tmp_path: Path, weights: Path, capsys) -> None:
    scene = write_scene(tmp_path / "s.tif", "mask")
    map_scene(scene, weights, tmp_path / "lib", tiling=Tiling(64, 16))  # cleaning=None
    assert run_map(scene, weights, tmp_path / "raw", "--raw") == 0
    assert run_map(scene, weights, tmp_path / "clean") == 0
    capsys.readouterr()
    lib = read(tmp_path / "lib" / "mask.tif")
    assert np.array_equal(read(tmp_path / "raw" / "mask.tif"), lib)
    assert not np.array_equal(read(tmp_path / "clean" / "mask.tif"), lib)
    raw_json = json.loads((tmp_path / "raw" / "map.json").read_text())
    clean_json = json.loads((tmp_path / "clean" / "map.json").read_text())
    assert raw_json["cleaning"] is None
    assert clean_json["cleaning"]["min_area"] == 100.0  # the defaults, in metres
    assert clean_json["cleaning"]["pixels"]["min_area"] == pytest.approx(100 / 0.35)


@pytest.mark.parametrize("extra, flag", [
    (["--min-area", "-1"], "--min-area"), (["--max-hole", "nan"], "--max-hole"),
    (["--smooth", "inf"], "--smooth"), (["--simplify", "x"], "--simplify"),
    (["--raw", "--min-area", "5"], "--raw"),
])
def test_cli_bad_cleaning_option(tmp_path: Path, weights: Path, capsys, extra, flag) -> None:
    scene = write_scene(tmp_path / "s.tif", "mask")
    code = run_map(scene, weights, tmp_path / "out", *extra)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "out" / "map.json").exists()


def test_old_map_json_without_cleaning_loads() -> None:
    from scdnn.records import EvaluationRecord, MapRecord

    old = {"scene": "s.tif", "width": 2, "height": 2, "transform": [1, 0, 0, 0, -1, 0],
           "threshold": 0.5, "windows": {}, "landslides": 0, "outputs": [],
           "min_area": 25, "simplify": 0}
    assert MapRecord.from_dict(old).cleaning is None
    metrics = {"pa": 1.0, "mpa": 1.0, "miou": 1.0, "fwiou": 1.0, "class_pa": {},
               "class_iou": {}, "confusion": [[1, 0], [0, 1]]}
    record = EvaluationRecord.from_dict(metrics)
    assert record.cleaning is None and "cleaning" not in record.to_dict()
    with pytest.raises(UserError, match="cleaning"):
        MapRecord.from_dict({**old, "cleaning": 3})


@pytest.mark.parametrize("resampling,kind", [("average", "float32"), ("average", "percent"),
                                             ("mode", "mask")])
def test_sparse_cog_overviews_equal_gdals(tmp_path: Path, monkeypatch, resampling, kind) -> None:
    """Overviews of a sparse raster computed over its stored blocks only equal the ones GDAL
    computes reading every pixel, level by level (integers rounded as GDAL rounds them);
    the band's scale and unit are kept."""
    from scdnn.mapping import outputs

    rng = np.random.default_rng(0)
    prob = ndimage_smooth(rng.random((300, 260)))
    valid = rng.random((300, 260)) > 0.1
    valid[:40, :50] = False
    scale = {}
    if kind == "float32":
        dtype, nodata, data = "float32", -1.0, np.where(valid, prob, -1).astype(np.float32)
    elif kind == "percent":
        dtype, nodata, data = "uint8", 255, probability_percent(prob, valid)
        scale = {"scale": PROBABILITY_SCALE, "units": "percent"}
    else:
        dtype, nodata, data = "uint8", 255, np.where(valid, prob > 0.5, 255).astype(np.uint8)
    src = tmp_path / "src.tif"
    with outputs.BlockWriter(src, width=1024, height=1024, dtype=dtype, nodata=nodata, crs=CRS,
                             transform=TRANSFORM, block=128, **scale) as out:
        out.write(130, 390, data)  # 9 of 64 blocks stored
    outputs.write_cog(src, tmp_path / "sparse.tif", resampling=resampling, blocksize=128)
    monkeypatch.setattr(outputs, "SPARSE_SHARE", 1.0)  # GDAL's overviews
    outputs.write_cog(src, tmp_path / "gdal.tif", resampling=resampling, blocksize=128)
    for level in (None, 0, 1, 2):
        kw = {} if level is None else {"overview_level": level}
        with rasterio.open(tmp_path / "sparse.tif", **kw) as a, \
                rasterio.open(tmp_path / "gdal.tif", **kw) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
            if level is None:
                assert a.overviews(1) == b.overviews(1) == [2, 4, 8]
                assert a.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert (a.transform, a.crs, a.nodata) == (b.transform, b.crs, nodata)
                assert a.scales == b.scales == (scale.get("scale", 1.0),)
                assert a.units == b.units == (scale.get("units"),)


def ndimage_smooth(x: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(x, 3).astype(np.float32)


@pytest.mark.parametrize(("variant", "interleave"), [
    ("nodata", "pixel"), ("nodata", "band"), ("alpha", "pixel"), ("alpha", "band"),
    ("mask", "pixel"), ("plain", "pixel")])
def test_windows_of_absent_blocks_are_known_empty_when_absent_means_no_data(
        tmp_path: Path, variant: str, interleave: str) -> None:
    """Absent blocks of a sparse GeoTIFF read as nodata (0 without one): no data with a
    nodata value or an alpha band; not told without reading for a mask band (rasterio does
    not list its blocks), valid zeros without any no-data."""
    image = np.full((3 + (variant == "alpha"), 300, 300), 200, np.uint8)
    kw = dict(driver="GTiff", width=2048, height=2048, count=len(image), dtype="uint8",
              tiled=True, blockxsize=256, blockysize=256, sparse_ok=True, interleave=interleave,
              crs=CRS, transform=TRANSFORM)
    if variant == "nodata":
        kw["nodata"] = 0
    path = tmp_path / "s.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **kw) as dst:
        if variant == "alpha":
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                               ColorInterp.alpha]
        dst.write(image, window=rasterio.windows.Window(1000, 1000, 300, 300))
        if variant == "mask":
            dst.write_mask(np.full((300, 300), 255, np.uint8),
                           window=rasterio.windows.Window(1000, 1000, 300, 300))
    far, near = rasterio.windows.Window(0, 0, 512, 512), rasterio.windows.Window(768, 768, 512, 512)
    with open_scene(path, 3) as scene:
        told = variant in ("nodata", "alpha")
        assert (scene.block_index() is not None) == told
        assert scene.known_empty(far) == told
        assert not scene.known_empty(near)
        assert scene.valid_mask(far).any() == (variant == "plain")
        assert scene.valid_mask(near).sum() == (512 * 512 if variant == "plain" else 280 * 280)


def test_windows_are_read_a_batch_ahead_on_another_thread(tmp_path: Path, weights: Path
                                                          ) -> None:
    """While the network runs on one batch, the next is read on a second thread; the
    probabilities are those of reading and running each window in turn."""
    import threading

    from scdnn.mapping.core import model_input, predict_windows

    predictor = Predictor.from_file(weights)
    card = predictor.card
    with open_scene(write_scene(tmp_path / "s.tif", "mask"), card.in_channels,
                    card.inputs) as scene:
        plan = plan_windows(predictor, scene, Tiling(64, 16))
        assert len(plan.to_run) >= 3
        events: list[tuple[str, str]] = []
        read, run = scene.read, predictor.probabilities

        def logged_read(window, *args, **kwargs):
            events.append(("read", threading.current_thread().name))
            return read(window, *args, **kwargs)

        def logged_run(x):
            events.append(("run", threading.current_thread().name))
            return run(x)

        scene.read, predictor.probabilities = logged_read, logged_run
        got = list(predict_windows(predictor, scene, plan.to_run, plan=plan))
        scene.read, predictor.probabilities = read, run
        expected = [run(torch.from_numpy(model_input(scene, w, predictor.normalization)[None]))[0]
                    for w in plan.to_run]
    main = threading.main_thread().name
    assert {t for e, t in events if e == "read"} != {main}
    assert all(t != main for e, t in events if e == "read")
    assert all(t == main for e, t in events if e == "run")
    assert [w for w, _ in got] == list(plan.to_run)
    for (_, p), q in zip(got, expected, strict=True):
        np.testing.assert_array_equal(p, q)


def test_a_failure_copying_the_probability_cog_on_its_thread_fails_the_map(
        tmp_path: Path, weights: Path, monkeypatch) -> None:
    """The probability COG is copied on a second thread: its error is the run's, and the
    output folder the run made is gone."""
    import errno

    from scdnn.mapping import predict

    copy = predict.copy_to_cog

    def full_disk(src, dst, **kwargs):
        if "probability" in Path(dst).name:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return copy(src, dst, **kwargs)

    monkeypatch.setattr(predict, "copy_to_cog", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OSError) as caught:
        map_scene(write_scene(tmp_path / "s.tif", "mask"), weights, out, tiling=Tiling(64, 16))
    assert caught.value.errno == errno.ENOSPC
    assert not out.exists()
