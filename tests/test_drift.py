"""Predict-time drift: what differs between the rows to predict and the training rows is reported."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modalfuse as mf
from modalfuse._drift import column_kind

CLASSICAL = {"image": "pixels", "audio": "mfcc", "text": "tfidf", "tabular": "tabular-scaled"}


@pytest.fixture(scope="module")
def clf(table) -> mf.MultimodalClassifier:
    """late:mean over classical per-input models (no networks: quick)."""
    return mf.MultimodalClassifier(fusion="late:mean", encoders=CLASSICAL, inner_folds=2, n_threads=1).fit(
        table
    )


@pytest.fixture
def X(table) -> pd.DataFrame:
    """The training rows as a DataFrame with absolute media paths, without the label."""
    return table.frame.copy()


def _predict(clf: mf.MultimodalClassifier, X: pd.DataFrame, **kwargs) -> tuple[pd.DataFrame, list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = clf.predict_frame(X, **kwargs)
    return out, [w for w in caught if issubclass(w.category, mf.InputDriftWarning)]


def test_rows_with_none_of_the_models_inputs_are_refused(clf, table) -> None:
    with pytest.raises(
        mf.SchemaError, match=r"none of the model's input columns .*their columns are \['foo'\]"
    ):
        clf.predict_proba(pd.DataFrame({"foo": [1, 2]}))  # used to return the class prior silently
    other = mf.read_table(pd.DataFrame({"foo": ["x y", "z w"], "bar": [1.0, 2.0]}))
    with pytest.raises(mf.SchemaError, match="none of the model's input columns"):
        clf.predict(other)


def test_the_training_rows_show_no_drift(clf, X) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", mf.InputDriftWarning)
        out = clf.predict_frame(X)
        clf.predict_proba(X)
    report = out.attrs["drift"]
    assert isinstance(report, mf.DriftReport) and not report and not report.has_drift
    assert report.missing_columns == report.extra_columns == [] and report.unseen_categories == {}
    assert {p.reason for p in report.problems} == {"empty cell"}  # the fixture's missing cells
    assert report.summary() == "no input drift in 72 row(s)"


def test_drift_is_listed_per_column_and_warned_once(clf, X) -> None:
    X = X.drop(columns=["audio"])
    X["colour"] = X["colour"].astype(object)
    X.loc[[0, 3, 6], "colour"] = "purple"
    X.loc[9, "colour"] = "teal"
    X["num"] = X["num"].astype(object)
    X.loc[5, "num"] = "twelve"
    X["text"] = np.arange(len(X), dtype=float)  # the review text replaced by numbers
    X["shop"] = "north"
    out, caught = _predict(clf, X)
    report = out.attrs["drift"]
    assert report.missing_columns == ["audio"]
    assert report.extra_columns == ["shop"]
    assert report.unseen_categories == {"colour": {"purple": 3, "teal": 1}}
    assert report.type_changes == {"text": {"fitted": "text", "now": "numeric"}}
    assert [(p.row, p.column, p.reason) for p in report.unusable_cells] == [
        (5, "num", "not a number: 'twelve'")
    ]
    assert len(caught) == 1 and str(caught[0].message) == report.summary()
    summary = report.summary()
    for part in (
        "'audio'",
        "'colour': 2 value(s)",
        "in 4 row(s)",
        "'text' was text",
        "now numeric",
        "'shop'",
    ):
        assert part in summary, part
    # the whole list, one finding a row
    listed = report.to_frame()
    assert listed.loc[listed["kind"] == "unseen category", ["value", "count"]].values.tolist() == [
        ["purple", 3],
        ["teal", 1],
    ]
    assert report.to_dict()["has_drift"] is True
    # an absent column is the same as a column missing in every row
    with pytest.warns(mf.InputDriftWarning, match="no usable value in any row: 'audio'"):
        same = clf.predict_proba(X.assign(audio=None).drop(columns=["shop"]))
    np.testing.assert_allclose(out[["p_a", "p_b", "p_c"]].to_numpy(), same, atol=1e-9)


def test_predict_frame_keeps_the_order_the_index_and_an_id(clf, X) -> None:
    X = X.iloc[::-1].copy()
    X.index = [f"r{i}" for i in range(len(X))]
    X.insert(0, "customer", [f"c{i:02d}" for i in range(len(X))])
    out, caught = _predict(clf, X, id_column="customer")
    assert not caught  # the id column is neither an input nor an extra column
    assert list(out.columns) == ["customer", "prediction", "p_a", "p_b", "p_c"]
    assert list(out.index) == list(X.index) and out["customer"].tolist() == X["customer"].tolist()
    proba = clf.predict_proba(X.drop(columns="customer"))
    np.testing.assert_allclose(out[["p_a", "p_b", "p_c"]].to_numpy(), proba)
    assert (out["prediction"] == clf.classes_[proba.argmax(1)]).all()
    plain = clf.predict_frame(X.drop(columns="customer"))
    assert plain["row"].tolist() == list(range(len(X)))  # positions in X
    with pytest.raises(mf.SchemaError, match="id column 'nope'"):
        clf.predict_frame(X, id_column="nope")


def test_an_undecodable_image_is_listed(clf, X, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    X = X.copy()
    X.loc[0, "image"] = str(bad)
    out, caught = _predict(clf, X)
    report = out.attrs["drift"]
    assert [(p.row, p.column, p.reason) for p in report.unusable_cells] == [
        (0, "image", "cannot decode this image")
    ]
    assert len(caught) == 1 and "1 unusable cell(s)" in str(caught[0].message)


def test_column_kind() -> None:
    assert column_kind(["1", " 2.5", None, 3]) == "numeric"
    assert column_kind(["a.png", "b.PNG", "c.jpg", "x"]) == "image"
    assert column_kind(["a.wav", "b.flac"]) == "audio"
    assert column_kind([np.zeros((2, 2))]) == "image"
    assert column_kind([(np.zeros(4), 8000)]) == "audio"
    assert column_kind(["red", "green", "1"]) == "text"
    assert column_kind([True, False]) == "text"
    assert column_kind([None, float("nan"), ""]) is None


def test_column_kind_of_file_bytes_comes_from_their_magic_numbers(table_dir: Path) -> None:
    png = (table_dir / "img_000.png").read_bytes()
    wav = (table_dir / "snd_000.wav").read_bytes()
    assert column_kind([png, png, None]) == "image"
    assert column_kind([wav, {"bytes": wav, "path": None}]) == "audio"
    assert column_kind([{"array": np.zeros(4), "sampling_rate": 8000}]) == "audio"
    assert column_kind([b"not a file", b"nor this"]) is None


def test_media_given_as_bytes_is_no_type_change(clf, X) -> None:
    """Image and audio cells given as the bytes of their files (as a server receives them) are what the
    model was fitted on: no type change is reported, and the predictions are those of the files."""
    as_bytes = X.copy()
    for col in ("image", "audio"):
        as_bytes[col] = [None if v is None else Path(v).read_bytes() for v in X[col]]
    out, caught = _predict(clf, as_bytes)
    assert out.attrs["drift"].type_changes == {}
    assert caught == []
    np.testing.assert_allclose(out.filter(like="p_").to_numpy(), clf.predict_proba(X), atol=1e-9)


def test_column_kind_of_integers_beyond_float_range() -> None:
    """An integer too large for a float (a JSON request can hold one) is a number, not a crash."""
    assert column_kind([10**400, 5, -(10**400)]) == "numeric"
    assert column_kind([10**400, "red", "blue"]) == "text"
