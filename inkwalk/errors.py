"""User-facing errors: the CLI prints these as one line and exits non-zero, never a traceback."""


class InkwalkError(Exception):
    """Base of every error caused by user input or environment, not by a bug."""
