"""Cross-modal retrieval measured on a labelled table (a fitted model with a shared space)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modalfuse._errors import ModalfuseError, OptionError, SchemaError

__all__ = ["retrieval_recall"]


def retrieval_recall(
    clf: Any,
    table: Any,
    *,
    from_modality: str,
    to_modality: str,
    ks: Sequence[int] = (1, 5, 10),
    same_row: bool = True,
) -> dict[str, float]:
    """Recall@k of cross-modal retrieval on a labelled table, the gallery being the table itself.

    For each row with ``from_modality`` present, the ``k`` rows whose ``to_modality`` is nearest are
    retrieved. A *label hit* is a retrieved row with the query's label among the first ``k``; a *row hit*
    is the query's own row (its true pair) among them.

    Parameters
    ----------
    clf : MultimodalClassifier
        Fitted with a strategy that has a ``retrieve`` method (``shared`` or ``cca``).
    table : MultimodalTable
        Labelled rows: queries and gallery.
    from_modality, to_modality : str
        Input names of the queries and of the gallery.
    ks : sequence of int, default=(1, 5, 10)
    same_row : bool, default=True
        Whether a query's own row may be retrieved. With ``False`` it is left out of its results (for
        ``from_modality == to_modality``, or to measure label hits without the true pair); row recall is
        then not reported.

    Returns
    -------
    dict of str to float
        ``recall@K_label`` and (with ``same_row``) ``recall@K_row`` per ``K``; ``chance@1_label``, the
        label recall@1 of a random gallery row (sum over classes of the query share times the gallery
        share: the sum of squared class shares when they agree); ``n_queries``; ``n_gallery``.
        Label recall counts the queries with ``from_modality`` present; row recall those whose own row
        also has ``to_modality``.
    """
    if getattr(table, "y", None) is None:
        raise SchemaError("retrieval_recall needs labels: read the table with label=...")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise OptionError(f"ks must be positive integers, got {ks}")
    data = clf.transform_inputs(table)  # raises NotFittedError first when clf is not fitted
    retrieve = getattr(clf.fusion_, "retrieve", None)
    if retrieve is None:
        raise ModalfuseError(f"fusion {clf.fusion!r} has no shared space to retrieve from")
    for name in (from_modality, to_modality):
        if name not in clf.inputs_:
            raise SchemaError(f"unknown input {name!r}; the model's inputs are {list(clf.inputs_)}")
    q_mask = np.asarray(data[from_modality][1], bool)
    g_mask = np.asarray(data[to_modality][1], bool)
    extra = 0 if same_row else 1
    idx, _ = retrieve(data, data, from_input=from_modality, to_input=to_modality, k=ks[-1] + extra)
    if not same_row:
        idx = _without_own_row(idx, ks[-1])
    y = np.asarray(table.y)
    queries = np.flatnonzero(q_mask)
    labels_hit = (idx[queries] >= 0) & (y[np.maximum(idx[queries], 0)] == y[queries, None])
    own_row = queries[g_mask[queries]]
    rows_hit = idx[own_row] == own_row[:, None]
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}_label"] = float(labels_hit[:, :k].any(1).mean()) if len(queries) else float("nan")
        if same_row:
            out[f"recall@{k}_row"] = float(rows_hit[:, :k].any(1).mean()) if len(own_row) else float("nan")
    classes = np.unique(y)
    q_share = np.array([np.mean(y[queries] == c) if len(queries) else 0.0 for c in classes])
    g_share = np.array([np.mean(y[g_mask] == c) if g_mask.any() else 0.0 for c in classes])
    out["chance@1_label"] = float(q_share @ g_share)
    out["n_queries"] = float(len(queries))
    out["n_gallery"] = float(g_mask.sum())
    return out


def _without_own_row(idx: np.ndarray, k: int) -> np.ndarray:
    """``idx`` (n_queries, k + 1) with each query's own row dropped, keeping the first ``k`` of the others."""
    if not len(idx):
        return idx[:, :-1]
    keep = idx != np.arange(len(idx))[:, None]
    return np.stack([r[kp][:k] for r, kp in zip(idx, keep, strict=True)])
