"""The minimum mapping unit a trained model's maps keep, chosen on its validation samples.

A network's thresholded masks are speckled; how small a landslide its maps should keep
depends on the network and the data as much as on the user. So ``scdnn train``, once the
weights are final, predicts the validation samples once, cleans the masks with each unit of
:data:`scdnn.outlines.MAPPING_UNITS_PX` (landslides smaller than the unit removed, holes
smaller than it filled, the default smoothing) and keeps the unit with the best object F1
(landslides matched one-to-one at IoU ≥ 0.5; :mod:`scdnn.metrics.objects`), ties broken by
MIoU, then by the smaller unit. The card records it (:class:`scdnn.records.MappingUnit`) with
every unit's scores, and ``map``, ``predict``, ``evaluate`` and ``demo`` clean with it unless
told otherwise (:meth:`scdnn.outlines.OutlineCleaning.for_model`).

No unit is chosen (None) when there is nothing held out to choose on (no validation samples,
or a scene split validating on training windows) or the validation samples hold no
landslide. The test samples are never seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..metrics.confusion import scores_from_confusion
from ..metrics.objects import object_counts, object_scores
from ..metrics.per_image import image_confusion
from ..outlines import MAPPING_UNITS_PX, OutlineCleaning, clean_mask
from ..records import IGNORE_INDEX, MappingUnit

__all__ = ["choose_mapping_unit", "score_mapping_units", "best_unit"]


def score_mapping_units(samples: Iterable[tuple[np.ndarray, np.ndarray]],
                        units: Sequence[float] = MAPPING_UNITS_PX
                        ) -> dict[float, dict[str, float | None]] | None:
    """Object F1 and MIoU of the masks of ``samples`` cleaned with each of ``units``.

    ``samples``: (predicted mask, truth) pairs of 2-D arrays; predicted 1 = landslide,
    truth in {0, 1, 255} (255 is not scored and never changed by cleaning). None when the
    truth holds no landslide object.
    """
    counts = {u: {"true": 0, "pred": 0, "matched": 0, "matched_iou_sum": 0.0,
                  "true_area": 0, "pred_area": 0} for u in units}
    confusion = {u: np.zeros((2, 2), dtype=np.int64) for u in units}
    for pred, truth in samples:
        valid = truth != IGNORE_INDEX
        for u in units:
            cleaned = clean_mask(pred == 1, OutlineCleaning(min_area=u, max_hole=u, units="px"),
                                 valid)
            for key, value in object_counts(cleaned, truth, valid).items():
                counts[u][key] += value
            confusion[u] += image_confusion(cleaned.astype(np.uint8), truth, valid)
    if not units or counts[units[0]]["true"] == 0:
        return None
    return {u: {"object_f1": object_scores(counts[u])["f1"],
                "miou": scores_from_confusion(confusion[u])["miou"]} for u in units}


def best_unit(scores: dict[float, dict[str, float | None]]) -> float:
    """The unit with the best object F1, then MIoU, then the smaller one."""
    return max(scores, key=lambda u: (scores[u]["object_f1"] or 0.0, scores[u]["miou"] or 0.0,
                                      -u))


@torch.no_grad()
def _predicted(model: torch.nn.Module, loader: Iterable[dict], device: torch.device
               ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for batch in loader:
        logits = model(batch["image"].to(device)).float()
        preds = logits.argmax(1).cpu().numpy().astype(np.uint8)
        for pred, truth in zip(preds, batch["mask"].cpu().numpy().astype(np.uint8),
                               strict=True):
            yield pred, truth


def choose_mapping_unit(model: torch.nn.Module, loader: Iterable[dict] | None,
                        units: Sequence[float] = MAPPING_UNITS_PX) -> MappingUnit | None:
    """The minimum mapping unit of ``model`` chosen on the validation batches of ``loader``
    (``{"image", "mask"}`` as the validation data loaders give them; the module docstring
    says how); None with no loader or no landslide there."""
    if loader is None:
        return None
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        scores = score_mapping_units(_predicted(model, loader, device), units)
    finally:
        model.train(was_training)
    if scores is None:
        return None
    return MappingUnit(area_px=best_unit(scores), chosen_on="validation",
                       scores={f"{u:g}": s for u, s in scores.items()})
