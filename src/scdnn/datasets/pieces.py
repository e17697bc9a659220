"""The pieces of a split's test samples that a benchmark scores and shows one by one.

Fig. 8 bins per-image MIoUs, and Table 4 / Fig. 9 show a few test images with each network's
scores and predictions. On image folders a piece is a test image. On scenes a test scene is
one image (its per-image MIoU a single number), so a piece is a square tile of a test scene:
:class:`TilePieces` cuts the test scenes into ``tile`` px tiles from their top-left corner and
keeps every tile with at least :data:`scdnn.metrics.TILE_MIN_VALID` of a full tile's area
valid and labelled (:func:`scdnn.metrics.score_tiles`).

Both follow :class:`TestPieces`:

- ``examples(count)``: the pieces to show: the images with the largest landslide share (ties
  by name); the tiles with the most landslide pixels among those where each class holds at
  least :data:`TILE_MIN_CLASS` of the valid labelled pixels (then any tile; ties by scene,
  row, column);
- ``scores(eval_dir)``: one run's score per piece, from its evaluation folder: the rows of
  ``per_image.csv``; for tiles, each tile scored from the predicted scene mask
  (``masks/<scene>.tif``) and written to ``per_tile.csv``, with Fig. 8's bins over the tiles;
- ``read(piece)`` and ``predictions(pieces, run_dir)``: what Fig. 9 draws (images are
  predicted again with the run's weights, since evaluations made before the predicted masks
  were kept have none; tiles are cut from the predicted scene masks).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from ..errors import InputFileError, InvalidValueError
from ..records import IGNORE_INDEX

if TYPE_CHECKING:
    from .source import ImageFolderSource, SceneSource

__all__ = ["Piece", "PieceScores", "TestPieces", "ImagePieces", "TilePieces", "TILE_MIN_CLASS"]

#: Tiles: Fig. 9 prefers tiles where each class holds at least this share of the valid pixels.
TILE_MIN_CLASS = 0.1
#: The per-piece scores Table 4 shows.
TABLE4_KEYS = ("landslide_pa", "background_pa", "miou")


@dataclasses.dataclass(frozen=True)
class Piece:
    """A test image, or a tile of a test scene.

    ``name`` is the image's name or ``scene:row,col``; ``sample`` the image or scene it comes
    from; ``window`` its ``(row, col, height, width)`` in the scene (None: a whole image);
    ``valid`` its labelled pixels and ``landslide`` those labelled landslide.
    """

    name: str
    sample: str
    window: tuple[int, int, int, int] | None
    valid: int
    landslide: int

    @property
    def landslide_share(self) -> float:
        """Landslide pixels as a share of the valid labelled ones (0.0 with none)."""
        return self.landslide / self.valid if self.valid else 0.0


@dataclasses.dataclass
class PieceScores:
    """One run's scores per piece: ``rows`` (piece name -> the per_image.csv columns as
    numbers, ``None`` where undefined) and ``fig8`` (``{"bins", "count", "unit", "tile"}``
    when Fig. 8 bins the pieces rather than the run's per-image MIoUs, else None)."""

    rows: dict[str, dict[str, Any]]
    fig8: dict[str, Any] | None = None


class TestPieces(Protocol):
    """The pieces of a split's test samples (module docstring).

    Attributes
    ----------
    unit : what a piece is, plural (``"images"``, ``"tiles"``)
    label : the pieces in Fig. 8's legend (``"images"``, ``"tiles of 512 px"``)
    title : Fig. 9's first words (``"Test images"``, ``"Test tiles (512 px)"``)
    pieces : every piece, in order
    """

    unit: str
    label: str
    title: str
    pieces: list[Piece]

    def config(self) -> dict[str, Any]:
        """What results.json records about the pieces (``{}`` for images)."""

    def examples(self, count: int) -> list[Piece]:
        """The ``count`` pieces Table 4 and Fig. 9 show."""

    def scores(self, eval_dir: Path, tolerance: int = 2) -> PieceScores:
        """One run's score per piece, from its evaluation folder ``eval_dir``."""

    def read(self, piece: Piece) -> tuple[np.ndarray, np.ndarray]:
        """``(image H x W x C uint8, truth H x W in 0/1/255)`` of a piece."""

    def predictions(self, pieces: Sequence[Piece], run_dir: Path, device: str = "cpu"
                    ) -> dict[str, np.ndarray]:
        """The predicted landslide mask (bool) of each piece by the run in ``run_dir``."""


class ImagePieces:
    """The test images themselves."""

    unit = "images"
    label = "images"
    title = "Test images"

    def __init__(self, source: ImageFolderSource, names: Sequence[str]):
        self.source = source
        self.pieces = []
        for name in names:
            mask = np.asarray(source.item(name)["mask"])
            self.pieces.append(Piece(name, name, None, int((mask != IGNORE_INDEX).sum()),
                                     int((mask == 1).sum())))

    def config(self) -> dict[str, Any]:
        return {}

    def examples(self, count: int) -> list[Piece]:
        return sorted(self.pieces, key=lambda p: (-p.landslide_share, p.name))[:count]

    def scores(self, eval_dir: Path, tolerance: int = 2) -> PieceScores:
        """The rows of ``per_image.csv`` (none when it is missing)."""
        from ..metrics import read_rows

        path = Path(eval_dir) / "per_image.csv"
        rows = {row["name"]: row for row in read_rows(path)} if path.is_file() else {}
        return PieceScores(rows)

    def read(self, piece: Piece) -> tuple[np.ndarray, np.ndarray]:
        item = self.source.item(piece.sample)
        return item["image"], item["mask"]

    def predictions(self, pieces: Sequence[Piece], run_dir: Path, device: str = "cpu"
                    ) -> dict[str, np.ndarray]:
        """Each image predicted whole with ``run_dir/weights.safetensors`` (threshold 0.5)."""
        from ..inference import landslide_probability
        from ..weights import load_model

        model, card = load_model(Path(run_dir) / "weights.safetensors")
        model.to(device)
        found = {}
        for piece in pieces:
            image = self.source.item(piece.sample)["image"]
            found[piece.name] = landslide_probability(model, image, card.normalization,
                                                      device) >= 0.5
        return found


class TilePieces:
    """``tile`` x ``tile`` tiles of the test scenes with enough valid labelled pixels."""

    unit = "tiles"

    def __init__(self, source: SceneSource, scenes: Sequence[str], tile: int):
        from ..metrics import select_tiles

        self.source, self.tile = source, int(tile)
        self.label = f"tiles of {self.tile} px"
        self.title = f"Test tiles ({self.tile} px)"
        self._labels = {name: source.collection.open(name).whole_label() for name in scenes}
        self.pieces = [Piece(f"{name}:{t['row']},{t['col']}", name,
                             (t["row"], t["col"], t["height"], t["width"]), t["valid"],
                             t["landslide"])
                       for name, label in self._labels.items()
                       for t in select_tiles(label, self.tile)]

    def config(self) -> dict[str, Any]:
        from ..metrics import TILE_MIN_VALID

        return {"scene_tile": self.tile, "tile_min_valid": TILE_MIN_VALID,
                "tile_min_class": TILE_MIN_CLASS}

    def examples(self, count: int) -> list[Piece]:
        def balanced(p: Piece) -> bool:
            return min(p.landslide, p.valid - p.landslide) >= TILE_MIN_CLASS * p.valid

        return sorted(self.pieces, key=lambda p: (not balanced(p), -p.landslide, p.sample,
                                                  *p.window[:2]))[:count]

    def scores(self, eval_dir: Path, tolerance: int = 2) -> PieceScores:
        """Every tile scored from ``eval_dir/masks/<scene>.tif``; the rows are written to
        ``eval_dir/per_tile.csv`` (the columns of per_image.csv)."""
        from ..metrics import miou_bins, score_tiles, write_rows

        rows: list[dict[str, Any]] = []
        for scene in dict.fromkeys(p.sample for p in self.pieces):
            label = self._labels[scene]
            pred = _read_band(Path(eval_dir) / "masks" / f"{scene}.tif", label.shape)
            for row in score_tiles(pred, label, self.tile, tolerance):
                rows.append({"name": f"{scene}:{row['row']},{row['col']}", **row})
        write_rows(rows, Path(eval_dir) / "per_tile.csv")
        return PieceScores({row["name"]: row for row in rows},
                           {"bins": miou_bins(row["miou"] for row in rows), "count": len(rows),
                            "unit": "tiles", "tile": self.tile})

    def read(self, piece: Piece) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window

        row, col, height, width = piece.window
        return self.source.collection.open(piece.sample).read(Window(col, row, width, height))

    def predictions(self, pieces: Sequence[Piece], run_dir: Path, device: str = "cpu"
                    ) -> dict[str, np.ndarray]:
        """Each tile cut from ``run_dir/eval/masks/<scene>.tif`` (``device`` is unused)."""
        import rasterio
        from rasterio.windows import Window

        found = {}
        for piece in pieces:
            row, col, height, width = piece.window
            path = Path(run_dir) / "eval" / "masks" / f"{piece.sample}.tif"
            with rasterio.open(path) as src:
                found[piece.name] = src.read(1, window=Window(col, row, width, height)) == 1
        return found


def _read_band(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Band 1 of a predicted mask raster of the given shape."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            band = src.read(1)
    except RasterioError as exc:
        raise InputFileError(f"cannot read the predicted mask: {exc}", path) from None
    if band.shape != tuple(shape):
        raise InvalidValueError(f"predicted mask is {band.shape[1]}x{band.shape[0]} but the "
                                f"scene is {shape[1]}x{shape[0]}", path)
    return band
