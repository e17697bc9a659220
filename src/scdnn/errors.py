"""Exceptions for mistakes in the input: typed like the builtins they resemble.

Anything a user can get wrong raises a subclass of :class:`ScdnnError` whose message names
the file (``path``) or the option (``option``) and the problem:

- :class:`InvalidValueError` (also a :class:`ValueError`): a bad option value, a mask with
  odd values, a model card with a missing field, data that does not fit the model;
- :class:`InputFileError` (also an :class:`OSError`): a file that cannot be read or written,
  is corrupt, or is of the wrong kind;
- :class:`InputFileNotFoundError` (also a :class:`FileNotFoundError`): a file or folder that
  does not exist.

So library users catch them as builtins (``except FileNotFoundError``) or all at once
(``except ScdnnError``). Messages never name command-line flags: an option is named as the
Python parameter (``tile``), and the command line alone turns it into ``--tile``
(:meth:`ScdnnError.cli_message`), prints one line and exits with status 2. An option named
inside a message is written with :func:`param` (``f"use {param('overwrite')}"``): the
library's text says ``overwrite``, the command line's ``--overwrite``.
"""

from __future__ import annotations

import os
import re

__all__ = ["ScdnnError", "InvalidValueError", "InputFileError", "InputFileNotFoundError",
           "UserError", "param"]

_PARAM = re.compile("\x1e([a-z_0-9]+)\x1f([a-z_0-9]+)\x1e")


def param(name: str, flag: str | None = None) -> str:
    """An option's name inside an error message: rendered as the Python parameter ``name`` by
    ``str()``, as the flag ``--name`` (underscores as dashes) by the command line, or as
    ``--flag`` when the command line calls it otherwise (``param("use_all", flag="all")``)."""
    return f"\x1e{name}\x1f{flag or name}\x1e"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class ScdnnError(Exception):
    """A mistake in the user's input, reported in one line.

    Parameters
    ----------
    message : what is wrong
    path : the file or folder concerned; the message is prefixed with it
    option : the option (Python parameter name) concerned; the message is prefixed with it
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, *,
                 option: str | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.option = option
        Exception.__init__(self, self._render())

    def _render(self, cli: bool = False) -> str:
        name = self.option and (_flag(self.option) if cli else self.option)
        text = f"{name} {self.message}" if name else self.message
        text = _PARAM.sub(lambda m: _flag(m[2]) if cli else m[1], text)
        return f"{self.path}: {text}" if self.path else text

    def __str__(self) -> str:
        return self._render()

    def cli_message(self) -> str:
        """The message with every option written as a command-line flag (``--tile``)."""
        return self._render(cli=True)

    def __reduce__(self):  # picklable (multiprocessing, dask) despite the keyword argument
        return (_rebuild, (type(self), self.message, self.path, self.option))


def _rebuild(cls, message, path, option):
    return cls(message, path, option=option)


class InvalidValueError(ScdnnError, ValueError):
    """A value that cannot work: an option, a field of a model card, the content of a file."""


class InputFileError(ScdnnError, OSError):
    """A file or folder that cannot be read or written, or is not what it should be."""


class InputFileNotFoundError(InputFileError, FileNotFoundError):
    """A file or folder that does not exist."""


#: The name every module used before the typed subclasses existed; it is the base class, so
#: ``except UserError`` catches all of them. New code raises a subclass.
UserError = ScdnnError
