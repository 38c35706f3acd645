"""User-facing errors.

Every error a user can cause (a bad association, an unreadable file, a config
value out of range) is one of these types. The workflow's script edge catches
them and prints ``str(error)`` as a single line naming the file and the
problem, never a traceback.
"""

import sys
from typing import NoReturn


class Image3Error(Exception):
    """Base of all errors caused by the input or the configuration."""


class AssociationError(Image3Error):
    """The association file is unreadable, malformed or has no usable member."""


class InputFileError(Image3Error):
    """One input exposure is missing, corrupt or not usable for imaging."""


class ConfigError(Image3Error):
    """A configuration value is out of range or inconsistent."""


class GridError(Image3Error):
    """The output grid cannot be built (e.g. an absurd output size)."""


class StepError(Image3Error):
    """A step cannot produce a valid result from its (valid) inputs."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def stop_before_any_job(message) -> NoReturn:
    """Stop the Snakefile's parse with one line on the terminal (no traceback)."""
    print(f"image3: ERROR: {message}", file=sys.stderr)
    raise SystemExit(1)
