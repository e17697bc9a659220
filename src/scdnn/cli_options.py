"""Option types shared by every ``scdnn`` subcommand's parser (argparse ``type=`` checks).

Kept apart from :mod:`scdnn.cli` so that subcommands defined elsewhere
(:mod:`scdnn.benchmark.cli`) use them without importing the command line back.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["Parser", "number", "positive_int", "non_negative_int", "positive_float", "fraction",
           "probability", "seed", "non_negative_float", "devices"]


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(cast, ok, requirement: str):
    """An argparse ``type=`` that parses with ``cast`` and checks ``ok``; the message on
    failure is ``requirement``, e.g. "argument --epochs: must be a positive integer, got 0".
    A float that is not finite (``nan``, ``inf``) is refused whatever ``ok`` says."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{requirement}, got '{text}'") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {value}")
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {value}")
        return value

    return parse


positive_int = number(int, lambda v: v > 0, "must be a positive integer")
non_negative_int = number(int, lambda v: v >= 0, "must be an integer ≥ 0")
positive_float = number(float, lambda v: v > 0, "must be a positive number")
fraction = number(float, lambda v: 0 <= v < 1, "must be a number in [0, 1)")
probability = number(float, lambda v: 0 < v < 1, "must be a number strictly between 0 and 1")
non_negative_float = number(float, lambda v: v >= 0, "must be a number ≥ 0")
#: Seeds of numpy's and torch's generators: 0 to 2**32 - 1.
seed = number(int, lambda v: 0 <= v < 2**32, "must be an integer from 0 to 4294967295")


def devices(text: str) -> str:
    """Lightning's ``devices``: ``auto``, a positive count, ``-1`` (all), or device indices
    separated by commas (``0,1``)."""
    value = text.strip()
    indices = [part.strip() for part in value.split(",") if part.strip()]
    ok = (value in ("auto", "-1") or (value.isdigit() and int(value) > 0)
          or ("," in value and bool(indices) and all(i.isdigit() for i in indices)))
    if not ok:
        raise argparse.ArgumentTypeError(
            f"must be auto, a number of devices ≥ 1, -1 (all) or indices like 0,1, got '{text}'")
    return value
