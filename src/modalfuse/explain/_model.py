"""Shapley values and occlusion of a fitted fusion strategy, from its coalition predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from modalfuse.explain._shapley import DEFAULT_PERMUTATIONS, ShapleyValues, shapley_values

__all__ = ["occlusion", "strategy_shapley"]

Data = Mapping[str, tuple[np.ndarray, np.ndarray]]

#: Coalition predictions held at once (rows x coalitions x classes, times the inputs): rows are explained
#: in chunks that keep the exact values' arrays to a few hundred MB.
COALITION_CELLS = 4_000_000


def _mask_of(data: Data, name: str, n: int) -> np.ndarray:
    """Presence of input ``name`` in ``data`` (all False when it is not there)."""
    return np.asarray(data[name][1], dtype=bool) if name in data else np.zeros(n, bool)


def _row_chunks(n: int, n_inputs: int, n_classes: int) -> list[np.ndarray]:
    """Row positions in chunks small enough for :data:`COALITION_CELLS` (one empty chunk for no rows)."""
    per_row = (2 ** min(n_inputs, 10)) * max(n_inputs, 1) * max(n_classes, 1)
    size = max(1, COALITION_CELLS // per_row)
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)] or [np.arange(0)]


_ROW_ARRAYS = (
    "proba",
    "base",
    "values",
    "values_log_odds",
    "present",
    "without",
    "alone",
    "interactions",
    "interactions_log_odds",
    "standard_error",
    "standard_error_log_odds",
)


def _concat(chunks: Sequence[ShapleyValues]) -> ShapleyValues:
    """One :class:`ShapleyValues` from those of consecutive row chunks."""
    if len(chunks) == 1:
        return chunks[0]
    arrays = {}
    for name in _ROW_ARRAYS:
        parts = [getattr(c, name) for c in chunks]
        arrays[name] = None if parts[0] is None else np.concatenate(parts)
    return replace(chunks[0], **arrays, n_coalitions=max(c.n_coalitions for c in chunks))


def _coalition_function(strategy: Any, data: Data, rows: np.ndarray, n_classes: int) -> Any:
    """``coalitions -> (C, len(rows), K)`` probabilities (rows renormalised to sum to 1, in float64): the
    strategy's :meth:`~modalfuse.FusionStrategy.proba_of_coalitions` on ``rows`` of ``data``, prepared once;
    the class prior where there is no input at all."""
    if not len(rows):
        return lambda coalitions: np.zeros((len(coalitions), 0, n_classes))
    if not data:  # no input was ever seen in training (a unimodal model of an empty column): the prior
        prior = np.asarray(strategy.prior_, dtype=float)
        return lambda coalitions: np.tile(prior, (len(coalitions), len(rows), 1))
    chunk = {name: (x[rows], np.asarray(m)[rows]) for name, (x, m) in data.items()}
    prepared = strategy.prepare_coalitions(chunk)

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        p = np.asarray(strategy.proba_of_coalitions(prepared, coalitions), dtype=np.float64)
        if not p.size:
            return p.reshape(len(coalitions), len(rows), n_classes)
        return p / p.sum(axis=2, keepdims=True)

    return proba_of


def strategy_shapley(
    strategy: Any,
    data: Data,
    classes: Sequence[Any],
    n_rows: int,
    *,
    method: str = "auto",
    n_permutations: int = DEFAULT_PERMUTATIONS,
    interactions: bool = True,
    seed: int = 0,
) -> ShapleyValues:
    """Modality Shapley values of a fitted strategy on preprocessed ``data`` (``{input: (X, mask)}``).

    The players are ``strategy.coalition_inputs()``; rows are explained in chunks (each chunk's encoders
    run once, its coalitions through the fusion head). See :func:`~modalfuse.explain.shapley_values` for
    the other parameters.
    """
    inputs = strategy.coalition_inputs() if data or not n_rows else []
    present = (
        np.stack([_mask_of(data, name, n_rows) for name in inputs], axis=1)
        if inputs
        else np.zeros((n_rows, 0), bool)
    )
    chunks = [
        shapley_values(
            _coalition_function(strategy, data, rows, len(classes)),
            present[rows],
            inputs,
            classes,
            method=method,
            n_permutations=n_permutations,
            interactions=interactions,
            seed=seed,
        )
        for rows in _row_chunks(n_rows, len(inputs), len(classes))
    ]
    return _concat(chunks)


def occlusion(strategy: Any, data: Data, proba: np.ndarray) -> dict[str, np.ndarray]:
    """Per input: the predicted class's probability (``proba``, (N, K)) minus its probability with that
    input alone hidden; 0 where the row lacks the input."""
    inputs = strategy.coalition_inputs()
    hidden = np.asarray(strategy.coalition_proba(data, ~np.eye(len(inputs), dtype=bool)), dtype=np.float64)
    hidden = hidden / hidden.sum(axis=2, keepdims=True)
    rows, pred = np.arange(len(proba)), proba.argmax(1)
    return {
        name: np.where(_mask_of(data, name, len(proba)), proba[rows, pred] - hidden[i, rows, pred], 0.0)
        for i, name in enumerate(inputs)
    }
