"""The cache object: bounded, thread-safe, owned by a run, holding decoded data and fitted models."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import modalfuse as mf
from modalfuse._cache import DEFAULT_MAX_BYTES, active_cache, default_cache

FAST = {"epochs": 1, "min_steps": 4, "inner_folds": 2, "n_threads": 1}


def _array(n_bytes: int, value: float = 0.0) -> np.ndarray:
    return np.full(n_bytes // 8, value, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ bounds
def test_data_entries_are_bounded_in_bytes_and_evict_the_least_recently_used() -> None:
    cache = mf.Cache(max_bytes=3000)
    for key in "abc":
        cache.get_or_compute(key, lambda: _array(1000))
    assert (len(cache), cache.nbytes, cache.misses, cache.hits) == (3, 3000, 3, 0)
    cache.get_or_compute("a", lambda: pytest.fail("'a' is cached"))  # "a" is now the most recent
    cache.get_or_compute("d", lambda: _array(1000))
    assert "b" not in cache and all(k in cache for k in "acd")
    assert cache.nbytes == 3000 and cache.hits == 1
    big = cache.get_or_compute("big", lambda: _array(4000))  # larger than the bound: returned, not kept
    assert big.nbytes == 4000 and "big" not in cache and cache.nbytes == 3000


def test_model_entries_are_bounded_in_number_and_do_not_count_as_bytes() -> None:
    cache = mf.Cache(max_bytes=0, max_models=2)
    for key in ("m1", "m2", "m3"):
        cache.get_or_compute(key, object, kind="model")
    assert cache.n_models == 2 and "m1" not in cache and cache.nbytes == 0
    cache.get_or_compute("x", lambda: _array(800))  # max_bytes=0 keeps no data
    assert "x" not in cache and len(cache) == 2
    with pytest.raises(ValueError, match="kind"):
        cache.get_or_compute("y", object, kind="weights")


def test_clear_empties_both_kinds_and_the_counters() -> None:
    cache = mf.Cache()
    cache.get_or_compute("data", lambda: _array(800))
    cache.get_or_compute("model", object, kind="model")
    cache.get_or_compute("data", lambda: _array(800))
    assert (len(cache), cache.n_models, cache.nbytes, cache.hits) == (2, 1, 800, 1)
    cache.clear()
    assert (len(cache), cache.n_models, cache.nbytes, cache.hits, cache.misses) == (0, 0, 0, 0, 0)
    assert "data" not in cache and "model" not in cache


def test_a_failed_computation_stores_nothing() -> None:
    cache = mf.Cache()

    def boom() -> np.ndarray:
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        cache.get_or_compute("k", boom)
    assert len(cache) == 0 and cache.misses == 0
    assert cache.get_or_compute("k", lambda: _array(8)).shape == (1,)


# ------------------------------------------------------------------------------------------- defaults
def test_default_size_is_512_mib_and_the_environment_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODALFUSE_CACHE_BYTES", raising=False)
    monkeypatch.delenv("MODALFUSE_CACHE_MODELS", raising=False)
    assert mf.Cache().max_bytes == DEFAULT_MAX_BYTES == 512 * 1024**2
    assert mf.Cache().max_models == 16
    monkeypatch.setenv("MODALFUSE_CACHE_BYTES", "1e8")
    monkeypatch.setenv("MODALFUSE_CACHE_MODELS", "3")
    assert (mf.Cache().max_bytes, mf.Cache().max_models) == (100_000_000, 3)
    assert mf.Cache(max_bytes=10).max_bytes == 10  # an explicit size wins
    monkeypatch.setenv("MODALFUSE_CACHE_BYTES", "lots")
    with pytest.raises(mf.OptionError, match="MODALFUSE_CACHE_BYTES='lots'"):
        mf.Cache()
    with pytest.raises(mf.OptionError, match="max_models=-1"):
        mf.Cache(max_bytes=10, max_models=-1)


def test_using_cache_sets_the_active_cache_for_the_block_only() -> None:
    mine = mf.Cache()
    assert active_cache() is default_cache
    with pytest.raises(KeyError), mf.using_cache(mine) as used:
        assert used is mine and active_cache() is mine
        with mf.using_cache(mf.Cache()) as inner:
            assert active_cache() is inner
        assert active_cache() is mine
        raise KeyError("leaves the block")
    assert active_cache() is default_cache
    with pytest.raises(TypeError, match=r"modalfuse\.Cache"):
        with mf.using_cache({}):  # type: ignore[arg-type]
            pass


# ------------------------------------------------------------------------------------------ threads
def test_concurrent_requests_for_one_key_compute_it_once() -> None:
    cache = mf.Cache()
    calls: list[int] = []
    results: list[object] = [None] * 8
    start = threading.Barrier(8)

    def compute() -> np.ndarray:
        calls.append(1)
        time.sleep(0.05)  # long enough for every thread to ask meanwhile
        return _array(80, value=len(calls))

    def worker(i: int) -> None:
        start.wait()
        results[i] = cache.get_or_compute("shared", compute)
        cache.get_or_compute(("own", i), lambda: _array(8, value=i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # one computation; the others waited for it
    assert all(r is results[0] for r in results)  # and got the very same object
    assert cache.misses == 1 + 8 and cache.hits == 7
    assert len(cache) == 9 and cache.nbytes == 80 + 8 * 8
    assert sorted(float(cache.get_or_compute(("own", i), object)[0]) for i in range(8)) == list(range(8))


# ---------------------------------------------------------------------------------- owned by the run
@pytest.fixture(scope="module")
def two_inputs(csv_path: Path) -> mf.MultimodalTable:
    """The synthetic table with its text and tabular inputs only (quick to train)."""
    return mf.read_table(csv_path, label="y", modalities={"image": "ignore", "audio": "ignore"})


def _reused(result: dict) -> dict[str, float]:
    return {
        name: s["fit_cost_seconds"] - s["fit_seconds"]
        for name, s in result["strategies"].items()
        if name.startswith("unimodal:")
    }


def test_compares_with_separate_caches_share_nothing(two_inputs: mf.MultimodalTable) -> None:
    first, second = mf.Cache(), mf.Cache()
    models_before = default_cache.n_models
    a = mf.compare(two_inputs, fusion="unimodal", cv=2, cache=first, **FAST)
    b = mf.compare(two_inputs, fusion="unimodal", cv=2, cache=second, **FAST)
    assert first.n_models == second.n_models == 4  # text and tabular, 2 folds: trained by each run
    assert _reused(a) == _reused(b) == {"unimodal:text": 0.0, "unimodal:tabular": 0.0}
    again = mf.compare(two_inputs, fusion="unimodal", cv=2, cache=first, **FAST)  # the same cache again
    assert all(seconds > 0 for seconds in _reused(again).values())  # every model came from `first`
    assert first.n_models == 4 and first.hits >= 4
    for name in ("unimodal:text", "unimodal:tabular"):
        folds = [r["strategies"][name]["accuracy"]["folds"] for r in (a, b, again)]
        assert folds[0] == folds[1] == folds[2]
    fresh = mf.compare(two_inputs, fusion="unimodal", cv=2, **FAST)  # no cache given: a new one
    assert _reused(fresh) == {"unimodal:text": 0.0, "unimodal:tabular": 0.0}
    assert default_cache.n_models == models_before  # the runs left nothing in the process default


def test_fit_reads_the_active_cache_for_media_and_models(table: mf.MultimodalTable) -> None:
    cache = mf.Cache()
    with mf.using_cache(cache):
        clf = mf.MultimodalClassifier(fusion="late:mean", **FAST).fit(table)
    assert cache.n_models == 4  # image, audio, text, tabular ensembles
    assert cache.nbytes > 70 * 16 * 16 * 4  # preprocessed images and audio features at least
    with mf.using_cache(cache):
        other = mf.MultimodalClassifier(fusion="late:product", **FAST).fit(table)
    assert other.reused_fit_seconds_ > 0 and clf.reused_fit_seconds_ == 0
    assert all(other.fusion_.models_[n] is clf.fusion_.models_[n] for n in clf.fusion_.models_)
    cache.clear()
    assert (len(cache), cache.nbytes, cache.n_models) == (0, 0, 0)
    with mf.using_cache(cache):
        third = mf.MultimodalClassifier(fusion="late:product", **FAST).fit(table)
    assert third.reused_fit_seconds_ == 0 and cache.n_models == 4  # trained again after clear()
