"""Per-row quality scores of every input, and their scaling for fusion.

Each input gets a few scores per row, computed from the raw decoded cells (before any normalisation):

============  ==========================================================================================
modality      scores (see the functions named)
============  ==========================================================================================
audio         ``snr_db``, ``clipping``, ``silence`` (:func:`modalfuse.modalities.audio.audio_quality_scores`)
image         ``sharpness``, ``contrast``, ``exposure`` (:func:`modalfuse.modalities.image.image_quality_scores`)
text          ``length``, ``unknown`` (:func:`modalfuse.modalities.text.text_quality_scores`)
tabular       ``missing``: the share of the input's columns missing in the row
============  ==========================================================================================

Rows where the input is missing score NaN. The scores themselves learn nothing from data, except the text
``unknown`` share, which needs a vocabulary: a model's (fitted on its training rows) at fit and predict
time, or, in :func:`quality_scores` without one, a vocabulary fitted on the rows scored (what a model fitted
on them would count as unknown). For fusion, :class:`QualityScaler` standardises the scores with means and
standard deviations fitted on the training rows only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._cache import active_cache, content_key
from modalfuse._errors import DecodeError

__all__ = ["QUALITY_SCORES", "QualityScaler", "input_quality", "quality_scores"]

#: The score names of each input modality, in column order.
QUALITY_SCORES: dict[str, tuple[str, ...]] = {
    "audio": ("snr_db", "clipping", "silence"),
    "image": ("sharpness", "contrast", "exposure"),
    "text": ("length", "unknown"),
    "tabular": ("missing",),
}


def _media_scores(value: Any, modality: str) -> tuple[float, ...] | None:
    """The scores of one image or audio cell (cached by content); None when it cannot be decoded."""
    from modalfuse.data._media import decode_media

    def compute() -> tuple[float, ...] | None:
        try:
            decoded = decode_media(value, modality)
        except DecodeError:
            return None
        if modality == "audio":
            from modalfuse.modalities.audio import audio_quality_scores

            scores = audio_quality_scores(*decoded)
        else:
            from modalfuse.modalities.image import image_quality_scores

            scores = image_quality_scores(decoded)
        return tuple(scores[n] for n in QUALITY_SCORES[modality])

    return active_cache().get_or_compute(("quality", modality, content_key(value)), compute)


def _text_vocabulary(texts: list[Any]) -> Any:
    from modalfuse.modalities.text import Vocabulary

    return Vocabulary(min_freq=2).fit(texts)


def input_quality(table: Any, name: str, *, vocabulary: Any = None) -> np.ndarray:
    """The quality scores of input ``name`` of ``table``: float64 (n_rows, n_scores), NaN where missing.

    Parameters
    ----------
    table : MultimodalTable
    name : str
        An input of ``table.inputs``.
    vocabulary : Vocabulary, optional
        For a text input: the vocabulary that decides which tokens are unknown (default: one fitted on
        this input's present rows, keeping tokens seen at least twice).
    """
    modality, columns = table.inputs[name]
    mask = table.mask(name)
    out = np.full((len(table), len(QUALITY_SCORES[modality])), np.nan)
    if modality == "tabular":
        present = np.stack([table.present[c] for c in columns], axis=1)
        out[mask, 0] = 1.0 - present[mask].mean(axis=1)
        return out
    values = table.frame[columns[0]].to_numpy(dtype=object)
    if modality == "text":
        from modalfuse.modalities.text import text_quality_scores

        vocab = vocabulary if vocabulary is not None else _text_vocabulary(list(values[mask]))
        for i in np.flatnonzero(mask):
            scores = text_quality_scores(values[i], vocab)
            out[i] = [scores[n] for n in QUALITY_SCORES["text"]]
        return out
    for i in np.flatnonzero(mask):
        scores = _media_scores(values[i], modality)
        if scores is not None:
            out[i] = scores
    return out


def quality_scores(table: Any, inputs: list[str] | None = None) -> pd.DataFrame:
    """Every input's per-row quality scores as a table: one column ``"<input>.<score>"`` per score.

    Parameters
    ----------
    table : MultimodalTable
    inputs : list of str, optional
        The inputs to score (default: all).

    Returns
    -------
    pandas.DataFrame of shape (n_rows, n_scores in all)
        Index: the table's ``row_ids``; NaN where the input is missing or its cell cannot be decoded.
    """
    columns: dict[str, np.ndarray] = {}
    for name in table.inputs if inputs is None else inputs:
        modality = table.inputs[name][0]
        scores = input_quality(table, name)
        for j, score in enumerate(QUALITY_SCORES[modality]):
            columns[f"{name}.{score}"] = scores[:, j]
    return pd.DataFrame(columns, index=pd.Index(table.row_ids, name="row"))


def summarize_quality(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per input and score: rows scored, mean, standard deviation, min, 10th, 50th, 90th percentile, max."""
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for column in frame.columns:
        name, _, score = column.rpartition(".")
        values = frame[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        stats: dict[str, float | int | None] = {"rows": len(values)}
        if len(values):
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            stats.update(
                mean=float(values.mean()),
                std=float(values.std()),
                min=float(values.min()),
                p10=float(p10),
                median=float(p50),
                p90=float(p90),
                max=float(values.max()),
            )
        out.setdefault(name, {})[score] = stats
    return out


class QualityScaler:
    """Standardises quality scores with per-score means and standard deviations of training rows.

    ``fit(quality)`` takes ``{input: (n_rows, n_scores)}`` (NaN where missing) and keeps the mean and
    standard deviation of each score over the rows where it is finite; ``transform`` gives
    ``(q - mean) / std`` clipped to [-5, 5] (by default), 0 where a score is NaN (a missing input, or a constant score
    with no spread: std 0 counts as 1). JSON state: :attr:`state`.
    """

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = dict(state or {})

    def fit(self, quality: Mapping[str, np.ndarray]) -> QualityScaler:
        self.state = {}
        for name, q in quality.items():
            q = np.asarray(q, dtype=np.float64)
            means, stds = [], []
            for j in range(q.shape[1]):
                col = q[:, j][np.isfinite(q[:, j])]
                means.append(float(col.mean()) if len(col) else 0.0)
                std = float(col.std()) if len(col) > 1 else 0.0
                stds.append(std if std > 1e-9 else 1.0)
            self.state[name] = {"mean": means, "std": stds}
        return self

    def transform(self, name: str, q: np.ndarray, *, clip: float = 5.0) -> np.ndarray:
        """Standardised scores (n_rows, n_scores) float32 of input ``name``, clipped to [-clip, clip]."""
        st = self.state[name]
        z = (np.asarray(q, dtype=np.float64) - np.asarray(st["mean"])) / np.asarray(st["std"])
        return np.clip(np.nan_to_num(z, nan=0.0), -clip, clip).astype(np.float32)
