"""Test-time (and training-time) corruptions of a table's inputs, their registry and the ``--corrupt`` spec.

A corruption damages one input of chosen rows the way the real world does: a modality missing, noise at a
given signal-to-noise ratio, a clipped or muffled recording, a blurred, noisy, occluded or washed-out
image, dropped words and typos, noisy or blank tabular cells. Media cells are corrupted *after decoding and
before preprocessing*: the damaged wave or image replaces the cell (as an in-memory ``(wave, rate)`` tuple
or an image array), so a corrupted row is preprocessed exactly as a real noisy recording would be.

Everything is seeded. The rows a spec touches (``@F``: a share ``F`` of the rows) and the random pattern of
each cell (a noise realisation, an occlusion's position) come from the seed, the spec (input and name, not
the level) and the row's id, so

- every strategy evaluated on a fold sees the same corrupted rows;
- the levels of one spec are nested: the rows missing at rate 0.25 are among those missing at 0.5, and a
  row's noise at 0 dB is its noise at 5 dB, louder.

A spec is written ``INPUT:NAME=LEVEL[,LEVEL...][@SHARE]``, e.g. ``audio:noise=20,10,5,0,-5@0.5``;
:func:`parse_corruption` reads it and :meth:`CorruptionSpec.check` validates it against a table's inputs
(an unknown input, an unknown corruption for that input's modality or a level out of range is a one-line
error naming the bad part). :func:`list_corruptions` lists the registry; :func:`register_corruption` adds
to it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import DecodeError, OptionError, UnknownNameError

__all__ = [
    "Corruption",
    "CorruptionSpec",
    "corrupt_rows",
    "corrupt_table",
    "get_corruption",
    "list_corruptions",
    "parse_corruption",
    "register_corruption",
]

#: The input modalities a corruption can be registered for ("any" applies to every input).
INPUT_MODALITIES = ("image", "audio", "text", "tabular")

#: Corrupts one decoded cell: ``(value, level, rng) -> value``. Media: an image (H, W, C) float32 in
#: [0, 1] or a ``(wave, rate)`` tuple; text: a string; tabular: the row's cells of the input (a dict).
CellFunction = Callable[[Any, float, np.random.Generator], Any]


@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    Attributes
    ----------
    name : str
        Its name in a spec (``noise``).
    modality : str
        ``image``, ``audio``, ``text``, ``tabular`` or ``any``.
    level : str
        What a level means, in words (``"signal-to-noise ratio in dB"``).
    low, high : float
        The valid levels, inclusive.
    function : callable or None
        ``function(cell, level, rng) -> cell`` (see :data:`CellFunction`); None for ``missing``, which the
        table code applies itself.
    description : str
        One line for ``modalfuse robustness --help`` and the docs.
    milder : str
        ``"higher"`` or ``"lower"``: which end of the level range damages least (for ordering curves).
    """

    name: str
    modality: str
    level: str
    low: float
    high: float
    function: CellFunction | None
    description: str
    milder: str = "lower"

    def check_level(self, level: float, where: str) -> float:
        """``level`` as a float, or an :class:`OptionError` naming ``where`` and the valid range."""
        if not np.isfinite(level) or not self.low <= level <= self.high:
            who = self.name if self.modality == "any" else f"{self.modality} {self.name}"
            raise OptionError(
                f"corruption {where!r}: level {_fmt(level)} is out of range: {who} takes "
                f"a {self.level} in [{_fmt(self.low)}, {_fmt(self.high)}]"
            )
        return float(level)


_REGISTRY: dict[tuple[str, str], Corruption] = {}


def register_corruption(corruption: Corruption, *, overwrite: bool = False) -> Corruption:
    """Add ``corruption`` to the registry (keyed by modality and name)."""
    if corruption.modality not in (*INPUT_MODALITIES, "any"):
        raise OptionError(
            f"corruption {corruption.name!r}: modality must be one of {', '.join(INPUT_MODALITIES)} or any, "
            f"got {corruption.modality!r}"
        )
    key = (corruption.modality, corruption.name)
    if key in _REGISTRY and not overwrite:
        raise OptionError(f"a corruption {corruption.name!r} for {corruption.modality} is already registered")
    _REGISTRY[key] = corruption
    return corruption


def _known(modality: str) -> list[str]:
    return sorted({n for (m, n) in _REGISTRY if m in (modality, "any")})


def list_corruptions(modality: str | None = None) -> dict[str, dict[str, str]]:
    """Modality -> {name: "level meaning [low, high]: description"}; one modality's only when given."""
    out: dict[str, dict[str, str]] = {}
    for m in INPUT_MODALITIES if modality is None else (modality,):
        out[m] = {}
        for name in _known(m):
            c = get_corruption(m, name)
            out[m][name] = f"{c.level} in [{_fmt(c.low)}, {_fmt(c.high)}]: {c.description}"
    return out


def get_corruption(modality: str, name: str, *, where: str = "") -> Corruption:
    """The corruption ``name`` for inputs of ``modality``, or an :class:`UnknownNameError` listing the
    names that modality has."""
    for key in ((modality, name), ("any", name)):
        if key in _REGISTRY:
            return _REGISTRY[key]
    hint = f"corruptions of {modality} inputs" + (f"; in {where!r}" if where else "")
    raise UnknownNameError("corruption", name, _known(modality), hint=hint)


# ------------------------------------------------------------------------------------------------ specs
_SPEC_RE = re.compile(r"^\s*([^:=@]+?)\s*:\s*([A-Za-z_][\w-]*)\s*=\s*([^@]+?)\s*(?:@\s*(\S+))?\s*$")


def _fmt(value: float) -> str:
    """A level as it is written in JSON keys and messages: ``20``, ``-5``, ``0.25``."""
    return f"{float(value):g}"


@dataclass(frozen=True)
class CorruptionSpec:
    """A parsed ``INPUT:NAME=LEVEL[,LEVEL...][@SHARE]``.

    Attributes
    ----------
    input : str
        The input corrupted (a name of ``table.inputs``).
    name : str
        The corruption.
    levels : tuple of float
        In the order given (the curve's order).
    share : float or None
        The share of rows corrupted (``@F``); None: every row.
    text : str
        The spec as written.
    """

    input: str
    name: str
    levels: tuple[float, ...]
    share: float | None = None
    text: str = ""

    @property
    def key(self) -> str:
        """The spec without its levels, as results name a curve: ``audio:noise@0.5``, ``image:missing``."""
        base = f"{self.input}:{self.name}"
        return base if self.share is None else f"{base}@{_fmt(self.share)}"

    @property
    def level_keys(self) -> list[str]:
        """The levels as JSON keys (``"20"``, ``"-5"``, ``"0.25"``)."""
        return [_fmt(v) for v in self.levels]

    def corruption(self, modality: str) -> Corruption:
        return get_corruption(modality, self.name, where=self.text or self.key)

    def check(self, inputs: Mapping[str, tuple[str, list[str]]]) -> CorruptionSpec:
        """Validate against a table's ``inputs`` (``name -> (modality, columns)``).

        Raises
        ------
        UnknownNameError
            The input is not one of the table's, or the corruption is not one of its modality's.
        OptionError
            A level out of the corruption's range.
        """
        where = self.text or self.key
        if self.input not in inputs:
            raise UnknownNameError("input", self.input, inputs, hint=f"in corruption {where!r}")
        corruption = self.corruption(inputs[self.input][0])
        for level in self.levels:
            corruption.check_level(level, where)
        return self


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"corruption {where!r}: {what} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise OptionError(f"corruption {where!r}: {what} {text!r} is not a finite number")
    return value


def parse_corruption(
    text: str | CorruptionSpec, inputs: Mapping[str, tuple[str, list[str]]] | None = None
) -> CorruptionSpec:
    """Read a spec ``INPUT:NAME=LEVEL[,LEVEL...][@SHARE]`` (e.g. ``audio:noise=20,10,5,0,-5@0.5``).

    Parameters
    ----------
    text : str or CorruptionSpec
        The spec (a parsed one is returned as is, checked against ``inputs``).
    inputs : mapping, optional
        A table's ``inputs`` to validate against (see :meth:`CorruptionSpec.check`); without it only the
        syntax and the share are checked.

    Raises
    ------
    OptionError
        Malformed text, a level or share that is not a number, a share outside (0, 1], a level out of range.
    UnknownNameError
        An input or corruption name that does not exist (with ``inputs``).
    """
    if isinstance(text, CorruptionSpec):
        return text.check(inputs) if inputs is not None else text
    if not isinstance(text, str):
        raise OptionError(f"a corruption is a string INPUT:NAME=LEVEL[,LEVEL...][@SHARE], got {text!r}")
    match = _SPEC_RE.match(text)
    if match is None:
        raise OptionError(
            f"corruption {text!r}: expected INPUT:NAME=LEVEL[,LEVEL...][@SHARE], e.g. audio:noise=20,10,5@0.5"
        )
    input_name, name, levels_text, share_text = match.groups()
    parts = [p.strip() for p in levels_text.split(",")]
    if not all(parts):
        raise OptionError(f"corruption {text!r}: an empty level in {levels_text!r}")
    levels = tuple(_number(p, "level", text) for p in parts)
    if len({_fmt(v) for v in levels}) != len(levels):
        raise OptionError(f"corruption {text!r}: a level is listed twice")
    share = None
    if share_text is not None:
        share = _number(share_text, "share", text)
        if not 0.0 < share <= 1.0:
            raise OptionError(f"corruption {text!r}: share @{share_text} must be in (0, 1]")
    spec = CorruptionSpec(input_name.strip(), name, levels, share, text.strip())
    return spec.check(inputs) if inputs is not None else spec


def parse_corruptions(
    specs: str | CorruptionSpec | Sequence[str | CorruptionSpec] | None,
    inputs: Mapping[str, tuple[str, list[str]]] | None = None,
) -> list[CorruptionSpec]:
    """Several specs (a list, or one string; ``;`` separates specs in one string)."""
    if specs is None:
        return []
    if isinstance(specs, str | CorruptionSpec):
        specs = [s for s in specs.split(";") if s.strip()] if isinstance(specs, str) else [specs]
    out = [parse_corruption(s, inputs) for s in specs]
    keys = [s.key for s in out]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise OptionError(f"corruption {dup!r} is given twice; list its levels in one spec")
    return out


# ------------------------------------------------------------------------------------------- randomness
def _stream(seed: int, spec: CorruptionSpec, purpose: str) -> int:
    """A 32-bit number naming one random stream of ``spec`` (independent of its levels)."""
    return zlib.crc32(f"{spec.key}|{purpose}".encode()) ^ (int(seed) & 0xFFFFFFFF)


def _row_uniforms(row_ids: np.ndarray, seed: int, spec: CorruptionSpec, purpose: str) -> np.ndarray:
    """One uniform number per row id, the same whatever other rows are present."""
    stream = _stream(seed, spec, purpose)
    return np.array([np.random.default_rng([stream, int(r)]).random() for r in row_ids], dtype=np.float64)


def _first(u: np.ndarray, share: float) -> np.ndarray:
    """Boolean mask of the ``round(share * n)`` rows with the smallest ``u`` (ties by position)."""
    n = round(share * len(u))
    out = np.zeros(len(u), bool)
    out[np.argsort(u, kind="stable")[:n]] = True
    return out


def selected_rows(row_ids: np.ndarray, seed: int, spec: CorruptionSpec) -> np.ndarray:
    """Which rows ``spec`` touches: all, or the share ``spec.share`` of them (seeded, per row id)."""
    if spec.share is None:
        return np.ones(len(row_ids), bool)
    return _first(_row_uniforms(row_ids, seed, spec, "rows"), spec.share)


def _cell_rng(seed: int, spec: CorruptionSpec, row_id: int) -> np.random.Generator:
    return np.random.default_rng([_stream(seed, spec, "cell"), int(row_id)])


# --------------------------------------------------------------------------------------- applying them
def _media_cell(value: Any, modality: str) -> Any:
    """The decoded image or ``(wave, rate)`` of a cell; None when it cannot be decoded (left as it is)."""
    from modalfuse.data._media import decode_media

    try:
        return decode_media(value, modality)
    except DecodeError:
        return None


def _blank(value: Any) -> Any:
    return np.nan if isinstance(value, float | int | np.number) and not isinstance(value, bool) else None


def _missing_rows(table: Any, spec: CorruptionSpec, level: float, rows: np.ndarray, seed: int) -> np.ndarray:
    """Of ``rows`` (a mask), the ``round(level * n)`` ones whose input goes missing (nested across levels)."""
    idx = np.flatnonzero(rows)
    u = _row_uniforms(table.row_ids[idx], seed, spec, "missing")
    out = np.zeros(len(rows), bool)
    out[idx[_first(u, level)]] = True
    return out


def _set_missing(
    table: Any, frame: pd.DataFrame, present: dict[str, np.ndarray], rows: np.ndarray, spec: Any
):
    """Blank the input's cells in ``rows`` (NaN in numeric columns, None elsewhere) and mask them."""
    for col in table.inputs[spec.input][1]:
        numeric = table.schema.columns[col] == "numeric"
        values = frame[col].to_numpy(dtype=object).copy()
        values[rows] = np.nan if numeric else None
        frame[col] = pd.Series(values, index=frame.index, dtype=float if numeric else object)
        present[col] &= ~rows


def _corrupt_cells(
    table: Any,
    frame: pd.DataFrame,
    present: dict[str, np.ndarray],
    spec: CorruptionSpec,
    corruption: Corruption,
    levels: np.ndarray,
    rows: np.ndarray,
    seed: int,
) -> None:
    """Apply ``corruption`` at ``levels[i]`` to every selected row ``i`` where the input is present."""
    modality, columns = table.inputs[spec.input]
    if modality == "tabular":
        _corrupt_tabular(table, frame, present, spec, corruption, levels, rows, seed, columns)
        return
    col = columns[0]
    values = frame[col].to_numpy(dtype=object).copy()
    for i in np.flatnonzero(rows & present[col]):
        rng = _cell_rng(seed, spec, table.row_ids[i])
        cell = values[i] if modality == "text" else _media_cell(values[i], modality)
        if cell is None:
            continue
        values[i] = corruption.function(cell, float(levels[i]), rng)
        if modality == "text" and not str(values[i]).strip():
            values[i] = None
            present[col][i] = False
    frame[col] = pd.Series(values, index=frame.index, dtype=object)


def _corrupt_tabular(
    table: Any,
    frame: pd.DataFrame,
    present: dict[str, np.ndarray],
    spec: CorruptionSpec,
    corruption: Corruption,
    levels: np.ndarray,
    rows: np.ndarray,
    seed: int,
    columns: list[str],
) -> None:
    """Tabular corruptions see the row's cells of the input as a dict, plus each numeric column's standard
    deviation over the rows corrupted together (under the key ``"__std__"``)."""
    stds = {
        c: float(np.nanstd(pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)))
        for c in columns
        if table.schema.columns[c] == "numeric" and present[c].any()
    }
    new = {c: frame[c].to_numpy(dtype=object).copy() for c in columns}
    for i in np.flatnonzero(rows):
        cells = {c: new[c][i] for c in columns if present[c][i]}
        if not cells:
            continue
        rng = _cell_rng(seed, spec, table.row_ids[i])
        out = corruption.function({**cells, "__std__": stds}, float(levels[i]), rng)
        for c in cells:
            new[c][i] = out.get(c)
            if out.get(c) is None or (isinstance(out.get(c), float) and np.isnan(out[c])):
                present[c][i] = False
                new[c][i] = _blank(cells[c])
    for c in columns:
        numeric = table.schema.columns[c] == "numeric"
        frame[c] = pd.Series(new[c], index=frame.index, dtype=float if numeric else object)


def _apply(table: Any, spec: CorruptionSpec, levels: np.ndarray, rows: np.ndarray, seed: int) -> Any:
    """``table`` with ``spec`` applied at ``levels[i]`` to the rows where ``rows`` is True."""

    modality = table.inputs[spec.input][0]
    corruption = spec.corruption(modality)
    frame = table.frame.copy()
    present = {c: m.copy() for c, m in table.present.items()}
    if corruption.function is None:  # missing: the level is the share of the selected rows
        gone = np.zeros(len(table), bool)
        for level in np.unique(levels[rows]):
            gone |= _missing_rows(table, spec, float(level), rows & (levels == level), seed)
        _set_missing(table, frame, present, gone, spec)
    else:
        _corrupt_cells(table, frame, present, spec, corruption, levels, rows, seed)
    return table.with_cells(frame, present)


def corrupt_table(table: Any, spec: str | CorruptionSpec, level: float, *, seed: int = 0) -> Any:
    """A copy of ``table`` with ``spec`` applied at ``level`` (to its share of the rows, if it has one).

    Parameters
    ----------
    table : MultimodalTable
    spec : str or CorruptionSpec
        E.g. ``"audio:noise=5@0.5"`` (its own levels are ignored; ``level`` is applied).
    level : float
        Checked against the corruption's range.
    seed : int, default=0
        With the spec and each row's id, decides the rows and each cell's random pattern.

    Returns
    -------
    MultimodalTable
        Same rows, labels, groups and row ids; corrupted cells replaced (media by in-memory values), cells
        made missing masked in ``present``.
    """
    spec = parse_corruption(spec, table.inputs)
    level = spec.corruption(table.inputs[spec.input][0]).check_level(float(level), spec.text or spec.key)
    rows = selected_rows(table.row_ids, seed, spec)
    return _apply(table, spec, np.full(len(table), level), rows, seed)


def corrupt_rows(
    table: Any, specs: Sequence[str | CorruptionSpec], *, seed: int = 0
) -> tuple[np.ndarray, Any]:
    """Training-time corruption (augmentation): each spec corrupts its share of the rows, each row at one
    of the spec's levels drawn at random (seeded per row id); a row may be hit by several specs.

    Returns
    -------
    rows : ndarray of int
        Positions in ``table`` of the rows corrupted by at least one spec.
    corrupted : MultimodalTable
        Those rows, corrupted.
    """
    parsed = parse_corruptions(list(specs), table.inputs)
    hit = np.zeros(len(table), bool)
    out = table
    for spec in parsed:
        rows = selected_rows(table.row_ids, seed, spec)
        pick = _row_uniforms(table.row_ids, seed, spec, "level")
        levels = np.asarray(spec.levels)[
            np.minimum((pick * len(spec.levels)).astype(int), len(spec.levels) - 1)
        ]
        out = _apply(out, spec, levels, rows, seed)
        hit |= rows
    idx = np.flatnonzero(hit)
    return idx, out.take(idx)


# ------------------------------------------------------------------------------------------ audio cells
def _scaled_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave`` plus ``noise`` scaled so that the ratio of their mean powers is ``snr_db`` exactly."""
    signal_power = float(np.mean(np.square(wave, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    if signal_power <= 0 or noise_power <= 0:
        return wave
    gain = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (wave + gain * noise).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f power) noise: white noise shaped in the frequency domain, zero mean."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    spectrum = spectrum / np.sqrt(freqs)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def _audio_noise(cell: tuple, level: float, rng: np.random.Generator) -> tuple:
    wave, rate = cell
    return _scaled_noise(wave, rng.standard_normal(len(wave)), level), rate


def _audio_pink(cell: tuple, level: float, rng: np.random.Generator) -> tuple:
    wave, rate = cell
    return _scaled_noise(wave, pink_noise(len(wave), rng), level), rate


def _audio_clipping(cell: tuple, level: float, rng: np.random.Generator) -> tuple:
    wave, rate = cell
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    if peak <= 0:
        return wave, rate
    return np.clip(wave * (10.0 ** (level / 20.0) / peak), -1.0, 1.0).astype(np.float32), rate


def _audio_lowpass(cell: tuple, level: float, rng: np.random.Generator) -> tuple:
    from scipy.signal import butter, sosfiltfilt

    wave, rate = cell
    if level >= 0.99 * rate / 2 or len(wave) < 64:
        return wave, rate
    sos = butter(8, level, btype="low", fs=rate, output="sos")
    return sosfiltfilt(sos, wave).astype(np.float32), rate


# ------------------------------------------------------------------------------------------ image cells
def _image_noise(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + level * rng.standard_normal(img.shape), 0.0, 1.0).astype(np.float32)


def _image_blur(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if level <= 0:
        return img
    return gaussian_filter(img, sigma=(level, level, 0), mode="nearest").astype(np.float32)


def _image_occlusion(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    cy, cx = rng.random(2)  # the patch's centre, fixed across levels
    side_h, side_w = round(h * np.sqrt(level)), round(w * np.sqrt(level))
    if side_h == 0 or side_w == 0:
        return img
    top = min(max(round(cy * h - side_h / 2), 0), h - side_h)
    left = min(max(round(cx * w - side_w / 2), 0), w - side_w)
    out = img.copy()
    out[top : top + side_h, left : left + side_w] = 0.5
    return out


def _image_contrast(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    mean = img.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + level * (img - mean), 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------- text cells
def _text_dropout(text: str, level: float, rng: np.random.Generator) -> str:
    words = str(text).split()
    u = rng.random(len(words))
    return " ".join(w for w, x in zip(words, u, strict=True) if x >= level)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _typo(word: str, rng: np.random.Generator) -> str:
    """One random edit of ``word``: swap two neighbours, delete, insert or substitute a letter."""
    kind = int(rng.integers(4 if len(word) > 1 else 2)) if word else 1
    i = int(rng.integers(max(len(word), 1)))
    letter = _LETTERS[int(rng.integers(len(_LETTERS)))]
    if kind == 0:  # substitute
        return word[:i] + letter + word[i + 1 :]
    if kind == 1:  # insert
        return word[:i] + letter + word[i:]
    if kind == 2:  # delete
        return word[:i] + word[i + 1 :]
    j = min(i, len(word) - 2)  # swap with the next letter
    return word[:j] + word[j + 1] + word[j] + word[j + 2 :]


def _text_typos(text: str, level: float, rng: np.random.Generator) -> str:
    words = str(text).split()
    u = rng.random(len(words))
    return " ".join(_typo(w, rng) if x < level else w for w, x in zip(words, u, strict=True))


# ---------------------------------------------------------------------------------------- tabular cells
def _tabular_noise(cells: dict, level: float, rng: np.random.Generator) -> dict:
    stds = cells.pop("__std__")
    out = dict(cells)
    for col in sorted(cells):
        z = rng.standard_normal()  # drawn for every column, so a column's noise does not depend on others
        if col in stds:
            value = pd.to_numeric(pd.Series([cells[col]]), errors="coerce").iloc[0]
            if pd.notna(value):
                out[col] = float(value) + level * stds[col] * z
    return out


def _tabular_missing_cells(cells: dict, level: float, rng: np.random.Generator) -> dict:
    cells.pop("__std__")
    out = dict(cells)
    for col in sorted(cells):
        if rng.random() < level:
            out[col] = None
    return out


for _c in (
    Corruption(
        "missing", "any", "share of the rows", 0.0, 1.0, None, "the input goes missing in that share of the rows"
    ),
    Corruption(
        "noise", "audio", "signal-to-noise ratio in dB", -30.0, 100.0, _audio_noise,
        "white Gaussian noise added at that SNR (mean powers over the clip)", milder="higher",
    ),
    Corruption(
        "pink", "audio", "signal-to-noise ratio in dB", -30.0, 100.0, _audio_pink,
        "pink (1/f) noise added at that SNR", milder="higher",
    ),
    Corruption(
        "clipping", "audio", "overdrive in dB", 0.0, 60.0, _audio_clipping,
        "the clip scaled so its peak would be that many dB above full scale, then clipped at full scale",
    ),
    Corruption(
        "lowpass", "audio", "cut-off frequency in Hz", 1.0, 1e6, _audio_lowpass,
        "8th-order Butterworth low-pass filter, forward and backward (no effect at or above Nyquist)",
        milder="higher",
    ),
    Corruption(
        "noise", "image", "noise standard deviation (pixels in [0, 1])", 0.0, 1.0, _image_noise,
        "Gaussian noise added to every pixel, clipped to [0, 1]",
    ),
    Corruption(
        "blur", "image", "Gaussian blur sigma in pixels", 0.0, 100.0, _image_blur,
        "Gaussian blur of the image at its own resolution",
    ),
    Corruption(
        "occlusion", "image", "share of the image's area", 0.0, 1.0, _image_occlusion,
        "a mid-grey rectangle of that share of the area, the image's proportions, at a random place",
    ),
    Corruption(
        "contrast", "image", "contrast factor", 0.0, 1.0, _image_contrast,
        "pixels pulled toward the image's mean: 1 leaves the image, 0 makes it flat", milder="higher",
    ),
    Corruption(
        "dropout", "text", "share of the words", 0.0, 1.0, _text_dropout,
        "each word (whitespace-separated) dropped with that probability",
    ),
    Corruption(
        "typos", "text", "share of the words", 0.0, 1.0, _text_typos,
        "each word given one random edit (swap, deletion, insertion, substitution) with that probability",
    ),
    Corruption(
        "noise", "tabular", "noise in standard deviations", 0.0, 100.0, _tabular_noise,
        "Gaussian noise of that many standard deviations of the column (over the rows corrupted together) "
        "added to every numeric cell",
    ),
    Corruption(
        "missing_cells", "tabular", "share of the cells", 0.0, 1.0, _tabular_missing_cells,
        "each numeric or categorical cell of the input blanked with that probability",
    ),
):  # fmt: skip
    register_corruption(_c)
