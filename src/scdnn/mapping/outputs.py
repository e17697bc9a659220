"""The files ``scdnn map`` writes: rasters row band by row band, COGs, landslide polygons.

Conventions (the same in every output):

- ``probability.tif``: landslide probability in percent, uint8 0-100 (rounded), nodata 255
  (:data:`PROBABILITY_NODATA`) outside valid data; the band's scale is 0.01
  (:data:`PROBABILITY_SCALE`, GDAL's scale/offset metadata, unit "percent"), so GDAL and
  rasterio users get the probability as ``value x scale`` (:func:`read_probability`) and a
  GIS shows percent. A percent is finer than any use of the map needs (the mask and the
  polygons are thresholded on the unrounded probability), and a byte per pixel compresses far
  better than float32, whose low bits are noise: a smaller file, less to compress and to
  build overviews for.
- ``mask.tif``: uint8, 0 background, 1 landslide, 255 no data (:data:`IGNORE_INDEX`, the
  project's ignore label).
- Polygons have the vertices of pixel corners (no smoothing unless ``simplify``) in the
  scene's CRS; ``area_m2`` and ``perimeter_m`` are in the units of that CRS (metres for a
  projected CRS; pixels for a scene without georeferencing, see ``map.json``'s ``units``).

Every file is written under a temporary name (:class:`Staging`) and renamed when all are
complete, so a failed run leaves nothing under a final name.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage

from ..errors import InvalidValueError
from ..runs import temporary_path

__all__ = [
    "PROBABILITY_NODATA", "PROBABILITY_SCALE", "probability_percent", "read_probability",
    "IGNORE_INDEX", "POLYGON_FORMATS", "Staging", "BlockWriter",
    "RowWriter", "write_cog", "copy_to_cog", "quiet_georeferencing",
    "Landslide", "polygonize", "landslide_table", "write_polygons",
]

#: ``probability.tif``: no data, and the probability of a stored value (``value x scale``).
PROBABILITY_NODATA = 255
PROBABILITY_SCALE = 0.01
IGNORE_INDEX = 255
#: ``--format`` -> OGR driver
POLYGON_FORMATS = {"gpkg": "GPKG", "geojson": "GeoJSON"}
#: Rows per strip when a raster is read back or written: a multiple of the block height.
STRIP_ROWS = 256
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


class Staging:
    """Temporary names for a run's outputs, renamed to their final names together.

    ``final(name)`` gives the temporary path of an output that :meth:`commit` renames to
    ``out/name``; ``scratch(name)`` a temporary path that is only deleted. Leaving the
    ``with`` block, every temporary file still there is deleted (all of them on an error).
    A process killed outright (SIGKILL, power loss) cannot delete them: they keep their
    hidden names, and :func:`scdnn.runs.prepare_out_dir` removes them when the command is
    run again.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self._finals: dict[Path, Path] = {}
        self._scratch: list[Path] = []

    def final(self, name: str) -> Path:
        tmp = temporary_path(self.out / name)
        self._finals[self.out / name] = tmp
        return tmp

    def scratch(self, name: str) -> Path:
        tmp = temporary_path(self.out / f"scratch-{name}")
        self._scratch.append(tmp)
        return tmp

    def commit(self) -> list[Path]:
        """Rename every final output into place; return the final paths."""
        for final, tmp in self._finals.items():
            os.replace(tmp, final)
        return list(self._finals)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        for tmp in [*self._finals.values(), *self._scratch]:
            for path in (tmp, Path(f"{tmp}.aux.xml")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


class BlockWriter:
    """Write a one-band raster from top to bottom in pieces, leaving empty blocks out.

    The file is a tiled, deflate-compressed, *sparse* GeoTIFF (``SPARSE_OK=TRUE``; the source
    of a COG later) with ``nodata`` set: a block that no piece reaches, or that holds only
    ``nodata``, is not written at all and reads back as ``nodata``, so empty regions cost
    nothing. :meth:`write` takes a piece (``rows x columns``) at any row and column, pieces in
    order of their first row (pieces starting on the same row in any column order); each
    block is held until no later piece can reach it, then compressed and written exactly once
    (rewriting a compressed block would leave dead bytes in the file). Memory holds the
    blocks of the rows the pieces of one call span, plus one block row (:meth:`done` writes
    the finished ones at once). ``written`` counts the blocks written.
    """

    def __init__(self, path: Path, *, width: int, height: int, dtype: str, nodata: float,
                 crs: Any, transform: Affine, block: int = STRIP_ROWS,
                 scale: float | None = None, units: str | None = None):
        self.width, self.height, self.block = width, height, block
        self.dtype, self.nodata = np.dtype(dtype), nodata
        self.written = 0
        self._blocks: dict[tuple[int, int], np.ndarray] = {}  # (block row, block col) -> data
        self._row = 0  # first row of the latest piece
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self._ds = rasterio.open(
                path, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype,
                nodata=nodata, crs=crs, transform=transform, tiled=True, blockxsize=block,
                blockysize=block, compress="deflate", zlevel=1, bigtiff="if_safer",
                sparse_ok=True)
        if scale is not None:  # GDAL's band scale and offset: value x scale (COGs keep it)
            self._ds.scales, self._ds.offsets = (scale,), (0.0,)
        if units is not None:
            self._ds.units = (units,)

    def write(self, row0: int, col0: int, data: np.ndarray) -> None:
        """Put ``data`` at rows ``row0`` onwards, columns ``col0`` onwards."""
        if row0 < self._row:
            raise ValueError(f"piece at row {row0} above an earlier one at row {self._row}")
        self._flush(row0 // self.block)  # block rows wholly above row0 are complete
        self._row = row0
        b = self.block
        h, w = data.shape
        for i in range(row0 // b, -(-(row0 + h) // b)):
            r0, r1 = max(row0, i * b), min(row0 + h, (i + 1) * b, self.height)
            for j in range(col0 // b, -(-(col0 + w) // b)):
                c0, c1 = max(col0, j * b), min(col0 + w, (j + 1) * b, self.width)
                if r1 <= r0 or c1 <= c0:
                    continue
                part = data[r0 - row0:r1 - row0, c0 - col0:c1 - col0]
                target = self._blocks.get((i, j))
                if target is None:
                    if (part == self.nodata).all():
                        continue  # nothing to write (yet)
                    target = self._blocks[(i, j)] = np.full(
                        (min(b, self.height - i * b), min(b, self.width - j * b)),
                        self.nodata, dtype=self.dtype)
                target[r0 - i * b:r1 - i * b, c0 - j * b:c1 - j * b] = part

    def done(self, until: int) -> None:
        """Say that no later piece reaches above row ``until``: the blocks wholly above it are
        written now rather than when the next piece comes."""
        self._row = max(self._row, until)
        self._flush(until // self.block)

    def _flush(self, before: int) -> None:
        """Write the held blocks of block rows above ``before``."""
        for (i, j) in sorted(k for k in self._blocks if k[0] < before):
            data = self._blocks.pop((i, j))
            if (data == self.nodata).all():
                continue
            self._ds.write(data, 1, window=Window(j * self.block, i * self.block,
                                                  data.shape[1], data.shape[0]))
            self.written += 1

    def close(self) -> None:
        if not self._ds.closed:
            self._flush(-(-self.height // self.block))
        self._ds.close()

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self._blocks = {}
        self.close()


class RowWriter:
    """Write a one-band raster from top to bottom, any number of full-width rows at a time
    (a :class:`BlockWriter`: a sparse file, blocks holding only ``nodata`` left out)."""

    def __init__(self, path: Path, *, width: int, height: int, dtype: str, nodata: float,
                 crs: Any, transform: Affine, block: int = STRIP_ROWS):
        self.height = height
        self._row = 0
        self._writer = BlockWriter(path, width=width, height=height, dtype=dtype,
                                   nodata=nodata, crs=crs, transform=transform, block=block)

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (``n x width``) below the rows written so far."""
        self._writer.write(self._row, 0, rows)
        self._row += rows.shape[0]
        self._writer.done(self._row)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._writer.__exit__(exc_type, *exc)
        if exc_type is None and self._row != self.height:
            raise RuntimeError(f"wrote {self._row} of {self.height} rows")


#: A source raster storing at most this share of its blocks gets its COG overviews computed
#: by scdnn over the stored blocks only (:func:`sparse_overviews`); GDAL reads every block.
SPARSE_SHARE = 0.25


def write_cog(src: Path, dst: Path, *, resampling: str, predictor: bool = False,
              blocksize: int = 512) -> None:
    """Copy the GeoTIFF ``src`` to a Cloud Optimized GeoTIFF ``dst`` (GDAL's COG driver).

    Deflate-compressed ``blocksize`` tiles, sparse (``SPARSE_OK``: tiles holding only nodata
    are not stored); overviews (halving until smaller than one block, GDAL's
    ``OVERVIEWS=AUTO``) built with ``resampling`` (``average`` for probabilities, ``mode``
    for class masks; both leave nodata out). GDAL computes overviews by reading every pixel
    of ``src``, stored or not; when ``src`` is a sparse GeoTIFF storing at most
    :data:`SPARSE_SHARE` of its blocks, they are computed here over the stored blocks only
    (:func:`sparse_overviews`) and handed to the COG driver.
    """
    with quiet_georeferencing():
        copy_to_cog(src, dst, resampling=resampling, predictor=predictor, blocksize=blocksize)


@contextlib.contextmanager
def quiet_georeferencing():
    """Ignore rasterio's NotGeoreferencedWarning inside the ``with`` block (a scene without
    a CRS is reported once, by the caller). Warning filters are process-wide: a thread
    running :func:`copy_to_cog` is covered when this block encloses its whole life."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def copy_to_cog(src: Path, dst: Path, *, resampling: str, predictor: bool = False,
                blocksize: int = 512) -> None:
    """:func:`write_cog` without touching the warning filters, so that it can run on another
    thread (inside :func:`quiet_georeferencing`); GDAL releases the GIL while it copies."""
    options = dict(driver="COG", compress="DEFLATE", predictor="YES" if predictor else "NO",
                   blocksize=blocksize, bigtiff="IF_SAFER", sparse_ok="TRUE")
    from ..datasets.scene import stored_blocks

    index = stored_blocks(src)
    if index is None or index.stored.mean() > SPARSE_SHARE:
        rasterio.shutil.copy(src, dst, overview_resampling=resampling, **options)
        return
    levels: list[Path] = []
    try:
        for level in sparse_overviews(src, resampling, blocksize):
            levels.append(level)
        vrt = Path(f"{dst}-src.vrt")
        levels.append(vrt)
        vrt.write_text(_vrt_with_overviews(src, levels[:-1]))
        rasterio.shutil.copy(vrt, dst, overviews="FORCE_USE_EXISTING", **options)
    finally:
        for path in levels:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def overview_factors(width: int, height: int, blocksize: int) -> list[int]:
    """The overview factors of GDAL's COG driver (``OVERVIEWS=AUTO``): 2, 4, ... until the
    overview fits in one block."""
    factors, f = [], 1
    while max(-(-width // f), -(-height // f)) > blocksize:
        f *= 2
        factors.append(f)
    return factors


def sparse_overviews(src: Path, resampling: str, blocksize: int = 512):
    """Write the overviews of the sparse one-band GeoTIFF ``src`` (factors of
    :func:`overview_factors`), each as a sparse GeoTIFF beside ``src``'s COG, and yield their
    paths. Each level halves the previous one (2 x 2 pixels -> 1) over the blocks the
    previous one stores only: ``average`` = mean of the pixels that are not nodata,
    ``mode`` = their most frequent value (the first of equals in reading order); nodata
    where all four are."""
    from ..datasets.scene import stored_blocks

    previous = Path(src)
    with rasterio.open(src) as ds:
        width, height, nodata = ds.width, ds.height, ds.nodata
        dtype, crs, transform = ds.dtypes[0], ds.crs, ds.transform
    for factor in overview_factors(width, height, blocksize):
        path = Path(f"{src}-ovr{factor}.tif")
        w, h = -(-width // factor), -(-height // factor)
        index = stored_blocks(previous)
        with rasterio.open(previous) as prev, \
                BlockWriter(path, width=w, height=h, dtype=dtype, nodata=nodata, crs=crs,
                            transform=transform @ Affine.scale(factor), block=blocksize) as out:
            bh, bw = index.block
            for row0 in range(0, h, blocksize):  # rows of this level
                rows = min(blocksize, h - row0)
                r0, r1 = 2 * row0, min(prev.height, 2 * (row0 + rows))
                stored = index.stored[r0 // bh: -(-r1 // bh)].any(axis=0)
                for c0, c1 in _runs(stored):
                    c0, c1 = c0 * bw, min(prev.width, c1 * bw)  # even: blocks are
                    data = prev.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
                    out.write(row0, c0 // 2, _halve(data, nodata, resampling))
        yield path
        previous = path


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(first, end)`` of each run of True in ``flags``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _halve(data: np.ndarray, nodata: float, resampling: str) -> np.ndarray:
    """2 x 2 pixels -> 1 (an odd last row or column: with nodata beyond)."""
    h, w = data.shape
    if h % 2 or w % 2:
        data = np.pad(data, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    four = np.stack([data[0::2, 0::2], data[0::2, 1::2], data[1::2, 0::2], data[1::2, 1::2]])
    ok = four != nodata
    if resampling == "average":
        count = ok.sum(axis=0)
        total = np.where(ok, four, 0).astype(np.float64).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        if data.dtype.kind in "ui":  # integers round to the nearest, as GDAL's average
            mean = np.floor(mean + 0.5)
        return np.where(count > 0, mean, nodata).astype(data.dtype)
    if resampling == "mode":
        votes = np.stack([((four == v[None]) & ok).sum(axis=0) for v in four])
        votes[~ok] = -1
        best = np.take_along_axis(four, votes.argmax(axis=0)[None], axis=0)[0]
        return np.where(ok.any(axis=0), best, nodata).astype(data.dtype)
    raise ValueError(f"resampling must be average or mode, got {resampling}")


def _vrt_with_overviews(src: Path, levels: list[Path]) -> str:
    """A VRT of band 1 of ``src`` (with its scale, offset and unit) whose overviews are the
    files ``levels``."""
    from xml.sax.saxutils import escape

    with rasterio.open(src) as ds:
        width, height, nodata, dtype = ds.width, ds.height, ds.nodata, ds.dtypes[0]
        gt = ds.transform.to_gdal()
        srs = f"<SRS>{escape(ds.crs.to_wkt())}</SRS>" if ds.crs else ""
        meta = (f"<Offset>{ds.offsets[0]!r}</Offset><Scale>{ds.scales[0]!r}</Scale>"
                + (f"<UnitType>{escape(ds.units[0])}</UnitType>" if ds.units[0] else ""))
    gdal_type = {"float32": "Float32", "uint8": "Byte"}[dtype]
    overviews = "".join(
        f"<Overview><SourceFilename relativeToVRT=\"0\">{escape(str(Path(p).resolve()))}"
        f"</SourceFilename><SourceBand>1</SourceBand></Overview>" for p in levels)
    return (f"<VRTDataset rasterXSize=\"{width}\" rasterYSize=\"{height}\">{srs}"
            f"<GeoTransform>{', '.join(repr(float(v)) for v in gt)}</GeoTransform>"
            f"<VRTRasterBand dataType=\"{gdal_type}\" band=\"1\">"
            f"<NoDataValue>{nodata!r}</NoDataValue>{meta}"
            f"<SimpleSource><SourceFilename relativeToVRT=\"0\">"
            f"{escape(str(Path(src).resolve()))}</SourceFilename><SourceBand>1</SourceBand>"
            f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{width}\" ySize=\"{height}\"/>"
            f"<DstRect xOff=\"0\" yOff=\"0\" xSize=\"{width}\" ySize=\"{height}\"/>"
            f"</SimpleSource>{overviews}</VRTRasterBand></VRTDataset>")


@dataclass
class Landslide:
    """One landslide polygon in pixel coordinates, with its probability statistics.

    ``geometry`` is a shapely Polygon whose vertices are pixel corners (x = column, y = row,
    integers, so seams join exactly); ``pixels`` counts its pixels, ``probability_sum`` and
    ``probability_max`` summarise the probability over them.
    """

    geometry: Any
    pixels: int
    probability_sum: float
    probability_max: float

    def merged(self, *others: Landslide) -> Landslide:
        import shapely

        parts = [self, *others]
        return Landslide(
            geometry=shapely.union_all([p.geometry for p in parts]),
            pixels=sum(p.pixels for p in parts),
            probability_sum=sum(p.probability_sum for p in parts),
            probability_max=max(p.probability_max for p in parts),
        )


class _SeamMerger:
    """Polygonize a mask strip by strip, joining polygons that continue across a seam.

    Each strip is labelled into 4-connected components (the connectivity GDAL's polygonize
    uses), one polygon each. A component in the strip's last row is kept *open*; in the next
    strip, an open polygon and a component of its first row are the same landslide when they
    are vertically adjacent in some column (read from the two label rows, no geometry test),
    and are unioned; chains and U-shapes join through a union-find. Polygons that do not
    reach the next strip are closed. Memory: one strip, the open polygons (at most those
    crossing one row) and the closed ones (the output).
    """

    def __init__(self) -> None:
        self.closed: list[Landslide] = []
        self._open: dict[int, Landslide] = {}
        # open-polygon id per column of the last row, from column _bottom_col0 on
        self._bottom: np.ndarray | None = None
        self._bottom_col0 = 0
        self._next_id = 1

    def add_strip(self, landslide: np.ndarray, probability: np.ndarray, row0: int,
                  col0: int = 0) -> None:
        """Add the strip at rows ``row0`` onwards, columns ``col0`` onwards (the columns
        outside it hold no landslide)."""
        labels, count = ndimage.label(landslide, structure=_FOUR_CONNECTED)
        if count == 0:
            self._close_all()
            return
        pieces = self._pieces(labels, count, probability, row0, col0)
        pairs: set[tuple[int, int]] = set()
        if self._bottom is not None:
            lo = max(col0, self._bottom_col0)
            hi = min(col0 + labels.shape[1], self._bottom_col0 + len(self._bottom))
            a = self._bottom[lo - self._bottom_col0:hi - self._bottom_col0]
            b = labels[0][lo - col0:hi - col0]
            both = (a > 0) & (b > 0)
            pairs = set(zip(a[both].tolist(), b[both].tolist(), strict=False))
        groups = _connected_groups(pairs)
        continued: set[int] = set()
        new_open: dict[int, Landslide] = {}
        relabel = np.zeros(count + 1, dtype=np.int64)  # new label -> new open id
        bottom_labels = set(np.unique(labels[-1]).tolist()) - {0}
        grouped_labels = set()
        for open_ids, new_labels in groups:
            continued |= open_ids
            grouped_labels |= new_labels
            merged = pieces[min(new_labels)].merged(
                *[pieces[n] for n in sorted(new_labels) if n != min(new_labels)],
                *[self._open[o] for o in sorted(open_ids)])
            self._place(merged, new_labels, bottom_labels, new_open, relabel)
        for label in range(1, count + 1):
            if label not in grouped_labels:
                self._place(pieces[label], {label}, bottom_labels, new_open, relabel)
        self.closed.extend(p for o, p in self._open.items() if o not in continued)
        self._open = new_open
        self._bottom, self._bottom_col0 = relabel[labels[-1]], col0

    def _place(self, piece: Landslide, labels: set[int], bottom_labels: set[int],
               new_open: dict[int, Landslide], relabel: np.ndarray) -> None:
        if labels & bottom_labels:
            new_open[self._next_id] = piece
            relabel[list(labels)] = self._next_id
            self._next_id += 1
        else:
            self.closed.append(piece)

    @staticmethod
    def _pieces(labels: np.ndarray, count: int, probability: np.ndarray, row0: int,
                col0: int = 0) -> dict[int, Landslide]:
        import shapely.geometry

        flat = labels.ravel()
        pixels = np.bincount(flat, minlength=count + 1)
        sums = np.bincount(flat, weights=probability.ravel().astype(np.float64),
                           minlength=count + 1)
        # per-object maxima over the labelled pixels alone (ndimage.maximum is ~20x slower)
        inside = flat > 0
        maxima = np.full(count + 1, -np.inf)
        np.maximum.at(maxima, flat[inside], probability.ravel()[inside])
        maxima = maxima[1:]
        geometries = {int(value): shapely.geometry.shape(geom) for geom, value in shapes(
            labels.astype(np.int32), mask=labels > 0, connectivity=4,
            transform=Affine.translation(col0, row0))}
        return {k: Landslide(geometries[k], int(pixels[k]), float(sums[k]), float(maxima[k - 1]))
                for k in range(1, count + 1)}

    def skip(self) -> None:
        """A strip without landslide (or not read): every open polygon is closed."""
        self._close_all()

    def _close_all(self) -> None:
        self.closed.extend(self._open.values())
        self._open, self._bottom = {}, None

    def finish(self) -> list[Landslide]:
        self._close_all()
        return sorted(self.closed, key=lambda p: (p.geometry.bounds[1], p.geometry.bounds[0]))


def _connected_groups(pairs: set[tuple[int, int]]) -> list[tuple[set[int], set[int]]]:
    """Connected components of the bipartite graph (open id, new label): (open ids, labels)."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for o, n in pairs:
        parent[find(("o", o))] = find(("n", n))
    groups: dict[tuple[str, int], tuple[set[int], set[int]]] = {}
    for node in list(parent):
        kind, value = node
        group = groups.setdefault(find(node), (set(), set()))
        group[0 if kind == "o" else 1].add(value)
    return list(groups.values())


def probability_percent(probability: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What ``probability.tif`` stores of a probability array: percent rounded to the
    nearest (uint8 0-100), :data:`PROBABILITY_NODATA` where not ``valid``."""
    percent = np.rint(np.clip(probability, 0.0, 1.0) * 100.0)
    return np.where(valid, percent, PROBABILITY_NODATA).astype(np.uint8)


def read_probability(src: Any, **read_kwargs: Any) -> np.ma.MaskedArray:
    """Band 1 of an open probability raster as probabilities (float32, masked where no
    data): the stored values times the band's scale plus its offset, so a map written as
    float32 (scale 1) before ``probability.tif`` held percent reads the same way.
    ``read_kwargs`` go to ``src.read`` (``window``, ``out_shape``, ``resampling``)."""
    data = src.read(1, masked=True, **read_kwargs)
    scale = src.scales[0] if src.scales and src.scales[0] else 1.0
    offset = src.offsets[0] if src.offsets else 0.0
    out = data.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if src.nodata is not None:  # a nodata value that survived averaging or resampling
        out = np.ma.masked_where(np.ma.getdata(data) == src.nodata, out)
    return np.ma.masked_invalid(out)


def polygonize(mask_path: str | os.PathLike, probability_path: str | os.PathLike,
               strip_rows: int = STRIP_ROWS) -> list[Landslide]:
    """Landslide polygons (pixels == 1 of ``mask_path``) with probability statistics.

    Reads both one-band rasters in strips of ``strip_rows`` rows, so memory grows with the
    scene's width only; polygons crossing strip seams come out whole. A strip is read only
    over the columns where the mask (a sparse GeoTIFF, :class:`BlockWriter`) stores blocks,
    and not at all where it stores none: absent blocks are no data, never landslide.
    Polygons are in pixel coordinates, sorted top to bottom, then left to right.
    """
    from ..datasets.scene import stored_blocks

    merger = _SeamMerger()
    index = stored_blocks(mask_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        mask, prob = rasterio.open(mask_path), rasterio.open(probability_path)
    with mask, prob:
        for row0 in range(0, mask.height, strip_rows):
            rows = min(strip_rows, mask.height - row0)
            span = ((0, mask.width) if index is None
                    else index.stored_columns(row0, row0 + rows, mask.width))
            if span is None:
                merger.skip()
                continue
            window = Window(span[0], row0, span[1] - span[0], rows)
            merger.add_strip(mask.read(1, window=window) == 1,
                             read_probability(prob, window=window).filled(0.0), row0, span[0])
    return merger.finish()


def landslide_table(landslides: list[Landslide], transform: Affine, crs: Any = None,
                    min_area: float = 0.0, simplify: float = 0.0):
    """A GeoDataFrame of the polygons in map coordinates, one row per landslide.

    Columns ``id`` (1, 2, ... top to bottom), ``area_m2`` and ``perimeter_m`` (of the polygon
    as written, after ``simplify``; in the CRS's units), ``mean_probability`` and
    ``max_probability`` (over the landslide's pixels). ``simplify`` > 0 simplifies each
    polygon with that tolerance (shapely, topology preserved); polygons with an area below
    ``min_area`` are dropped.
    """
    import geopandas as gpd
    import shapely

    geoms = np.array([p.geometry for p in landslides], dtype=object)
    matrix = np.array([[transform.a, transform.b], [transform.d, transform.e]])
    offset = np.array([transform.c, transform.f])
    geoms = shapely.transform(geoms, lambda xy: xy @ matrix.T + offset)
    if simplify > 0:
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    area = shapely.area(geoms)
    keep = area >= min_area if min_area > 0 else np.ones(len(geoms), dtype=bool)
    pixels = np.array([p.pixels for p in landslides], dtype=np.float64)
    sums = np.array([p.probability_sum for p in landslides], dtype=np.float64)
    maxima = np.array([p.probability_max for p in landslides], dtype=np.float64)
    table = {
        "id": np.arange(1, int(keep.sum()) + 1, dtype=np.int64),
        "area_m2": area[keep],
        "perimeter_m": shapely.length(geoms)[keep],
        "mean_probability": sums[keep] / pixels[keep],
        "max_probability": maxima[keep],
    }
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms[keep], crs=_crs(crs)),
                            crs=_crs(crs))


def _crs(crs: Any) -> Any:
    return None if crs is None else crs.to_wkt() if hasattr(crs, "to_wkt") else crs


def write_polygons(table, path: str | os.PathLike, fmt: str = "gpkg") -> None:
    """Write ``table`` as a GeoPackage (layer ``landslides``) or GeoJSON with pyogrio."""
    import pyogrio

    if fmt not in POLYGON_FORMATS:
        raise InvalidValueError(f"unknown polygon format '{fmt}'; "
                        f"choose from: {', '.join(POLYGON_FORMATS)}")
    kw = {"layer": "landslides"} if fmt == "gpkg" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided": pixel maps
        pyogrio.write_dataframe(table, path, driver=POLYGON_FORMATS[fmt],
                                geometry_type="Polygon", promote_to_multi=False, **kw)
