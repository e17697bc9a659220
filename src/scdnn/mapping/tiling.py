"""The window grid over a scene and the weight window that blends overlapping predictions.

Windows are ``tile`` x ``tile`` pixels, ``tile - overlap`` apart, in row-major order (row of
windows by row of windows, left to right). The last window of a row or column is moved back
so that it ends on the scene's edge instead of hanging over it; it then overlaps its
neighbour by more than ``overlap``, which the blending handles like any other overlap. So
every window lies inside the scene and all have the same size, ``min(tile, height)`` x
``min(tile, width)``: no padding is needed, windows stack into batches, and a scene smaller
than one tile is a single window, predicted exactly as in one pass.

Alignment (``align``, which :func:`scdnn.mapping.map_scene` sets to the network's output
stride): a network that downsamples is not equivariant to shifts that are not a multiple of
its output stride, because its strided layers sample the pixels at even positions (counted
from the window's corner). A window starting at row 1000 of the scene therefore predicts a
visibly different map than one pass over the whole scene does, and one starting at a
multiple of the stride nearly the same map (measured per offset in
``benchmarks/results/alignment.md``). With ``align > 1`` the step between windows is rounded
down to a multiple of ``align``, every window starts at a multiple of it, and the last window
of a row or column *overhangs*
the scene's edge instead of being moved back; the part beyond the edge is read as no data
(as the network's own padding treats it in one pass). Windows still all have one size.

Blending: each window's probabilities are weighted by :func:`blend_weights`, a 2-D
raised-cosine (Hann) ramp over the ``overlap`` pixels at each side and flat 1 in the core,
and the accumulated ``sum(weight * p) / sum(weight)`` is the blended probability. Over an
overlap of exactly ``overlap`` pixels the falling ramp of one window and the rising ramp of
the next sum to 1 (``sin² + cos²``), so seams fade linearly in weight space. The ramp never
reaches 0, so a pixel that only one window covers (at the scene border, where there is no
neighbour) still gets that window's probability after normalisation.
"""

from __future__ import annotations

import os

import numpy as np
from rasterio.windows import Window

from ..errors import InvalidValueError, param

__all__ = ["check_tiling", "check_memory", "window_offsets", "window_grid", "blend_weights"]

#: Memory one window pixel takes in a forward pass (activations of the network in fp32 and
#: the blending buffers), in bytes: a whole-scene pass of SCDnn over 9.1 Mpx peaked 3 GiB
#: above the loaded model (benchmarks/results/mapping.md), about 350 bytes a pixel.
BYTES_PER_WINDOW_PIXEL = 400


def check_tiling(tile: int, overlap: int, align: int = 1) -> None:
    """Refuse a tile or overlap that cannot make a grid (InvalidValueError).

    ``tile`` must be positive and at least ``align`` (the network's output stride: window
    offsets step by a multiple of it, so a smaller window would leave gaps), ``overlap``
    non-negative (0 is plain non-overlapping tiling) and at most half the tile, so that the
    ramps of the two sides of a window do not cross.
    """
    if not _whole(tile) or tile <= 0:
        raise InvalidValueError(f"must be a positive number of pixels, got {tile}",
                                option="tile")
    if not _whole(overlap) or overlap < 0:
        raise InvalidValueError(f"must be a number of pixels ≥ 0, got {overlap}",
                                option="overlap")
    if tile < 2 * overlap:
        raise InvalidValueError(f"{tile} is smaller than twice {param('overlap')} {overlap}: "
                                f"the blending ramps of a window's two sides would overlap "
                                f"(use {param('tile')} ≥ {2 * overlap})", option="tile")
    if tile < align:
        raise InvalidValueError(f"{tile} is smaller than the network's output stride ({align} "
                                f"px): windows step by multiples of it (use {param('tile')} ≥ "
                                f"{align})", option="tile")


def available_memory() -> int | None:
    """Bytes of memory this process can still take (Linux ``MemAvailable``; else the
    physical memory), or None where neither can be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(window_shape: tuple[int, int], batch_size: int,
                 available: int | None = None) -> None:
    """Refuse a tile and batch whose forward pass would need more memory than there is
    (InvalidValueError naming ``batch_size`` when one window at a time would fit, else
    ``tile``), before anything is allocated: a 100,000 px tile or a batch of 10,000 windows
    is a one-line error, not a process killed by the kernel."""
    height, width = window_shape
    need = int(batch_size) * int(height) * int(width) * BYTES_PER_WINDOW_PIXEL
    available = available_memory() if available is None else available
    if not available or need <= available:
        return
    one = need // int(batch_size)
    option = "batch_size" if batch_size > 1 and one <= available else "tile"
    windows = "1 window" if batch_size == 1 else f"a batch of {batch_size} windows"
    raise InvalidValueError(
        f"too large: {windows} of {width} x {height} px needs about {need / 2**30:.1f} GiB "
        f"for the network, more than the {available / 2**30:.1f} GiB available; use a "
        f"smaller {param(option)}", option=option)


def _whole(value) -> bool:
    """Whether ``value`` is a whole number (an int, or a float such as 64.0; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return float(value).is_integer()


def window_offsets(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets along one axis of length ``size``; ``[0]`` when ``size <= tile``.

    ``align == 1``: every ``tile - overlap`` pixels, the last one moved back to
    ``size - tile`` so that it ends on the edge. ``align > 1``: every ``step`` pixels, ``step``
    being ``tile - overlap`` rounded down to a multiple of ``align`` (at least ``align``),
    until a window reaches the edge; the last one may overhang it.

    >>> window_offsets(230, 64, 16)
    [0, 48, 96, 144, 166]
    >>> window_offsets(230, 64, 16, align=32)
    [0, 32, 64, 96, 128, 160, 192]
    """
    if size <= tile:
        return [0]
    if align <= 1:
        return [*range(0, size - tile, tile - overlap), size - tile]
    step = max(align, (tile - overlap) // align * align)
    count = 1 + -(-(size - tile) // step)  # ceil
    return [k * step for k in range(count)]


def window_grid(height: int, width: int, tile: int, overlap: int, align: int = 1
                ) -> list[Window]:
    """All windows over a ``height`` x ``width`` scene, row-major; each is
    ``min(tile, height)`` rows by ``min(tile, width)`` columns. With ``align > 1`` offsets
    are multiples of ``align`` and the last row/column of windows may overhang the scene
    (see the module docstring)."""
    check_tiling(tile, overlap, align)
    h, w = min(tile, height), min(tile, width)
    return [Window(col, row, w, h)
            for row in window_offsets(height, tile, overlap, align)
            for col in window_offsets(width, tile, overlap, align)]


def _ramp(length: int, overlap: int) -> np.ndarray:
    """1-D weights: ``sin²(π (i + ½) / (2 overlap))`` over the first and last ``overlap``
    samples, 1 between; the smaller of the two ramps where they meet (short axes)."""
    i = np.arange(length, dtype=np.float64)
    if overlap <= 0:
        return np.ones(length, dtype=np.float64)
    rise = np.sin(np.pi * (np.minimum(i, overlap) + 0.5) / (2 * overlap)) ** 2
    rise[i >= overlap] = 1.0
    return np.minimum(rise, rise[::-1])


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """The ``height`` x ``width`` float32 weight window: outer product of the 1-D ramps.

    Values lie in (0, 1]: 1 in the core, a raised-cosine ramp over ``overlap`` pixels at each
    side, never 0 (the outermost pixel weighs ``sin²(π / (4 overlap))``).
    """
    return np.outer(_ramp(height, overlap), _ramp(width, overlap)).astype(np.float32)
