"""The ``sp-sw-har`` built-in dataset: a smartphone and a smartwatch worn together, 23 subjects, five
activities, labelled per sample (Matey-Sanz, Casteleyn and Granell, Data in Brief 51:109809, 2023; CC BY 4.0).

The recordings (``DATA/sNN/sNN_EE_{sp,sw}.csv``: x/y/z acceleration and gyroscope, a unix timestamp in
ms, the activity) are windowed by :func:`modalfuse.windows`: by default as in the published study
(GeoTecINIT/har-performance-study): windows of 50 samples at 100 Hz every 25, labelled by the majority
of the phone's per-sample labels, one series input per device, groups = subjects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modalfuse._errors import DatasetNotFoundError
from modalfuse.data._table import MultimodalTable

__all__ = ["SP_SW_HAR_INPUTS", "find_sp_sw_har", "load_sp_sw_har"]

#: The inputs, the reference (whose clock and labels the windows follow) first.
SP_SW_HAR_INPUTS = ("sp", "sw")
_FOLDER = "sp_sw_har"


def _has_data(base: Path) -> bool:
    return (base / "s01").is_dir() and any((base / "s01").glob("s01_*_sp.csv"))


def find_sp_sw_har(root: str | os.PathLike | None = None) -> Path:
    """The ``DATA`` folder of the dataset: under ``root`` (``root``, ``root/DATA`` or
    ``root/sp_sw_har/DATA``), else under ``$MODALFUSE_DATA`` or ``../shared/datasets`` (from the current
    directory or the repository). Raises :class:`DatasetNotFoundError` naming every place searched."""
    repo = Path(__file__).resolve().parents[3]
    if root is not None:
        bases = [Path(root).expanduser()]
    else:
        env = os.environ.get("MODALFUSE_DATA")
        bases = [Path(env).expanduser()] if env else []
        bases += [Path.cwd() / ".." / "shared" / "datasets", repo / ".." / "shared" / "datasets"]
    searched = []
    for base in bases:
        for cand in (base, base / "DATA", base / _FOLDER / "DATA"):
            if _has_data(cand):
                return cand.resolve()
            searched.append(str(cand))
    raise DatasetNotFoundError(
        "sp-sw-har recordings (sNN/sNN_EE_sp.csv and _sw.csv) not found; searched "
        + ", ".join(searched)
        + ". Fix: get the dataset (github.com/GeoTecINIT/sp-sw-har-dataset, folder DATA) and pass "
        "root= (--data-root) or set MODALFUSE_DATA to the folder holding sp_sw_har/DATA."
    )


def load_sp_sw_har(
    root: str | os.PathLike | None = None,
    *,
    subjects: list[str] | None = None,
    name: str = "sp-sw-har",
    **window_options: Any,
) -> MultimodalTable:
    """The windowed table (see :func:`modalfuse.windows` for ``window_options``: ``size`` 50, ``step`` 25,
    ``rate`` 100 Hz by default, ``align``, ``offsets``...), label ``y`` the activity, groups the subjects.
    ``subjects`` (e.g. ``["s01", "s02"]``) keeps only those."""
    from modalfuse.data._windows import RecordingSet, find_recordings, windows

    found = find_recordings(find_sp_sw_har(root), list(SP_SW_HAR_INPUTS))
    if subjects is not None:
        keep = {k: v for k, v in found.paths.items() if found.groups.get(k) in set(subjects)}
        found = RecordingSet(found.inputs, keep, found.groups)
    return windows(found, name=name, **window_options)
