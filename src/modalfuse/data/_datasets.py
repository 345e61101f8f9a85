"""Built-in datasets by name."""

from __future__ import annotations

import os
from typing import Any

from modalfuse._errors import UnknownNameError
from modalfuse.data._table import MultimodalTable, read_table

__all__ = ["list_datasets", "load_dataset"]

_DATASETS = {
    "av-digits": "AV-Digits, clean images: spoken digit (FSDD audio) + handwritten digit (MNIST image); "
    "label digit, groups speaker",
    "av-digits-hard": "AV-Digits with images degraded to 4 principal components (DESIGN.md section 5)",
}


def list_datasets() -> dict[str, str]:
    """Built-in dataset names and one-line descriptions."""
    return dict(_DATASETS)


def load_dataset(
    name: str, *, root: str | os.PathLike | None = None, download: bool = False, **kwargs: Any
) -> MultimodalTable:
    """Load a built-in dataset as a :class:`MultimodalTable` with its label and groups set.

    ``root`` is a folder holding the sources (for AV-Digits: ``fsdd/`` and ``mnist/``); see
    :func:`modalfuse.data.av_digits.build_av_digits` for the other places searched.
    """
    if name in ("av-digits", "av-digits-clean", "av-digits-hard"):
        from modalfuse.data.av_digits import AV_DIGITS_GROUPS, AV_DIGITS_LABEL, build_av_digits

        variant = "hard" if name.endswith("hard") else "clean"
        ds = build_av_digits(root, variant=variant, download=download, **kwargs)
        return read_table(
            ds.to_frame(),
            label=AV_DIGITS_LABEL,
            groups=AV_DIGITS_GROUPS,
            modalities={"audio": "audio", "image": "image"},
            name="av-digits-hard" if variant == "hard" else "av-digits",
        )
    raise UnknownNameError("dataset", name, _DATASETS)
