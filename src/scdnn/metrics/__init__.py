"""Scores: the paper's Eqs. 20–24 from a confusion matrix, per image, and boundary F1."""

from .boundary import boundary_counts, boundary_f1_from_counts, boundary_pixels
from .confusion import CLASS_NAMES, scores_from_confusion
from .evaluator import Evaluator, format_table
from .per_image import MIOU_BINS, miou_bin, miou_bins, per_image_scores

__all__ = ["CLASS_NAMES", "MIOU_BINS", "Evaluator", "boundary_counts", "boundary_f1_from_counts",
           "boundary_pixels", "format_table", "miou_bin", "miou_bins", "per_image_scores",
           "scores_from_confusion"]
