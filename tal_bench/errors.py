"""The one user-facing error type.

A ``TalBenchError`` means the *user* has to change something (a path, an option, a file).
The CLI turns it into one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class TalBenchError(Exception):
    """A user error whose message says what is wrong and how to fix it."""
