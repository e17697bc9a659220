"""Landslide maps of whole georeferenced scenes: ``scdnn map SCENE.tif --weights W --out DIR``.

Read top to bottom, a scene goes through:

- :mod:`.predict` — :func:`map_scene`, the recipe: predicted rows -> rasters -> polygons
  -> COGs and ``map.json``;
- :mod:`.core` — :func:`predict_blocks` (and :func:`predict_scene`, the same as full
  rows), the one scene-prediction loop: windows (laid by :func:`plan_windows`, a
  :class:`Tiling`; those a sparse GeoTIFF leaves out skipped unread) -> batches -> network
  -> blended rows, in column blocks where windows ran;
- :mod:`.scene` — open and validate a scene (and its DSM), read a window's channels and
  valid-data mask (the reader lives in :mod:`scdnn.datasets.scene`, shared with training);
- :mod:`.tiling` — the window grid (aligned to the network's output stride) and the
  blending weight window;
- :mod:`.outputs` — sparse block-by-block raster writing, COG conversion, strip-wise
  polygonizing with seam merging (over stored blocks only), the polygon table and its file;
- :mod:`.score` — the same prediction held in memory, which ``scdnn evaluate``
  (:mod:`scdnn.evaluation`) scores on every valid labelled pixel against the label raster.
"""

from __future__ import annotations

from .core import Tiling, WindowPlan, plan_windows, predict_blocks, predict_scene
from .outputs import (
    IGNORE_INDEX,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    landslide_table,
    polygonize,
    read_probability,
    write_cog,
)
from .predict import map_scene
from .scene import Scene, open_scene
from .tiling import blend_weights, window_grid

__all__ = ["map_scene", "predict_scene", "predict_blocks", "plan_windows", "Tiling",
           "WindowPlan", "open_scene", "Scene", "window_grid", "blend_weights", "polygonize",
           "landslide_table", "write_cog", "read_probability", "PROBABILITY_NODATA",
           "PROBABILITY_SCALE", "IGNORE_INDEX"]
