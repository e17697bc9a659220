"""Georeferenced scenes with a label raster: training windows and held-out blocks.

Layout
------
A *scene folder* holds an image raster, its labels (a label raster on the same grid, or a
landslide inventory of polygons) and optionally a surface model::

    scene-a/
      rgb.tif   (or image.tif)  uint8 bands, no data as a mask band, nodata value or alpha
      mask.tif  (or label.tif)  0 background, 1 landslide, 255 or the nodata value: ignored
      dsm.tif   (or dem.tif)    elevations in metres (optional; any grid that overlaps)

or, instead of ``mask.tif``, landslide polygons in any CRS, rasterised on the image's grid
window by window (:mod:`scdnn.datasets.labels`)::

      labels.gpkg (or labels.shp, labels.geojson, labels.parquet)   1 inside, 0 outside
      aoi.gpkg    (or aoi.shp, aoi.geojson; optional)   where the inventory is complete:
                                                        outside it, 255 (ignored)

A dataset is one scene folder, or a folder of scene folders (e.g. ``jinsha-uav/`` with
``scene-a/`` and ``scene-b/``); scenes are named after their folders. This is the layout of
the UAV scenes in ``../shared/data/jinsha-uav`` (AMU-Net UAV landslide dataset, mosaicked;
see that folder's README for source and licence).

Splits
------
Whole scenes can be held out for testing (``test``). Validation cannot take whole scenes when
there is one training scene, so it takes *blocks*: the training scenes are cut into square
blocks (``block_size`` pixels) and a seeded random set of blocks holding ``val_fraction`` of
the valid pixels is held out. Training windows never overlap a held-out block, so validation
pixels are never trained on. The split (scene names and held-out blocks) is recorded in
``split.json``.

Training windows (:class:`RandomWindowSampler`) are drawn at random positions over the
valid, non-held-out area of the training scenes (a seeded generator: every epoch draws new
windows, and the same seed draws the same sequence); an epoch is a fixed number of windows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError
from rasterio.windows import Window
from torch.utils.data import Dataset, Sampler

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError, param
from ..records import FORMAT_VERSION
from .io import IGNORE_INDEX
from .labels import POLYGON_LABEL_NAMES, RASTER_LABEL_NAMES, label_files, open_labels
from .scene import Scene, open_scene
from .terrain import TERRAIN_CHANNELS
from .transforms import Normalization

__all__ = ["SceneFiles", "find_scenes", "is_scene_data", "LabelledScene", "SceneCollection",
           "check_test_scenes", "make_scene_split", "RandomWindowSampler", "SceneWindowDataset",
           "scene_inputs", "scene_normalization", "validation_windows"]

IMAGE_NAMES = ("rgb.tif", "image.tif")
LABEL_NAMES = RASTER_LABEL_NAMES + POLYGON_LABEL_NAMES
DSM_NAMES = ("dsm.tif", "dem.tif")
_CELL = 32  # resolution (pixels) of the coarse valid-area grid used to place windows


@dataclass(frozen=True)
class SceneFiles:
    """The files of one scene folder."""

    name: str
    image: Path
    label: Path  #: a label raster or a polygon inventory (:mod:`scdnn.datasets.labels`)
    dsm: Path | None
    aoi: Path | None = None  #: the inventory's area of interest, if any


def _first(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _scene_files(folder: Path) -> SceneFiles | None:
    image = _first(folder, IMAGE_NAMES)
    if image is None:
        return None
    labels = label_files(folder)  # refuses a folder with a raster and polygons
    if labels is None:
        return None
    return SceneFiles(folder.name, image, labels.label, _first(folder, DSM_NAMES), labels.aoi)


def is_scene_data(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a scene folder or a folder of scene folders."""
    root = Path(path)
    if not root.is_dir():
        return False
    if _scene_files(root) is not None:
        return True
    return any(_scene_files(p) is not None for p in root.iterdir() if p.is_dir())


def find_scenes(path: str | os.PathLike) -> list[SceneFiles]:
    """The scenes of a scene folder or a folder of scene folders, sorted by name."""
    root = Path(path)
    if not root.is_dir():
        raise InputFileNotFoundError("dataset folder does not exist", root)
    one = _scene_files(root)
    if one is not None:
        return [one]
    scenes = sorted((s for s in (_scene_files(p) for p in root.iterdir() if p.is_dir())
                     if s is not None), key=lambda s: s.name)
    if not scenes:
        raise InputFileError(f"is not a scene folder: expected {' or '.join(IMAGE_NAMES)} with "
                        f"{' or '.join(LABEL_NAMES)} in it or in its subfolders", root)
    return scenes


def scene_inputs(image_bands: int, use_dsm: bool) -> list[str]:
    """Channel names a model trained on such scenes takes (recorded in its card)."""
    names = ["red", "green", "blue"] if image_bands == 3 else \
        [f"band{i + 1}" for i in range(image_bands)]
    return names + list(TERRAIN_CHANNELS) if use_dsm else names


def _image_band_count(path: Path) -> int:
    try:
        with rasterio.open(path) as ds:
            return sum(ci != ColorInterp.alpha for ci in ds.colorinterp)
    except RasterioError:
        raise InputFileError("not a raster file GDAL can read", path) from None


class LabelledScene:
    """A scene (:class:`~scdnn.datasets.scene.Scene`) with its labels: a label raster or a
    polygon inventory (:func:`scdnn.datasets.labels.open_labels`).

    ``read(window)`` returns ``(image H x W x C uint8, label H x W uint8)`` with label 255
    wherever the label is 255 or its nodata value, outside an inventory's area of interest,
    or where the scene has no valid data.

    Raises
    ------
    ScdnnError
        A missing or unreadable file, a label raster on another grid than its image or with
        values other than 0, 1 and 255, an inventory that
        :class:`~scdnn.datasets.labels.PolygonLabels` refuses, a scene without a valid
        labelled pixel, or ``use_dsm`` without a DSM in the folder.
    """

    def __init__(self, files: SceneFiles, use_dsm: bool = False):
        self.files = files
        self.name = files.name
        if use_dsm and files.dsm is None:
            raise InvalidValueError(f"{param('use_dsm')}: scene has no {' or '.join(DSM_NAMES)}",
                            files.image.parent)
        bands = _image_band_count(files.image) if files.image.is_file() else 3
        self.scene: Scene = open_scene(files.image, bands + (2 if use_dsm else 0),
                                       scene_inputs(bands, use_dsm),
                                       dsm=files.dsm if use_dsm else None)
        try:
            self.label = self._open_label()
            self.coarse_valid = self._coarse_valid()
        except BaseException:
            self.close()
            raise
        if not self.coarse_valid.any():
            self.close()
            raise InvalidValueError("scene has no valid labelled pixel", files.label)

    @property
    def height(self) -> int:
        return self.scene.height

    @property
    def width(self) -> int:
        return self.scene.width

    @property
    def channels(self) -> int:
        return self.scene.channels

    def _open_label(self):
        """The scene's labels on its grid: the label raster or the rasterised polygons."""
        from .labels import LabelFiles

        return open_labels(LabelFiles(self.files.label, self.files.aoi), self.scene.dataset,
                           self.files.image)

    def _coarse_valid(self) -> np.ndarray:
        """Share of valid labelled pixels per ``_CELL`` x ``_CELL`` cell (float32 grid);
        also checks every label value once, strip by strip."""
        rows, cols = math.ceil(self.height / _CELL), math.ceil(self.width / _CELL)
        share = np.zeros((rows, cols), np.float32)
        for r in range(rows):
            window = Window(0, r * _CELL, self.width, min(_CELL, self.height - r * _CELL))
            valid = (self.read_label(window, check=True) != IGNORE_INDEX) \
                & self.scene.valid_mask(window)
            padded = np.zeros((_CELL, cols * _CELL), bool)
            padded[:valid.shape[0], :valid.shape[1]] = valid
            share[r] = padded.reshape(_CELL, cols, _CELL).mean(axis=(0, 2))
        return share

    def read_label(self, window: Window, check: bool = False) -> np.ndarray:
        """Label inside ``window``: 0, 1, or 255 (ignored: label 255 or nodata, or outside
        the inventory's area of interest)."""
        return self.label.read(window, check=check)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """``(image, label)`` inside ``window``; label 255 where anything is missing."""
        label = self.read_label(window)
        label[~self.scene.valid_mask(window)] = IGNORE_INDEX
        return self.scene.read(window), label

    def whole_label(self, strip_rows: int = 1024) -> np.ndarray:
        """The whole label (``H x W`` uint8: 0, 1, or 255 where not labelled or no valid
        data), read and checked strip by strip."""
        label = np.empty((self.height, self.width), np.uint8)
        for top in range(0, self.height, strip_rows):
            window = Window(0, top, self.width, min(strip_rows, self.height - top))
            strip = label[top:top + int(window.height)]
            strip[...] = self.read_label(window, check=True)
            strip[~self.scene.valid_mask(window)] = IGNORE_INDEX
        return label

    def close(self) -> None:
        if getattr(self, "label", None) is not None:
            self.label.close()
        self.scene.close()


class SceneCollection:
    """The scenes of a dataset folder (see the module docstring), opened lazily.

    Attributes
    ----------
    root : the folder given
    scenes : list of :class:`SceneFiles`
    """

    def __init__(self, root: str | os.PathLike, use_dsm: bool = False):
        self.root = Path(root)
        self.scenes = find_scenes(root)
        self.use_dsm = use_dsm
        self._open: dict[str, LabelledScene] = {}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenes]

    def files(self, name: str) -> SceneFiles:
        return next(s for s in self.scenes if s.name == name)

    def open(self, name: str) -> LabelledScene:
        if name not in self._open:
            self._open[name] = LabelledScene(self.files(name), self.use_dsm)
        return self._open[name]

    def close(self) -> None:
        for scene in self._open.values():
            scene.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the files
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


def make_scene_split(collection: SceneCollection, test_scenes: Sequence[str] = (),
                     val_fraction: float = 0.1, block_size: int = 512, seed: int = 0
                     ) -> dict[str, Any]:
    """Scene split: ``test_scenes`` held out whole, ``val_fraction`` of the valid labelled
    pixels of the other scenes held out as random ``block_size`` blocks (seeded).

    Returns ``{"train": [...], "val": [...], "test": [...], "val_blocks": {scene: [[row, col,
    height, width], ...]}, "block_size", "seed", "val_fraction"}``; ``train``/``val`` name
    the scenes training windows and validation blocks come from.
    """
    check_test_scenes(collection.names, test_scenes, collection.root)
    train = [n for n in collection.names if n not in set(test_scenes)]
    if not 0 <= val_fraction < 1:
        raise InvalidValueError(f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val_blocks: dict[str, list[list[int]]] = {}
    for name in train:
        scene = collection.open(name)
        blocks = _blocks(scene, block_size)
        total = sum(v for _, v in blocks)
        chosen, taken = [], 0.0
        for k in rng.permutation(len(blocks)):
            if taken >= val_fraction * total:
                break
            window, valid = blocks[k]
            chosen.append(window)
            taken += valid
        if chosen and len(chosen) == len(blocks):  # never hold out a whole training scene
            chosen.pop()
        val_blocks[name] = sorted(chosen)
    return {"format_version": FORMAT_VERSION, "train": train,
            "val": [n for n in train if val_blocks[n]], "test": sorted(test_scenes),
            "val_blocks": val_blocks, "block_size": block_size,
            "seed": int(seed), "val_fraction": float(val_fraction)}


def check_test_scenes(names: Sequence[str], test_scenes: Sequence[str],
                      root: str | os.PathLike) -> None:
    """Refuse test scenes that are named twice, are not among ``names`` (the scenes in
    ``root``), or leave no scene to train on.

    Raises
    ------
    ScdnnError
        Naming ``root`` and the scene.
    """
    test_scenes = list(test_scenes)
    if len(set(test_scenes)) != len(test_scenes):
        dup = next(n for n in test_scenes if test_scenes.count(n) > 1)
        raise InvalidValueError(f"{param('test_scenes')} names '{dup}' twice", root)
    unknown = [n for n in test_scenes if n not in names]
    if unknown:
        raise InvalidValueError(f"{param('test_scenes')}: no scene '{unknown[0]}' (scenes: "
                                f"{', '.join(names)})", root)
    if not [n for n in names if n not in set(test_scenes)]:
        raise InvalidValueError(f"{param('test_scenes')} holds out every scene; nothing is left "
                                "to train on", root)


def _blocks(scene: LabelledScene, size: int) -> list[tuple[list[int], float]]:
    """Blocks with valid labelled pixels: ``([row, col, height, width], valid share * area)``."""
    out = []
    for r in range(0, scene.height, size):
        for c in range(0, scene.width, size):
            h, w = min(size, scene.height - r), min(size, scene.width - c)
            cells = scene.coarse_valid[r // _CELL:math.ceil((r + h) / _CELL),
                                       c // _CELL:math.ceil((c + w) / _CELL)]
            valid = float(cells.sum()) * _CELL * _CELL
            if valid > 0:
                out.append(([r, c, h, w], valid))
    return out


def _overlaps(row: int, col: int, size: int, blocks: Sequence[Sequence[int]]) -> bool:
    return any(row < r + h and r < row + size and col < c + w and c < col + size
               for r, c, h, w in blocks)


class RandomWindowSampler(Sampler):
    """Yields ``length`` random training windows ``(scene name, row, col, size)`` per pass.

    A window is centred on a random point of a coarse cell with mostly valid labelled pixels
    (chosen uniformly among such cells of all training scenes), moved inside the scene, and
    redrawn if it overlaps a held-out validation block. A window too large to fit between
    the blocks (after 100 draws; say 1024 px windows among 256 px blocks) is kept where the
    last draw put it, and :meth:`hide` turns the labels of the blocks it covers into 255
    (not scored, no loss): no validation label is ever trained on, though the network sees
    the imagery around its training labels there. Seeded: each pass continues one
    generator, so every epoch draws new windows and a run is reproducible.
    """

    def __init__(self, collection: SceneCollection, split: dict[str, Any], size: int,
                 length: int, seed: int = 0):
        self.collection, self.size, self.length = collection, int(size), int(length)
        self.blocks = {n: split.get("val_blocks", {}).get(n, []) for n in split["train"]}
        self.generator = np.random.default_rng(seed)
        self.cells: list[tuple[str, int, int]] = []
        for name in split["train"]:
            scene = collection.open(name)
            rows, cols = np.nonzero(scene.coarse_valid >= 0.5)
            if rows.size == 0:
                rows, cols = np.nonzero(scene.coarse_valid > 0)
            self.cells += [(name, int(r), int(c)) for r, c in zip(rows, cols, strict=False)]
        if not self.cells:
            raise InvalidValueError("no valid labelled area to draw training windows from",
                            collection.root)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[str, int, int, int]]:
        for _ in range(self.length):
            yield self.draw()

    def fixed(self, count: int, seed: int) -> list[tuple[str, int, int, int]]:
        """``count`` windows from a separate generator seeded with ``seed`` (the training
        sequence is not consumed)."""
        rng = np.random.default_rng(seed)
        return [self.draw(rng) for _ in range(count)]

    def draw(self, rng: np.random.Generator | None = None) -> tuple[str, int, int, int]:
        """One window; from the sampler's own generator unless ``rng`` is given."""
        rng, size = rng or self.generator, self.size
        for _ in range(100):
            name, r, c = self.cells[int(rng.integers(len(self.cells)))]
            scene = self.collection.open(name)
            centre_r = r * _CELL + int(rng.integers(_CELL))
            centre_c = c * _CELL + int(rng.integers(_CELL))
            row = int(np.clip(centre_r - size // 2, 0, max(0, scene.height - size)))
            col = int(np.clip(centre_c - size // 2, 0, max(0, scene.width - size)))
            if not _overlaps(row, col, size, self.blocks[name]):
                return name, row, col, size
        # no room between the blocks: the last draw, whose validation labels hide() removes
        return name, row, col, size

    def hide(self, name: str, row: int, col: int, label: np.ndarray) -> np.ndarray:
        """``label`` (the window at ``row``, ``col`` of scene ``name``) with 255 over the
        held-out validation blocks it reaches into."""
        height, width = label.shape
        out = label
        for r, c, h, w in self.blocks.get(name, ()):
            r0, r1 = max(r - row, 0), min(r + h - row, height)
            c0, c1 = max(c - col, 0), min(c + w - col, width)
            if r0 < r1 and c0 < c1:
                out = label.copy() if out is label else out
                out[r0:r1, c0:c1] = IGNORE_INDEX
        return out


class SceneWindowDataset(Dataset):
    """Windows of scenes as normalised tensors, indexed by ``(scene, row, col, size)``.

    With a ``transform`` (training: :func:`~scdnn.datasets.train_transform`), the window is
    augmented before normalising; windows that stick out of a scene smaller than the window
    are padded by the transform (label 255). Items are ``dict(image=float32 C x H x W,
    mask=int64 H x W, name=str)``, like :class:`~scdnn.datasets.SegmentationDataset`'s.
    """

    def __init__(self, collection: SceneCollection, normalization: Normalization,
                 transform=None, windows: Sequence[tuple[str, int, int, int, int]] | None = None,
                 sampler: RandomWindowSampler | None = None):
        self.collection = collection
        self.normalization = normalization
        self.transform = transform
        self.windows = list(windows or [])
        self.sampler = sampler  # training windows: validation labels hidden (hide())

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            name, row, col, h, w = self.windows[int(key)]
        else:
            name, row, col, size = key
            h = w = size
        scene = self.collection.open(name)
        h, w = min(h, scene.height - row), min(w, scene.width - col)
        image, label = scene.read(Window(col, row, w, h))
        if self.sampler is not None:
            label = self.sampler.hide(name, row, col, label)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        return {"image": torch.from_numpy(self.normalization.apply(image)),
                "mask": torch.from_numpy(label.astype(np.int64)),
                "name": f"{name}:{row},{col}"}


def validation_windows(split: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """The held-out blocks as ``(scene, row, col, height, width)`` windows."""
    return [(name, r, c, h, w) for name, blocks in split.get("val_blocks", {}).items()
            for r, c, h, w in blocks]


def scene_normalization(collection: SceneCollection, sampler: RandomWindowSampler,
                        windows: int = 32, max_pixels: int = 2_000_000, seed: int = 0
                        ) -> Normalization:
    """Per-channel mean and std over the valid labelled pixels of ``windows`` training
    windows (a separate, seeded draw: the training sequence is not consumed)."""
    rng = np.random.default_rng(seed)
    per_window = max(1, max_pixels // windows)
    sums = squares = None
    total = 0
    for name, row, col, size in sampler.fixed(windows, seed + 1):
        scene = collection.open(name)
        image, label = scene.read(Window(col, row, min(size, scene.width - col),
                                         min(size, scene.height - row)))
        label = sampler.hide(name, row, col, label)
        pixels = image[label != IGNORE_INDEX].astype(np.float64)
        if pixels.shape[0] == 0:
            continue
        if pixels.shape[0] > per_window:
            pixels = pixels[rng.integers(0, pixels.shape[0], size=per_window)]
        sums = pixels.sum(0) if sums is None else sums + pixels.sum(0)
        squares = (pixels ** 2).sum(0) if squares is None else squares + (pixels ** 2).sum(0)
        total += pixels.shape[0]
    if total == 0:
        raise InvalidValueError("no valid labelled pixel in the training windows", collection.root)
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - mean ** 2, 0.0))
    return Normalization(mean=mean.tolist(), std=np.maximum(std, 1.0).tolist())

