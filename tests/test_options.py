"""Declared options of strategies and preprocessors, and registries that suggest the closest name."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import modalfuse as mf
from modalfuse._options import DEFAULT_HIDDEN, DEFAULT_INNER_FOLDS, Option, declared_options, resolve_options
from modalfuse.encoders._prep import PREPROCESSORS, make_preprocessor
from modalfuse.fusion import _base

FAST = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}


# --------------------------------------------------------------------------------------------- Option
def test_option_coerces_and_states_the_valid_range() -> None:
    count = Option(4, "int", "a count", low=1)
    assert count.coerce("8", "k", "thing") == 8 and count.coerce(8.0, "k", "thing") == 8
    for bad in ("eight", 0, 2.5, True, None, [1]):
        with pytest.raises(mf.OptionError, match=r"thing: option 'k' must be an integer >= 1, got"):
            count.coerce(bad, "k", "thing")
    share = Option(0.0, "float", "a share", low=0.0, high=1.0, high_open=True)
    assert share.coerce("0.25", "p", "thing") == 0.25
    for bad in (1.0, -0.1, float("nan"), float("inf"), "x", False):
        with pytest.raises(mf.OptionError, match=r"must be a number in \[0, 1\), got"):
            share.coerce(bad, "p", "thing")
    flag = Option(False, "bool", "a flag")
    assert [flag.coerce(v, "f", "t") for v in ("yes", "0", 1, True, np.bool_(False))] == [
        True,
        False,
        True,
        True,
        False,
    ]
    with pytest.raises(mf.OptionError, match="must be true or false, got 'maybe'"):
        flag.coerce("maybe", "f", "t")
    size = Option(None, "size", "a size", low=1, none_ok=True)
    assert (
        size.coerce([3, 4], "s", "t") == (3, 4)
        and size.coerce(5, "s", "t") == 5
        and size.coerce(None, "s", "t") is None
    )
    with pytest.raises(mf.OptionError, match=r"an integer >= 1 or a pair \(height, width\) of them or None"):
        size.coerce((3, 0), "s", "t")
    with pytest.raises(mf.OptionError, match="one of 'a', 'b'"):
        Option("a", "str", "x", choices=("a", "b")).coerce("c", "m", "t")
    assert issubclass(mf.OptionError, ValueError)


def test_options_are_collected_through_the_mro_and_resolved() -> None:
    class Base:
        OPTIONS: ClassVar[dict] = {"a": Option(1, "int", "a", low=0), "b": Option("x", "str", "b")}

    class Child(Base):
        OPTIONS: ClassVar[dict] = {"a": Option(2, "int", "a again", low=1), "c": Option(0.5, "float", "c")}

    assert list(declared_options(Child)) == ["a", "b", "c"]
    assert declared_options(Child)["a"].default == 2  # the subclass's declaration wins
    assert resolve_options(Child, {"c": "0.25"}, "child") == {"a": 2, "b": "x", "c": 0.25}
    with pytest.raises(
        mf.OptionError, match=r"child: unknown option 'cc'; did you mean 'c'\? \(options: a, b, c\)"
    ):
        resolve_options(Child, {"cc": 1}, "child")
    assert resolve_options(Child, {"gone": 1}, "child", drop_unknown=True) == {"a": 2, "b": "x", "c": 0.5}


# ----------------------------------------------------------------------------------------- strategies
def test_unknown_strategy_option_suggests_the_declared_name() -> None:
    with pytest.raises(
        mf.OptionError, match=r"fusion 'lowrank': unknown option 'rnak'; did you mean 'rank'\?"
    ):
        mf.get_fusion("lowrank", rnak=8)
    with pytest.raises(mf.OptionError, match=r"fusion 'late': unknown option 'hidden'"):
        mf.get_fusion("late", hidden=64)  # late fusion has no head
    with pytest.raises(mf.OptionError, match=r"unknown option 'shared_dims'; did you mean 'shared_dim'\?"):
        mf.get_fusion("shared", shared_dims=8)


@pytest.mark.parametrize(
    "name", ["late", "unimodal", "early", "tensor", "lowrank", "attention", "shared", "cca"]
)
def test_every_strategy_declares_its_options_with_one_default_each(name: str) -> None:
    cls = _base.strategy_class(name)
    declared = cls.declared_options()
    strategy = mf.get_fusion(name)
    assert set(strategy.options) == set(declared)  # every declared option, resolved
    assert strategy.options == {k: opt.default for k, opt in declared.items()}
    rows = strategy.option_table()
    assert [r["name"] for r in rows] == sorted(declared)
    assert all(r["help"] and r["valid"] for r in rows)
    if "inner_folds" in declared:
        assert declared["inner_folds"].default == DEFAULT_INNER_FOLDS
    if "hidden" in declared:
        assert declared["hidden"].default == DEFAULT_HIDDEN
    with pytest.raises(mf.OptionError, match=f"fusion '{name}': unknown option 'nonsense'"):
        mf.get_fusion(name, nonsense=1)


def test_which_strategies_take_hidden_and_inner_folds() -> None:
    takes_hidden = {n for n in mf.list_fusions() if "hidden" in _base.strategy_class(n).declared_options()}
    assert takes_hidden == {"early", "tensor", "lowrank", "shared"}
    takes_folds = {
        n for n in mf.list_fusions() if "inner_folds" in _base.strategy_class(n).declared_options()
    }
    assert takes_folds == set(mf.list_fusions()) - {"cca"}
    assert mf.MultimodalClassifier().get_params()["inner_folds"] == DEFAULT_INNER_FOLDS
    assert mf.MultimodalClassifier().get_params()["hidden"] == DEFAULT_HIDDEN


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("lowrank:zero", {}, r"option 'rank' must be an integer >= 1, got 'zero'"),
        ("tensor", {"tensor_dim": 0}, r"option 'tensor_dim' must be an integer >= 1, got 0"),
        ("early", {"hidden": -1}, r"option 'hidden' must be an integer >= 0, got -1"),
        ("lowrank", {"hidden": 0}, r"option 'hidden' must be an integer >= 1, got 0"),
        ("shared:-1", {}, r"option 'contrastive_weight' must be a number >= 0, got '-1'"),
        ("attention", {"dropout": 1.0}, r"option 'dropout' must be a number in \[0, 1\), got 1.0"),
        ("attention", {"d_model": 30}, r"'d_model' \(30\) must be a multiple of 'nhead' \(4\)"),
        ("early", {"end_to_end": "perhaps"}, r"option 'end_to_end' must be true or false"),
        ("cca", {"pca_dims": "wide"}, r"option 'pca_dims' must be an integer >= 1, got 'wide'"),
        ("late:stacking", {"inner_folds": 1}, r"needs inner_folds >= 2"),
        ("late", {"inner_folds": 0}, r"option 'inner_folds' must be an integer >= 1, got 0"),
    ],
)
def test_bad_option_values_are_refused_on_construction(name: str, options: dict, message: str) -> None:
    with pytest.raises(mf.OptionError, match=message):
        mf.get_fusion(name, **options)


def test_colon_arguments_are_coerced() -> None:
    assert mf.get_fusion("lowrank:8").options["rank"] == 8
    assert mf.get_fusion("tensor:8").options["tensor_dim"] == 8
    assert mf.get_fusion("shared:0.5").options["contrastive_weight"] == 0.5
    assert mf.get_fusion("late:product").options == {
        "method": "product",
        "inner_folds": DEFAULT_INNER_FOLDS,
        "missing": "mask",
    }


# ------------------------------------------------------------------------------------- preprocessors
@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_every_preprocessor_declares_its_options(name: str, tmp_path: Path) -> None:
    card = getattr(PREPROCESSORS[name], "card", None)  # a pretrained encoder's
    if card is not None and not card.installed:
        pytest.skip(f"{name}: the 'pretrained' extra is not installed")
    required: dict = {}
    if name == "hf-text":  # needs a model folder (one holding config.json)
        (tmp_path / "config.json").write_text("{}")
        required = {"model": str(tmp_path)}
    prep = make_preprocessor(name, "x", ["x"], **required)
    declared = PREPROCESSORS[name].declared_options()
    assert declared and prep.options == {k: opt.default for k, opt in declared.items()} | required
    assert prep.to_dict()["options"] == prep.options  # saved models store every declared field
    with pytest.raises(mf.OptionError, match=f"preprocessor '{name}' of input 'x': unknown option 'bogus'"):
        make_preprocessor(name, "x", ["x"], bogus=1, **required)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("audio", {"n_mel": 64}, r"unknown option 'n_mel'; did you mean 'n_mels'\?"),
        ("audio", {"n_mels": 0}, r"option 'n_mels' must be an integer >= 1, got 0"),
        ("audio", {"hop_seconds": 0}, r"option 'hop_seconds' must be a number > 0, got 0"),
        ("mfcc", {"n_mels": 1}, r"option 'n_mels' must be an integer >= 2, got 1"),
        ("image", {"size": "big"}, r"option 'size' must be an integer >= 1 or a pair"),
        ("image", {"channels": 2}, r"option 'channels' must be 1 or 3 or None, got 2"),
        ("text", {"max_lenght": 5}, r"did you mean 'max_length'\?"),
        ("tfidf", {"max_features": -5}, r"option 'max_features' must be an integer >= 1, got -5"),
        ("tabular", {"max_categories": "many"}, r"option 'max_categories' must be an integer >= 1"),
    ],
)
def test_bad_preprocessor_options_are_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(mf.OptionError, match=message):
        make_preprocessor(name, "x", ["x"], **options)


def test_preprocess_options_are_coerced_and_used(table) -> None:
    prep = make_preprocessor("audio", "audio", ["audio"], n_mels="24", trim_db=None).fit(table)
    assert prep.options["n_mels"] == 24 and prep.state["n_mels"] == 24 and prep.state["trim_db"] is None
    X, _ = prep.transform(table)
    assert X.shape[2] == 24


# ----------------------------------------------------------------------------------------- registries
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mf.get_fusion("erly"), r"unknown fusion 'erly'; did you mean 'early'\?"),
        (lambda: mf.get_fusion("late:median"), r"unknown fusion 'late:median'; did you mean 'late:mean'\?"),
        (lambda: mf.get_fusion("attention:x"), r"fusion 'attention' takes no ':' argument"),
        (lambda: mf.get_encoder("hgo"), r"unknown encoder 'hgo'; did you mean 'hog'\?"),
        (
            lambda: make_preprocessor("imgae", "x", ["x"]),
            r"unknown preprocessor 'imgae'; did you mean 'image'\?",
        ),
        (lambda: mf.load_dataset("av-digit"), r"unknown dataset 'av-digit'; did you mean 'av-digits'\?"),
    ],
)
def test_registries_raise_unknown_name_errors_with_a_suggestion(call, message: str) -> None:
    with pytest.raises(mf.UnknownNameError, match=message) as info:
        call()
    assert isinstance(info.value, KeyError) and isinstance(info.value, mf.ModalfuseError)
    assert "\n" not in str(info.value)


def test_table_mask_and_unimodal_inputs_suggest_the_input() -> None:
    frame = pd.DataFrame({"Title": ["a b", "c d", "e f", "g h"] * 3, "y": ["p", "q"] * 6})
    table = mf.read_table(frame, label="y", modalities={"Title": "text"})
    with pytest.raises(mf.UnknownNameError, match=r"unknown input 'Titel'; did you mean 'Title'\?"):
        table.mask("Titel")
    clf = mf.MultimodalClassifier(fusion="unimodal:Titel", **FAST)
    with pytest.raises(mf.UnknownNameError, match=r"unknown input 'Titel'; did you mean 'Title'\?"):
        clf.fit(table)
    with pytest.raises(mf.UnknownNameError, match=r"unknown input 'Titel'; did you mean 'Title'\?"):
        mf.make_strategies(table, "unimodal:Titel")
    with pytest.raises(
        mf.UnknownNameError, match=r"unknown fusion 'late:median'; did you mean 'late:mean'\?"
    ):
        mf.make_strategies(table, "late:median")
    with pytest.raises(mf.UnknownNameError, match=r"unknown fusion 'erly'; did you mean 'early'\?"):
        mf.make_strategies(table, "unimodal,erly")


# ------------------------------------------------------------------------------------------ estimator
def test_estimator_gives_strategies_only_the_options_they_declare(table) -> None:
    X = table.frame[["text", "num", "colour"]]
    late = mf.MultimodalClassifier(fusion="late:mean", hidden=7, **FAST).fit(X, table.y)
    assert late.fusion_.options == {"method": "mean", "inner_folds": 2, "missing": "mask"}  # no hidden
    early = mf.MultimodalClassifier(fusion="early", hidden=7, **FAST).fit(X, table.y)
    assert early.fusion_.options["hidden"] == 7 and early.fusion_.options["inner_folds"] == 2
    cca = mf.MultimodalClassifier(fusion="cca", hidden=7, **FAST).fit(X, table.y)
    assert cca.fusion_.options == {"pca_dims": 32, "cca_dims": 8}  # neither hidden nor inner_folds
    # fusion_options win over the estimator's and are checked by the strategy
    wide = mf.MultimodalClassifier(fusion="early", hidden=7, fusion_options={"hidden": 9}, **FAST)
    assert wide.fit(X, table.y).fusion_.options["hidden"] == 9
    with pytest.raises(
        mf.OptionError, match=r"fusion 'lowrank': unknown option 'rnak'; did you mean 'rank'\?"
    ):
        mf.MultimodalClassifier(fusion="lowrank", fusion_options={"rnak": 8}, **FAST).fit(X, table.y)


def test_a_user_strategy_declares_options_and_gets_them_checked(table, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(_base, "_FUSIONS", dict(_base._FUSIONS))  # keep the registry clean for others

    class MaxHead(torch.nn.Module):
        def __init__(self, dims, n_classes, width):
            super().__init__()
            self.proj = torch.nn.ModuleDict({n: torch.nn.Linear(d, width) for n, d in dims.items()})
            self.out = torch.nn.Linear(width, n_classes)

        def forward(self, embeddings, masks):
            z = [torch.where(masks[n][:, None], p(embeddings[n]), -1e4) for n, p in self.proj.items()]
            return self.out(torch.stack(z, 1).max(1).values)

    @mf.register_fusion
    class MaxPool(mf.NeuralFusion):
        name = "maxpool"
        OPTIONS: ClassVar[dict] = {"width": mf.Option(32, "int", "pooled width", low=1)}

        def make_head(self, dims, n_classes):
            return MaxHead(dims, n_classes, self.options["width"])

    assert mf.get_fusion("maxpool").options == {
        "end_to_end": False,
        "aux_heads": True,
        "inner_folds": 3,
        "missing": "mask",
        "quality_aware": False,
        "width": 32,
    }
    with pytest.raises(mf.OptionError, match=r"unknown option 'widht'; did you mean 'width'\?"):
        mf.get_fusion("maxpool", widht=8)
    X = table.frame[["text", "num", "colour"]]
    clf = mf.MultimodalClassifier(fusion="maxpool", fusion_options={"width": "8"}, hidden=5, **FAST).fit(
        X, table.y
    )
    assert clf.fusion_.options["width"] == 8 and "hidden" not in clf.fusion_.options
    assert clf.score(X, table.y) > 0.5  # it learns (chance is 1/3)
