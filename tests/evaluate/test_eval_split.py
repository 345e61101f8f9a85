"""Tests of modalfuse.evaluate.make_splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, KFold

from modalfuse._errors import SchemaError
from modalfuse.evaluate import make_splits


def _grouped_data(n_groups: int = 12, per_group: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    groups = np.repeat([f"spk{g}" for g in range(n_groups)], per_group)
    y = rng.choice(["cat", "dog", "eel"], size=len(groups))
    return y, groups


def _assert_partition(splits: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
    tests = np.concatenate([test for _, test in splits])
    assert np.array_equal(np.sort(tests), np.arange(n)), "every row is tested exactly once"
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == n


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 17])
def test_grouped_folds_never_share_a_group(seed: int) -> None:
    y, groups = _grouped_data()
    splits = make_splits(y, groups, cv=4, seed=seed)
    assert len(splits) == 4
    _assert_partition(splits, len(y))
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])


def test_loso_one_fold_per_group_holding_out_exactly_that_group() -> None:
    y, groups = _grouped_data(n_groups=5, per_group=8)
    for name in ("loso", "logo", "leave-one-group-out", "LOSO"):
        splits = make_splits(y, groups, cv=name)
        assert len(splits) == 5
        held_out = [set(groups[test]) for _, test in splits]
        assert all(len(h) == 1 for h in held_out)
        assert sorted(next(iter(h)) for h in held_out) == [f"spk{g}" for g in range(5)]
        for train, test in splits:
            (group,) = set(groups[test])
            assert np.array_equal(test, np.flatnonzero(groups == group))
            assert np.array_equal(train, np.flatnonzero(groups != group))


def test_stratification_keeps_class_proportions_within_one_row() -> None:
    y = np.array([0] * 23 + [1] * 11 + [2] * 7)
    rng = np.random.default_rng(0)
    y = rng.permutation(y)
    cv = 5
    splits = make_splits(y, cv=cv, seed=3)
    _assert_partition(splits, len(y))
    for cls in (0, 1, 2):
        expected = np.sum(y == cls) / cv
        for _, test in splits:
            assert abs(np.sum(y[test] == cls) - expected) < 1.0


def test_same_seed_same_folds_other_seed_other_folds() -> None:
    y = np.array(["a", "b"] * 20)
    first = make_splits(y, cv=4, seed=7)
    again = make_splits(y, cv=4, seed=7)
    other = make_splits(y, cv=4, seed=8)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))

    yg, groups = _grouped_data()
    g1 = make_splits(yg, groups, cv=3, seed=1)
    g2 = make_splits(yg, groups, cv=3, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(g1, g2, strict=True))


def test_indices_are_sorted_int64() -> None:
    splits = make_splits(np.array([1, 2] * 10), cv=2, seed=0)
    for train, test in splits:
        assert train.dtype == np.int64 and test.dtype == np.int64
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_singleton_class_error_names_the_class_and_suggests_a_fallback() -> None:
    y = np.array(["common"] * 10 + ["other"] * 10 + ["rare-bird"])
    with pytest.raises(SchemaError) as info:
        make_splits(y, cv=5)
    message = str(info.value)
    assert "'rare-bird'" in message
    assert "only 1 row" in message
    assert "kfold:5" in message


def test_small_class_error_suggests_smaller_cv() -> None:
    y = np.array([0] * 10 + [1] * 3)
    with pytest.raises(SchemaError, match=r"class 1 has only 3 row\(s\).*cv=3"):
        make_splits(y, cv=5)
    assert len(make_splits(y, cv=3)) == 3


def test_kfold_fallback_is_plain_shuffled_kfold() -> None:
    y = np.array(["common"] * 10 + ["other"] * 10 + ["rare"])
    splits = make_splits(y, cv="kfold:4", seed=2)
    assert len(splits) == 4
    _assert_partition(splits, len(y))
    expected = list(KFold(n_splits=4, shuffle=True, random_state=2).split(np.zeros((len(y), 1))))
    for (train, test), (etrain, etest) in zip(splits, expected, strict=True):
        assert np.array_equal(test, np.sort(etest))
        assert np.array_equal(train, np.sort(etrain))


def test_kfold_with_groups_stays_grouped() -> None:
    y, groups = _grouped_data()
    splits = make_splits(y, groups, cv="kfold:3", seed=0)
    assert len(splits) == 3
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])


@pytest.mark.parametrize("y", [np.array(["only"] * 8), np.array([], dtype=object)])
def test_fewer_than_two_classes(y: np.ndarray) -> None:
    with pytest.raises(SchemaError, match="at least 2 classes"):
        make_splits(y, cv=2)


def test_more_folds_than_groups() -> None:
    y, groups = _grouped_data(n_groups=3)
    with pytest.raises(SchemaError, match=r"only 3 distinct"):
        make_splits(y, groups, cv=4)


def test_loso_needs_groups() -> None:
    with pytest.raises(SchemaError, match="needs groups"):
        make_splits(np.array([0, 1] * 5), cv="loso")


def test_bad_specifications() -> None:
    y = np.array([0, 1] * 5)
    with pytest.raises(SchemaError, match="not understood"):
        make_splits(y, cv="bogus")
    with pytest.raises(SchemaError, match="kfold:K"):
        make_splits(y, cv="kfold:x")
    with pytest.raises(SchemaError, match="at least 2 folds"):
        make_splits(y, cv=1)
    with pytest.raises(SchemaError, match="missing"):
        make_splits(np.array([0, 1, None, 1, 0], dtype=object), cv=2)
    with pytest.raises(SchemaError, match="groups has 3 values"):
        make_splits(y, np.array([1, 2, 3]), cv=2)


def test_splitter_object_is_used_as_is() -> None:
    y, groups = _grouped_data()
    splits = make_splits(y, groups, cv=GroupKFold(n_splits=3))
    assert len(splits) == 3
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")
def test_splitter_that_leaks_groups_is_refused() -> None:
    y, groups = _grouped_data()
    with pytest.raises(SchemaError, match="both sides"):
        make_splits(y, groups, cv=KFold(n_splits=3, shuffle=True, random_state=0))


def test_mixed_type_labels_are_accepted() -> None:
    y = np.array(["a", 1, "a", 1, "a", 1], dtype=object)
    splits = make_splits(y, cv=3, seed=0)
    _assert_partition(splits, 6)
