"""Scores: the paper's Eqs. 20–24 from a confusion matrix, per image, and boundary F1.

Conventions (details in each module):

- :mod:`.confusion`: rows = truth; a 0/0 ratio is ``None`` and left out of the class means.
- :mod:`.per_image`: one image's own confusion matrix; a class absent from both its truth and
  prediction is left out of its MIoU (all-background predicted all-background: MIoU 1.0).
- :mod:`.boundary`: inner 4-neighbour boundary, image border and ignored pixels are not
  boundaries, matched within a Euclidean tolerance; dataset F1 from summed counts.
- :mod:`.tiles`: a large predicted mask scored tile by tile (the benchmark's Fig. 8 on scenes).
- :func:`evaluate_masks` scores masks held in memory; :class:`Evaluator` accumulates image by
  image (``scdnn evaluate``).
"""

from __future__ import annotations

from .boundary import boundary_counts, boundary_f1_from_counts, boundary_pixels
from .confusion import CLASS_NAMES, scores_from_confusion
from .evaluator import CSV_COLUMNS, Evaluator, format_table, read_rows, write_rows
from .masks import evaluate_masks
from .per_image import MIOU_BINS, miou_bin, miou_bins, per_image_scores
from .tiles import TILE_MIN_VALID, score_tiles, select_tiles, tile_windows

__all__ = ["CLASS_NAMES", "CSV_COLUMNS", "MIOU_BINS", "TILE_MIN_VALID", "Evaluator",
           "boundary_counts", "boundary_f1_from_counts", "boundary_pixels", "evaluate_masks",
           "format_table", "miou_bin", "miou_bins", "per_image_scores", "score_tiles",
           "scores_from_confusion", "select_tiles", "tile_windows", "read_rows", "write_rows"]
