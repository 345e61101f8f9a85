"""Built-in datasets by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modalfuse._errors import OptionError, UnknownNameError
from modalfuse.data._table import MultimodalTable, read_table

__all__ = ["download_dataset", "list_datasets", "load_dataset"]

_DATASETS = {
    "av-digits-sample": "300 rows of AV-Digits (hard) shipped with modalfuse (all 6 speakers, 5 takes of "
    "each digit): the demo's data, no download",
    "av-digits": "AV-Digits, clean images: spoken digit (FSDD audio) + handwritten digit (MNIST image); "
    "label digit, groups speaker; 3,000 rows",
    "av-digits-hard": "AV-Digits with each image reduced to its projection on 4 principal components; "
    "3,000 rows",
    "sp-sw-har": "smartphone + smartwatch inertial recordings (two series inputs, own clocks), 5 activities, "
    "23 subjects as groups; windows of 50 samples at 100 Hz every 25 (about 10,000 rows)",
}

#: Names that are accepted but not listed.
_ALIASES = {"av-digits-clean": "av-digits", "sp_sw_har": "sp-sw-har"}

#: Datasets whose sources ``modalfuse datasets --download`` can fetch.
DOWNLOADABLE = ("av-digits", "av-digits-hard")


def list_datasets() -> dict[str, str]:
    """Built-in dataset names and one-line descriptions."""
    return dict(_DATASETS)


def _resolve(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in _DATASETS:
        raise UnknownNameError("dataset", name, _DATASETS)
    return name


def load_dataset(
    name: str, *, root: str | os.PathLike | None = None, download: bool = False, **kwargs: Any
) -> MultimodalTable:
    """Load a built-in dataset as a :class:`MultimodalTable` with its label and groups set.

    ``root`` is a folder holding the sources (for AV-Digits: ``fsdd/`` and ``mnist/``; for sp-sw-har:
    ``sp_sw_har/DATA``, see :func:`modalfuse.data.sp_sw_har.load_sp_sw_har`, which takes the window
    options as keyword arguments); see
    :func:`modalfuse.data.av_digits.build_av_digits` for the other places searched. ``av-digits-sample``
    ships with the package and needs neither ``root`` nor a download.

    Raises
    ------
    UnknownNameError
        For a name that is not a built-in dataset (the message suggests the closest one).
    DatasetNotFoundError
        When the sources are found nowhere (and ``download`` is False).
    """
    from modalfuse.data.av_digits import AV_DIGITS_GROUPS, AV_DIGITS_LABEL, DEMO_SAMPLE_DIR, build_av_digits

    name = _resolve(name)
    if name == "sp-sw-har":
        from modalfuse.data.sp_sw_har import load_sp_sw_har

        return load_sp_sw_har(root, **kwargs)
    if name == "av-digits-sample":
        return read_table(
            Path(DEMO_SAMPLE_DIR) / "data.csv",
            label=AV_DIGITS_LABEL,
            groups=AV_DIGITS_GROUPS,
            modalities={"audio": "audio", "image": "image"},
            name=name,
        )
    variant = "hard" if name.endswith("hard") else "clean"
    ds = build_av_digits(root, variant=variant, download=download, **kwargs)
    return read_table(
        ds.to_frame(),
        label=AV_DIGITS_LABEL,
        groups=AV_DIGITS_GROUPS,
        modalities={"audio": "audio", "image": "image"},
        name=name,
    )


def download_dataset(name: str, *, root: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Download (and verify) the public sources of a built-in dataset where they are not on disk yet.

    ``root`` is the folder to download into (default: the user cache, see
    :func:`modalfuse.data.av_digits.download_av_digits`, which takes the other keyword arguments, such as
    ``progress``). Returns the folder that holds the sources.
    """
    from modalfuse.data.av_digits import download_av_digits

    name = _resolve(name)
    if name not in DOWNLOADABLE:
        raise OptionError(
            f"{name} ships with modalfuse: nothing to download (downloadable: {', '.join(DOWNLOADABLE)})"
        )
    return download_av_digits(root, variant="hard" if name.endswith("hard") else "clean", **kwargs)
