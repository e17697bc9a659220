"""Settings the ``scdnn`` program makes for its own process (never on import, never by a
library call).

The networks allocate and free hundreds of megabytes of activations for every window and
every training batch. glibc's malloc hands such large blocks back to the operating system
when they are freed (``mmap``/``munmap``, and trimming the heap), so that the next pass
page-faults all of it in again. Measured on the 2-core development machine (SCDnn, one
2048 px window on the CPU, ``benchmarks/allocator.py``): 4.89 s a window with glibc's
defaults, 2.63 s with freed memory kept for reuse (``benchmarks/results/allocator.md``).
The price is memory that stays with the process: mapping jinsha scene-b peaked at
2954–3792 MiB over three processes instead of 2393 MiB (``benchmarks/results/mapping.md``).
This is the reason PyTorch's CPU performance guides recommend an allocator such as jemalloc
or tcmalloc; :func:`keep_freed_memory` gets most of
it from glibc itself.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "MALLOC_SETTINGS"]

#: glibc's malloc settings (environment name -> mallopt parameter, value): blocks up to
#: 2 GiB come from the heap (not ``mmap``), and the heap is not trimmed below 2 GiB free.
MALLOC_SETTINGS: dict[str, tuple[int, int]] = {
    "MALLOC_MMAP_THRESHOLD_": (-3, 2**31 - 1),  # M_MMAP_THRESHOLD
    "MALLOC_TRIM_THRESHOLD_": (-1, 2**31 - 1),  # M_TRIM_THRESHOLD
}


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, in this process (``mallopt``) and in
    the processes it starts (the environment: Dask workers, data-loading workers).

    What the user set in the environment already is left alone. Elsewhere than Linux with
    glibc this does nothing. Returns whether the settings are in force in this process.

    The ``scdnn`` program calls it when it starts; a Python program using the API may call
    it once, at its start (it changes the whole process's allocator, so the library never
    does it on its own).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    in_force = True
    for name, (parameter, value) in MALLOC_SETTINGS.items():
        if name in os.environ:  # the user's own choice (glibc read it at start)
            continue
        in_force &= bool(mallopt(ctypes.c_int(parameter), ctypes.c_int(value)))
        os.environ[name] = str(value)
    return in_force
