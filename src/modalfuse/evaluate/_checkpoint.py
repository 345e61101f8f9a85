"""Fold-by-fold checkpoints of :func:`~modalfuse.evaluate.compare`, so an interrupted comparison keeps what
finished and can be resumed.

A checkpoint is a JSON file holding the *settings* of the comparison (dataset, rows, classes, folds, seed,
strategies and their parameters) and one *step* record per finished (fold, strategy) pair: its metrics,
timings and error, if any. It is rewritten atomically after every step (a temporary file beside it, then
``os.replace``), with the permissions the user's umask gives a new file. Resuming checks that the settings
are the same and skips the finished steps; the final result is then the same as an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modalfuse._errors import ModalfuseError

__all__ = ["CHECKPOINT_FORMAT", "StepLog", "compare_settings", "write_json_atomic"]

#: ``format`` of the ``checkpoint`` section of a comparison file.
CHECKPOINT_FORMAT = "modalfuse-compare-checkpoint"
CHECKPOINT_VERSION = 1


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_json_atomic(path: str | os.PathLike, doc: Any) -> Path:
    """Write ``doc`` as JSON to ``path`` atomically: readers see the old file or the new one, never a part.

    The temporary file is created with mode ``0o666`` and the process umask applies, as it would to
    ``open(path, "w")``, so the final file does not end up private (``mkstemp`` would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, numpy scalars Python numbers)."""
    return json.loads(json.dumps(value, default=_json_default))


def _estimator_settings(estimator: Any) -> dict[str, Any]:
    """The class and (shallow) parameters of an estimator, JSON-safe."""
    get_params = getattr(estimator, "get_params", None)
    params = get_params(deep=False) if callable(get_params) else {}
    kind = type(estimator)
    return {"class": f"{kind.__module__}.{kind.__qualname__}", "params": _plain(params)}


def _folds_digest(splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for _, test in splits:
        h.update(np.asarray(test, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def compare_settings(
    strategies: Mapping[str, Any],
    *,
    dataset: Any,
    n_rows: int,
    classes: Sequence[Any],
    cv: Any,
    cv_info: Mapping[str, Any],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> dict[str, Any]:
    """Everything a comparison's results depend on besides the code: what a resume must find unchanged.

    ``cv`` is recorded as given (a splitter object by its ``repr``), with the fold kind, count and a
    digest of the test rows of every fold, so a changed table or split is noticed.
    """
    spec = cv if isinstance(cv, int | str) and not isinstance(cv, bool) else repr(cv)
    return _plain(
        {
            "dataset": dataset,
            "n_rows": int(n_rows),
            "classes": list(classes),
            "cv": {
                "spec": spec,
                "kind": cv_info.get("kind"),
                "n_folds": len(splits),
                "groups": cv_info.get("groups"),
                "folds_digest": _folds_digest(splits),
            },
            "seed": int(seed),
            "strategies": {name: _estimator_settings(est) for name, est in strategies.items()},
        }
    )


def _differences(old: Any, new: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf paths where ``old`` and ``new`` differ, with both values (a missing key as ``<absent>``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in dict.fromkeys([*old, *new]):
            sub = f"{where}.{key}" if where else str(key)
            out += _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), sub)
        return out
    return [] if old == new else [(where, old, new)]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_differences(diffs: list[tuple[str, Any, Any]], limit: int = 3) -> str:
    parts = [f"{where}: {_short(old)} in the file, {_short(new)} now" for where, old, new in diffs[:limit]]
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(parts) + more


def _section_of(doc: Any, path: Path) -> dict[str, Any]:
    """The ``checkpoint`` section of a comparison file read from ``path``, checked for format and version."""
    section = doc.get("checkpoint") if isinstance(doc, dict) else None
    if not isinstance(section, dict) or section.get("format") != CHECKPOINT_FORMAT:
        raise ModalfuseError(
            f"{path}: cannot resume from it: not a comparison checkpoint (written by an older "
            "modalfuse or another program); run without resume to start afresh"
        )
    if section.get("version") != CHECKPOINT_VERSION:
        raise ModalfuseError(
            f"{path}: cannot resume from it: checkpoint version {section.get('version')!r}, this "
            f"modalfuse reads version {CHECKPOINT_VERSION}"
        )
    return section


class StepLog:
    """The finished (fold, strategy) steps of one comparison, kept in a checkpoint file if one is given.

    Parameters
    ----------
    path : path or None
        The checkpoint file; ``None`` keeps the steps in memory only.
    settings : dict
        :func:`compare_settings` of the comparison.
    resume : bool
        Read the steps already in ``path`` (which must have been written with the same settings) instead
        of starting afresh. A missing file starts afresh.
    header : dict, optional
        Extra top-level fields written with every checkpoint (dataset, classes, folds...), for readers.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        settings: Mapping[str, Any],
        *,
        resume: bool = False,
        header: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.settings = dict(settings)
        self.header = dict(header or {})
        self.steps: list[dict[str, Any]] = []
        self.resumed = 0
        if resume and self.path is not None and self.path.exists():
            self.steps = self._read()
            self.resumed = len(self.steps)
        self._index = {(s["fold"], s["strategy"]): s for s in self.steps}

    def _read(self) -> list[dict[str, Any]]:
        """The steps of the checkpoint at ``self.path``, after checking its settings against ours."""
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModalfuseError(f"{self.path}: cannot resume from it: not readable JSON ({exc})") from None
        section = _section_of(doc, self.path)
        diffs = _differences(section.get("settings"), self.settings)
        if diffs:
            raise ModalfuseError(
                f"{self.path}: cannot resume: it was written with other settings "
                f"({_describe_differences(diffs)}); run without resume to start afresh"
            )
        steps = section.get("steps")
        if not isinstance(steps, list) or not all(
            isinstance(s, dict) and "fold" in s and "strategy" in s for s in steps
        ):
            raise ModalfuseError(f"{self.path}: cannot resume from it: its steps are malformed")
        return steps

    def get(self, fold: int, strategy: str) -> dict[str, Any] | None:
        """The finished step ``(fold, strategy)``, or ``None``."""
        return self._index.get((fold, strategy))

    def add(self, step: Mapping[str, Any]) -> None:
        """Record a finished step, and rewrite the checkpoint file."""
        step = _plain(step)
        self.steps.append(step)
        self._index[(step["fold"], step["strategy"])] = step
        if self.path is not None:
            write_json_atomic(self.path, {**self.header, "checkpoint": self.section(complete=False)})

    def section(self, *, complete: bool) -> dict[str, Any]:
        """The ``checkpoint`` section of a comparison file."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "complete": complete,
            "resumed_steps": self.resumed,
            "settings": self.settings,
            "steps": list(self.steps),
        }
