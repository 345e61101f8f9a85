"""Missing-modality policies on the embeddings of the per-input encoders: ``fill`` and ``generate``.

The strategies built on the cross-fitted per-input encoders (unimodal, late fusion and the joint heads)
handle a missing input natively by default (``missing="mask"``): late fusion combines the inputs present,
the joint heads see a presence mask. The two policies here instead give the missing input an embedding and
treat it as present:

- ``fill``: the input's mean embedding over training rows (one per inner fold's network);
- ``generate``: the input's embedding predicted from the embeddings of the inputs present in the row by a
  ridge regression (features: each other input's embedding, zeros where missing, and its presence
  indicator; the penalty chosen by generalised cross-validation), fitted on training rows where the input
  is present; a row with no other input present gets the fill.

Both are fitted per inner fold ``k`` on the embeddings, by fold ``k``'s networks, of fold ``k``'s held-out
training rows (all training rows when there is a single fold), so nothing is learned from a test row. The
``drop`` policy (train on complete rows only) is the estimator's (:class:`~modalfuse.MultimodalClassifier`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["EMBEDDING_POLICIES", "EmbeddingImputer"]

#: The policies applied to embeddings (``mask`` applies none).
EMBEDDING_POLICIES = ("fill", "generate")
_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
#: Prefix of the imputer's tensors among a strategy's (no input is named like this).
TENSOR_PREFIX = "__imputer__"


def _features(emb: Mapping[str, tuple[np.ndarray, np.ndarray]], others: list[str]) -> np.ndarray:
    """The regression features of a target input: each other input's embedding (zeros where it is
    missing) and its presence indicator, side by side."""
    parts = []
    for name in others:
        e, m = emb[name]
        parts += [np.where(m[:, None], e, 0.0), m[:, None].astype(np.float64)]
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))


class EmbeddingImputer:
    """The ``fill`` / ``generate`` models of every (inner fold, input), fitted on embeddings.

    Parameters
    ----------
    policy : {"fill", "generate"}

    Attributes
    ----------
    models_ : dict
        ``(fold, input) -> {"fill": (dim,), "coef": (n_features, dim) or None, "intercept": (dim,) or None,
        "others": [inputs]}``.
    """

    def __init__(self, policy: str) -> None:
        if policy not in EMBEDDING_POLICIES:
            raise ValueError(f"policy must be one of {EMBEDDING_POLICIES}, got {policy!r}")
        self.policy = policy
        self.models_: dict[tuple[int, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------------------------------- fitting
    def fit_fold(self, fold: int, emb: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Fit the models of inner fold ``fold`` from embeddings ``{input: (E, mask)}`` of its rows."""
        names = sorted(emb)
        for name in names:
            e, m = emb[name]
            if not m.any():
                continue
            model: dict[str, Any] = {"fill": e[m].mean(axis=0), "coef": None, "intercept": None, "others": []}
            others = [n for n in names if n != name]
            if self.policy == "generate" and others:
                self._fit_regression(model, emb, name, others)
            self.models_[(fold, name)] = model

    @staticmethod
    def _fit_regression(
        model: dict[str, Any], emb: Mapping[str, tuple[np.ndarray, np.ndarray]], name: str, others: list[str]
    ) -> None:
        from sklearn.linear_model import RidgeCV

        e, m = emb[name]
        X = _features(emb, others)
        rows = m & np.logical_or.reduce([emb[o][1] for o in others])
        if rows.sum() < 3:
            return
        reg = RidgeCV(alphas=_ALPHAS).fit(X[rows], e[rows])
        model.update(
            coef=np.asarray(reg.coef_, np.float64).T, intercept=np.asarray(reg.intercept_), others=others
        )

    # ------------------------------------------------------------------------------------------- applying
    def has(self, fold: int, name: str) -> bool:
        return (fold, name) in self.models_

    def impute(
        self, fold: int, emb: Mapping[str, tuple[np.ndarray, np.ndarray]]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``emb`` with every missing input's embedding imputed (fill or generated) and marked present,
        for the inputs fold ``fold`` has a model of."""
        out = {}
        for name, (e, m) in emb.items():
            model = self.models_.get((fold, name))
            if model is None or m.all():
                out[name] = (e, m)
                continue
            filled = np.array(e, dtype=np.float32, copy=True)
            missing = ~m
            filled[missing] = model["fill"]
            if model["coef"] is not None and all(o in emb for o in model["others"]):
                has_other = np.logical_or.reduce([emb[o][1] for o in model["others"]])
                rows = missing & has_other
                if rows.any():
                    X = _features(
                        {o: (emb[o][0][rows], emb[o][1][rows]) for o in model["others"]}, model["others"]
                    )
                    filled[rows] = X @ model["coef"] + model["intercept"]
            out[name] = (filled, np.ones_like(m))
        return out

    # ---------------------------------------------------------------------------------------------- saving
    @property
    def state(self) -> dict[str, Any]:
        """JSON-able description: policy and, per model, its fold, input and the inputs it regresses on."""
        return {
            "policy": self.policy,
            "models": [
                {"fold": f, "input": n, "others": list(m["others"]), "regression": m["coef"] is not None}
                for (f, n), m in sorted(self.models_.items())
            ],
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for (f, n), m in self.models_.items():
            base = f"{TENSOR_PREFIX}.{f}.{n}"
            out[f"{base}.fill"] = torch.as_tensor(np.asarray(m["fill"], np.float32))
            if m["coef"] is not None:
                out[f"{base}.coef"] = torch.as_tensor(np.asarray(m["coef"], np.float32))
                out[f"{base}.intercept"] = torch.as_tensor(np.asarray(m["intercept"], np.float32))
        return out

    @classmethod
    def from_saved(cls, state: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> EmbeddingImputer:
        """Rebuild from :attr:`state` and :meth:`tensors` (a ``KeyError`` when they disagree)."""
        imputer = cls(str(state["policy"]))
        for d in state["models"]:
            f, n = int(d["fold"]), str(d["input"])
            base = f"{TENSOR_PREFIX}.{f}.{n}"
            regression = bool(d["regression"])
            imputer.models_[(f, n)] = {
                "fill": tensors[f"{base}.fill"].numpy().astype(np.float64),
                "coef": tensors[f"{base}.coef"].numpy().astype(np.float64) if regression else None,
                "intercept": tensors[f"{base}.intercept"].numpy().astype(np.float64) if regression else None,
                "others": [str(o) for o in d["others"]] if regression else [],
            }
        return imputer
