"""Modality Shapley values: each input's share of a prediction, with the Shapley guarantees.

The players are the model's inputs (modalities); the value of a *coalition* S (the inputs left present)
is the model's prediction for the row with every input outside S masked, exactly as a missing input is
(:meth:`~modalfuse.FusionStrategy.coalition_proba`). An input absent from the row stays absent whatever
the coalition, so it is a null player: its value is exactly 0. The Shapley value of input i is

    phi_i = sum over S not holding i of |S|! (M - |S| - 1)! / M! * (v(S + i) - v(S)),

which is *efficient*: the values of a row add up to v(all inputs) - v(no input). It is computed exactly
over all 2^M coalitions (the default up to :data:`MAX_EXACT_INPUTS` inputs), or estimated by sampling
permutations (antithetic pairs) with a stated budget and a standard error, efficient on every row as well.

The pairwise Shapley interaction index (Grabisch, 1997) of inputs i and j,

    I_ij = sum over S holding neither of |S|! (M - |S| - 2)! / (M - 1)! * (v(S+ij) - v(S+i) - v(S+j) + v(S)),

is positive when the two inputs cooperate (together they do more than apart) and negative when they
duplicate each other (either one alone does most of what both do).

Values are given for every class, in probability units (v = p_c) and in log-odds units
(v = log(p_c / (1 - p_c)), p clipped to [1e-12, 1 - 1e-12]); each unit is efficient on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import OptionError

__all__ = [
    "MAX_EXACT_INPUTS",
    "ShapleyValues",
    "coalition_matrix",
    "interaction_weights",
    "log_odds",
    "shapley_values",
    "shapley_weights",
]

#: Up to this many inputs the values are exact (2^M coalitions); beyond, permutations are sampled.
MAX_EXACT_INPUTS = 10
#: Default number of sampled permutations (antithetic pairs: half of them are the others reversed).
DEFAULT_PERMUTATIONS = 64
#: Probabilities are clipped to [EPS, 1 - EPS] before the log-odds.
LOG_ODDS_EPS = 1e-12

CoalitionProba = Callable[[np.ndarray], np.ndarray]


def coalition_matrix(m: int) -> np.ndarray:
    """Every coalition of ``m`` inputs, (2^m, m) bool: row ``s`` holds input ``i`` when bit ``i`` of ``s``
    is set (row 0 is the empty coalition, the last row all inputs)."""
    s = np.arange(2**m)[:, None]
    return ((s >> np.arange(m)[None, :]) & 1).astype(bool)


def _sizes(m: int) -> np.ndarray:
    return coalition_matrix(m).sum(1)


def shapley_weights(m: int) -> np.ndarray:
    """The (2^m, m) matrix W with ``phi = v @ W`` for coalition values ``v`` (2^m,) ordered as
    :func:`coalition_matrix`: ``W[s, i] = w(|s| - 1)`` if ``i`` is in ``s``, else ``-w(|s|)``, with
    ``w(k) = k! (m - k - 1)! / m!``."""
    if m == 0:
        return np.zeros((1, 0))  # no player: the empty coalition is everything
    member = coalition_matrix(m)
    size = member.sum(1)
    w = np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)])
    inside = w[np.clip(size - 1, 0, m - 1)][:, None]
    outside = w[np.clip(size, 0, m - 1)][:, None]
    return np.where(member, inside, -outside)


def interaction_weights(m: int) -> np.ndarray:
    """The (2^m, m, m) tensor T with ``I = einsum("s,sij->ij", v, T)``: the pairwise Shapley interaction
    index of every pair (zero diagonal, symmetric); zeros when ``m < 2``."""
    out = np.zeros((2**m, m, m))
    if m < 2:
        return out
    member = coalition_matrix(m)
    size = member.sum(1)
    w = np.array(
        [math.factorial(k) * math.factorial(m - k - 2) / math.factorial(m - 1) for k in range(m - 1)]
    )
    for i in range(m):
        for j in range(i + 1, m):
            # T[s] is the coefficient of v(s): v(S+ij) +w(|S|), v(S+i) and v(S+j) -w(|S|), v(S) +w(|S|)
            others = size - member[:, i] - member[:, j]  # |S|: the coalition without i and j
            sign = np.where(member[:, i] == member[:, j], 1.0, -1.0)
            out[:, i, j] = out[:, j, i] = sign * w[np.clip(others, 0, m - 2)]
    return out


def log_odds(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to [1e-12, 1 - 1e-12]."""
    q = np.clip(np.asarray(p, dtype=np.float64), LOG_ODDS_EPS, 1.0 - LOG_ODDS_EPS)
    return np.log(q) - np.log1p(-q)


def _bits(present: np.ndarray) -> np.ndarray:
    """Each row's present inputs as a bit mask (N,)."""
    return (present.astype(np.int64) << np.arange(present.shape[1])[None, :]).sum(1)


def _row_values(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per row, every coalition's value with the row's absent inputs taken out: (N, 2^M, K) from the
    (2^M, N, K) predictions, so ``v_row(S) = v(S & present)`` and absent inputs are exact null players."""
    m = present.shape[1]
    s = np.arange(2**m)
    index = s[None, :] & _bits(present)[:, None]  # (N, 2^M)
    rows = np.arange(len(present))[:, None]
    return values[index, rows]  # (N, 2^M, K)


@dataclass
class ShapleyValues:
    """Modality Shapley values of some rows, for every class, in probability and log-odds units.

    Attributes
    ----------
    inputs : list of str
        The players, in the order of the second axis of the arrays.
    classes : ndarray of shape (K,)
        The class labels, in the order of the last axis.
    proba : ndarray of shape (N, K)
        The prediction with every input of the row present, v(all).
    base : ndarray of shape (N, K)
        The prediction with no input present, v(none) (the model's answer without evidence).
    values : ndarray of shape (N, M, K)
        phi in probability units: ``base + values.sum(1) == proba``; 0 for an input absent from the row.
    values_log_odds : ndarray of shape (N, M, K)
        phi in log-odds units: ``log_odds(base) + values_log_odds.sum(1) == log_odds(proba)``.
    present : ndarray of bool, shape (N, M)
        Which inputs each row has.
    without : ndarray of shape (N, M, K)
        The prediction with every present input but input ``i`` (leave one input out).
    alone : ndarray of shape (N, M, K)
        The prediction with input ``i`` only (the base where the row lacks it).
    interactions, interactions_log_odds : ndarray of shape (N, M, M, K) or None
        Pairwise Shapley interaction index (zero diagonal); None unless computed exactly and asked for.
    method : str
        ``"exact"`` or ``"permutation"``.
    n_coalitions : int
        Coalitions evaluated (fusion-head passes over the rows).
    n_permutations : int or None
        Permutations sampled (``"permutation"`` only).
    standard_error, standard_error_log_odds : ndarray of shape (N, M, K) or None
        Standard error of the sampled values (over antithetic pairs of permutations); None when exact.
    """

    inputs: list[str]
    classes: np.ndarray
    proba: np.ndarray
    base: np.ndarray
    values: np.ndarray
    values_log_odds: np.ndarray
    present: np.ndarray
    without: np.ndarray
    alone: np.ndarray
    interactions: np.ndarray | None = None
    interactions_log_odds: np.ndarray | None = None
    method: str = "exact"
    n_coalitions: int = 0
    n_permutations: int | None = None
    standard_error: np.ndarray | None = None
    standard_error_log_odds: np.ndarray | None = None
    index: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.proba)

    @property
    def predicted(self) -> np.ndarray:
        """Index of each row's predicted class (N,)."""
        return self.proba.argmax(1) if self.proba.size else np.zeros(len(self.proba), np.int64)

    def efficiency_gap(self) -> float:
        """Largest ``|base + sum(phi) - proba|`` over rows, classes and both units (0 up to rounding)."""
        if not len(self):
            return 0.0
        gap_p = np.abs(self.base + self.values.sum(1) - self.proba).max()
        gap_l = np.abs(log_odds(self.base) + self.values_log_odds.sum(1) - log_odds(self.proba)).max()
        return float(max(gap_p, gap_l))

    def class_index(self, target: Any) -> np.ndarray:
        """Per row, the class index explained: the predicted class for None, else the class ``target``
        (a label of :attr:`classes`) on every row."""
        if target is None:
            return self.predicted
        matches = np.flatnonzero(np.asarray(self.classes).astype(str) == str(target))
        if not len(matches):
            from modalfuse._errors import UnknownNameError

            raise UnknownNameError("class", str(target), [str(c) for c in self.classes])
        return np.full(len(self), int(matches[0]))

    def for_class(self, target: Any = None, *, unit: str = "probability") -> np.ndarray:
        """phi (N, M) for one class per row (see :meth:`class_index`), in ``unit``."""
        values = self._unit(unit)
        return values[np.arange(len(self)), :, self.class_index(target)]

    def _unit(self, unit: str) -> np.ndarray:
        if unit == "probability":
            return self.values
        if unit == "log-odds":
            return self.values_log_odds
        raise OptionError(f"unit must be 'probability' or 'log-odds', got {unit!r}")

    def to_frame(self, target: Any = None, *, interactions: bool = False) -> pd.DataFrame:
        """One line per row: ``prediction``, ``probability`` (of the predicted class), ``class`` (the class
        explained: the predicted one unless ``target`` names one; ``"all"`` gives one line per row and
        class), ``value`` and ``base`` (the explained class's probability with every input present and
        with none), one column per input (phi in probability units: ``base`` plus them is ``value``), then
        the same in log-odds: ``value_log_odds``, ``base_log_odds`` and ``<input>:log_odds``. With
        ``interactions``, ``<a>*<b>`` columns (interaction index, probability units; exact values only).
        Sampled values add ``<input>:se`` columns (standard error, probability units)."""
        if isinstance(target, str) and target == "all":
            frames = [self.to_frame(c, interactions=interactions) for c in self.classes]
            return pd.concat(frames) if frames else self.to_frame(None, interactions=interactions)
        k = self.class_index(target)
        rows = np.arange(len(self))
        out = pd.DataFrame(
            {
                "prediction": np.asarray(self.classes)[self.predicted] if len(self) else self.classes[:0],
                "probability": self.proba[rows, self.predicted] if len(self) else np.zeros(0),
                "class": np.asarray(self.classes)[k] if len(self) else self.classes[:0],
                "value": self.proba[rows, k],
                "base": self.base[rows, k],
            },
            index=self.index,
        )
        for i, name in enumerate(self.inputs):
            out[name] = self.values[rows, i, k]
        out["value_log_odds"] = log_odds(self.proba[rows, k])
        out["base_log_odds"] = log_odds(self.base[rows, k])
        for i, name in enumerate(self.inputs):
            out[f"{name}:log_odds"] = self.values_log_odds[rows, i, k]
        if self.standard_error is not None:
            for i, name in enumerate(self.inputs):
                out[f"{name}:se"] = self.standard_error[rows, i, k]
        if interactions and self.interactions is not None:
            for i in range(len(self.inputs)):
                for j in range(i + 1, len(self.inputs)):
                    out[f"{self.inputs[i]}*{self.inputs[j]}"] = self.interactions[rows, i, j, k]
        return out


def _exact(
    proba_of: CoalitionProba, present: np.ndarray, interactions: bool
) -> tuple[dict[str, np.ndarray], int]:
    """Exact values from all 2^M coalitions: the value arrays of :class:`ShapleyValues`."""
    m = present.shape[1]
    coalitions = coalition_matrix(m)
    predictions = np.asarray(proba_of(coalitions), dtype=np.float64)  # (2^M, N, K)
    v = _row_values(predictions, present)  # (N, 2^M, K)
    lv = log_odds(v)
    W = shapley_weights(m)
    full, single = 2**m - 1, 1 << np.arange(m)
    on = present[:, :, None]  # an input the row lacks is a null player: exactly 0, not a rounding error
    out = {
        "proba": v[:, full],
        "base": v[:, 0],
        "values": np.where(on, np.einsum("nsk,si->nik", v, W), 0.0),
        "values_log_odds": np.where(on, np.einsum("nsk,si->nik", lv, W), 0.0),
        "without": v[:, full ^ single],
        "alone": v[:, single],
    }
    if interactions:
        T = interaction_weights(m)
        both = (present[:, :, None] & present[:, None, :])[..., None]
        out["interactions"] = np.where(both, np.einsum("nsk,sij->nijk", v, T), 0.0)
        out["interactions_log_odds"] = np.where(both, np.einsum("nsk,sij->nijk", lv, T), 0.0)
    return out, len(coalitions)


def _permutations(m: int, n_permutations: int, seed: int) -> np.ndarray:
    """``n_permutations`` orders of ``m`` inputs (rounded up to even): random ones and their reverses."""
    rng = np.random.default_rng(seed)
    half = [rng.permutation(m) for _ in range((n_permutations + 1) // 2)]
    return np.array([p for perm in half for p in (perm, perm[::-1])])


class _Lookup:
    """Per-row values of the coalitions evaluated: ``v_row(S) = v(S & present)``."""

    def __init__(self, needed: np.ndarray, predictions: np.ndarray, present: np.ndarray) -> None:
        self.needed, self.predictions = needed, predictions
        self.bits = _bits(present)
        self.rows = np.arange(len(present))

    def __call__(self, mask: int) -> np.ndarray:
        """(N, K): every row's prediction under coalition ``mask`` (a bit mask) less its absent inputs."""
        idx = np.searchsorted(self.needed, np.int64(mask) & self.bits)
        return self.predictions[idx, self.rows]


def _pair_contributions(
    value: _Lookup, perms: np.ndarray, prefixes: np.ndarray, shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """The mean marginal contributions (N, M, K) along two permutations (an antithetic pair), in
    probability (``p``) and log-odds (``l``) units."""
    out = {"p": np.zeros(shape), "l": np.zeros(shape)}
    for perm, prefix in zip(perms, prefixes, strict=True):
        prev = value(0)
        for step, i in enumerate(perm):
            cur = value(int(prefix[step + 1]))
            out["p"][:, i] += (cur - prev) / len(perms)
            out["l"][:, i] += (log_odds(cur) - log_odds(prev)) / len(perms)
            prev = cur
    return out


def _sampled(
    proba_of: CoalitionProba, present: np.ndarray, n_permutations: int, seed: int
) -> tuple[dict[str, np.ndarray], int, int]:
    """Values estimated from sampled permutations (antithetic pairs): each permutation's marginal
    contributions add up to v(all) - v(none) exactly, so their mean is efficient on every row."""
    m = present.shape[1]
    perms = _permutations(m, n_permutations, seed)
    # the coalitions along each permutation (prefixes), plus none, all, leave-one-out and singletons
    prefixes = np.zeros((len(perms), m + 1), np.int64)
    for p, perm in enumerate(perms):
        prefixes[p, 1:] = np.cumsum(np.int64(1) << perm.astype(np.int64))
    full, single = (1 << m) - 1, [1 << i for i in range(m)]
    needed = np.unique(np.concatenate([prefixes.ravel(), [0, full], [full ^ b for b in single], single]))
    coalitions = ((needed[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
    predictions = np.asarray(proba_of(coalitions), dtype=np.float64)  # (C, N, K)
    value = _Lookup(needed, predictions, present)
    n, k = len(present), predictions.shape[2]
    mean = {"p": np.zeros((n, m, k)), "l": np.zeros((n, m, k))}
    spread = {"p": np.zeros((n, m, k)), "l": np.zeros((n, m, k))}  # Welford's sum of squared deviations
    pairs = len(perms) // 2
    for q in range(pairs):
        pair = _pair_contributions(value, perms[2 * q : 2 * q + 2], prefixes[2 * q : 2 * q + 2], (n, m, k))
        for unit, x in pair.items():
            delta = x - mean[unit]
            mean[unit] += delta / (q + 1)
            spread[unit] += delta * (x - mean[unit])

    def se(unit: str) -> np.ndarray:
        if pairs < 2:
            return np.full((n, m, k), np.nan)
        return np.sqrt(spread[unit] / (pairs - 1) / pairs)

    out = {
        "proba": value(full),
        "base": value(0),
        "values": mean["p"],
        "values_log_odds": mean["l"],
        "without": np.stack([value(full ^ b) for b in single], axis=1),
        "alone": np.stack([value(b) for b in single], axis=1),
        "standard_error": se("p"),
        "standard_error_log_odds": se("l"),
    }
    return out, len(needed), len(perms)


def shapley_values(
    proba_of: CoalitionProba,
    present: np.ndarray,
    inputs: Sequence[str],
    classes: Sequence[Any],
    *,
    method: str = "auto",
    n_permutations: int = DEFAULT_PERMUTATIONS,
    interactions: bool = True,
    seed: int = 0,
    index: Any = None,
) -> ShapleyValues:
    """Modality Shapley values of a model given by its coalition predictions.

    Parameters
    ----------
    proba_of : callable
        ``proba_of(coalitions)`` maps a (C, M) boolean array of coalitions (inputs left present, columns
        in ``inputs`` order) to the (C, N, K) predicted probabilities of the N rows.
    present : ndarray of bool, shape (N, M)
        Which inputs each row has (an absent input gets phi = 0 exactly).
    inputs : sequence of str
        The M inputs.
    classes : sequence
        The K class labels.
    method : {"auto", "exact", "permutation"}, default="auto"
        ``auto`` is exact up to :data:`MAX_EXACT_INPUTS` inputs and sampled beyond.
    n_permutations : int, default=64
        The sampling budget: permutations of the inputs (antithetic pairs; rounded up to even). The
        coalitions evaluated are at most ``n_permutations * (M - 1) + 2M + 2``.
    interactions : bool, default=True
        Also compute the pairwise interaction index (exact values only).
    seed : int, default=0
        Seed of the sampled permutations.

    Returns
    -------
    ShapleyValues
    """
    present = np.asarray(present, dtype=bool)
    m = len(inputs)
    if present.ndim != 2 or present.shape[1] != m:
        raise ValueError(f"present has shape {present.shape}; expected (n_rows, {m})")
    if method not in ("auto", "exact", "permutation"):
        raise OptionError(f"method must be 'auto', 'exact' or 'permutation', got {method!r}")
    if not isinstance(n_permutations, int) or n_permutations < 2:
        raise OptionError(f"n_permutations must be an integer >= 2, got {n_permutations!r}")
    exact = method == "exact" or (method == "auto" and m <= MAX_EXACT_INPUTS)
    common = {"inputs": list(inputs), "classes": np.asarray(classes), "present": present, "index": index}
    if exact:
        arrays, n_coalitions = _exact(proba_of, present, interactions)
        return ShapleyValues(**common, **arrays, method="exact", n_coalitions=n_coalitions)
    arrays, n_coalitions, n_perm = _sampled(proba_of, present, n_permutations, seed)
    return ShapleyValues(
        **common, **arrays, method="permutation", n_coalitions=n_coalitions, n_permutations=n_perm
    )
