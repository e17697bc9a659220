"""Seeded train/validation/test splits by sample name, saved as JSON."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError
from ..records import FORMAT_VERSION, Split

__all__ = ["make_split", "save_split", "load_split"]

_PARTS = ("train", "val", "test")


def _round_half_up(x: float) -> int:
    # n * fraction carries float error (770 * 0.3 = 231.00000000000003): round to 9 places first
    return int(math.floor(round(x, 9) + 0.5))


def make_split(names: Sequence[str], test_fraction: float = 0.3, val_fraction: float = 0.1,
               seed: int = 0) -> dict[str, Any]:
    """Split sample names at random into train, validation and test sets.

    The names are sorted, shuffled with ``numpy.random.default_rng(seed)``; the first
    ``round(n * test_fraction)`` go to test (the paper: 70 % train / 30 % test, 231 of
    770), the next ``round(n * val_fraction)`` to validation, the rest to train (rounding
    is half up). With ``n >= 2`` and ``test_fraction > 0`` there is at least one test and
    one training sample; validation may be empty when there are too few samples.

    Returns
    -------
    dict with ``train``, ``val``, ``test`` (sorted lists of names), ``seed``,
    ``test_fraction`` and ``val_fraction``. The same names and seed give the same split.

    Raises
    ------
    ScdnnError
        Fractions out of range, no names, duplicate names, or one name with a test fraction.
    """
    names = [str(n) for n in names]
    for label, value in (("test fraction", test_fraction), ("validation fraction", val_fraction)):
        if not (isinstance(value, (int, float)) and 0.0 <= float(value) < 1.0):
            raise InvalidValueError(f"{label} must be at least 0 and below 1, got {value!r}")
    if test_fraction + val_fraction >= 1.0:
        raise InvalidValueError(f"test fraction + validation fraction must be below 1, got "
                        f"{test_fraction} + {val_fraction}")
    n = len(names)
    if n == 0:
        raise InvalidValueError("cannot split a dataset with no samples")
    if len(set(names)) != n:
        dup = sorted({x for x in names if names.count(x) > 1})[0]
        raise InvalidValueError(f"sample names must be unique, '{dup}' appears more than once")
    if n < 2 and test_fraction > 0:
        raise InvalidValueError("need at least 2 samples to split into training and test sets")
    n_test = _round_half_up(n * test_fraction)
    if test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    n_val = min(_round_half_up(n * val_fraction), n - n_test - 1)
    n_val = max(n_val, 0)
    ranked = sorted(names)  # the split must not depend on the order the names came in
    ordered = [ranked[k] for k in np.random.default_rng(seed).permutation(n)]
    return {
        "format_version": FORMAT_VERSION,
        "train": sorted(ordered[n_test + n_val:]),
        "val": sorted(ordered[n_test:n_test + n_val]),
        "test": sorted(ordered[:n_test]),
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "val_fraction": float(val_fraction),
    }


def save_split(split: dict[str, Any] | Split, path: str | os.PathLike) -> None:
    """Write ``split`` (a dict or a :class:`scdnn.records.Split`) as JSON, atomically
    (:func:`scdnn.runs.write_json`)."""
    from ..runs import write_json

    try:
        write_json(path, split.to_dict() if isinstance(split, Split) else split)
    except OSError as exc:
        raise InputFileError(f"cannot write split file: {exc.strerror or exc}", path) from None


def load_split(path: str | os.PathLike, names: Iterable[str]) -> dict[str, Any]:
    """Read a split written by :func:`save_split` and check it against a dataset.

    Parameters
    ----------
    path : the JSON file
    names : the names of the dataset's samples; every name in the split must be one of them
        (the dataset may have more)

    Returns
    -------
    dict like :func:`make_split`'s (``val`` is ``[]`` when the file has none).

    Raises
    ------
    ScdnnError
        The file is missing or not JSON, lacks ``train``/``test`` lists, names a sample twice,
        or names a sample the dataset does not have (the message says which).
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("split file does not exist" if not p.exists()
                                     else "split file is not a file", p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read split file: {exc}", p) from None
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"split file is not valid JSON: {exc}", p) from None
    if not isinstance(data, dict):
        raise InvalidValueError("split file must hold a JSON object with train/val/test lists", p)
    known = set(names)
    split: dict[str, Any] = {k: v for k, v in data.items() if k not in _PARTS}
    seen: dict[str, str] = {}
    for part in _PARTS:
        if part not in data:
            if part == "val":
                split[part] = []
                continue
            raise InvalidValueError(f"split file has no '{part}' list", p)
        items = data[part]
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise InvalidValueError(f"split file: '{part}' must be a list of sample names", p)
        for name in items:
            if name not in known:
                unknown = [x for x in items if x not in known]
                more = f" ({len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
                raise InvalidValueError(f"split file names sample '{name}' ({part}) which is not "
                                        f"in the dataset{more}", p)
            if name in seen:
                raise InvalidValueError(f"split file names sample '{name}' twice ({seen[name]} "
                                        f"and {part})", p)
            seen[name] = part
        split[part] = sorted(items)
    return split
