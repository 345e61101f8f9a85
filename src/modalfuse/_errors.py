"""The exceptions and warnings modalfuse raises on purpose: one tree under :class:`ModalfuseError`.

Every error names what it is about (a column, a row, a file, an option) and, where it can, what to do
instead. Each also derives from the built-in exception a Python user would expect (an unknown name is a
``KeyError``, a bad value a ``ValueError``), so existing ``except`` clauses keep working; the command line
catches this tree only, so anything else is a bug and shows its traceback.

``NotFittedError`` also derives from scikit-learn's, which is imported only when that class is first used,
so that importing this module (the command line does, for every command) stays cheap.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ChecksumMismatchError",
    "DatasetError",
    "DatasetNotFoundError",
    "DecodeError",
    "InputDriftWarning",
    "MissingValueError",
    "ModalfuseError",
    "ModelFileError",
    "NotFittedError",  # noqa: F822 - created on first use by __getattr__
    "OptionError",
    "RequestError",
    "SchemaError",
    "TrainingError",
    "UnknownNameError",
    "did_you_mean",
]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the known name closest to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    if not close:  # "unimodal:Titel" against "unimodal:Title": compare case-insensitively too
        lowered = {str(k).lower(): str(k) for k in known}
        close = [
            lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
        ]
    return f"; did you mean {close[0]!r}?" if close else ""


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


class UnknownNameError(ModalfuseError, KeyError):
    """A name that no registry knows: a fusion strategy, an encoder, a dataset, an input, a column.

    Attributes
    ----------
    kind : str
        What was looked up (``"fusion"``, ``"encoder"``, ...).
    name : str
        The name asked for.
    known : list of str
        The names that exist.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], *, hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(str(k) for k in known)
        listing = ", ".join(self.known) if self.known else "none"
        message = f"unknown {kind} {name!r}{did_you_mean(name, self.known)} (known: {listing})"
        super().__init__(message + (f"; {hint}" if hint else ""))

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class OptionError(ModalfuseError, ValueError):
    """An option or parameter that is unknown, of the wrong type or out of its valid range."""


class RequestError(ModalfuseError, ValueError):
    """A request to the model server that cannot be answered as sent (``modalfuse serve``).

    Attributes
    ----------
    status : int
        The HTTP status of the answer (a 4xx code: the client's mistake).
    kind : str
        What is wrong, as a short code (``"unknown_input"``, ``"wrong_type"``, ``"bad_base64"``, ...).
    field : str
        Where: an input of the record (``"image"``; ``"[3].image"`` in a batch), ``"body"``, a header or a
        query parameter.
    """

    def __init__(self, status: int, kind: str, field: str, message: str) -> None:
        self.status = status
        self.kind = kind
        self.field = field
        super().__init__(message)


class ModelFileError(ModalfuseError, ValueError):
    """A saved model folder that cannot be loaded: missing, damaged or written for something else."""


class TrainingError(ModalfuseError, RuntimeError):
    """Training could not do what was asked (e.g. it made no optimiser step)."""


class DatasetError(ModalfuseError, ValueError):
    """A dataset's files were found but cannot be used as they are."""


class DatasetNotFoundError(ModalfuseError, FileNotFoundError):
    """A dataset's files were not found in any of the places searched."""


class ChecksumMismatchError(DatasetError):
    """A downloaded (or cached) file does not have the expected checksum."""


class InputDriftWarning(UserWarning):
    """The rows to predict differ from the training rows (missing or extra columns, unseen categories,
    changed types, unusable cells). Filter it with :mod:`warnings` like any other warning category."""


def _make_not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(ModalfuseError, SklearnNotFittedError):
        """The estimator was used before ``fit`` (also scikit-learn's ``NotFittedError``)."""

    NotFittedError.__module__ = __name__
    return NotFittedError


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":
        cls = _make_not_fitted_error()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
