"""The damaged-input corpus (``tests/damaged_corpus/cases.py``) run through ``read_table``, then fit and predict.

Per case: no exception other than the documented one (one line, naming the file, row or column), no hang
(a per-case timeout), exactly the damaged cells masked with the expected reason and every other cell of
every row kept, finite numbers. The ``quick`` cases also train a small late-fusion model and predict on
the same table (finite probabilities summing to 1); every case does so under ``-m slow``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from damaged_corpus.cases import CASES, Built, Case
from modalfuse import MultimodalClassifier, MultimodalTable, read_table
from modalfuse._cache import default_cache
from modalfuse._errors import ModalfuseError

pytestmark = pytest.mark.timeout(60)


def _read(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Built, object]:
    built = case.build(folder)
    for key, value in built.env.items():
        monkeypatch.setenv(key, value)
    default_cache.clear()  # a budget set for this case must not meet a decode cached by another
    run = built.action or (lambda: read_table(built.source, **built.kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes are checked on table.notes
        if built.error is not None:
            with pytest.raises(built.error) as info:
                run()
            message = str(info.value)
            assert "\n" not in message, f"{case.name}: a multi-line error: {message!r}"
            if built.match:
                assert info.match(built.match)
            return built, None
        return built, run()


def _check_table(case: Case, built: Built, table) -> None:  # table: MultimodalTable
    assert len(table) == built.rows, f"{case.name}: rows lost"
    reasons = {(p.row, p.column): p.reason for p in table.problems}
    for (row, column), expected in built.masked.items():
        assert column in table.schema.columns, f"{case.name}: column {column!r} left the schema"
        assert (row, column) in reasons, f"{case.name}: row {row}, {column!r} not reported"
        assert expected in reasons[(row, column)], f"{case.name}: reason {reasons[(row, column)]!r}"
    for column in table.schema.columns:
        for i, row in enumerate(table.row_ids.tolist()):
            expected_present = (row, column) not in built.masked
            assert table.present[column][i] == expected_present, (
                f"{case.name}: row {row}, column {column!r} present={table.present[column][i]}"
                f" (problem: {reasons.get((row, column))})"
            )
    for column, modality in (built.schema or {}).items():
        assert table.schema.columns.get(column) == modality, (
            f"{case.name}: {column!r} read as {table.schema.columns.get(column)}"
        )
    for fragment in built.notes:
        assert any(fragment in note for note in table.notes), (
            f"{case.name}: no note with {fragment!r}: {table.notes}"
        )
    for column in table.schema.of("numeric"):
        values = table.frame[column].to_numpy()[table.present[column]]
        assert np.isfinite(values).all() and (np.abs(values) <= 1e150).all()


def _fit_predict(table) -> None:
    clf = MultimodalClassifier(fusion="late", epochs=1, min_steps=5, inner_folds=2, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(table)
        proba = clf.predict_proba(table)
    assert proba.shape == (len(table), len(np.unique(table.y)))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_damaged_case_is_read(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built, table = _read(case, tmp_path, monkeypatch)
    if table is None:
        assert issubclass(built.error, ModalfuseError)
        return
    if isinstance(table, MultimodalTable):
        _check_table(case, built, table)
    if built.check is not None:
        built.check(table)
    if case.quick:
        _fit_predict(table)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.quick], ids=[c.name for c in CASES if not c.quick]
)
def test_damaged_case_fits_and_predicts(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, table = _read(case, tmp_path, monkeypatch)
    if isinstance(table, MultimodalTable) and table.y is not None:
        _fit_predict(table)


def test_corpus_size_and_kinds() -> None:
    kinds = Counter(c.kind for c in CASES)
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)
    assert {"media", "text", "tabular", "label", "csv", "forms"} <= set(kinds)


def test_fit_on_a_dataframe_with_undecodable_files(tmp_path: Path) -> None:
    """``fit(DataFrame, y)`` and tables read with ``decode=False``: a bomb and a corrupt FLAC are masked
    (they used to stop ``fit`` with Pillow's DecompressionBombError or a DecodeError)."""
    from damaged_corpus import files
    from damaged_corpus.cases import base_frame

    frame = base_frame(tmp_path)
    files.png_zlib_bomb(tmp_path / "media" / "bomb.png")
    files.corrupt_flac(tmp_path / "media" / "bad.flac")
    frame.at[0, "photo"], frame.at[0, "voice"] = "media/bomb.png", "media/bad.flac"
    for column in ("photo", "voice"):
        frame[column] = [str(tmp_path / p) for p in frame[column]]
    X, y = frame.drop(columns="y"), frame["y"]
    clf = MultimodalClassifier(fusion="late", epochs=1, min_steps=5, inner_folds=2, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        assert np.isfinite(clf.predict_proba(X)).all()
        lazy = read_table(frame, label="y", decode=False)
        assert lazy.present["photo"].all()  # not decoded: not found out yet
        clf.fit(lazy)
        assert np.isfinite(clf.predict_proba(lazy)).all()
