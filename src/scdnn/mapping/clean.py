"""Clean a scene's mask raster strip by strip, with the result of one whole-array pass.

:func:`clean_raster` applies :class:`scdnn.outlines.OutlineCleaning` (see
:mod:`scdnn.outlines` for the steps) to a mask raster (0/1, 255 = no data) too large to hold
whole, reading strips of full-width rows, so memory grows with the scene's width only, plus
one small number per connected component. No seams: the result equals
:func:`scdnn.outlines.clean_mask` on the whole array, pixel for pixel.

- Smoothing and the diagonal-contact fix are local: each strip is read with
  :attr:`~scdnn.outlines.PixelCleaning.halo` rows above and below, and only its own rows are
  kept (:func:`smoothed_strips`).
- Object sizes and holes are global: an object or a hole crossing strips is judged whole.
  Each strip is labelled into connected components; components touching across a strip
  border (8-connected for objects, 4-connected for background) are joined by a union-find
  over global component ids, whose sizes (and, for background, whether it touches no data
  or the scene's edge) are summed per root. Three passes over the strips (each relabelling
  them identically): object sizes; background regions without the removed objects; the
  cleaned rows, written top to bottom.
- Empty regions are skipped: a strip is read only over the columns where the raster (a
  sparse GeoTIFF, :class:`.outputs.BlockWriter`) stores blocks, with a margin of ``halo + 1``
  absent (no data) columns, and a strip without a stored block is not read at all; no data
  holds no object and no background, so the result is the same. The cleaned raster is
  sparse too.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from scipy import ndimage

from ..datasets.scene import stored_blocks
from ..outlines import EIGHT, FOUR, PixelCleaning, smooth_mask
from .outputs import IGNORE_INDEX, STRIP_ROWS, BlockWriter

__all__ = ["clean_raster", "smoothed_strips", "UnionFind"]


class UnionFind:
    """Global component ids (0 = none) with sizes and flags summed per root."""

    def __init__(self) -> None:
        self.parent = np.zeros(1, dtype=np.int64)
        self.size = np.zeros(1, dtype=np.int64)
        self.flag = np.zeros(1, dtype=bool)

    def add(self, sizes: np.ndarray, flags: np.ndarray | None = None) -> int:
        """Register ``len(sizes)`` new components; return the global id of the first."""
        first = len(self.parent)
        n = len(sizes)
        self.parent = np.concatenate([self.parent, np.arange(first, first + n)])
        self.size = np.concatenate([self.size, sizes.astype(np.int64)])
        self.flag = np.concatenate([self.flag, np.zeros(n, bool) if flags is None else flags])
        return first

    def find(self, node: int) -> int:
        parent = self.parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(root of each id, size per id's root, flag per id's root)``."""
        root = self.parent.copy()
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        size = np.bincount(root, weights=self.size, minlength=len(root))
        flag = np.bincount(root, weights=self.flag, minlength=len(root)) > 0
        return root, size[root], flag[root]


@dataclass
class _Strip:
    row0: int
    landslide: np.ndarray | None  # smoothed, bool; None: a strip without valid data, unread
    valid: np.ndarray | None
    above: np.ndarray | None  # valid row above the strip (None at the scene's top)
    below: np.ndarray | None
    col0: int = 0  # the strip's arrays start at this column of the scene
    width: int = 0  # the scene's width


def smoothed_strips(path: str | os.PathLike, cleaning: PixelCleaning,
                    strip_rows: int = STRIP_ROWS) -> Iterator[_Strip]:
    """The mask of ``path`` (1 = landslide, 255 = no data), strip by strip, after the local
    steps (:func:`scdnn.outlines.smooth_mask`), each computed with its halo of rows.

    A strip covers the columns of the blocks ``path`` stores in its rows and halo (all
    columns for a raster that is not a sparse GeoTIFF), widened by ``halo + 1`` columns of
    no data (the local steps see the same neighbourhood as over whole rows); a strip whose
    own rows hold no stored block is not read (``landslide`` and ``valid`` None)."""
    halo = cleaning.halo
    index = stored_blocks(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a scene without CRS
        src = rasterio.open(path)
    with src:
        height, width = src.height, src.width
        for row0 in range(0, height, strip_rows):
            row1 = min(row0 + strip_rows, height)
            top, bottom = max(0, row0 - halo), min(height, row1 + halo)
            span = (0, width) if index is None else index.stored_columns(top, bottom, width)
            if span is None or (index is not None
                                and index.stored_columns(row0, row1, width) is None):
                yield _Strip(row0, None, None, None, None, 0, width)
                continue
            c0, c1 = max(0, span[0] - halo - 1), min(width, span[1] + halo + 1)
            rows = src.read(1, window=Window(c0, top, c1 - c0, bottom - top))
            valid = rows != IGNORE_INDEX
            x = smooth_mask(rows == 1, valid, cleaning)
            inner = slice(row0 - top, row1 - top)
            yield _Strip(row0, x[inner], valid[inner],
                         valid[row0 - top - 1] if row0 > 0 else None,
                         valid[row1 - top] if row1 < height else None, c0, width)


@dataclass
class _Labelled:
    """Connected components labelled strip by strip, joined across strip borders."""

    structure: np.ndarray
    uf: UnionFind = field(default_factory=UnionFind)
    offsets: list[int] = field(default_factory=list)
    # global ids of the previous strip's last row, and the column it starts at
    _bottom: tuple[int, np.ndarray] | None = None

    def label(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        return ndimage.label(x, structure=self.structure)

    def add_empty(self) -> None:
        """A strip without valid data: no components, nothing joins across it."""
        self.offsets.append(0)
        self._bottom = None

    def add(self, labels: np.ndarray, count: int, flags: np.ndarray | None = None,
            col0: int = 0) -> None:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        first = self.uf.add(sizes, flags)
        self.offsets.append(first - 1)
        ids = self.global_ids(labels, first - 1)
        if self._bottom is not None:
            bottom, top = _on_common_columns(self._bottom, (col0, ids[0]))
            shifts = (-1, 0, 1) if self.structure.all() else (0,)
            for shift in shifts:
                a, b = _shifted(bottom, top, shift)
                both = (a > 0) & (b > 0)
                for u, v in set(zip(a[both].tolist(), b[both].tolist(), strict=True)):
                    self.uf.union(u, v)
        self._bottom = (col0, ids[-1])

    @staticmethod
    def global_ids(labels: np.ndarray, offset: int) -> np.ndarray:
        return np.where(labels > 0, labels.astype(np.int64) + offset, 0)


def _on_common_columns(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Two rows given as (first column, values) placed on the columns both span together
    (0 where one has no value)."""
    lo = min(a[0], b[0])
    hi = max(a[0] + len(a[1]), b[0] + len(b[1]))
    out = []
    for c0, row in (a, b):
        full = np.zeros(hi - lo, dtype=row.dtype)
        full[c0 - lo:c0 - lo + len(row)] = row
        out.append(full)
    return out[0], out[1]


def _shifted(a: np.ndarray, b: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``a[c]``, ``b[c + shift]``."""
    if shift == 0:
        return a, b
    if shift > 0:
        return a[:-shift], b[shift:]
    return a[-shift:], b[:shift]


def clean_raster(src: str | os.PathLike, dst: str | os.PathLike, cleaning: PixelCleaning,
                 *, strip_rows: int = STRIP_ROWS) -> dict[str, int]:
    """Write the cleaned mask of the raster ``src`` (0/1, 255 = no data) to ``dst`` (same
    grid, tiled sparse GeoTIFF, nodata 255), strip by strip, skipping what ``src`` does not
    store (see the module's docstring). Returns the counts of valid and landslide pixels of
    the cleaned mask."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(src)
    with ds:
        grid = dict(width=ds.width, height=ds.height, crs=ds.crs, transform=ds.transform)
        height = ds.height

    # pass 1: objects (8-connected) and their whole sizes
    objects = _Labelled(EIGHT)
    for strip in smoothed_strips(src, cleaning, strip_rows):
        if strip.landslide is None:
            objects.add_empty()
        else:
            objects.add(*objects.label(strip.landslide), col0=strip.col0)
    _, object_size, _ = objects.uf.totals()
    keep = object_size >= cleaning.min_area
    keep[0] = False

    def kept(strip: _Strip, index: int) -> np.ndarray:
        labels, _ = objects.label(strip.landslide)
        return keep[_Labelled.global_ids(labels, objects.offsets[index])]

    # pass 2: background regions (4-connected) without the removed objects; a region is
    # open (never a hole) when it touches no data or the scene's edge
    background = _Labelled(FOUR)
    for index, strip in enumerate(smoothed_strips(src, cleaning, strip_rows)):
        if strip.valid is None:
            background.add_empty()
            continue
        bg = strip.valid & ~kept(strip, index)
        labels, count = background.label(bg)
        edge_rows = [np.ones((1, bg.shape[1]), bool) if r is None else r[None]
                     for r in (strip.above, strip.below)]  # beyond the scene: not no data
        invalid = ~np.vstack([edge_rows[0], strip.valid, edge_rows[1]])
        near = ndimage.binary_dilation(invalid, FOUR, border_value=0)[1:-1] & bg
        open_mask = near.copy()
        if strip.col0 == 0:  # the scene's edges (elsewhere the strip's edges are no data)
            open_mask[:, 0] |= bg[:, 0]
        if strip.col0 + bg.shape[1] == strip.width:
            open_mask[:, -1] |= bg[:, -1]
        if strip.row0 == 0:
            open_mask[0] |= bg[0]
        if strip.row0 + len(bg) == height:
            open_mask[-1] |= bg[-1]
        flags = np.zeros(count + 1, dtype=bool)
        flags[labels[open_mask]] = True
        background.add(labels, count, flags[1:], col0=strip.col0)
    _, hole_size, hole_open = background.uf.totals()
    fill = (hole_size < cleaning.max_hole) & ~hole_open
    fill[0] = False

    # pass 3: the cleaned rows
    counts = {"valid_pixels": 0, "landslide_pixels": 0}
    with BlockWriter(dst, dtype="uint8", nodata=IGNORE_INDEX, **grid) as out:
        for index, strip in enumerate(smoothed_strips(src, cleaning, strip_rows)):
            if strip.valid is None:
                continue  # no data: not written (reads as 255)
            x = kept(strip, index)
            labels, _ = background.label(strip.valid & ~x)
            x |= fill[_Labelled.global_ids(labels, background.offsets[index])]
            out.write(strip.row0, strip.col0,
                      np.where(strip.valid, x, IGNORE_INDEX).astype(np.uint8))
            out.done(strip.row0 + len(x))
            counts["valid_pixels"] += int(strip.valid.sum())
            counts["landslide_pixels"] += int(x.sum())
    return counts
