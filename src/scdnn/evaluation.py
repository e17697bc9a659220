"""``scdnn evaluate``: score a model or saved masks against the truth, on images or scenes.

One entry point, :func:`evaluate`, for every kind of data (:mod:`scdnn.datasets.source`):

- image folders: each image predicted whole at its native size, one at a time (networks pad
  to their output stride and crop back); predicted masks kept as ``OUT/masks/<name>.png``;
- georeferenced scenes: each scene predicted exactly as ``scdnn map`` predicts it (the same
  windows, batches and blending) and scored against its label raster on every pixel that is
  valid in the scene (and its DSM, for a model that uses one) and labelled 0 or 1: no-data is
  never scored. One row per scene in per_image.csv; the boundary F1 tolerance is also given in
  metres; predicted masks kept as ``OUT/masks/<scene>.tif``.

Memory on scenes: the predicted mask, the label and the valid mask are held for the whole
scene as uint8/bool (3 bytes per pixel); scoring works strip by strip
(:meth:`scdnn.metrics.Evaluator.update_scene`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from .datasets.source import ScoringOptions, open_source_for_model
from .errors import InvalidValueError, param
from .metrics import Evaluator
from .outlines import OutlineCleaning, check_cleaning
from .records import EvaluationRecord
from .runs import output_dir, provenance, write_json

__all__ = ["evaluate", "ScoringOptions"]


def evaluate(data: str | os.PathLike, out: str | os.PathLike, weights: str | None = None,
             predictions: str | None = None, split: str | None = None, use_all: bool = False,
             tolerance: int = 2, tile: int = 2048, overlap: int = 512, batch_size: int = 1,
             threshold: float = 0.5, cleaning: OutlineCleaning | None = None,
             overwrite: bool = False, device: str = "cpu", tta: str = "none",
             progress: Callable[[Iterable], Iterable] = iter,
             summary: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Score a model (``weights``) or saved masks (``predictions``) on the samples of ``data``.

    Parameters
    ----------
    data : an image dataset folder (images/ + masks/, or the Bijie layout) or georeferenced
        scenes (a scene folder or a folder of them)
    out : the evaluation folder (new or empty unless ``overwrite``)
    weights : a weights file: its model predicts every scored sample, and the predicted masks
        are kept in ``OUT/masks/`` (``<name>.png`` 0/255, or ``<scene>.tif`` 0/1/255 on the
        scene's grid)
    predictions : instead of weights: a folder of mask files paired with the images by stem
        (0/255 or 0/1; its ``masks/`` subfolder when it has one), or for one scene a mask
        raster on its grid (a ``scdnn map`` folder's ``mask.tif``)
    split, use_all : which samples: ``use_all`` every one; ``split`` the test part of that
        split file; else the test part of the model's own split when ``data`` holds all of
        it, every sample when it holds none of it (another dataset); holding only part of it
        is refused
    tolerance : boundary F1 tolerance in pixels
    tile, overlap, batch_size : scenes: the windows, as ``scdnn map`` takes them
    threshold : landslide where the predicted probability is at least this
    cleaning : with ``weights``: how the model's masks are cleaned before they are written
        and scored (:class:`scdnn.outlines.OutlineCleaning`; metres are converted with each
        scene's pixel size, images take pixel values); None (the default, what the
        benchmark scores) keeps the raw thresholded masks. ``predictions`` are always scored
        as given. Recorded as ``cleaning`` in metrics.json.
    device : where the model runs
    tta : with ``weights``: test-time augmentation, ``none``, ``flips`` or ``d4``
        (:class:`scdnn.Predictor`); recorded in metrics.json (``none`` for ``predictions``)
    progress : wraps an iterable of work (images, or a scene's windows) for a progress bar
    summary : called with each line saying what was scored, once it is done (the command line
        prints them)

    Returns
    -------
    dict
        The content of ``OUT/metrics.json`` (also ``OUT/per_image.csv``): the
        :meth:`~scdnn.metrics.Evaluator.compute` metrics, ``boundary_tolerance_m`` on scenes,
        ``scored`` (which samples and why), ``source`` (what was scored against what) and
        ``provenance``.

    Raises
    ------
    ScdnnError
        Not exactly one of ``weights`` and ``predictions``; unreadable weights, data or
        masks; a split that does not fit the data; the data holding part of the model's test
        samples; a non-empty ``out`` without ``overwrite``. All before anything is written;
        a failure while scoring (a mask raster that cannot be read) removes an output folder
        made here.
    """
    if (weights is None) == (predictions is None):
        raise InvalidValueError(f"give exactly one of {param('weights')} or {param('predictions')}")
    from .predictor import tta_transforms

    check_cleaning(cleaning)
    tta_transforms(tta)  # an unknown mode fails before anything is read
    if tta != "none" and weights is None:
        raise InvalidValueError(f"{param('tta')} augments a model's predictions; it needs "
                                f"{param('weights')}, not {param('predictions')}")
    options = ScoringOptions(tile=tile, overlap=overlap, batch_size=batch_size,
                             threshold=threshold, cleaning=cleaning, tta=tta)
    card, model = None, None
    if weights is not None:
        from .predictor import move_to_device
        from .weights import load_model

        model, card = load_model(weights)
        move_to_device(model, device)
    source = open_source_for_model(data, card)
    names, chosen = source.names_to_score(card, split, use_all)
    source.check_scoring(names, predictions=predictions, options=options)
    with output_dir(out, overwrite=overwrite) as out:
        evaluator = Evaluator(tolerance=tolerance)
        added = source.score(names, evaluator, model=model, card=card,
                             predictions=predictions,
                             masks=out / "masks" if model is not None else None,
                             options=options, device=device, progress=progress)
        metrics = evaluator.compute()
        metrics.update(added)
        metrics["scored"] = chosen
        metrics["tta"] = tta  # "none" for masks scored as given, as cleaning is None
        metrics["source"] = source.scoring_record(names, weights=weights,
                                                  predictions=predictions, options=options)
        metrics["provenance"] = provenance()
        metrics = EvaluationRecord.from_dict(metrics).to_dict()  # the typed record, checked
        write_json(out / "metrics.json", metrics)
        evaluator.write_csv(out / "per_image.csv")
    for line in source.summary(metrics) if summary is not None else ():
        summary(line)
    return metrics
