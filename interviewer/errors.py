"""Errors a person can act on.

A ``UserError`` is printed by the CLI as one line, without a traceback: the message must name the
thing that is wrong (a file, a package) and the command that fixes it.
"""


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message."""


class ModelError(UserError):
    """A model file is missing, corrupt, or was never assembled."""


class MissingSystemPackage(UserError):
    """A Debian package the product needs (espeak-ng, ffmpeg) is not installed."""


class BankError(UserError):
    """A question bank could not be loaded."""
