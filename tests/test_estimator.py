"""MultimodalClassifier: scikit-learn contract, persistence, seeds, leak-free preprocessing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate

import modalfuse as mf

FAST: dict[str, Any] = {"epochs": 3, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}


@pytest.fixture(scope="module")
def late(table) -> mf.MultimodalClassifier:
    return mf.MultimodalClassifier(fusion="late:stacking", seed=0, **FAST).fit(table)


@pytest.fixture(scope="module")
def early(table) -> mf.MultimodalClassifier:
    return mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(table)


def _xy(table) -> tuple[pd.DataFrame, np.ndarray]:
    """The table as a plain DataFrame (absolute file paths) and its labels."""
    return table.frame.copy(), np.asarray(table.y)


# -------------------------------------------------------------------------------------- sklearn contract
def test_hyperparameters_are_keyword_only_and_stored_unchanged() -> None:
    encoders = {"image": "hog"}
    clf = mf.MultimodalClassifier(fusion="early", encoders=encoders, epochs=7, min_steps=20, seed=3)
    assert clf.encoders is encoders  # stored as given, not copied or validated in __init__
    assert (clf.fusion, clf.epochs, clf.seed, clf.batch_size) == ("early", 7, 3, 64)
    with pytest.raises(TypeError):
        mf.MultimodalClassifier("early")  # type: ignore[misc]
    params = clf.get_params()
    assert params["encoders"] is encoders and params["fusion"] == "early"
    assert set(params) >= {
        "fusion",
        "encoders",
        "modalities",
        "preprocess",
        "epochs",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "modality_dropout",
        "augment",
        "inner_folds",
        "hidden",
        "seed",
        "device",
        "n_threads",
        "verbose",
    }
    assert clf.set_params(epochs=2, fusion="late:mean") is clf
    assert (clf.epochs, clf.fusion) == (2, "late:mean")
    with pytest.raises(ValueError):
        clf.set_params(no_such_param=1)


def test_clone_gives_an_unfitted_copy_with_equal_params(late) -> None:
    copy = clone(late)
    assert copy.get_params() == late.get_params()
    assert not hasattr(copy, "fusion_") and not hasattr(copy, "classes_")
    with pytest.raises(mf.NotFittedError, match="not fitted"):
        copy.predict(pd.DataFrame({"text": ["apple"]}))
    assert issubclass(mf.NotFittedError, AttributeError)  # what sklearn's check_is_fitted expects


def test_fit_returns_self_and_predicts_labels(table) -> None:
    clf = mf.MultimodalClassifier(fusion="early", seed=0, **FAST)
    assert clf.fit(table) is clf
    assert list(clf.classes_) == ["a", "b", "c"]
    pred = clf.predict(table)
    assert pred.shape == (len(table),) and set(pred) <= {"a", "b", "c"}
    proba = clf.predict_proba(table)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(1)])
    assert clf.score(table) == pytest.approx(np.mean(pred == table.y))
    assert clf.score(table) > 0.8
    X, y = _xy(table)
    assert clf.score(X, y) == pytest.approx(clf.score(table))


def test_fit_on_a_dataframe_with_y(table) -> None:
    X, y = _xy(table)
    clf = mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(X, y)
    assert clf.schema_.columns == table.schema.columns
    np.testing.assert_allclose(
        clf.predict_proba(X),
        mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(table).predict_proba(table),
        atol=1e-6,
    )
    with pytest.raises(mf.SchemaError, match="no labels"):
        mf.MultimodalClassifier(fusion="early").fit(X)
    with pytest.raises(TypeError, match="DataFrame"):
        mf.MultimodalClassifier(fusion="early").fit(X.to_numpy(), y)


def test_works_inside_sklearn_cross_validate(table) -> None:
    X, y = _xy(table)
    clf = mf.MultimodalClassifier(fusion="late:weighted", seed=0, **FAST)
    scores = cross_validate(clf, X, y, cv=3, error_score="raise")
    assert scores["test_score"].shape == (3,)
    assert scores["test_score"].mean() > 0.7


def test_works_inside_grid_search(table) -> None:
    X, y = _xy(table)
    X = X[["text", "num", "colour"]]
    grid = GridSearchCV(
        mf.MultimodalClassifier(fusion="early", seed=0, **FAST),
        {"hidden": [8, 32], "learning_rate": [3e-3]},
        cv=2,
        error_score="raise",
    ).fit(X, y)
    assert grid.best_params_["hidden"] in (8, 32)
    assert set(grid.best_estimator_.inputs_) == {"text", "tabular"}
    assert grid.score(X, y) > 0.7


# ---------------------------------------------------------------------------------------- missing inputs
def test_predict_conforms_new_rows_to_the_fitted_columns(early, table) -> None:
    X, _ = _xy(table)
    base = early.predict_proba(X)
    # extra columns are ignored, column order does not matter
    shuffled = X[list(reversed(X.columns))].assign(extra=np.arange(len(X)))
    np.testing.assert_allclose(early.predict_proba(shuffled), base, atol=1e-6)
    # a table read again with a different inferred schema is read with the fitted one
    few = X.iloc[:6].copy()
    few["y"] = table.y[:6]
    small = mf.read_table(few, label="y", modalities={"num": "categorical", "text": "categorical"})
    np.testing.assert_allclose(early.predict_proba(small), base[:6], atol=1e-6)


def test_unusable_media_in_predict_rows_count_as_missing(early, table, tmp_path: Path) -> None:
    X, _ = _xy(table)
    rows = X.iloc[:4].copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    rows["image"] = [str(bad), str(tmp_path / "gone.png"), None, None]
    expected = rows.copy()
    expected["image"] = None
    np.testing.assert_allclose(early.predict_proba(rows), early.predict_proba(expected), atol=1e-6)


# ----------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("which", ["late", "early"])
def test_save_load_roundtrip_without_pickle(request, table, tmp_path: Path, which: str) -> None:
    clf = request.getfixturevalue(which)
    path = clf.save(tmp_path / "model")
    assert sorted(os.listdir(path)) == ["model.json", "weights.safetensors"]
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folders left beside it
    doc = json.loads((path / "model.json").read_text())
    assert doc["format"] == "modalfuse-model" and doc["params"]["fusion"] == clf.fusion
    header_len = int.from_bytes((path / "weights.safetensors").read_bytes()[:8], "little")
    header = json.loads((path / "weights.safetensors").read_bytes()[8 : 8 + header_len])
    assert len(header) > 1  # tensors, in safetensors format (no pickle opcodes anywhere)
    loaded = mf.MultimodalClassifier.load(path)
    assert loaded.get_params() == clf.get_params()
    assert list(loaded.classes_) == list(clf.classes_)
    X, _ = _xy(table)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(table), clf.predict(table))
    e1, e2 = loaded.explain(table.take(np.arange(5))), clf.explain(table.take(np.arange(5)))
    pd.testing.assert_frame_equal(e1, e2, atol=1e-6)


def test_loading_does_not_unpickle(late, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import torch

    path = late.save(tmp_path / "m")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used while loading a model")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    loaded = mf.MultimodalClassifier.load(path)
    assert loaded.fusion == "late:stacking"


def test_integer_labels_survive_save_and_load(table, tmp_path: Path) -> None:
    X, y = _xy(table)
    X = X[["text", "num"]]
    y_int = np.array([{"a": 10, "b": 20, "c": 30}[v] for v in y])
    clf = mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(X, y_int)
    loaded = mf.MultimodalClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.classes_.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.score(X, y_int) == clf.score(X, y_int)


def test_a_failed_save_leaves_the_previous_model_intact(
    late, early, table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    path = tmp_path / "model"
    late.save(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        early.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folder left behind
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    X, _ = _xy(table)
    np.testing.assert_allclose(
        mf.MultimodalClassifier.load(path).predict_proba(X), late.predict_proba(X), atol=1e-6
    )
    monkeypatch.undo()
    early.save(path)  # overwriting a saved model works
    assert mf.MultimodalClassifier.load(path).fusion == "early"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_save_refuses_to_replace_a_folder_that_is_not_a_model(late, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(mf.ModalfuseError, match="refusing to overwrite"):
        late.save(folder)
    assert (folder / "notes.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert late.save(empty) == empty and (empty / "model.json").is_file()


def test_save_before_fit_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(mf.NotFittedError):
        mf.MultimodalClassifier().save(tmp_path / "m")


@pytest.mark.parametrize(
    "damage",
    [
        "garbage",
        "truncated",
        "not-an-object",
        "wrong-format",
        "missing-key",
        "bad-fusion",
        "no-json",
        "bad-weights",
        "no-weights",
        "binary",
    ],
)
def test_a_damaged_model_gives_a_clear_error(late, tmp_path: Path, damage: str) -> None:
    path = late.save(tmp_path / "m")
    mj, wt = path / "model.json", path / "weights.safetensors"
    doc = json.loads(mj.read_text())
    if damage == "garbage":
        mj.write_text("{this is not json")
    elif damage == "truncated":
        mj.write_text(mj.read_text()[: len(mj.read_text()) // 2])
    elif damage == "not-an-object":
        mj.write_text("[1, 2, 3]")
    elif damage == "wrong-format":
        mj.write_text(json.dumps({**doc, "format": "something-else"}))
    elif damage == "missing-key":
        del doc["preprocessors"]
        mj.write_text(json.dumps(doc))
    elif damage == "bad-fusion":
        doc["fusion"]["name"] = "no-such-fusion"
        mj.write_text(json.dumps(doc))
    elif damage == "no-json":
        mj.unlink()
    elif damage == "bad-weights":
        wt.write_bytes(b"\x00" * 5)
    elif damage == "no-weights":
        wt.unlink()
    elif damage == "binary":
        mj.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(mf.ModalfuseError, match=r"m\b"):
        mf.MultimodalClassifier.load(path)


def test_weights_that_do_not_fit_the_description_are_an_error(late, early, tmp_path: Path) -> None:
    a, b = late.save(tmp_path / "a"), early.save(tmp_path / "b")
    (a / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes())
    with pytest.raises(mf.ModalfuseError, match="weights"):
        mf.MultimodalClassifier.load(a)


# ----------------------------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("fusion", ["early", "late:weighted"])
def test_same_seed_same_model_other_seed_other_model(
    table, fusion: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(seed: int) -> np.ndarray:
        with mf.using_cache(mf.Cache()):  # no shared per-input models: train afresh
            return mf.MultimodalClassifier(fusion=fusion, seed=seed, **FAST).fit(table).predict_proba(table)

    first, second, other = run(1), run(1), run(2)
    np.testing.assert_array_equal(first, second)
    assert np.abs(np.log(first) - np.log(other)).max() > 1e-2  # log scale: confident models differ there


def test_fitting_leaves_the_global_torch_rng_alone(table) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mf.MultimodalClassifier(fusion="early", epochs=1, min_steps=20, batch_size=16, n_threads=1).fit(table)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------------------- leak-free
def test_preprocessing_is_learned_from_the_training_rows_only(table) -> None:
    from PIL import Image

    frame, y = _xy(table)
    test_rows = np.arange(54, 72)
    frame.loc[test_rows, "text"] = "zebra giraffe " + frame.loc[test_rows, "text"].fillna("")
    frame.loc[test_rows, "num"] = 100.0
    frame["y"] = y
    full = mf.read_table(frame, label="y")
    train = full.take(np.arange(54))
    clf = mf.MultimodalClassifier(fusion="early", epochs=1, min_steps=20, batch_size=16, n_threads=1).fit(
        train
    )
    vocab = clf.preprocessors_["text"].state["vocabulary"]["tokens"]
    assert "apple" in vocab and "zebra" not in vocab and "giraffe" not in vocab
    tab = clf.preprocessors_["tabular"].state["preprocessor"]
    nums = train.frame["num"].astype(float).to_numpy()
    filled = np.where(np.isnan(nums), np.nanmedian(nums), nums)
    assert tab["means"]["num"] == pytest.approx(filled.mean())
    assert tab["means"]["num"] < 5  # the test rows' 100s are not in it
    image_rows = train.mask("image")
    pixels = np.stack(
        [np.asarray(Image.open(p), dtype=np.float64) / 255 for p in train.frame["image"][image_rows]]
    )
    assert clf.preprocessors_["image"].state["mean"][0] == pytest.approx(pixels.mean(), abs=1e-4)


def test_cross_validation_fits_preprocessing_inside_each_fold(table, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalfuse.encoders import Preprocessor

    seen: list[np.ndarray] = []
    original = Preprocessor.fit

    def spy(self: Preprocessor, tbl: mf.MultimodalTable) -> Preprocessor:
        seen.append(np.asarray(tbl.row_ids).copy())
        return original(self, tbl)

    monkeypatch.setattr(Preprocessor, "fit", spy)
    clf = mf.MultimodalClassifier(
        fusion="unimodal:tabular", epochs=1, min_steps=20, batch_size=16, n_threads=1
    )
    result = mf.cross_validate(clf, table, cv=3, return_predictions=True)
    pred = result["predictions"]
    per_fold = len(seen) // 3
    assert per_fold >= 1 and len(seen) == 3 * per_fold
    for fold in range(3):
        test_ids = set(table.row_ids[pred["index"][pred["fold"] == fold]].tolist())
        for rows in seen[fold * per_fold : (fold + 1) * per_fold]:
            assert test_ids.isdisjoint(rows.tolist())
            assert len(rows) == len(table) - len(test_ids)


@pytest.mark.parametrize("which", ["late", "early"])
def test_predicting_no_rows(request, table, which: str) -> None:
    clf = request.getfixturevalue(which)
    X, _ = _xy(table)
    assert clf.predict_proba(X.iloc[:0]).shape == (0, 3)
    assert clf.predict(X.iloc[:0]).shape == (0,)
    assert list(clf.explain(X.iloc[:0], method="native").columns) == [
        "prediction",
        "probability",
        "image",
        "audio",
        "text",
        "tabular",
    ]


def test_a_failed_refit_leaves_the_fitted_model_usable(table) -> None:
    clf = mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(table)
    before = clf.predict_proba(table)
    clf.set_params(fusion="late:median")
    with pytest.raises(mf.UnknownNameError, match="unknown fusion 'late:median'"):
        clf.fit(table.take(np.arange(30)))
    np.testing.assert_array_equal(clf.predict_proba(table), before)
