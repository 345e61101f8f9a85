"""Saved model folders checked field by field on load; files written by older versions still load."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import modalfuse as mf

FAST: dict[str, Any] = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
COLUMNS = ["text", "num", "colour"]


@pytest.fixture(scope="module")
def fitted(table) -> dict[str, mf.MultimodalClassifier]:
    X, y = table.frame[COLUMNS], table.y
    return {
        name: mf.MultimodalClassifier(fusion=name, **FAST).fit(X, y)
        for name in ("late:mean", "early", "cca", "unimodal:text")
    }


def _saved(clf: mf.MultimodalClassifier, folder: Path, edit: Callable[[dict], Any] | None = None) -> Path:
    """``clf`` saved to ``folder``, its model.json changed by ``edit(doc)`` (which may return a new doc)."""
    path = clf.save(folder)
    if edit is not None:
        doc = json.loads((path / "model.json").read_text())
        new = edit(doc)
        (path / "model.json").write_text(json.dumps(doc if new is None else new))
    return path


def _same_predictions(a: mf.MultimodalClassifier, b: mf.MultimodalClassifier, table) -> None:
    X = table.frame[COLUMNS]
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------- device
def test_a_model_saved_for_an_unavailable_device_loads_on_the_cpu(fitted, table, tmp_path: Path) -> None:
    """``"device": "cuda:0"`` used to crash on a CPU-only machine with 'Torch not compiled with CUDA'."""
    device = "cuda:99" if torch.cuda.is_available() else "cuda:0"

    def to_gpu(doc: dict) -> None:
        doc["params"]["device"] = device

    for name in ("late:mean", "early"):
        path = _saved(fitted[name], tmp_path / name, to_gpu)
        with pytest.warns(
            UserWarning, match=rf"saved for device '{device}', which is not usable here.*on 'cpu'"
        ):
            loaded = mf.MultimodalClassifier.load(path)
        assert loaded.device == "cpu" and loaded.fusion_.config.device == "cpu"
        _same_predictions(loaded, fitted[name], table)


def test_a_model_saved_on_the_cpu_loads_without_a_warning(fitted, tmp_path: Path) -> None:
    path = _saved(fitted["early"], tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mf.MultimodalClassifier.load(path).device == "cpu"


# ------------------------------------------------------------------------------- damaged descriptions
def _set(*keys: str, value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


def _drop(*keys: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        d = doc
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return edit


DAMAGED = [
    # every input silently missing: used to load and predict 1/3 for every class
    ("early", _set("preprocessors", value={}), "preprocessors", r"has inputs \[\], but field 'inputs' has"),
    ("late:mean", _drop("preprocessors", "text"), "preprocessors", r"every input needs its preprocessor"),
    ("early", _set("inputs", value={}), "inputs", r"names no input"),
    # a wrongly typed option used to be accepted
    (
        "early",
        _set("fusion", "options", "hidden", value="wide"),
        "fusion.options",
        r"fusion 'early': option 'hidden' must be an integer >= 0, got 'wide'",
    ),
    ("early", _set("params", "hidden", value="wide"), "params.hidden", r"'hidden' must be an integer >= 0"),
    ("late:mean", _set("fusion", "options", "method", value="median"), "fusion.options", r"one of 'mean'"),
    (
        "late:mean",
        _set("preprocessors", "tabular", "options", "max_categories", value=-2),
        "preprocessors.tabular.options",
        r"'max_categories' must be an integer >= 1, got -2",
    ),
    # classes
    ("early", _set("classes", value="abc"), "classes", r"must be a JSON array, got string"),
    ("early", _set("classes", value=[["a"], "b", "c"]), "classes", r"labels of one type"),
    ("early", _set("classes", value=["a", 1, "c"]), "classes", r"labels of one type"),
    ("early", _set("classes", value=["a"]), "classes", r"at least two labels"),
    ("early", _set("classes", value=["a", "a", "c"]), "classes", r"lists a label twice"),
    # schema
    ("early", _set("schema", "text", value="video"), "schema.text", r"unknown modality 'video'"),
    ("early", _set("schema", value=["text"]), "schema", r"must be a JSON object, got array"),
    ("early", _drop("schema", "num"), "preprocessors.tabular.columns", r"'num', which is not a column"),
    ("early", _set("schema", "text", value="numeric"), "preprocessors.text.columns", r"is numeric in field"),
    # inputs
    (
        "early",
        _set("inputs", "tabular", "in_shape", value=[99]),
        "inputs.tabular.in_shape",
        r"is \[99\], but",
    ),
    ("early", _set("inputs", "tabular", "in_shape", value=[0]), "inputs.tabular.in_shape", r"integers >= 1"),
    ("early", _set("inputs", "text", "vocab_size", value=3), "inputs.text.vocab_size", r"vocabulary has"),
    ("early", _set("inputs", "text", "encoder", value="text-bog"), "inputs.text.encoder", r"'text-bag'\?"),
    ("early", _set("inputs", "text", value=5), "inputs.text", r"must be a JSON object, got integer"),
    ("early", _drop("inputs", "text", "encoder"), "inputs.text.encoder", r"missing"),
    ("early", _set("inputs", "text", "name", value="other"), "inputs.text.name", r"not the input's name"),
    # preprocessors
    (
        "early",
        _set("preprocessors", "text", "name", value="tfidf"),
        "preprocessors.text.name",
        r"reads 'text'",
    ),
    ("early", _drop("preprocessors", "text", "state"), "preprocessors.text.state", r"missing"),
    ("early", _set("preprocessors", "text", "state", value={}), "preprocessors.text.state", r"does not fit"),
    # params
    (
        "early",
        _set("params", "epoch", value=3),
        "params.epoch",
        r"unknown parameter; did you mean 'epochs'\?",
    ),
    ("early", _set("params", "epochs", value=0), "params.epochs", r"must be an integer >= 1, got 0"),
    ("early", _set("params", "class_weight", value="most"), "params", r"'class_weight' must be None"),
    ("early", _set("params", value=None), "params", r"must be a JSON object, got null"),
    # fusion
    ("early", _set("fusion", "name", value="late:mean"), "fusion.name", r"params.fusion' is 'early'"),
    ("early", _drop("fusion", "state"), "fusion.state", r"missing"),
    ("late:mean", _drop("fusion", "state", "prior"), "fusion.state", r"does not fit the inputs"),
    ("late:mean", _set("fusion", "state", "fitted_inputs", value=["nope"]), "fusion.state", r"'nope'"),
]


@pytest.mark.parametrize("key", ["params", "classes", "schema", "inputs", "preprocessors", "fusion"])
def test_a_missing_top_level_field_is_named(fitted, tmp_path: Path, key: str) -> None:
    path = _saved(fitted["early"], tmp_path / "m", _drop(key))
    with pytest.raises(mf.ModelFileError, match=rf"model.json: field '{key}': missing"):
        mf.MultimodalClassifier.load(path)


@pytest.mark.parametrize(
    ("which", "edit", "field", "message"), DAMAGED, ids=[f"{f}-{m[:20]}" for _, _, f, m in DAMAGED]
)
def test_a_damaged_field_gives_a_one_line_error_naming_it(
    fitted, tmp_path, which, edit, field, message
) -> None:
    path = _saved(fitted[which], tmp_path / "m", edit)
    with pytest.raises(mf.ModelFileError, match=rf"model.json: field '{field}': .*{message}") as info:
        mf.MultimodalClassifier.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("doc", [[1, 2], "model", 3, None, {"format": "modalfuse-model"}])
def test_documents_that_are_not_model_objects_are_refused(fitted, tmp_path: Path, doc: Any) -> None:
    path = _saved(fitted["early"], tmp_path / "m")
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(
        mf.ModelFileError, match=r"model.json: (not a modalfuse model file|.*unsupported|field)"
    ):
        mf.MultimodalClassifier.load(path)


# ----------------------------------------------------------------------------------------- weights
def _edit_weights(path: Path, edit: Callable[[dict], None]) -> None:
    tensors = load_file(str(path / "weights.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "weights.safetensors"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", ["early", "cca"])
def test_weights_that_are_not_finite_are_refused(fitted, tmp_path: Path, value: float, which: str) -> None:
    path = _saved(fitted[which], tmp_path / "m")
    key = sorted(load_file(str(path / "weights.safetensors")))[0]

    def poison(t: dict) -> None:
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value

    _edit_weights(path, poison)
    with pytest.raises(
        mf.ModelFileError, match=rf"weights.safetensors: tensor '{key}' holds values that are not finite"
    ):
        mf.MultimodalClassifier.load(path)


def test_weights_of_other_shapes_or_extra_tensors_are_refused(fitted, tmp_path: Path) -> None:
    path = _saved(fitted["early"], tmp_path / "a")
    key = next(k for k, v in load_file(str(path / "weights.safetensors")).items() if v.ndim == 2)
    _edit_weights(path, lambda t: t.__setitem__(key, torch.zeros(3, 3)))
    with pytest.raises(
        mf.ModelFileError, match=r"weights.safetensors: the weights do not fit field 'inputs'"
    ):
        mf.MultimodalClassifier.load(path)
    path = _saved(fitted["late:mean"], tmp_path / "b")
    _edit_weights(path, lambda t: t.__setitem__("stray.weight", torch.zeros(2)))
    with pytest.raises(
        mf.ModelFileError, match=r"1 tensor\(s\) that model.json does not describe.*'stray.weight'"
    ):
        mf.MultimodalClassifier.load(path)
    # cca's arrays have no network to check them: the test prediction does
    path = _saved(fitted["cca"], tmp_path / "c")
    key = next(k for k in load_file(str(path / "weights.safetensors")) if k.endswith(".components"))
    _edit_weights(path, lambda t: t.__setitem__(key, torch.zeros(2, 5, dtype=torch.float64)))
    with pytest.raises(
        mf.ModelFileError, match=r"cannot predict from inputs of the shapes in field 'inputs'"
    ):
        mf.MultimodalClassifier.load(path)


# --------------------------------------------------------------------------------------- old files
def _as_old_file(doc: dict, fusion_options: dict) -> None:
    """What modalfuse wrote before options were declared: ``seed`` (no ``random_state`` or
    ``class_weight``), the strategy's options as the estimator passed them (``hidden`` to every strategy),
    the preprocessors' options as given (none)."""
    params = doc["params"]
    for key in ("random_state", "class_weight"):
        del params[key]
    params["seed"] = 0
    doc["fusion"]["options"] = fusion_options
    for prep in doc["preprocessors"].values():
        prep["options"] = {}


@pytest.mark.parametrize(
    ("which", "old_options", "resolved"),
    [
        (
            "late:mean",
            {"inner_folds": 2, "hidden": 128, "method": "mean"},
            {"method": "mean", "inner_folds": 2, "missing": "mask"},
        ),
        (
            "unimodal:text",
            {"inner_folds": 2, "hidden": 128, "input": "text"},
            {"input": "text", "inner_folds": 2, "missing": "mask"},
        ),
        ("cca", {"inner_folds": 2, "hidden": 128}, {"pca_dims": 32, "cca_dims": 8}),
        (
            "early",
            {"inner_folds": 2, "hidden": 128},
            {
                "end_to_end": False,
                "aux_heads": True,
                "inner_folds": 2,
                "hidden": 128,
                "missing": "mask",
                "quality_aware": False,
            },
        ),
    ],
)
def test_old_model_files_still_load(fitted, table, tmp_path: Path, which, old_options, resolved) -> None:
    path = _saved(fitted[which], tmp_path / "m", lambda doc: _as_old_file(doc, old_options))
    loaded = mf.MultimodalClassifier.load(path)
    assert loaded.fusion_.options == resolved  # legacy options dropped, missing ones defaulted
    params = loaded.get_params()
    assert params["seed"] == 0 and params["random_state"] == 0 and params["class_weight"] is None
    for name, prep in loaded.preprocessors_.items():
        assert prep.options == fitted[which].preprocessors_[name].options  # defaults filled in
    _same_predictions(loaded, fitted[which], table)
    again = loaded.save(tmp_path / "again")  # and saves in the current format
    doc = json.loads((again / "model.json").read_text())
    assert doc["fusion"]["options"] == resolved and "random_state" in doc["params"]


def test_an_old_seed_and_legacy_fusion_options_load(fitted, tmp_path: Path) -> None:
    def old(doc: dict) -> None:
        _as_old_file(doc, {"inner_folds": 2, "hidden": 128, "method": "mean"})
        doc["params"]["seed"] = 5
        doc["params"]["fusion_options"] = {"hidden": 64}  # accepted silently by late fusion before

    loaded = mf.MultimodalClassifier.load(_saved(fitted["late:mean"], tmp_path / "m", old))
    assert loaded.get_params()["seed"] == 5 and loaded.fusion_.config.seed == 5
    assert loaded.get_params()["fusion_options"] == {}  # the option late fusion never had is dropped
