"""The work of a request, off the event loop: decode media within the time budget, predict, explain.

Media cells are checked and decoded by the same code as a table's (``check_column`` of
:mod:`modalfuse.data._cells`, the one ``read_table`` runs), one cell after another, into a cache of the
request's own: a cell that cannot be decoded is masked and reported with its reason, as in training, and
the model then reads the decoded cells from that cache. Nothing is kept between requests.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._cache import Cache, using_cache
from modalfuse._errors import ModalfuseError, RequestError
from modalfuse.data._cells import CellContext, Problem, check_column
from modalfuse.modalities.tabular import _category_key
from modalfuse.serve._config import ServeOptions
from modalfuse.serve._records import Columns

__all__ = ["ModelService", "evaluation_summary"]

_MEDIA = ("image", "audio")
#: Media paths are refused before decoding; should one reach the cell checks, it is confined to a folder
#: that does not exist, so no file of the server can be read through a request.
_NO_FILES = Path(tempfile.gettempdir()) / "modalfuse-serve-reads-no-files"
#: Bytes of decoded media and features one request may keep while it runs (a larger entry is recomputed).
_REQUEST_CACHE_BYTES = 256 * 1024**2
#: Metrics of an evaluation summary, when the evaluation holds them.
_SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")


@dataclass
class _Work:
    """One request's records and what happened to them."""

    records: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)
    decode_seconds: float = 0.0
    model_seconds: float = 0.0


@dataclass
class _CellReport:
    """What :meth:`ModelService._usage` reads of a drift report, when only the table's problems are known."""

    problems: list[Problem]
    unseen_categories: dict[str, list[str]] = field(default_factory=dict)


class ModelService:
    """A loaded model and what the endpoints ask of it; :meth:`predict` and :meth:`explain` run in a
    worker thread.

    Parameters
    ----------
    clf : MultimodalClassifier
        A fitted (loaded) model.
    path : Path
        Its folder (for ``GET /model``: name, format version, ``evaluation.json``).
    options : ServeOptions
        Limits and threads.
    """

    def __init__(self, clf: Any, path: Path, options: ServeOptions) -> None:
        self.clf = clf
        self.path = Path(path)
        self.options = options
        schema = clf.schema_
        self.columns = Columns(dict(schema.columns), schema.inputs())
        self.fitted_inputs = list(clf.inputs_)
        self.known_categories = clf._categories()
        self._info = self._model_info()

    # ------------------------------------------------------------------------------------------ model
    def model_info(self) -> dict[str, Any]:
        """What ``GET /model`` answers (computed once)."""
        return self._info

    def _model_info(self) -> dict[str, Any]:
        import modalfuse

        clf = self.clf
        categories = clf._categories()
        columns = []
        for col, modality in self.columns.modality.items():
            name = self.columns.input_of(col)
            entry = {"name": col, "modality": modality, "input": name, "used": name in self.fitted_inputs}
            if modality == "categorical":
                entry["categories"] = categories.get(col, [])
            columns.append(entry)
        inputs = {
            name: {"modality": modality, "columns": cols, "encoder": clf.inputs_[name].encoder}
            for name, (modality, cols) in self.columns.inputs.items()
            if name in self.fitted_inputs
        }
        return {
            "version": modalfuse.__version__,
            "model": {
                "folder": self.path.name,
                "fusion": clf.fusion,
                "format_version": _format_version(self.path),
            },
            "classes": [_jsonable(c) for c in clf.classes_],
            "schema": dict(self.columns.modality),
            "columns": columns,
            "inputs": inputs,
            "evaluation": evaluation_summary(self.path, clf.fusion),
            "limits": self.options.public(),
        }

    # ------------------------------------------------------------------------------------------ work
    def predict(
        self, records: list[dict[str, Any]], contributions: bool
    ) -> tuple[list[dict], dict[str, float]]:
        """Answers for ``records`` (probabilities, inputs used, problems; contributions on request) and the
        seconds spent decoding and in the model."""
        work = _Work([dict(r) for r in records])
        with using_cache(Cache(max_bytes=_REQUEST_CACHE_BYTES, max_models=0)):
            self._decode(work)
            start = time.perf_counter()
            frame = self._frame(work.records)
            preds = self.clf.predict_frame(frame)  # its drift report goes into the answers
            explained, unexplained = self._try_explain(frame) if contributions else (None, None)
            work.model_seconds = time.perf_counter() - start
        report = preds.attrs["drift"]
        out = []
        for i in range(len(work.records)):
            answer = {"prediction": _jsonable(preds["prediction"].iloc[i])}
            answer["probabilities"] = {str(c): float(preds[f"p_{c}"].iloc[i]) for c in self.clf.classes_}
            answer.update(self._usage(i, records[i], work, report))
            if explained is not None:
                answer["contributions"] = self._contributions(explained, i)
            elif contributions:
                answer["contributions"] = None
                answer["notes"] = [*answer.get("notes", []), f"no contributions: {unexplained}"]
            out.append(answer)
        return out, _timings(work)

    def explain(self, records: list[dict[str, Any]]) -> tuple[list[dict], dict[str, float]]:
        """Per record: the prediction, its probability and each input's contribution (``clf.explain``)."""
        work = _Work([dict(r) for r in records])
        with using_cache(Cache(max_bytes=_REQUEST_CACHE_BYTES, max_models=0)):
            self._decode(work)
            start = time.perf_counter()
            frame = self._frame(work.records)
            explained = self.clf.explain(frame)
            # the cells the table checks found unusable (a number out of range...): explain has no report
            cells = _CellReport(self.clf._table_for_predict(frame).problems, self._unseen(frame))
            work.model_seconds = time.perf_counter() - start
        out = []
        for i in range(len(work.records)):
            answer = {
                "prediction": _jsonable(explained["prediction"].iloc[i]),
                "probability": float(explained["probability"].iloc[i]),
                "contributions": self._contributions(explained, i),
            }
            answer.update(self._usage(i, records[i], work, cells))
            out.append(answer)
        return out, _timings(work)

    def _unseen(self, frame: pd.DataFrame) -> dict[str, list[str]]:
        """Categorical column -> the values of ``frame`` the model has no category for."""
        known = self.known_categories
        unseen = {}
        for col in frame.columns:
            if col in known:
                keys = {_category_key(v) for v in frame[col]} - {None} - set(known[col])
                if keys:
                    unseen[col] = sorted(keys)
        return unseen

    def _try_explain(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, str | None]:
        """``clf.explain(frame)``, or None and why when the model's strategy gives no contributions: the
        prediction is still answered."""
        try:
            return self.clf.explain(frame), None
        except ModalfuseError as exc:
            return None, str(exc)

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """The records as a DataFrame of the columns any of them gives (in the model's order)."""
        given = [c for c in self.columns.modality if any(c in r for r in records)]
        return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in given})

    def _decode(self, work: _Work) -> None:
        """Check and decode every media cell, one after another, within the request's decode budget; a
        cell that cannot be used becomes missing and its problem is kept."""
        budget = float(self.options.decode_seconds)
        start = time.perf_counter()
        for i, record in enumerate(work.records):
            for col, value in record.items():
                modality = self.columns.modality[col]
                if value is None or modality not in _MEDIA:
                    continue
                ctx = CellContext(row_ids=np.array([i]), root=_NO_FILES, confine=True, name="request")
                _, mask, found = check_column([value], modality, ctx, col)
                if not mask[0]:
                    record[col] = None
                    work.problems.extend(found)
                elapsed = time.perf_counter() - start
                if elapsed > budget:
                    where = col if len(work.records) == 1 else f"[{i}].{col}"
                    raise RequestError(
                        413,
                        "decode_budget",
                        where,
                        f"{where}: decoding this request's media took {elapsed:.3f} s, over the budget of "
                        f"{budget:g} s per request (it stopped here): send fewer or smaller files per request",
                    )
        work.decode_seconds = time.perf_counter() - start

    def _usage(self, i: int, given: Mapping[str, Any], work: _Work, report: Any) -> dict[str, Any]:
        """Which inputs the model used for record ``i``, which it treated as missing, and why cells given
        were not used."""
        problems = _record_problems(i, given, work.problems, report)
        bad = {p.column for p in problems}
        present = [c for c, v in given.items() if v is not None and c not in bad]
        used = [n for n in self.fitted_inputs if any(c in present for c in self.columns.inputs[n][1])]
        out: dict[str, Any] = {
            "inputs_used": used,
            "inputs_missing": [n for n in self.fitted_inputs if n not in used],
            "problems": [
                {"field": p.column, "input": self.columns.input_of(p.column), "reason": p.reason}
                for p in problems
            ],
        }
        ignored = [c for c in present if self.columns.input_of(c) not in self.fitted_inputs]
        if ignored:
            out["ignored"] = ignored
        notes = _unseen_notes(given, report)
        if not used:
            notes.append(
                "no input of this record could be used: the answer is the model's answer for a record "
                "with every input missing"
            )
        if notes:
            out["notes"] = notes
        return out

    def _contributions(self, explained: pd.DataFrame, i: int) -> dict[str, float]:
        return {n: float(explained[n].iloc[i]) for n in self.fitted_inputs if n in explained.columns}


def _record_problems(i: int, given: Mapping[str, Any], decoded: list[Problem], report: Any) -> list[Problem]:
    """Record ``i``'s problems: media that could not be decoded, then the cells the drift report says the
    model could not use (of those given)."""
    problems = [p for p in decoded if p.row == i]
    if report is None:
        return problems
    undecoded = {p.column for p in problems}
    return problems + [
        p
        for p in report.problems
        if p.row == i and given.get(p.column) is not None and p.column not in undecoded
    ]


def _unseen_notes(given: Mapping[str, Any], report: Any) -> list[str]:
    if report is None:
        return []
    notes = []
    for col, values in report.unseen_categories.items():
        key = _category_key(given.get(col))
        if key is not None and key in values:
            notes.append(f"{col}: the model has no category {key!r}; it is encoded as 'other'")
    return notes


def _timings(work: _Work) -> dict[str, float]:
    return {"decode": work.decode_seconds, "model": work.model_seconds}


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _format_version(path: Path) -> Any:
    try:
        return json.loads((path / "model.json").read_text()).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------- evaluation
def evaluation_summary(path: Path, fusion: str) -> dict[str, Any] | None:
    """A summary of ``evaluation.json`` in the model folder (the JSON ``modalfuse evaluate --json``
    writes), or None when there is none.

    Gives the dataset, rows, folds, the mean and standard deviation of the main metrics of the model's own
    strategy (when the evaluation has it), every strategy's mean accuracy and the recommendation. A file
    that cannot be read gives ``{"file": ..., "error": ...}`` rather than stopping the server.
    """
    file = Path(path) / "evaluation.json"
    if not file.is_file():
        return None
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {"file": file.name, "error": f"cannot read it: {exc}"}
    strategies = doc.get("strategies") if isinstance(doc, dict) else None
    if not isinstance(strategies, dict):
        return {"file": file.name, "error": "not the JSON of `modalfuse evaluate --json` (no 'strategies')"}
    own = strategies.get(fusion) if isinstance(strategies.get(fusion), dict) else {}
    cv = doc.get("cv") if isinstance(doc.get("cv"), dict) else {}
    recommendation = doc.get("recommendation") if isinstance(doc.get("recommendation"), dict) else {}
    return {
        "file": file.name,
        "dataset": doc.get("dataset"),
        "n_rows": doc.get("n_rows"),
        "cv": {k: cv.get(k) for k in ("kind", "n_folds", "groups") if k in cv},
        "strategy": fusion if own else None,
        "metrics": {m: _mean_std(own[m]) for m in _SUMMARY_METRICS if isinstance(own.get(m), dict)},
        "accuracy_by_strategy": {
            name: _mean_std(entry["accuracy"])["mean"]
            for name, entry in strategies.items()
            if isinstance(entry, dict) and isinstance(entry.get("accuracy"), dict)
        },
        "recommendation": recommendation.get("reason"),
    }


def _mean_std(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"mean": entry.get("mean"), "std": entry.get("std")}
