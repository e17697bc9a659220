"""Option types shared by every ``scdnn`` subcommand's parser (argparse ``type=`` checks).

Kept apart from :mod:`scdnn.cli` so that subcommands defined elsewhere
(:mod:`scdnn.benchmark.cli`) use them without importing the command line back.
"""

from __future__ import annotations

import argparse

__all__ = ["Parser", "number", "positive_int", "non_negative_int", "positive_float", "fraction",
           "probability"]


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(cast, ok, requirement: str):
    """An argparse ``type=`` that parses with ``cast`` and checks ``ok``; the message on
    failure is ``requirement``, e.g. "argument --epochs: must be a positive integer, got 0"."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{requirement}, got '{text}'") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {value}")
        return value

    return parse


positive_int = number(int, lambda v: v > 0, "must be a positive integer")
non_negative_int = number(int, lambda v: v >= 0, "must be an integer ≥ 0")
positive_float = number(float, lambda v: v > 0, "must be a positive number")
fraction = number(float, lambda v: 0 <= v < 1, "must be a number in [0, 1)")
probability = number(float, lambda v: 0 < v < 1, "must be a number strictly between 0 and 1")
