"""Torch's thread count during fit and predict: chosen per call, the caller's restored afterwards."""

from __future__ import annotations

import pytest
import torch

import modalfuse as mf
from modalfuse._progress import listening
from modalfuse._threads import DEFAULT_THREADS, resolve_threads, torch_threads

QUICK = {"fusion": "unimodal:tabular", "epochs": 1, "min_steps": 4, "inner_folds": 2}


@pytest.fixture
def caller_threads() -> int:
    """The caller's own setting (3, which modalfuse never picks by itself here), restored after the test."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def _threads_while_training(clf: mf.MultimodalClassifier, table: mf.MultimodalTable) -> set[int]:
    """Torch's thread count seen at every epoch of ``clf.fit(table)`` (with a new cache: trained afresh)."""
    seen: set[int] = set()

    def listener(event: str, **info: object) -> None:
        if event == "epoch":
            seen.add(torch.get_num_threads())

    with listening(listener), mf.using_cache(mf.Cache()):
        clf.fit(table)
    assert seen, "no epoch was reported"
    return seen


def test_resolve_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(None) == DEFAULT_THREADS == 1
    assert resolve_threads(4) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads(None) == 2 and resolve_threads(5) == 5  # an explicit n_threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert resolve_threads(None) == 1  # not a number: ignored, as OpenMP ignores it
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(mf.OptionError, match="n_threads"):
            resolve_threads(bad)  # type: ignore[arg-type]


def test_torch_threads_restores_the_callers_setting_on_errors(caller_threads: int) -> None:
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == caller_threads


def test_fit_and_predict_use_n_threads_and_restore_the_callers(
    table: mf.MultimodalTable, caller_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    clf = mf.MultimodalClassifier(n_threads=2, **QUICK)
    assert _threads_while_training(clf, table) == {2}
    assert torch.get_num_threads() == caller_threads
    seen: list[int] = []
    real = clf.fusion_.predict_proba
    monkeypatch.setattr(
        clf.fusion_, "predict_proba", lambda data: seen.append(torch.get_num_threads()) or real(data)
    )
    clf.predict(table)
    assert seen == [2] and torch.get_num_threads() == caller_threads
    default = mf.MultimodalClassifier(**QUICK)  # n_threads=None, no OMP_NUM_THREADS: one thread
    assert _threads_while_training(default, table) == {1}
    assert torch.get_num_threads() == caller_threads


def test_omp_num_threads_is_honoured_when_n_threads_is_none(
    table: mf.MultimodalTable, caller_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert _threads_while_training(mf.MultimodalClassifier(**QUICK), table) == {2}
    assert _threads_while_training(mf.MultimodalClassifier(n_threads=1, **QUICK), table) == {1}
    assert torch.get_num_threads() == caller_threads


def test_the_callers_setting_is_restored_after_a_failed_fit_and_predict(
    table: mf.MultimodalTable, caller_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modalfuse.fusion import _late

    def fail(*args: object, **kwargs: object) -> None:
        assert torch.get_num_threads() == 1  # failing inside the estimator's setting
        raise RuntimeError("training diverged")

    clf = mf.MultimodalClassifier(n_threads=1, **QUICK)
    with mf.using_cache(mf.Cache()), monkeypatch.context() as patch:
        patch.setattr(_late, "train_network", fail)
        with pytest.raises(RuntimeError, match="training diverged"):
            clf.fit(table)
    assert torch.get_num_threads() == caller_threads
    clf.fit(table)
    monkeypatch.setattr(clf.fusion_, "predict_proba", fail)
    with pytest.raises(RuntimeError, match="training diverged"):
        clf.predict_proba(table)
    assert torch.get_num_threads() == caller_threads


def test_blas_threads_follow_n_threads_inside_and_are_restored_after() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    assert blas_threads(), "no BLAS library found"
    with threadpool_limits(limits=2, user_api="blas"):  # the caller's own setting
        with torch_threads(1):
            assert blas_threads() == {1}
        assert blas_threads() == {2}
