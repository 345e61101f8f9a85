"""Exceptions raised by modalfuse.

Every error names what it is about (a column, a row, a file) so a user can act on it.
"""

from __future__ import annotations


class ModalfuseError(Exception):
    """Base class of every error modalfuse raises on purpose."""


class SchemaError(ModalfuseError, ValueError):
    """The table's columns, modalities or label cannot be used as given."""


class DecodeError(ModalfuseError, ValueError):
    """A file or cell could not be decoded into its modality.

    ``reason`` is a short human-readable explanation (``"truncated WAV"``, ``"not a PNG"``, ...).
    """

    def __init__(self, reason: str, *, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class MissingValueError(ModalfuseError, ValueError):
    """Raised in ``strict`` mode when a cell is missing or undecodable."""


class NotFittedError(ModalfuseError, AttributeError):
    """The estimator was used before ``fit``."""
