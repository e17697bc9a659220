"""The one exception type for user mistakes.

Anything a user can get wrong (a missing file, a mask with odd values, a bad option) raises
:class:`UserError` with a message that names the file and the problem. The command line turns
it into one line on stderr and exit status 2; it never shows a traceback for it.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
