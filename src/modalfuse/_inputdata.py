"""What a fusion strategy is given: each input's preprocessed arrays and masks, and optionally the rows'
quality scores and corrupted copies of some rows (training-time augmentation).

:class:`InputData` is a plain ``dict`` ``{input: (X, mask)}`` (every strategy reads it as before) with two
optional attributes that strategies which use them read: ``quality`` (``{input: (n_rows, n_scores)}``
raw quality scores, see :mod:`modalfuse._quality`) and ``augmented`` (:class:`AugmentedRows`). A plain
dict given where an :class:`InputData` is expected has neither (:func:`quality_of` and
:func:`augmented_of` return None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AugmentedRows", "InputData", "augmented_of", "copies_of", "quality_of", "take_rows"]


class InputData(dict):
    """``{input: (X, mask)}`` with optional ``quality`` and ``augmented`` attributes (see the module)."""

    def __init__(
        self,
        data: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
        *,
        quality: Mapping[str, np.ndarray] | None = None,
        augmented: AugmentedRows | None = None,
    ) -> None:
        super().__init__(data or {})
        self.quality = None if quality is None else dict(quality)
        self.augmented = augmented


@dataclass(frozen=True)
class AugmentedRows:
    """Corrupted copies of some training rows.

    Attributes
    ----------
    rows : ndarray of int
        For each copy, the position of its original among the training rows (its label, group and inner
        fold are the original's).
    data : InputData
        The copies, preprocessed as the training rows are (with quality scores where the strategy uses them).
    inputs : tuple of str
        The inputs the corruptions changed (the copies' other inputs are the originals'): the per-input
        networks of these inputs train on the copies too.
    """

    rows: np.ndarray
    data: InputData
    inputs: tuple[str, ...] = ()

    def of_input(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(originals, X, mask)`` of the copies whose input ``name`` was corrupted (and is present), or
        None when the corruptions left that input alone."""
        if name not in self.inputs or name not in self.data:
            return None
        x, mask = self.data[name]
        keep = np.flatnonzero(np.asarray(mask, bool))
        return self.rows[keep], np.asarray(x)[keep], np.asarray(mask, bool)[keep]


def quality_of(data: Any) -> dict[str, np.ndarray] | None:
    """The raw quality scores carried by ``data``, or None."""
    return getattr(data, "quality", None)


def augmented_of(data: Any) -> AugmentedRows | None:
    """The corrupted copies carried by ``data``, or None."""
    return getattr(data, "augmented", None)


def copies_of(data: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(originals, X, mask)`` of the copies carried by ``data`` whose input ``name`` was corrupted (see
    :meth:`AugmentedRows.of_input`), or None."""
    aug = augmented_of(data)
    return None if aug is None else aug.of_input(name)


def take_rows(data: Mapping[str, tuple[np.ndarray, np.ndarray]], rows: np.ndarray) -> InputData:
    """``data`` restricted to ``rows`` (positions or a boolean mask), quality scores alike."""
    quality = quality_of(data)
    return InputData(
        {n: (x[rows], m[rows]) for n, (x, m) in data.items()},
        quality=None if quality is None else {n: q[rows] for n, q in quality.items()},
    )
