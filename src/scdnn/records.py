"""Typed, versioned records the package writes and reads back: model cards and splits.

Every JSON file the package writes carries ``format_version`` (:data:`FORMAT_VERSION`;
:func:`scdnn.runs.write_json` adds it). Files written before versioning (no
``format_version``) are version 0 and read the same way: the fields did not change.

- :class:`Normalization`: per-band mean and standard deviation of the network's input;
- :class:`ModelCard`: what a weights file holds (network, inputs, normalisation, training
  configuration, split, provenance, the minimum mapping unit chosen on validation), embedded
  in every weights and ONNX file and written beside them as ``model.json``;
- :class:`MappingUnit`: the smallest landslide a model's maps keep, chosen on the validation
  part of its split when it was trained;
- :class:`Split`: which samples (images or scenes) are trained, validated and tested on, as
  ``split.json``.

Reading checks every field's type and names the file and the field when one is wrong
(:class:`scdnn.errors.InvalidValueError`); fields this version does not know are kept and
written back unchanged.

This module imports numpy only, so that reading a card is cheap.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidValueError

__all__ = ["FORMAT_VERSION", "IGNORE_INDEX", "Normalization", "MappingUnit", "ModelCard", "Split",
           "MapRecord",
           "EvaluationRecord", "CLASS_NAMES", "LEGACY_MODEL_KWARGS", "with_legacy_kwargs"]

#: The version of the JSON files this package writes.
FORMAT_VERSION = 1

#: The label and mask value of a pixel that is not scored: no data, not labelled, or padding.
#: Losses and metrics ignore it; ``mask.tif`` and predicted masks write it where there is no
#: valid data. It is the one name of this value in the package.
IGNORE_INDEX = 255

#: Class names, in label order: 0 background, 1 landslide.
CLASS_NAMES: tuple[str, ...] = ("background", "landslide")

#: Network options whose default changed, per network, with the value that a record written
#: before the option was recorded (a model card's or a training ``config.json``'s
#: ``model_kwargs`` without it) was made with. SCDnn's upsampling kernel was 4 (no overlap)
#: until 8 became the default; every card and config.json written since names it.
LEGACY_MODEL_KWARGS: dict[str, dict[str, Any]] = {"scdnn": {"upsampling_kernel": 4}}


def with_legacy_kwargs(model: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` of a record of network ``model``, with the options it does not name that
    have changed their default (:data:`LEGACY_MODEL_KWARGS`) set to their old value."""
    return {**LEGACY_MODEL_KWARGS.get(model, {}), **(kwargs or {})}


@dataclass
class Normalization:
    """Per-band mean and standard deviation, in 0-255 pixel units.

    ``apply`` maps an ``H x W x C`` uint8 image to a float32 ``C x H x W`` array
    ``(pixel - mean) / std``.
    """

    mean: list[float]
    std: list[float]

    def __post_init__(self) -> None:
        try:
            self.mean = [float(m) for m in self.mean]
            self.std = [float(s) for s in self.std]
        except (TypeError, ValueError):
            raise InvalidValueError(f"normalization needs lists of numbers, got "
                                    f"mean={self.mean!r} std={self.std!r}") from None
        if not self.mean or len(self.mean) != len(self.std):
            raise InvalidValueError(f"normalization needs one mean and one std per band, got "
                                    f"{len(self.mean)} mean(s) and {len(self.std)} std(s)")
        if not all(math.isfinite(m) for m in self.mean) or \
                not all(math.isfinite(s) and s > 0 for s in self.std):
            raise InvalidValueError(f"normalization needs finite means and positive stds, got "
                                    f"mean={self.mean} std={self.std}")

    @property
    def channels(self) -> int:
        """Number of bands this normalisation applies to."""
        return len(self.mean)

    def to_dict(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}``, JSON-ready."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Any) -> Normalization:
        """Inverse of :meth:`to_dict` (InvalidValueError if ``data`` is malformed)."""
        if not isinstance(data, dict) or "mean" not in data or "std" not in data:
            raise InvalidValueError(f"malformed normalization record {data!r}: needs 'mean' "
                                    f"and 'std' lists")
        if not isinstance(data["mean"], (list, tuple)) or not isinstance(data["std"],
                                                                        (list, tuple)):
            raise InvalidValueError(f"malformed normalization record {data!r}: 'mean' and "
                                    f"'std' must be lists")
        return cls(mean=list(data["mean"]), std=list(data["std"]))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Normalise an ``H x W x C`` (or ``H x W``) image to float32 ``C x H x W``.

        Raises
        ------
        InvalidValueError
            The image's band count differs from this normalisation's (e.g. a model trained
            with DEM given RGB images).
        """
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise InvalidValueError(f"expected an H x W x C image, got shape {image.shape}")
        if image.shape[2] != self.channels:
            raise InvalidValueError(f"image has {image.shape[2]} band(s) but the model was "
                                    f"trained on {self.channels}-band images")
        # band-first first (a cheap uint8 copy), then one float32 array, scaled in place
        out = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
        out -= np.asarray(self.mean, dtype=np.float32)[:, None, None]
        out /= np.asarray(self.std, dtype=np.float32)[:, None, None]
        return out


_PARTS = ("train", "val", "test")


def _bad(source: Any, what: str) -> InvalidValueError:
    return InvalidValueError(what, source)


def _positive_int(data: dict, key: str, source: Any, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        # whole floats (3.0) from other JSON writers are accepted
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value)
        raise _bad(source, f"model card: '{key}' must be a positive integer, got {value!r}")
    return value


def _str_list(data: dict, key: str, source: Any, what: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(source, f"{what}: '{key}' must be a list of names, got {value!r}")
    return list(value)


def _optional(data: dict, key: str, kind: type | tuple, source: Any, what: str) -> Any:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) and kind is not bool
                              or not isinstance(value, kind)):
        raise _bad(source, f"{what}: '{key}' has the wrong type ({type(value).__name__})")
    return value


@dataclass(frozen=True)
class MappingUnit:
    """The minimum mapping unit of a model's maps, chosen when it was trained.

    ``scdnn train`` cleans the model's masks of its validation samples with each unit of
    :data:`scdnn.outlines.MAPPING_UNITS_PX` (landslides smaller than the unit removed, holes
    smaller than it filled) and keeps the one with the best object F1 there, ties broken by
    MIoU, then by the smaller unit (:func:`scdnn.trainers.choose_mapping_unit`). Outline
    cleaning takes it in place of its defaults (:meth:`scdnn.outlines.OutlineCleaning.for_model`).

    Attributes
    ----------
    area_px : the unit in pixels of the data (px²), as the network sees the data at its
        own resolution
    chosen_on : what it was chosen on (``"validation"``: the split's validation samples)
    scores : per unit tried (its area in px, as text), ``object_f1`` and ``miou`` there
    """

    area_px: float
    chosen_on: str = "validation"
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = self.area_px
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (
                math.isfinite(a) and a >= 0):
            raise InvalidValueError(f"mapping unit must be a number of pixels ≥ 0, got {a!r}",
                                    option="area_px")
        object.__setattr__(self, "area_px", float(a))

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None) -> MappingUnit:
        if not isinstance(data, dict):
            raise _bad(source, f"model card: 'mapping_unit' must be an object, got "
                               f"{type(data).__name__}")
        chosen_on = data.get("chosen_on", "validation")
        scores = data.get("scores", {})
        if not isinstance(chosen_on, str) or not isinstance(scores, dict):
            raise _bad(source, "model card: 'mapping_unit' has an ill-typed 'chosen_on' or "
                               "'scores'")
        try:
            return cls(area_px=data.get("area_px"), chosen_on=chosen_on, scores=scores)
        except InvalidValueError as exc:
            raise _bad(source, f"model card: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ModelCard:
    """What a weights file holds besides its tensors.

    Attributes
    ----------
    model : network name (:func:`scdnn.models.create_model`)
    in_channels, num_classes : the network's input bands and output classes
    normalization : the input normalisation the network was trained with
    inputs : names of the input channels (``red, green, blue[, slope, relative_elevation]``)
    classes : class names in label order
    model_kwargs : further arguments of :func:`scdnn.models.create_model`; a card read
        without an option of :data:`LEGACY_MODEL_KWARGS` gets its old value
    best_epoch, best_val_miou : which epoch the weights come from and its validation MIoU
    config : the training configuration (``scdnn.trainers.TrainConfig`` as a dict)
    split : the training split (:meth:`Split.to_dict`)
    provenance : package version, git commit, machine, command (:func:`scdnn.runs.provenance`)
    dtype : the dtype the tensors are stored in, when not float32 (``"float16"``, or
        ``"int8"``: large kernels int8 with scales, the rest float16; :mod:`scdnn.weights`)
    mapping_unit : the minimum mapping unit chosen on the validation samples
        (:class:`MappingUnit`); None for a model trained without validation landslides or
        before units were chosen
    extra : fields this version does not know, kept as read
    """

    model: str
    in_channels: int
    normalization: Normalization
    num_classes: int = 2
    inputs: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    best_epoch: int | None = None
    best_val_miou: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    mapping_unit: MappingUnit | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None) -> ModelCard:
        """A card from its JSON object, every field checked.

        ``source`` (the weights file) is named in the error message.

        Raises
        ------
        InvalidValueError
            ``data`` is not an object, or a field is missing or of the wrong type.
        """
        if not isinstance(data, dict):
            raise _bad(source, f"model card must be a JSON object, got {type(data).__name__}")
        if not isinstance(data.get("model"), str) or not data["model"]:
            raise _bad(source, f"model card: 'model' must be a network name, got "
                               f"{data.get('model')!r}")
        in_channels = _positive_int(data, "in_channels", source)
        num_classes = _positive_int(data, "num_classes", source, default=2)
        if "normalization" not in data:
            raise _bad(source, "model card has no 'normalization' (mean and std per band)")
        try:
            normalization = Normalization.from_dict(data["normalization"])
        except InvalidValueError as exc:
            raise _bad(source, f"model card: {exc}") from None
        if normalization.channels != in_channels:
            raise _bad(source, f"model card: normalization has {normalization.channels} "
                               f"band(s) but 'in_channels' is {in_channels}")
        inputs = _str_list(data, "inputs", source, "model card")
        if inputs and len(inputs) != in_channels:
            raise _bad(source, f"model card: 'inputs' names {len(inputs)} channel(s) but "
                               f"'in_channels' is {in_channels}")
        what = "model card"
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            model=data["model"], in_channels=in_channels, normalization=normalization,
            num_classes=num_classes, inputs=inputs,
            classes=_str_list(data, "classes", source, what) or list(CLASS_NAMES),
            model_kwargs=with_legacy_kwargs(
                data["model"], _optional(data, "model_kwargs", dict, source, what)),
            best_epoch=_optional(data, "best_epoch", int, source, what),
            best_val_miou=_optional(data, "best_val_miou", (int, float), source, what),
            config=_optional(data, "config", dict, source, what) or {},
            split=_optional(data, "split", dict, source, what) or {},
            provenance=_optional(data, "provenance", dict, source, what) or {},
            dtype=_optional(data, "dtype", str, source, what),
            mapping_unit=None if data.get("mapping_unit") is None else
            MappingUnit.from_dict(data["mapping_unit"], source),
            extra={k: v for k, v in data.items() if k not in known},
            format_version=_optional(data, "format_version", int, source, what) or 0,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``format_version`` first, then the fields, then ``extra``)."""
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "format_version"):
                continue
            value = getattr(self, f.name)
            if f.name in ("dtype", "mapping_unit") and value is None:
                continue
            out[f.name] = value.to_dict() if isinstance(value, (Normalization, MappingUnit)) \
                else value
        out.update(self.extra)
        return out

    @property
    def test_names(self) -> list[str]:
        """The test samples (or scenes) of the card's split."""
        return list(self.split.get("test", []))


@dataclass
class Split:
    """Which samples (image names, or scene names) are trained, validated and tested on.

    ``val_blocks`` (scenes only): per training scene, the held-out validation blocks as
    ``[row, col, height, width]`` lists; ``val`` then names the training scenes those blocks
    come from, so a scene may be in ``train`` and ``val`` at once. ``block_size`` (scenes),
    ``seed``, ``test_fraction`` and ``val_fraction`` record how the split was drawn (None when
    it was given).
    """

    train: list[str]
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    val_blocks: dict[str, Any] | None = None
    block_size: int | None = None
    seed: int | None = None
    test_fraction: float | None = None
    val_fraction: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None) -> Split:
        """A split from its JSON object: ``train`` and ``test`` lists required, ``val``
        optional; a name in two parts is refused (InvalidValueError naming ``source``), except
        that a scene split (one with ``val_blocks``) names its training scenes in ``val``."""
        if not isinstance(data, dict):
            raise _bad(source, "split file must hold a JSON object with train/val/test lists")
        what = "split file"
        val_blocks = _optional(data, "val_blocks", dict, source, what)
        parts = {}
        seen: dict[str, str] = {}
        for part in ("train", "test", "val"):
            if part not in data:
                if part == "val":
                    parts[part] = []
                    continue
                raise _bad(source, f"split file has no '{part}' list")
            items = data[part]
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise _bad(source, f"split file: '{part}' must be a list of sample names")
            for name in items:
                if val_blocks is not None and part == "val":
                    if seen.get(name) != "train":  # blocks are held out of training scenes
                        raise _bad(source, f"split file: validation scene '{name}' is not a "
                                           f"training scene")
                    continue
                if name in seen:
                    first, second = sorted((seen[name], part), key=_PARTS.index)
                    raise _bad(source, f"split file names sample '{name}' twice "
                                       f"({first} and {second})")
                seen[name] = part
            parts[part] = sorted(items)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**parts,
                   val_blocks=val_blocks,
                   block_size=_optional(data, "block_size", int, source, what),
                   seed=_optional(data, "seed", int, source, what),
                   test_fraction=_optional(data, "test_fraction", (int, float), source, what),
                   val_fraction=_optional(data, "val_fraction", (int, float), source, what),
                   extra={k: v for k, v in data.items() if k not in known},
                   format_version=_optional(data, "format_version", int, source, what) or 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object; fields that are None are left out."""
        out: dict[str, Any] = {"format_version": FORMAT_VERSION, "train": list(self.train),
                               "val": list(self.val), "test": list(self.test)}
        for key in ("val_blocks", "block_size", "seed", "test_fraction", "val_fraction"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.extra)
        return out

    def names(self) -> list[str]:
        """Every name in the split: train, then val, then test (a scene split's validation
        scenes are training scenes, named once)."""
        return list(dict.fromkeys([*self.train, *self.val, *self.test]))


# ---------------------------------------------------------------------------- result records

_NUMBER = (int, float)


def _typed(cls: type, data: Any, source: Any, what: str) -> dict[str, Any]:
    """The known fields of ``data`` for the record ``cls``, each checked against
    ``cls._KINDS`` (a type or tuple of types; None allowed for fields with a default of None),
    plus ``extra`` (the unknown ones) and ``format_version`` (0 when absent)."""
    if not isinstance(data, dict):
        raise _bad(source, f"{what} must be a JSON object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("extra", "format_version"):
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in data:
            if required:
                raise _bad(source, f"{what} has no '{f.name}'")
            continue
        value, kind = data[f.name], cls._KINDS[f.name]
        ok = value is None and not required or (
            isinstance(value, kind) and not (isinstance(value, bool) and bool not in
                                             (kind if isinstance(kind, tuple) else (kind,))))
        if not ok:
            raise _bad(source, f"{what}: '{f.name}' has the wrong type "
                               f"({type(value).__name__})")
        values[f.name] = value
    known = {f.name for f in dataclasses.fields(cls)}
    values["extra"] = {k: v for k, v in data.items() if k not in known}
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _bad(source, f"{what}: 'format_version' must be an integer, got {version!r}")
    values["format_version"] = version
    return values


def _ordered(record: Any) -> dict[str, Any]:
    """``format_version``, the fields in declaration order, then ``extra``."""
    out: dict[str, Any] = {"format_version": FORMAT_VERSION}
    for f in dataclasses.fields(record):
        if f.name not in ("extra", "format_version"):
            out[f.name] = getattr(record, f.name)
    out.update(record.extra)
    return out


@dataclass
class MapRecord:
    """``map.json``: what ``scdnn map`` made, from what, with which settings.

    ``windows`` counts the window grid (``total``, ``run``, ``skipped_no_valid_pixel``);
    areas are in the CRS's units squared (pixels without a CRS, see ``units``); ``nodata``
    gives the nodata value of each raster; ``outputs`` lists the files beside map.json.
    ``cleaning`` is the outline cleaning used (:func:`scdnn.outlines.cleaning_record`: the
    values and their units, the pixel size, the values in pixels), None for a raw mask (and
    in records written before it existed); ``min_area`` and ``simplify`` are its minimum
    area and polygon tolerance in the CRS's units (0 for a raw mask). ``tta`` is the
    test-time augmentation (``none``, ``flips``, ``d4``); a map.json written before it was
    recorded reads as ``none`` (and is written back without it).
    """

    scene: str
    width: int
    height: int
    transform: list[float]
    threshold: float
    windows: dict[str, int]
    landslides: int
    outputs: list[str]
    dsm: str | None = None
    weights: str | None = None
    engine: str | None = None
    tta: str = "none"
    model: str | None = None
    inputs: list[str] = field(default_factory=list)
    bands: list[int] = field(default_factory=list)
    crs: str | None = None
    units: str = "unknown"
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    min_area: float = 0.0
    simplify: float = 0.0
    cleaning: dict[str, Any] | None = None
    valid_pixels: int = 0
    landslide_pixels: int = 0
    valid_area: float = 0.0
    landslide_area: float = 0.0
    nodata: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    _KINDS = {"scene": str, "width": int, "height": int, "transform": list,
              "threshold": _NUMBER, "windows": dict, "landslides": int, "outputs": list,
              "dsm": str, "weights": str, "engine": str, "tta": str, "model": str,
              "inputs": list,
              "bands": list, "crs": str, "units": str, "tile": int, "overlap": int,
              "batch_size": int, "min_area": _NUMBER, "simplify": _NUMBER, "cleaning": dict,
              "valid_pixels": int, "landslide_pixels": int, "valid_area": _NUMBER,
              "landslide_area": _NUMBER, "nodata": dict, "provenance": dict}

    # fields added after the first map.json files, with their default
    _ADDED = {"tta": "none", "cleaning": None}

    # the order of map.json's keys
    _ORDER = ("scene", "dsm", "weights", "engine", "tta", "model", "inputs", "bands", "width",
              "height", "crs", "transform", "units", "tile", "overlap", "batch_size",
              "threshold", "min_area", "simplify", "cleaning", "windows", "valid_pixels",
              "landslide_pixels", "valid_area", "landslide_area", "landslides", "nodata",
              "outputs", "provenance")

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None) -> MapRecord:
        """A map record from map.json's object, every known field's type checked."""
        values = _typed(cls, data, source, "map.json")
        if len(values["transform"]) < 6 or not all(isinstance(v, _NUMBER)
                                                   for v in values["transform"][:6]):
            raise _bad(source, "map.json: 'transform' must hold 6 numbers")
        record = cls(**values)
        record._absent = {f.name for f in dataclasses.fields(cls) if f.name not in data}
        return record

    def to_dict(self) -> dict[str, Any]:
        """map.json's object, keys in the order ``scdnn map`` has always written them; a
        field added since (``tta``, ``cleaning``) that the object it was read from did not
        hold is left out while it has its default, so an older map.json is written back as
        it was."""
        absent = getattr(self, "_absent", set())
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        out.update({key: getattr(self, key) for key in self._ORDER
                    if not (key in absent and key in self._ADDED
                            and getattr(self, key) == self._ADDED[key])})
        out.update(self.extra)
        return out


@dataclass
class EvaluationRecord:
    """``metrics.json``: the scores of ``scdnn evaluate`` (or a benchmark run's eval/).

    The paper's Eqs. 20-24 over every scored pixel (``pa``, ``mpa``, ``miou``, ``fwiou``,
    ``class_pa``, ``class_iou``, fractions; ``confusion``, counts, rows = truth), landslide
    and boundary precision, recall and F1, the Fig. 8 bins, boundary F1 at several
    tolerances (``boundary_f1_at``, keys in pixels; ``boundary_tolerances_m`` gives them in
    metres on georeferenced scenes), boundary F1 at ground tolerances (``boundary_f1_at_m``,
    keys in metres, with its summed ``boundary_counts_at_m``, over the ``boundary_images_m``
    images that had a pixel size in metres; None when none had, absent from records written
    before it existed: no metre scores), object scores (``objects``, ``object_counts``), and what
    was scored (``images``, ``pixels``, ``scored``, ``source``), the outline cleaning
    applied to a model's masks before scoring (``cleaning``, see
    :func:`scdnn.outlines.cleaning_record`; None for raw masks and for masks scored as
    given; absent from records written before it existed), and the test-time augmentation
    of a model's predictions (``tta``; ``none`` for masks scored as given and when not
    recorded). Scores this version does not
    name are kept in ``extra`` in the order read.
    """

    pa: float | None
    mpa: float | None
    miou: float | None
    fwiou: float | None
    class_pa: dict[str, float | None]
    class_iou: dict[str, float | None]
    confusion: list[list[int]]
    confusion_normalized: list[list[float | None]] | None = None
    landslide_precision: float | None = None
    landslide_recall: float | None = None
    landslide_f1: float | None = None
    pixels: int | None = None
    boundary_f1: float | None = None
    boundary_precision: float | None = None
    boundary_recall: float | None = None
    boundary_tolerance_px: float | None = None
    boundary_counts: dict[str, int] | None = None
    miou_bins: dict[str, Any] | None = None
    images: int | None = None
    boundary_f1_at: dict[str, Any] | None = None
    objects: dict[str, Any] | None = None
    object_counts: dict[str, float] | None = None
    boundary_tolerance_m: float | None = None
    boundary_tolerances_m: dict[str, float] | None = None
    boundary_f1_at_m: dict[str, Any] | None = None
    boundary_counts_at_m: dict[str, Any] | None = None
    boundary_images_m: int | None = None
    scored: str | None = None
    cleaning: dict[str, Any] | None = None
    tta: str = "none"
    source: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    _KINDS = {"pa": _NUMBER, "mpa": _NUMBER, "miou": _NUMBER, "fwiou": _NUMBER,
              "class_pa": dict, "class_iou": dict, "confusion": list,
              "confusion_normalized": list, "landslide_precision": _NUMBER,
              "landslide_recall": _NUMBER, "landslide_f1": _NUMBER, "pixels": int,
              "boundary_f1": _NUMBER, "boundary_precision": _NUMBER,
              "boundary_recall": _NUMBER, "boundary_tolerance_px": _NUMBER,
              "boundary_counts": dict, "miou_bins": dict, "images": int,
              "boundary_f1_at": dict, "objects": dict, "object_counts": dict,
              "boundary_tolerance_m": _NUMBER, "boundary_tolerances_m": dict,
              "boundary_f1_at_m": dict, "boundary_counts_at_m": dict,
              "boundary_images_m": int, "scored": str, "cleaning": dict, "tta": str, "source": dict,
              "provenance": dict}

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike | None = None
                  ) -> EvaluationRecord:
        """An evaluation record from metrics.json's object, every known field's type
        checked (``pa``, ``mpa``, ``miou``, ``fwiou``, the class scores and ``confusion``
        are required)."""
        values = _typed(cls, data, source, "metrics.json")
        confusion = values["confusion"]
        if not (len(confusion) == len(CLASS_NAMES) and all(
                isinstance(row, list) and len(row) == len(CLASS_NAMES) for row in confusion)):
            raise _bad(source, f"metrics.json: 'confusion' must be a {len(CLASS_NAMES)} x "
                               f"{len(CLASS_NAMES)} list of counts")
        record = cls(**values)
        record._absent = {f.name for f in dataclasses.fields(cls) if f.name not in data}
        return record

    def to_dict(self) -> dict[str, Any]:
        """metrics.json's object: the fields in declaration order, then ``extra``; a field
        still None that the object it was read from did not hold is left out (an evaluation
        of images has no ``boundary_tolerance_m``), and so is ``tta`` while ``"none"`` (an
        evaluation of saved masks, or one written before it was recorded)."""
        absent = getattr(self, "_absent", set()) - {"format_version"}
        return {key: value for key, value in _ordered(self).items()
                if not (key in absent and (value is None or key == "tta" and value == "none"))}
