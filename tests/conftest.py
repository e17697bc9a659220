"""Shared pytest fixtures: tiny datasets written to ``tmp_path`` and the real data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: ``../shared/data`` seen from the repository root (real datasets; never copied into the repo).
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data folder ``../shared/data``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA.resolve()} does not exist")
    return SHARED_DATA.resolve()


def write_image(path: Path, array: np.ndarray, **save_kw) -> Path:
    """Write a uint8 array (H x W, or H x W x C with C in 1, 3, 4) with Pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    Image.fromarray(np.ascontiguousarray(array)).save(path, **save_kw)
    return path


def random_rgb(height: int, width: int, seed: int) -> np.ndarray:
    """A reproducible random RGB uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int,
             value: int = 255) -> np.ndarray:
    """A background mask with ``[top:bottom, left:right] = value``."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:bottom, left:right] = value
    return mask


#: The pairs of :func:`folder_dataset`: stem -> (image file, mask file, mask box, mask value).
#: Every image is 40 x 48 (H x W); box = (top, left, bottom, right).
FOLDER_PAIRS = {
    "a": ("a.png", "a.png", (5, 10, 15, 20), 255),   # 100 landslide pixels
    "b": ("b.jpg", "b.png", (0, 0, 40, 5), 255),     # 200
    "c": ("c.png", "c.TIF", (10, 10, 12, 13), 255),  # 6
    "d": ("d.tiff", "d.png", (0, 0, 0, 0), 255),     # 0: all background
    "e": ("e.JPEG", "e.png", (20, 30, 30, 48), 1),   # 180, stored as 0/1
}


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """An ``images/`` + ``masks/`` dataset of 5 pairs (see ``FOLDER_PAIRS``), mixed extensions."""
    root = tmp_path / "folder-ds"
    for k, (_stem, (image_name, mask_name, box, value)) in enumerate(FOLDER_PAIRS.items()):
        write_image(root / "images" / image_name, random_rgb(40, 48, seed=k))
        write_image(root / "masks" / mask_name, box_mask(40, 48, *box, value=value))
    return root


#: Landslide samples of :func:`bijie_dataset`: stem -> (height, width); sizes vary.
BIJIE_LANDSLIDE = {"df001": (30, 40), "df002": (50, 36), "df003": (64, 64)}
#: Non-landslide samples; ``df001`` deliberately reuses a landslide stem.
BIJIE_NON_LANDSLIDE = {"df001": (32, 32), "nd002": (20, 28)}


def bijie_dem(height: int, width: int) -> np.ndarray:
    """The DEM tile written for a sample of that size: a ramp ``(row + col) % 256``."""
    rows, cols = np.mgrid[0:height, 0:width]
    return ((rows + cols) % 256).astype(np.uint8)


@pytest.fixture
def bijie_dataset(tmp_path: Path) -> Path:
    """A small generated copy of the Bijie landslide dataset layout.

    ``landslide/{image,mask,dem,polygon_coordinate}`` for ``BIJIE_LANDSLIDE`` (the DEM of
    ``df003`` is stored at half size, 32 x 32) and ``non-landslide/{image,dem}`` for
    ``BIJIE_NON_LANDSLIDE``. Each landslide mask marks its top-left 10 x 10 pixels (0/255).
    """
    root = tmp_path / "Bijie-landslide-dataset"
    for k, (stem, (h, w)) in enumerate(BIJIE_LANDSLIDE.items()):
        write_image(root / "landslide" / "image" / f"{stem}.png", random_rgb(h, w, seed=10 + k))
        write_image(root / "landslide" / "mask" / f"{stem}.png", box_mask(h, w, 0, 0, 10, 10))
        dem = bijie_dem(h // 2, w // 2) if stem == "df003" else bijie_dem(h, w)
        write_image(root / "landslide" / "dem" / f"{stem}.png", dem)
        poly = root / "landslide" / "polygon_coordinate" / f"{stem}.txt"
        poly.parent.mkdir(parents=True, exist_ok=True)
        poly.write_text("0 0\n0 10\n10 10\n10 0\n")
    for k, (stem, (h, w)) in enumerate(BIJIE_NON_LANDSLIDE.items()):
        write_image(root / "non-landslide" / "image" / f"{stem}.png", random_rgb(h, w, seed=20 + k))
        write_image(root / "non-landslide" / "dem" / f"{stem}.png", bijie_dem(h, w))
    return root


#: A tiny SCDnn (same blocks, few channels): fast enough for any test that needs a network.
TINY = {"widths": (4, 8, 8, 8), "aspc_channels": 8, "decoder_channels": 8}


@pytest.fixture
def quiet_lightning():
    """Lightning's known-harmless warnings about tiny test runs, silenced for the test.
    Use with ``pytestmark = pytest.mark.usefixtures("quiet_lightning")``."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*self.log.*")  # direct calls, no trainer
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        yield


def run_and_kill(argv: list[str], ready, timeout: float = 300, env: dict | None = None) -> None:
    """Start ``argv``, wait until ``ready()`` is true, then kill it with SIGKILL (as a
    power cut or the OOM killer would). Fails if it ends by itself first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the command ended before it could be killed"
            assert time.time() < deadline, "the command never reached the point to kill it"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one torch thread is faster than two fighting over a busy machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spread_weights(path: Path, sample: np.ndarray, model_kwargs: dict | None = None,
                   **card: object) -> Path:
    """SCDnn weights written directly (no training), with a model card, whose landslide
    probabilities spread over (0, 1): a fresh network sits near 0.5 everywhere, where any
    rounding flips the mask and a map has no structure. The classifier is rescaled so that
    the logit difference on ``sample`` (H x W x 3 uint8) has mean 0 and std 2.
    ``card`` entries are added to (or replace) the card's defaults."""
    import torch

    from scdnn.datasets import Normalization
    from scdnn.models import create_model
    from scdnn.models.rescaled import base_network
    from scdnn.records import ModelCard
    from scdnn.weights import save_weights

    kwargs = dict(model_kwargs or {})
    torch.manual_seed(0)
    model = create_model("scdnn", in_channels=3, **kwargs).eval()
    norm = Normalization(mean=[128.0] * 3, std=[60.0] * 3)
    with torch.inference_mode():
        logits = model(torch.from_numpy(norm.apply(sample))[None])
    diff = (logits[0, 1] - logits[0, 0]).flatten()
    k = 2.0 / float(diff.std())
    with torch.no_grad():
        head = base_network(model).classifier
        w, b = head.weight, head.bias
        w[1] = k * (w[1] - w[0])
        b[1] = k * (b[1] - b[0]) - k * float(diff.mean())
        w[0], b[0] = 0.0, 0.0
    full_card = {"model": "scdnn", "in_channels": 3, "num_classes": 2,
                 "model_kwargs": {key: list(v) if isinstance(v, tuple) else v
                                  for key, v in kwargs.items()},
                 "classes": ["background", "landslide"], "inputs": ["red", "green", "blue"],
                 "normalization": norm.to_dict(), **card}
    save_weights(model, path, ModelCard.from_dict(full_card))
    return path


def write_ellipse_scene(root: Path, valid: np.ndarray, centre: tuple[int, int],
                        radii: tuple[int, int], seed: int,
                        dsm: tuple[float, float] | None = (0.2, 3.0), px: float = 0.5) -> Path:
    """A scene folder with one elliptic landslide: ``rgb.tif`` (3 bands, an internal mask band
    from ``valid``), ``mask.tif`` (0/1, 255 outside ``valid``) and, unless ``dsm`` is None,
    ``dsm.tif`` (float32, nodata -9999: a slope of ``dsm[0]`` m per column with the landslide
    ``dsm[1]`` m lower), all on one UTM grid of ``px`` m pixels."""
    import rasterio
    from rasterio.transform import Affine

    root.mkdir(parents=True, exist_ok=True)
    height, width = valid.shape
    rows, cols = np.mgrid[0:height, 0:width]
    landslide = ((rows - centre[0]) ** 2 / radii[0] ** 2
                 + (cols - centre[1]) ** 2 / radii[1] ** 2) < 1
    rng = np.random.default_rng(seed)
    image = np.clip(100 + 60 * landslide[None] + rng.normal(0, 10, (3, height, width)), 1, 255)
    grid = dict(driver="GTiff", width=width, height=height, crs="EPSG:32647",
                transform=Affine(px, 0.0, 500000.0, 0.0, -px, 3400000.0))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(root / "rgb.tif", "w", count=3, dtype="uint8", **grid) as dst:
            dst.write(image.astype(np.uint8))
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    with rasterio.open(root / "mask.tif", "w", count=1, dtype="uint8", nodata=255,
                       **grid) as dst:
        dst.write(np.where(valid, landslide, 255).astype(np.uint8), 1)
    if dsm is not None:
        with rasterio.open(root / "dsm.tif", "w", count=1, dtype="float32", nodata=-9999,
                           **grid) as dst:
            dst.write((1000.0 + dsm[0] * cols - dsm[1] * landslide).astype(np.float32), 1)
    return root


def one_line_error(code: int, capsys, *needles: str) -> str:
    """Assert a command ended with exit status 2 and one line on stderr holding every one of
    ``needles``; return that line."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def write_stripe_scene(root: Path, height: int, width: int, edge: int, px: float = 0.5,
                       crs: str | None = "EPSG:32647") -> Path:
    """A scene folder whose landslide is the columns left of ``edge``: ``rgb.tif`` (3 bands)
    and ``mask.tif`` (0/1, nodata 255) on one grid of ``px`` map units per pixel in ``crs``
    (degrees for EPSG:4326). Its only boundary is column ``edge - 1``, one pixel per row (the
    image border is no boundary), so a prediction whose edge is k columns off lies exactly
    k pixels from it."""
    import rasterio
    from rasterio.transform import Affine

    root.mkdir(parents=True, exist_ok=True)
    origin = (100.0, 30.0) if crs == "EPSG:4326" else (500000.0, 3400000.0)
    grid = dict(driver="GTiff", width=width, height=height, crs=crs,
                transform=Affine(px, 0.0, origin[0], 0.0, -px, origin[1]))
    landslide = np.broadcast_to(np.arange(width) < edge, (height, width))
    image = np.where(landslide, 180, 90)[None].repeat(3, 0).astype(np.uint8)
    with rasterio.open(root / "rgb.tif", "w", count=3, dtype="uint8", **grid) as dst:
        dst.write(image)
    stripe_mask(root / "mask.tif", root, edge)
    return root


def stripe_mask(path: Path, scene: Path, edge: int) -> Path:
    """A 0/1 mask raster (nodata 255) on the grid of ``scene``'s rgb.tif, landslide left of
    column ``edge``: a prediction for :func:`write_stripe_scene`."""
    import rasterio

    with rasterio.open(scene / "rgb.tif") as src:
        profile = dict(driver="GTiff", width=src.width, height=src.height, crs=src.crs,
                       transform=src.transform)
    mask = np.broadcast_to(np.arange(profile["width"]) < edge,
                           (profile["height"], profile["width"])).astype(np.uint8)
    with rasterio.open(path, "w", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(mask, 1)
    return path
