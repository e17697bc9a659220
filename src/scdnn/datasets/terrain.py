"""Terrain channels from a surface model (DSM/DEM): what the network sees of the relief.

A raw elevation band is a poor network input: absolute heights differ by hundreds of metres
from one valley to the next (jinsha scene-a and scene-b lie 2,800 m up), so a model trained
on one scene learns heights it will never see again. Landslides show in the *shape* of the
surface instead: a scarp is steep, a source area is a hollow, a deposit a lobe. Two channels
capture that and are independent of where the scene lies:

``slope``
    Steepest slope in degrees, ``atan(|grad z|)`` with the gradient in metres per metre
    (central differences, the pixel size taken from the raster's transform). Stored as
    ``round(slope / 90 * 255)``.
``relative_elevation``
    Height above (+) or below (−) the mean elevation of the surrounding
    ``RELATIVE_ELEVATION_WINDOW_M`` metres (a box of that side): hollows and ridges at the
    scale of a slope failure. Clipped to ±``RELATIVE_ELEVATION_RANGE_M`` and stored as
    ``round((z - mean + R) / (2R) * 255)``, so 127.5 is "level with the surroundings".

Both are stored as uint8 in fixed physical units, so they pass through the same augmentation
(flips and right-angle rotations leave both meaningful; the colour jitter touches only the
first three bands) and normalisation as the image bands, and a scene's values do not depend
on the statistics of the scene. Quantisation steps are 0.35° and 0.08 m.

Pixels without elevation (nodata) are left out of the local means and get slope 0 and
relative elevation 0 m; the scene reader marks them invalid anyway. Away from missing
elevation, every pixel depends only on the surface within ``halo_pixels`` of it, so a window
read with that halo gives exactly the values a whole-scene computation would: no seams
between windows.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["TERRAIN_CHANNELS", "RELATIVE_ELEVATION_WINDOW_M", "RELATIVE_ELEVATION_RANGE_M",
           "halo_pixels", "slope_degrees", "relative_elevation", "terrain_channels"]

TERRAIN_CHANNELS = ("slope", "relative_elevation")
RELATIVE_ELEVATION_WINDOW_M = 25.0
RELATIVE_ELEVATION_RANGE_M = 10.0


def _box_pixels(pixel_size: tuple[float, float]) -> tuple[int, int]:
    """Odd box size (rows, columns) of about ``RELATIVE_ELEVATION_WINDOW_M`` metres."""
    return tuple(max(3, 2 * int(round(RELATIVE_ELEVATION_WINDOW_M / (2 * abs(p)))) + 1)
                 for p in (pixel_size[1], pixel_size[0]))  # type: ignore[return-value]


def halo_pixels(pixel_size: tuple[float, float]) -> int:
    """Rows/columns of surface needed around a window for exact terrain values inside it."""
    return max(_box_pixels(pixel_size)) // 2 + 1


def slope_degrees(dsm: np.ndarray, valid: np.ndarray, pixel_size: tuple[float, float]
                  ) -> np.ndarray:
    """Slope in degrees (float32). ``pixel_size`` = (x size, y size) in the DSM's units.

    Central differences; at an edge of the array or next to missing elevation, the one-sided
    difference (``numpy.gradient``'s rule at edges is applied after filling gaps with the
    nearest valid height, so a hole does not make a cliff).
    """
    z = _fill_nearest(dsm, valid)
    if z.shape[0] < 2 or z.shape[1] < 2:
        return np.zeros(z.shape, np.float32)
    dz_dy, dz_dx = np.gradient(z, abs(pixel_size[1]), abs(pixel_size[0]))
    slope = np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))
    return np.where(valid, slope, 0.0).astype(np.float32)


def relative_elevation(dsm: np.ndarray, valid: np.ndarray, pixel_size: tuple[float, float]
                       ) -> np.ndarray:
    """Elevation minus the mean valid elevation in the surrounding box (float32, metres)."""
    weights = valid.astype(np.float64)
    z = np.where(valid, dsm, 0.0).astype(np.float64)
    size = _box_pixels(pixel_size)
    total = ndimage.uniform_filter(z, size=size, mode="constant", cval=0.0)
    count = ndimage.uniform_filter(weights, size=size, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 1e-9, total / np.maximum(count, 1e-12), 0.0)
    return np.where(valid, z - mean, 0.0).astype(np.float32)


def terrain_channels(dsm: np.ndarray, valid: np.ndarray, pixel_size: tuple[float, float]
                     ) -> np.ndarray:
    """``H x W x 2`` uint8: slope and relative elevation, scaled as the module docstring says.

    ``dsm`` is the surface in metres, ``valid`` where it holds a height, ``pixel_size`` the
    (x, y) pixel size in metres.
    """
    dsm = np.asarray(dsm, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(dsm)
    slope = slope_degrees(dsm, valid, pixel_size)
    relative = relative_elevation(dsm, valid, pixel_size)
    r = RELATIVE_ELEVATION_RANGE_M
    out = np.empty(dsm.shape + (2,), np.uint8)
    out[..., 0] = np.rint(np.clip(slope, 0.0, 90.0) / 90.0 * 255.0)
    out[..., 1] = np.rint((np.clip(relative, -r, r) + r) / (2 * r) * 255.0)
    return out


def _fill_nearest(dsm: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``dsm`` with each missing height replaced by the nearest valid one (float64)."""
    z = np.asarray(dsm, dtype=np.float64)
    if valid.all():
        return z
    if not valid.any():
        return np.zeros_like(z)
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return z[rows, cols]

