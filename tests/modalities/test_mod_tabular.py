"""Tests for modalfuse.modalities.tabular (pandas 3: string dtype, copy-on-write)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modalfuse._errors import NotFittedError, SchemaError
from modalfuse.modalities import TabularPreprocessor


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20.0, np.nan, 40.0, 100.0, 30.0],
            "income": [1.0, 2.0, 3.0, 4.0, 5.0],
            "colour": ["red", "blue", None, "red", "green"],
            "size": ["S", "M", "M", "L", "S"],
        }
    )


def test_imputation_and_indicator(frame: pd.DataFrame) -> None:
    prep = TabularPreprocessor(numeric=["age", "income"], categorical=[]).fit(frame)
    assert prep.medians_["age"] == 35.0  # median of 20, 40, 100, 30
    assert prep.indicator_columns_ == ["age"]  # income had no missing value
    assert prep.feature_names_ == ["age", "income", "age__missing"]
    out = prep.transform(frame)
    assert out.shape == (5, 3)
    assert out.dtype == np.float32
    imputed = np.array([20.0, 35.0, 40.0, 100.0, 30.0])
    np.testing.assert_allclose(out[:, 0], (imputed - imputed.mean()) / imputed.std(), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 2], [0, 1, 0, 0, 0])
    assert prep.means_["age"] == pytest.approx(45.0)


def test_scaling_on_fit_data(frame: pd.DataFrame) -> None:
    prep = TabularPreprocessor(numeric=["age", "income"], categorical=[]).fit(frame)
    out = prep.transform(frame)[:, :2]
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-6)
    new = prep.transform(pd.DataFrame({"age": [45.0], "income": [3.0]}))
    np.testing.assert_allclose(new, [[0.0, 0.0, 0.0]], atol=1e-6)


def test_constant_column_has_unit_std() -> None:
    df = pd.DataFrame({"c": [7.0, 7.0, 7.0]})
    prep = TabularPreprocessor(numeric=["c"], categorical=[]).fit(df)
    assert prep.stds_["c"] == 1.0
    np.testing.assert_allclose(prep.transform(pd.DataFrame({"c": [9.0]})), [[2.0]])


def test_categories_unseen_and_missing(frame: pd.DataFrame) -> None:
    prep = TabularPreprocessor(numeric=[], categorical=["colour", "size"]).fit(frame)
    # most frequent first, ties alphabetical
    assert prep.categories_ == {"colour": ["red", "blue", "green"], "size": ["M", "S", "L"]}
    assert prep.cardinalities_ == [5, 5]
    new = pd.DataFrame({"colour": ["green", "purple", None, ""], "size": ["L", "XL", pd.NA, "S"]})
    idx = prep.category_indices(new)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, [[4, 4], [1, 1], [0, 0], [0, 3]])
    out = prep.transform(new)
    names = prep.feature_names_
    assert names[:5] == ["colour=red", "colour=blue", "colour=green", "colour=<other>", "colour=<missing>"]
    assert out.shape == (4, 10)
    np.testing.assert_array_equal(out.sum(axis=1), [2, 2, 2, 2])
    row = dict(zip(names, out[1], strict=True))
    assert row["colour=<other>"] == 1.0 and row["size=<other>"] == 1.0
    row = dict(zip(names, out[2], strict=True))
    assert row["colour=<missing>"] == 1.0 and row["size=<missing>"] == 1.0


def test_max_categories_folds_rare_into_other() -> None:
    df = pd.DataFrame({"c": ["b", "a", "c", "a", "b", "d"]})
    prep = TabularPreprocessor(numeric=[], categorical=["c"], max_categories=2).fit(df)
    assert prep.categories_["c"] == ["a", "b"]
    np.testing.assert_array_equal(prep.category_indices(df)[:, 0], [3, 2, 1, 2, 3, 1])


def test_numeric_like_categories_are_one() -> None:
    fit = pd.DataFrame({"zip": [1, 2, 2]})
    prep = TabularPreprocessor(numeric=[], categorical=["zip"]).fit(fit)
    assert prep.categories_["zip"] == ["2", "1"]
    new = pd.DataFrame({"zip": [2.0, np.nan, 1.0]})
    np.testing.assert_array_equal(prep.category_indices(new)[:, 0], [2, 0, 3])


def test_string_numerics() -> None:
    df = pd.DataFrame({"x": ["3.5", " 1.5 ", "abc", None, "2"], "y": ["1", "2", "3", "4", "5"]})
    assert pd.api.types.is_string_dtype(df["x"].dtype)
    prep = TabularPreprocessor(numeric=["x", "y"], categorical=[]).fit(df)
    assert prep.medians_["x"] == 2.0  # median of 3.5, 1.5, 2; "abc" and None are missing
    assert prep.indicator_columns_ == ["x"]
    out = prep.transform(df)
    np.testing.assert_array_equal(out[:, 2], [0, 0, 1, 1, 0])
    imputed = np.array([3.5, 1.5, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(out[:, 0], (imputed - imputed.mean()) / imputed.std(), rtol=1e-6)
    inf = prep.transform(pd.DataFrame({"x": [np.inf], "y": [3]}))
    assert inf[0, 2] == 1.0  # infinity counts as missing


def test_input_frame_not_modified(frame: pd.DataFrame) -> None:
    before = frame.copy()
    prep = TabularPreprocessor(numeric=["age"], categorical=["colour"])
    prep.fit(frame).transform(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_json_round_trip(frame: pd.DataFrame) -> None:
    prep = TabularPreprocessor(
        numeric=["age", "income"], categorical=["colour", "size"], max_categories=2
    ).fit(frame)
    state = json.loads(json.dumps(prep.to_dict()))
    clone = TabularPreprocessor.from_dict(state)
    new = pd.DataFrame(
        {"age": [np.nan, 55.0], "income": ["7", "x"], "colour": ["green", "red"], "size": ["XXL", None]}
    )
    np.testing.assert_array_equal(clone.transform(new), prep.transform(new))
    np.testing.assert_array_equal(clone.category_indices(new), prep.category_indices(new))
    assert clone.feature_names_ == prep.feature_names_
    assert clone.cardinalities_ == prep.cardinalities_


def test_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        TabularPreprocessor(numeric=["age"], categorical=[]).transform(frame)
    with pytest.raises(SchemaError, match="nope"):
        TabularPreprocessor(numeric=["nope"], categorical=[]).fit(frame)
    with pytest.raises(SchemaError, match="both"):
        TabularPreprocessor(numeric=["age"], categorical=["age"]).fit(frame)
    prep = TabularPreprocessor(numeric=["age"], categorical=["colour"]).fit(frame)
    with pytest.raises(SchemaError, match="colour"):
        prep.transform(frame.drop(columns=["colour"]))


def test_huge_values_never_overflow() -> None:
    """Values near float64's limit, at fit or at transform time, give finite scaled values."""
    import warnings

    from modalfuse.modalities.tabular import Z_CLIP

    train = pd.DataFrame({"a": [1e308, 1e308, -1.7e308, 2.0], "c": [5.0] * 4, "b": [1.0, 2.0, 3.0, 4.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning either
        prep = TabularPreprocessor(numeric=["a", "c", "b"]).fit(train)
        out = prep.transform(train)
        later = prep.transform(pd.DataFrame({"a": [1e300], "c": [1e308], "b": [-1e200]}))
    assert np.isfinite(prep.means_["a"]) and np.isfinite(prep.stds_["a"]) and np.isfinite(prep.medians_["a"])
    assert np.isfinite(out).all() and np.isfinite(later).all()
    np.testing.assert_allclose(out[:, 0].mean(), 0.0, atol=1e-6)  # still standardised
    np.testing.assert_allclose(out[:, 2], (train["b"] - 2.5) / train["b"].std(ddof=0), rtol=1e-6)
    assert out[:, 1].tolist() == [0.0] * 4  # constant column: std 1, centred
    assert later[0, 1] == Z_CLIP and later[0, 2] == -Z_CLIP  # clipped, not infinite
