"""Clean landslide outlines: the post-processing shared by ``map``, ``predict``, ``evaluate``
(with weights) and ``demo``.

A thresholded probability map is speckled and holed: single pixels and tiny blobs flagged as
landslide, pin-holes inside landslides. :class:`OutlineCleaning` says how to clean it, in map
units (metres) or pixels; :meth:`OutlineCleaning.resolve` turns it into pixel values
(:class:`PixelCleaning`) for a given pixel size, and :func:`clean_mask` applies them to a
whole mask in memory. Scenes too large for memory are cleaned strip by strip, with the same
result pixel for pixel, by :func:`scdnn.mapping.clean.clean_raster`.

The steps, in this order:

1. **smooth**: a morphological closing, then an opening, with a disk of radius ``smooth``
   (pixels): gaps and notches narrower than the disk close, spurs and bridges narrower than
   it open; both operations leave straight boundaries where they are (no shift, unlike a
   blur and re-threshold). ``0`` skips the step.
2. **diagonal contacts**: where two landslide pixels touch only by a corner, the two
   background pixels of that 2 x 2 block become landslide (at most
   :data:`DIAGONAL_PASSES` passes), so that a landslide object (8-connected) is also one
   polygon (polygons are 4-connected, as GDAL traces them).
3. **minimum mapping unit**: landslide objects (8-connected components) with fewer than
   ``min_area`` pixels are removed.
4. **holes**: background regions (4-connected, the complement of 8-connected objects)
   enclosed by landslide with fewer than ``max_hole`` pixels become landslide.

No data (``valid`` False) is neither landslide nor background: it is never changed and never
becomes landslide; smoothing neither erodes nor grows an outline along it (it counts as
"either" there, as does the area beyond the array's edge); an object cut by no data or by
the edge is judged by the part that is seen; a background region that touches no data or
the edge is never a hole (it may go on beyond).

**The model's own mapping unit.** A model trained by ``scdnn train`` carries the minimum
mapping unit that cleaned its validation masks best (:class:`scdnn.records.MappingUnit` on its
card). :meth:`OutlineCleaning.for_model` makes it the default of ``min_area`` and
``max_hole``, in place of :data:`DEFAULTS_M` / :data:`DEFAULTS_PX`; values given by the user
always win. It is in the model's pixels, so on georeferenced data it becomes
``area_px x pixel_size²`` m².

``simplify`` is not applied to masks: it is the Douglas-Peucker tolerance of the polygons
that ``scdnn map`` writes (:func:`scdnn.mapping.outputs.landslide_table`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import InvalidValueError

__all__ = ["OutlineCleaning", "PixelCleaning", "DEFAULT_CLEANING", "DEFAULTS_M", "DEFAULTS_PX",
           "MAPPING_UNITS_PX", "model_cleaning",
           "clean_mask", "smooth_mask", "disk", "pixel_size_of", "cleaning_record",
           "check_cleaning", "EIGHT", "FOUR", "DIAGONAL_PASSES"]

#: Defaults on georeferenced data (metres, m²).
DEFAULTS_M = {"min_area": 100.0, "max_hole": 100.0, "smooth": 1.0, "simplify": 0.5}
#: Defaults on data without a pixel size (images; pixels, px²).
DEFAULTS_PX = {"min_area": 400.0, "max_hole": 400.0, "smooth": 2.0, "simplify": 1.0}
_FIELDS = ("min_area", "max_hole", "smooth", "simplify")
#: The minimum mapping units (px²) ``scdnn train`` tries on its validation samples
#: (:class:`scdnn.records.MappingUnit`).
MAPPING_UNITS_PX = (100, 400, 1000, 2000, 4000, 8000, 16000, 32000)
UNITS = ("m", "px")
#: At most this many passes of the diagonal-contact fix (a bounded, local operation, so that
#: strip-wise cleaning equals whole-array cleaning).
DIAGONAL_PASSES = 4
EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class PixelCleaning:
    """Cleaning in pixels: ``min_area`` and ``max_hole`` in pixels (px²), ``smooth`` (the
    disk radius) and ``simplify`` (the polygon tolerance) in pixel lengths."""

    min_area: float
    max_hole: float
    smooth: float
    simplify: float

    @property
    def radius(self) -> int:
        """The disk's half-width in whole pixels (0: no smoothing)."""
        return int(math.floor(self.smooth)) if self.smooth >= 1 else 0

    @property
    def halo(self) -> int:
        """Rows above and below a strip that its cleaned pixels depend on through the local
        steps (smoothing: closing then opening, 2 radii each; the diagonal passes)."""
        return 4 * self.radius + DIAGONAL_PASSES + 1

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class OutlineCleaning:
    """How landslide masks are cleaned (see the module docstring for the steps).

    Parameters
    ----------
    min_area : float, optional
        Landslide objects smaller than this are removed (m², or px² with ``units="px"``).
    max_hole : float, optional
        Holes smaller than this are filled (m² or px²).
    smooth : float, optional
        Radius of the closing-then-opening disk (m or px); 0 skips smoothing.
    simplify : float, optional
        Douglas-Peucker tolerance of written polygons (m or px); 0 keeps pixel outlines.
    units : {"m", "px"}
        The units of the values. Values left None take the defaults for the data:
        :data:`DEFAULTS_M` (100 m², 100 m², 1 m, 0.5 m) where the pixel size is known in
        metres, :data:`DEFAULTS_PX` (400 px, 400 px, 2 px, 1 px) where it is not (images,
        scenes without a projected CRS); on such data, values given in metres are taken as
        pixels (there is nothing to convert them with), and the record says ``"px"``.
    model_unit : float, optional
        The model's minimum mapping unit in its pixels (px²; set by :meth:`for_model`):
        the default of ``min_area`` and ``max_hole`` in place of the data's.
    use_model_unit : bool
        False: :meth:`for_model` leaves the data's defaults (what the benchmark's "cleaned
        with the defaults" scores).

    Raises
    ------
    InvalidValueError
        A negative, NaN or infinite value (named as the parameter), or other units.
    """

    min_area: float | None = None
    max_hole: float | None = None
    smooth: float | None = None
    simplify: float | None = None
    units: str = "m"
    model_unit: float | None = None
    use_model_unit: bool = True

    def __post_init__(self) -> None:
        for name in (*_FIELDS, "model_unit"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                    not (math.isfinite(value) and value >= 0):
                raise InvalidValueError(f"must be a number ≥ 0, got {value}", option=name)
            object.__setattr__(self, name, float(value))
        if not isinstance(self.use_model_unit, bool):
            raise InvalidValueError(f"must be True or False, got {self.use_model_unit!r}",
                                    option="use_model_unit")
        if self.units not in UNITS:
            raise InvalidValueError(f"must be one of {', '.join(UNITS)}, got '{self.units}'",
                                    option="units")

    def for_data(self, pixel_size: float | None) -> OutlineCleaning:
        """The cleaning with every value set, for data whose pixels are ``pixel_size`` metres
        (None: unknown, e.g. a PNG): defaults filled in, units ``"px"`` where there is no
        pixel size to convert metres with."""
        pixels = self.units == "px" or pixel_size is None
        defaults, units = (dict(DEFAULTS_PX), "px") if pixels else (dict(DEFAULTS_M), "m")
        if self.model_unit is not None:  # in the model's pixels
            area = self.model_unit * (1.0 if pixels else pixel_size * pixel_size)
            defaults.update(min_area=area, max_hole=area)
        values = {name: defaults[name] if getattr(self, name) is None else getattr(self, name)
                  for name in _FIELDS}
        return OutlineCleaning(**values, units=units, model_unit=self.model_unit,
                               use_model_unit=self.use_model_unit)

    def for_model(self, card: Any) -> OutlineCleaning:
        """This cleaning with the minimum mapping unit of the model of ``card`` (a
        :class:`scdnn.records.ModelCard`; its ``mapping_unit``) as the default of
        ``min_area`` and ``max_hole``; unchanged when the card has none, a unit is set, or
        ``use_model_unit`` is False."""
        unit = getattr(card, "mapping_unit", None)
        if unit is None or self.model_unit is not None or not self.use_model_unit:
            return self
        return replace(self, model_unit=unit.area_px)

    def resolve(self, pixel_size: float | None) -> PixelCleaning:
        """The values in pixels for pixels of ``pixel_size`` metres (None: unknown)."""
        if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
            raise InvalidValueError(f"must be a positive number, got {pixel_size}",
                                    option="pixel_size")
        c = self.for_data(pixel_size)
        if c.units == "px":
            return PixelCleaning(c.min_area, c.max_hole, c.smooth, c.simplify)
        area = pixel_size * pixel_size
        return PixelCleaning(c.min_area / area, c.max_hole / area, c.smooth / pixel_size,
                             c.simplify / pixel_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``OutlineCleaning()``: the defaults for the data (what the command line uses).
DEFAULT_CLEANING = OutlineCleaning()


def model_cleaning(cleaning: OutlineCleaning | None, card: Any) -> OutlineCleaning | None:
    """``cleaning`` with the mapping unit of the model of ``card``
    (:meth:`OutlineCleaning.for_model`); None (raw masks) stays None."""
    return None if cleaning is None else cleaning.for_model(card)


def check_cleaning(cleaning: Any) -> None:
    """Refuse a ``cleaning`` that is neither an OutlineCleaning nor None (InvalidValueError;
    its values are checked when it is made)."""
    if cleaning is not None and not isinstance(cleaning, OutlineCleaning):
        raise InvalidValueError(f"must be an OutlineCleaning or None, got "
                                f"{type(cleaning).__name__}", option="cleaning")


def cleaning_record(cleaning: OutlineCleaning | None, pixel_size: float | None
                    ) -> dict[str, Any] | None:
    """What records (map.json, metrics.json) say of the cleaning used: the values with their
    units (``units``: ``"m"`` or ``"px"``), the model's mapping unit when it set the
    defaults (``model_unit``, px², else None), the pixel size they were converted with, and
    the values in pixels (``pixels``); None for raw masks."""
    if cleaning is None:
        return None
    used = cleaning.for_data(pixel_size)
    return {**used.to_dict(), "pixel_size": pixel_size,
            "pixels": cleaning.resolve(pixel_size).to_dict()}


def pixel_size_of(transform: Any, units: str) -> float | None:
    """The side in metres of a pixel of ``transform`` (the square root of its area), when
    the map units are metres; None otherwise (pixels, degrees, unknown)."""
    if units != "metre":
        return None
    return math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))


def disk(radius: float) -> np.ndarray:
    """The disk structuring element: pixels within ``radius`` of the centre."""
    r = int(math.floor(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius * radius


def smooth_mask(landslide: np.ndarray, valid: np.ndarray, cleaning: PixelCleaning
                ) -> np.ndarray:
    """Steps 1 and 2 (smoothing, diagonal contacts) on a boolean mask: local operations, so a
    pixel's result depends only on the pixels within :attr:`PixelCleaning.halo` rows."""
    x = landslide & valid
    if cleaning.radius:
        se = disk(cleaning.smooth)
        invalid = ~valid
        # closing: no erosion from no data or the edge (they count as landslide there)
        grown = ndimage.binary_dilation(x, se, border_value=0)
        x = ndimage.binary_erosion(grown | invalid, se, border_value=1) & valid
        # opening: no data and the edge count as landslide for the erosion, so outlines
        # along them are not eaten; the dilation cannot add pixels (& x)
        core = ndimage.binary_erosion(x | invalid, se, border_value=1)
        x = ndimage.binary_dilation(core, se, border_value=0) & x
    for _ in range(DIAGONAL_PASSES):
        a, b, c, d = x[:-1, :-1], x[:-1, 1:], x[1:, :-1], x[1:, 1:]
        main = a & d & ~b & ~c
        anti = b & c & ~a & ~d
        if not (main.any() or anti.any()):
            break
        add = np.zeros_like(x)
        add[:-1, 1:] |= main
        add[1:, :-1] |= main
        add[:-1, :-1] |= anti
        add[1:, 1:] |= anti
        x = x | (add & valid)
    return x


def clean_mask(mask: np.ndarray, cleaning: OutlineCleaning | PixelCleaning,
               valid: np.ndarray | None = None, pixel_size: float | None = None) -> np.ndarray:
    """Clean a whole landslide mask in memory.

    Parameters
    ----------
    mask : array (H x W)
        Boolean (True = landslide) or uint8 (1 = landslide, 0 background, 255 = no data).
    cleaning : OutlineCleaning or PixelCleaning
        An OutlineCleaning is resolved with ``pixel_size``.
    valid : bool array, optional
        Where the data is valid (default: everywhere for a boolean mask, ``mask != 255`` for
        a uint8 one).
    pixel_size : float, optional
        Metres per pixel (None: unknown, values taken as pixels).

    Returns
    -------
    array
        The cleaned mask, of the input's kind: boolean (False where not valid), or uint8
        with 0/1 where valid and the input's values (no data) elsewhere.
    """
    p = cleaning.resolve(pixel_size) if isinstance(cleaning, OutlineCleaning) else cleaning
    is_bool = mask.dtype == bool
    if valid is None:
        valid = np.ones(mask.shape, bool) if is_bool else mask != 255
    valid = np.asarray(valid, dtype=bool)
    landslide = (mask if is_bool else mask == 1) & valid
    x = smooth_mask(landslide, valid, p)

    labels, count = ndimage.label(x, structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= p.min_area
    keep[0] = False
    x = keep[labels]

    background = valid & ~x
    labels, count = ndimage.label(background, structure=FOUR)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    open_ = np.zeros(count + 1, dtype=bool)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    open_[edge] = True
    near_invalid = ndimage.binary_dilation(~valid, FOUR, border_value=0) & background
    open_[labels[near_invalid]] = True
    fill = (sizes < p.max_hole) & ~open_
    fill[0] = False
    x = x | fill[labels]

    if is_bool:
        return x
    return np.where(valid, x, mask).astype(mask.dtype)
