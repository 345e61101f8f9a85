"""The real clothing-reviews table (text + tabular, binary label): schema, missing masks, a small late fusion.

Reads ``../shared/datasets/clothing_reviews/val.csv`` (2,349 rows) beside the repository and skips where it
is absent. The data never enter the repository.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CSV = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "clothing_reviews" / "val.csv"
LABEL = "Recommended IND"
TEXT = ("Title", "Review Text")
CATEGORICAL = ("Division Name", "Department Name", "Class Name")
NUMERIC = ("Age", "Rating", "Positive Feedback Count")

pytestmark = pytest.mark.skipif(
    not CSV.is_file(),
    reason=f"clothing_reviews data not found at {CSV} (needs ../shared/datasets/clothing_reviews)",
)


def _read(**modalities: str):  # -> MultimodalTable
    import modalfuse as mf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes stay in table.notes, which the tests check
        return mf.read_table(CSV, label=LABEL, modalities={"Clothing ID": "ignore", **modalities})


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(CSV)


@pytest.fixture(scope="module")
def table():  # -> MultimodalTable
    return _read()


def _empty(series: pd.Series) -> np.ndarray:
    """NaN or blank: what the library counts as an empty cell."""
    return (series.isna() | series.astype(str).str.strip().eq("")).to_numpy()


def test_inferred_schema(raw: pd.DataFrame, table) -> None:
    import modalfuse as mf

    # The saved index ("Unnamed: 0") and the identifier "Clothing ID" (420 items over 2,349 reviews) are
    # left out without being declared, the identifier with a note.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        undeclared = mf.read_table(CSV, label=LABEL)
    assert "Unnamed: 0" not in undeclared.schema.columns
    assert "Clothing ID" not in undeclared.schema.columns
    assert undeclared.schema.columns == table.schema.columns
    assert [n for n in undeclared.notes if "Clothing ID" in n] == [
        "column 'Clothing ID' looks like an identifier (420 distinct codes in 2349 rows) and is not used as a "
        "feature; declare it in modalities= to use it (e.g. {'Clothing ID': 'categorical'})"
    ]

    assert set(raw.columns) - set(table.schema.columns) == {"Unnamed: 0", "Clothing ID", LABEL}
    assert {c: table.schema.columns[c] for c in TEXT} == dict.fromkeys(TEXT, "text")
    assert {c: table.schema.columns[c] for c in CATEGORICAL} == dict.fromkeys(CATEGORICAL, "categorical")
    assert {c: table.schema.columns[c] for c in NUMERIC} == dict.fromkeys(NUMERIC, "numeric")
    inputs = table.inputs
    assert set(inputs) == {"Title", "Review Text", "tabular"}
    assert inputs["tabular"][0] == "tabular"
    assert set(inputs["tabular"][1]) == set(CATEGORICAL) | set(NUMERIC)
    assert table.notes == []

    assert len(table) == len(raw) == 2349
    assert np.array_equal(table.y, raw[LABEL].to_numpy())
    assert Counter(table.y.tolist()) == {1: 1924, 0: 425}

    without_rating = _read(Rating="ignore")
    assert "Rating" not in without_rating.schema.columns
    assert set(without_rating.inputs["tabular"][1]) == set(CATEGORICAL) | {"Age", "Positive Feedback Count"}


def test_empty_cells_are_masked_with_exact_counts(raw: pd.DataFrame, table) -> None:
    empty = {c: _empty(raw[c]) for c in (*TEXT, *CATEGORICAL, *NUMERIC)}
    # measured with pandas on this file: 395 empty titles, 78 empty reviews (every one of those rows also
    # lacks its title), one row (339) without division, department and class; no empty numeric cell
    counts = {c: int(m.sum()) for c, m in empty.items()}
    assert counts == {
        "Title": 395,
        "Review Text": 78,
        "Division Name": 1,
        "Department Name": 1,
        "Class Name": 1,
        "Age": 0,
        "Rating": 0,
        "Positive Feedback Count": 0,
    }
    assert int((empty["Title"] & empty["Review Text"]).sum()) == 78

    for col, m in empty.items():
        assert np.array_equal(~table.present[col], m), col
    problems = Counter((p.column, p.reason) for p in table.problems)
    assert problems == {(c, "empty cell"): n for c, n in counts.items() if n}
    assert (
        sorted(p.row for p in table.problems if p.column == "Title")
        == np.flatnonzero(empty["Title"]).tolist()
    )

    # per input: a text input is missing where its cell is; the tabular input is never wholly missing
    summary = table.missing_summary()
    assert summary["Title"]["missing"] == 395 and summary["Review Text"]["missing"] == 78
    assert summary["tabular"]["missing"] == 0
    assert all(table.frame[c][i] is None for c in TEXT for i in np.flatnonzero(empty[c]))


@pytest.mark.slow
def test_late_weighted_without_rating_beats_majority(table) -> None:
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    import modalfuse as mf
    from modalfuse.evaluate import classification_metrics

    no_rating = _read(Rating="ignore")
    train, held_out = train_test_split(
        np.arange(len(no_rating)), train_size=600, stratify=no_rating.y, random_state=0
    )
    clf = mf.MultimodalClassifier(
        fusion="late:weighted",
        encoders={"Title": "tfidf", "Review Text": "tfidf", "tabular": "tabular-scaled"},
        n_threads=1,
        inner_folds=2,
        seed=0,  # classical encoders: exact logistic regressions, no epochs
    )
    with threadpool_limits(1):  # tiny BLAS work; spinning threads only slow it down on a loaded machine
        clf.fit(no_rating.take(train))
        proba = clf.predict_proba(no_rating.take(held_out))
    y = no_rating.y[held_out]
    fused = classification_metrics(y, proba, clf.classes_)
    majority = classification_metrics(y, np.tile([0.0, 1.0], (len(y), 1)), clf.classes_)

    # Calibrated probabilities on an 82%-positive label: argmax leans to the majority, so the test asserts
    # what the model is fitted for, probability quality, not a threshold-dependent F1. Measured on this
    # split: log loss 0.364 against 0.472 for the class prior, ROC-AUC 0.88, PR-AUC 0.971 (chance 0.82),
    # macro-F1 0.494 (the majority predictor: 0.450).
    prior = np.tile([0.18, 0.82], (len(y), 1))
    assert fused["log_loss"] < classification_metrics(y, prior, clf.classes_)["log_loss"] - 0.05
    assert fused["roc_auc"] > 0.8
    assert fused["pr_auc_positive"] > 0.93
    assert majority["f1_macro"] == pytest.approx(0.450, abs=0.002)
    # without Rating the tabular columns carry almost nothing: the fitted weights lean on the texts
    weights = clf.fusion_.state["weights"]
    assert weights["Review Text"] > weights["tabular"]
