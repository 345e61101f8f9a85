"""Missing-input policies: ``mask`` (native), ``fill``, ``generate`` and ``drop``; ``compare(missing=[...])``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modalfuse as mf
from conftest import assert_probabilities
from modalfuse.estimator import _product_of_present
from modalfuse.fusion._missing import EmbeddingImputer

FAST = {"epochs": 2, "min_steps": 20, "inner_folds": 2, "n_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def small(table) -> mf.MultimodalTable:
    """The synthetic table's text and tabular inputs (quick networks); rows 3, 10 lack text, 4, 11 num."""
    frame = table.frame[["text", "num", "colour"]].assign(y=table.y)
    return mf.read_table(frame, label="y")


@pytest.fixture(scope="module")
def cache() -> mf.Cache:
    """One cache for the module: every policy fitted on the same rows shares the per-input networks."""
    return mf.Cache()


def _fit(small, cache, **params) -> mf.MultimodalClassifier:
    with mf.using_cache(cache):
        return mf.MultimodalClassifier(**FAST, **params).fit(small)


# ------------------------------------------------------------------------------------------- the imputer
def _embeddings(n: int = 400, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Input b's embedding is a linear function of a's (plus a little noise); c is unrelated."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(99).standard_normal((4, 3))  # the same relation in every sample
    a = rng.standard_normal((n, 4))
    b = a @ weights + 0.05 * rng.standard_normal((n, 3)) + 2.0
    c = rng.standard_normal((n, 2))
    mask = np.ones(n, bool)
    return {"a": (a, mask.copy()), "b": (b, mask.copy()), "c": (c, mask.copy())}


def test_fill_is_the_mean_and_generate_predicts_from_the_inputs_present() -> None:
    train, test = _embeddings(), _embeddings(seed=1)
    truth = test["b"][0].copy()
    lacking = np.zeros(len(truth), bool)
    lacking[::3] = True
    test["b"] = (np.where(lacking[:, None], 0.0, truth), ~lacking)
    fill, generate = EmbeddingImputer("fill"), EmbeddingImputer("generate")
    fill.fit_fold(0, train)
    generate.fit_fold(0, train)
    filled, generated = fill.impute(0, test), generate.impute(0, test)
    assert filled["b"][1].all() and generated["b"][1].all()  # imputed inputs count as present
    np.testing.assert_allclose(
        filled["b"][0][lacking], np.tile(train["b"][0].mean(0), (lacking.sum(), 1)), atol=1e-5
    )
    np.testing.assert_allclose(generated["b"][0][~lacking], truth[~lacking], rtol=1e-6)  # present: untouched
    fill_error = np.mean((filled["b"][0][lacking] - truth[lacking]) ** 2)
    generate_error = np.mean((generated["b"][0][lacking] - truth[lacking]) ** 2)
    assert generate_error < 0.05 * fill_error
    # a row with no other input present gets the fill
    alone = {n: (e[:5], np.zeros(5, bool) if n != "c" else m[:5]) for n, (e, m) in test.items()}
    alone["c"] = (alone["c"][0], np.zeros(5, bool))
    out = generate.impute(0, alone)
    np.testing.assert_allclose(out["b"][0], np.tile(train["b"][0].mean(0), (5, 1)), atol=1e-5)


def test_the_imputer_round_trips_through_json_and_tensors() -> None:
    imputer = EmbeddingImputer("generate")
    imputer.fit_fold(0, _embeddings())
    imputer.fit_fold(1, _embeddings(seed=2))
    again = EmbeddingImputer.from_saved(json.loads(json.dumps(imputer.state)), imputer.tensors())
    test = _embeddings(seed=3)
    test["a"] = (test["a"][0], np.arange(len(test["a"][0])) % 2 == 0)
    for fold in (0, 1):
        for name in "abc":
            np.testing.assert_allclose(
                again.impute(fold, test)[name][0], imputer.impute(fold, test)[name][0], atol=1e-4
            )


# ---------------------------------------------------------------------------------------- the estimator
def test_fill_gives_every_missing_row_the_same_input_prediction(small, cache) -> None:
    clf = _fit(small, cache, fusion="late:product", missing="fill")
    data = clf.transform_inputs(small)
    probs, masks = clf.fusion_._per_input(data)
    missing = ~data["text"][1]
    assert missing.sum() == 2 and masks["text"].all()
    np.testing.assert_allclose(probs["text"][missing][0], probs["text"][missing][1], atol=1e-6)
    assert not np.allclose(probs["text"][missing][0], clf.fusion_.prior_, atol=1e-3)  # not the prior
    assert_probabilities(clf.predict_proba(small), len(small), 3)


def test_generate_predicts_a_missing_inputs_embedding_per_row(small, cache) -> None:
    clf = _fit(small, cache, fusion="early", missing="generate")
    data = clf.transform_inputs(small)
    encoders = clf.fusion_.encoders_
    emb = encoders.embeddings(data, 0)
    raw = encoders.embeddings(data, 0, impute=False)
    missing = ~data["text"][1]
    assert emb["text"][1].all() and not raw["text"][1][missing].any()
    assert not np.allclose(emb["text"][0][missing][0], emb["text"][0][missing][1])  # row by row
    np.testing.assert_array_equal(emb["text"][0][~missing], raw["text"][0][~missing])
    assert clf.score(small) > 0.8


@pytest.mark.parametrize(
    ("fusion", "missing"), [("early", "generate"), ("late:weighted", "fill"), ("cca", "drop")]
)
def test_policies_survive_save_and_load(small, cache, tmp_path: Path, fusion: str, missing: str) -> None:
    clf = _fit(small, cache, fusion=fusion, missing=missing)
    clf.save(tmp_path / "m")
    again = mf.MultimodalClassifier.load(tmp_path / "m")
    assert again.missing == missing
    np.testing.assert_allclose(again.predict_proba(small), clf.predict_proba(small), atol=1e-6)
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert ("fallback" in doc) == (fusion == "cca")


def test_drop_trains_on_complete_rows_and_falls_back_on_the_inputs_present(small, cache) -> None:
    clf = _fit(small, cache, fusion="early", missing="drop")
    complete = small.mask("text") & small.mask("tabular")
    assert not complete.all()
    assert clf.fusion_.encoders_.models_["text"].oof.shape[0] == complete.sum()
    data = clf.transform_inputs(small)
    proba = clf.predict_proba(small)
    rows = np.flatnonzero(~complete)
    expected = _product_of_present(
        clf.fusion_.encoders_, {n: (x[rows], m[rows]) for n, (x, m) in data.items()}
    )
    np.testing.assert_allclose(proba[rows], expected, atol=1e-6)
    np.testing.assert_allclose(
        proba[complete],
        clf.fusion_.predict_proba({n: (x[complete], m[complete]) for n, (x, m) in data.items()}),
        atol=1e-6,
    )


def test_drop_of_a_strategy_without_per_input_models_trains_a_fallback(small, cache) -> None:
    clf = _fit(small, cache, fusion="cca", missing="drop")
    assert clf.fallback_ is not None and set(clf.fallback_.models_) == {"text", "tabular"}
    no_text = small.take(np.array([3, 10]))
    with pytest.warns(mf.InputDriftWarning, match="no usable value in any row: 'text'"):
        expected = _product_of_present(clf.fallback_, clf.transform_inputs(no_text))
        proba = clf.predict_proba(no_text)
    np.testing.assert_allclose(proba, expected, atol=1e-6)


def test_policy_errors_are_clear(small) -> None:
    with pytest.raises(
        mf.OptionError, match=r"missing='fill' imputes embeddings .* fusion 'cca' does not use"
    ):
        mf.MultimodalClassifier(fusion="cca", missing="fill", **FAST).fit(small)
    with pytest.raises(mf.OptionError, match=r"parameter 'missing' must be one of .*'drop'.*got 'impute'"):
        mf.MultimodalClassifier(fusion="early", missing="impute", **FAST).fit(small)
    with pytest.raises(mf.OptionError, match="cannot be combined with end_to_end=True"):
        mf.MultimodalClassifier(
            fusion="early", missing="fill", fusion_options={"end_to_end": True}, **FAST
        ).fit(small)
    frame = pd.DataFrame(
        {
            "text": ["apple pie", None, "banana bread", None, "apple tart", None],
            "num": [np.nan, 1.0, np.nan, 2.0, np.nan, 3.0],
            "y": ["a", "a", "b", "b", "a", "b"],
        }
    )
    lonely = mf.read_table(frame, label="y", modalities={"text": "text"})  # no row has both inputs
    with pytest.raises(mf.SchemaError, match="no training row has them all"):
        mf.MultimodalClassifier(fusion="early", missing="drop", **FAST).fit(lonely)


def test_compare_runs_each_policy_on_the_same_folds(small) -> None:
    result = mf.compare(small, fusion="late:product,cca", cv=2, missing=["mask", "fill", "drop"], **FAST)
    names = set(result["strategies"])
    assert names == {
        "unimodal:text",
        "unimodal:tabular",
        "linear",
        "late:product",
        "late:product/fill",
        "late:product/drop",
        "cca",
        "cca/drop",
    }
    assert result["missing_policies"] == {"policies": ["mask", "fill", "drop"], "skipped": ["cca/fill"]}
    for name in names:
        assert "error" not in result["strategies"][name], result["strategies"][name]
    with pytest.raises(
        mf.UnknownNameError, match=r"unknown missing-input policy 'fil'; did you mean 'fill'\?"
    ):
        mf.compare(small, fusion="late:product", missing="fil")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["evaluate", "--missing", "fil"],
            r"error: unknown missing-input policy 'fil'; did you mean 'fill'\?",
        ),
        (
            ["fit", "--out", "m", "--missing", "fill,drop"],
            r"error: --missing 'fill,drop': give one policy here",
        ),
        (["evaluate", "--train-corruption", "image:nosie=3"], r"error: unknown corruption 'nosie'"),
    ],
)
def test_the_command_line_refuses_bad_policies_before_training(
    csv_path, tmp_path, monkeypatch, args, message
) -> None:
    from typer.testing import CliRunner

    from modalfuse.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [args[0], str(csv_path), "--label", "y", *args[1:]])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), result.output
    assert not (tmp_path / "m").exists()
