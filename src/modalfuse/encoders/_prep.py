"""Per-input preprocessing: turns a table's cells into one array per input, fitted on training rows only.

A preprocessor's ``fit`` sees only the training fold; everything it learns (sizes, sample rate, vocabulary,
means and scales) is plain JSON so a saved model can rebuild it without executing code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from modalfuse._cache import active_cache, content_key
from modalfuse._errors import DecodeError, OptionError, UnknownNameError
from modalfuse._options import Option, declared_options, options_table, resolve_options
from modalfuse.data._table import MultimodalTable, decode_media

__all__ = ["PREPROCESSORS", "Preprocessor", "make_preprocessor"]


class Preprocessor:
    """Base: ``fit(table)`` on training rows, ``transform(table) -> (array, mask)``.

    Subclasses set ``name`` and implement ``_fit``, ``_transform`` and the JSON state in ``state``. Their
    options are declared once in ``OPTIONS`` (added to the bases' through the MRO); ``__init__`` refuses an
    unknown option or a bad value with an :class:`~modalfuse.OptionError`, and ``self.options`` holds the
    resolved value of every declared option.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, input_name: str, columns: list[str], **options: Any) -> None:
        self.input_name = input_name
        self.columns = list(columns)
        self.options = resolve_options(type(self), options, self.owner(input_name))
        self.state: dict[str, Any] = {}
        self.check_options()

    def check_options(self) -> None:
        """Hook: raise :class:`~modalfuse.OptionError` where ``self.options`` break a rule of their own."""

    @classmethod
    def owner(cls, input_name: str | None = None) -> str:
        """How messages name this preprocessor (and the input it serves)."""
        of = f" of input {input_name!r}" if input_name is not None else ""
        return f"preprocessor {cls.name!r}{of}"

    @classmethod
    def declared_options(cls) -> dict[str, Option]:
        """Name -> :class:`~modalfuse.Option` of every option this preprocessor declares."""
        return declared_options(cls)

    @classmethod
    def option_table(cls) -> list[dict[str, Any]]:
        """The declared options as rows ``{"name", "default", "valid", "help"}``, sorted by name."""
        return options_table(cls)

    def fit(self, table: MultimodalTable) -> Preprocessor:
        mask = table.mask(self.input_name)
        if not mask.any():
            raise ValueError(f"input {self.input_name!r} has no present rows to fit on")
        self._fit(table, mask)
        return self

    def transform(self, table: MultimodalTable) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, mask)``: X has one row per table row (zeros where missing), mask is boolean."""
        mask = table.mask(self.input_name).copy()
        X = self._transform(table, mask)
        return X, mask

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": self.input_name,
            "columns": self.columns,
            "options": self.options,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        """Rebuild from :meth:`to_dict`'s output. Options the class no longer declares (written by an
        older version) are dropped and missing ones get their defaults; the others are checked."""
        kind = PREPROCESSORS.get(d["name"]) if isinstance(d["name"], str) else None
        if kind is None:
            raise UnknownNameError("preprocessor", str(d["name"]), PREPROCESSORS)
        declared = kind.declared_options()
        obj = kind(d["input"], d["columns"], **{k: v for k, v in d["options"].items() if k in declared})
        obj.state = d["state"]
        obj._restore()
        return obj

    def _restore(self) -> None:
        """Rebuild derived objects from ``state`` after loading."""

    def quality(self, table: MultimodalTable) -> np.ndarray:
        """Per-row quality scores of this input, from its raw decoded cells (see :mod:`modalfuse._quality`):
        float64 (n_rows, n_scores), NaN where the input is missing. Text counts as unknown the tokens the
        fitted vocabulary lacks."""
        from modalfuse._quality import input_quality

        return input_quality(table, self.input_name, vocabulary=self._quality_vocabulary())

    def _quality_vocabulary(self) -> Any:
        """What decides which tokens are unknown (text preprocessors: their fitted vocabulary)."""
        return None

    def network_options(self) -> dict[str, Any]:
        """Options of the encoder's network that follow from this preprocessor's options (saved with the
        model); none by default."""
        return {}

    def output_shape(self) -> tuple[int, ...] | None:
        """The per-row shape of :meth:`transform`'s array, from the fitted state; None where it varies
        (token ids: as long as the longest row, at most ``max_length``)."""
        return None

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def column(self) -> str:
        return self.columns[0]


def _decodable(values: list[Any], modality: str, limit: int | None = None) -> list[tuple[Any, Any]]:
    """``(value, decoded)`` for the first ``limit`` values that decode; the others are masked by ``_stack``
    (a table read with ``decode=False`` may still hold an undecodable file)."""
    out = []
    for value in values:
        try:
            out.append((value, decode_media(value, modality)))
        except DecodeError:
            continue
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise DecodeError(f"none of the training rows' {modality} cells can be decoded")
    return out


def _standardize(X: np.ndarray, mask: np.ndarray, axes: tuple[int, ...]) -> tuple[list, list]:
    sub = X[mask]
    mean = sub.mean(axis=(0, *axes))
    std = sub.std(axis=(0, *axes)) + 1e-6
    return np.atleast_1d(mean).astype(float).tolist(), np.atleast_1d(std).astype(float).tolist()


# ------------------------------------------------------------------------------------------------ image
class ImagePreprocessor(Preprocessor):
    """Images -> float32 (N, C, H, W), resized to one size, normalised per channel with training stats.

    Options: ``size`` (int or (H, W); default: the first training image's size, longest side capped at
    64), ``channels`` (1 or 3; default 1 when every sampled training image is grey).
    """

    name = "image"
    modality = "image"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "size": Option(
            None,
            "size",
            "resize to this (H, W) or square side (None: the first training image's, longest side <= 64)",
            low=1,
            none_ok=True,
        ),
        "channels": Option(
            None,
            "int",
            "1 (grey) or 3 (RGB) (None: 1 when every sampled image is grey)",
            low=1,
            high=3,
            none_ok=True,
        ),
    }

    def check_options(self) -> None:
        """``channels`` is 1 or 3."""
        channels = self.options["channels"]
        if channels not in (None, 1, 3):
            raise OptionError(
                f"{self.owner(self.input_name)}: option 'channels' must be 1 or 3 or None, got {channels}"
            )

    def _load(self, value: Any, size: tuple[int, int], channels: int) -> np.ndarray:
        from modalfuse.modalities.image import preprocess_image

        def compute() -> np.ndarray:
            return preprocess_image(decode_media(value, "image"), size=size, channels=channels)

        return active_cache().get_or_compute(("image-prep", content_key(value), size, channels), compute)

    def _stack(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        size = tuple(self.state["size"])
        channels = self.state["channels"]
        out = np.zeros((len(table), channels, *size), dtype=np.float32)
        for i, v in enumerate(table.frame[self.column]):
            if mask[i]:
                try:
                    out[i] = self._load(v, size, channels)
                except DecodeError:
                    mask[i] = False
        return out

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        values = table.frame[self.column][mask].tolist()
        sample = [decoded for _, decoded in _decodable(values, "image", limit=64)]
        size = self.options["size"]
        if size is None:
            h, w = sample[0].shape[:2]
            scale = min(1.0, 64 / max(h, w))
            # at least 8 pixels a side: the image CNN pools twice (a 1x1 or 2x3 image would leave nothing)
            size = (max(8, round(h * scale)), max(8, round(w * scale)))
        elif isinstance(size, int):
            size = (size, size)
        channels = self.options["channels"] or (1 if all(s.shape[2] == 1 for s in sample) else 3)
        self.state = {"size": list(size), "channels": int(channels)}
        X = self._stack(table, mask)
        self.state["mean"], self.state["std"] = _standardize(X, mask, (2, 3))

    def output_shape(self) -> tuple[int, ...] | None:
        return (int(self.state["channels"]), *(int(v) for v in self.state["size"]))

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = self._stack(table, mask)
        mean = np.asarray(self.state["mean"], dtype=np.float32)[:, None, None]
        std = np.asarray(self.state["std"], dtype=np.float32)[:, None, None]
        X = (X - mean) / std
        X[~mask] = 0.0
        return X


class PixelPreprocessor(ImagePreprocessor):
    """Classical image features: the normalised pixels, flattened to (N, C*H*W)."""

    name = "pixels"

    def output_shape(self) -> tuple[int, ...] | None:
        return (int(np.prod(super().output_shape())),)

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        return super()._transform(table, mask).reshape(len(table), -1)


class HogPreprocessor(ImagePreprocessor):
    """Classical image features: histograms of oriented gradients, standardised, (N, D)."""

    name = "hog"

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self.state["hog_mean"]),)

    def _hog(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        from modalfuse.modalities.image import hog_features

        return hog_features(ImagePreprocessor._transform(self, table, mask))

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        super()._fit(table, mask)
        H = self._hog(table, mask.copy())
        self.state["hog_mean"], self.state["hog_std"] = _standardize(H, mask, ())

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        H = (self._hog(table, mask) - np.asarray(self.state["hog_mean"], np.float32)) / np.asarray(
            self.state["hog_std"], np.float32
        )
        H[~mask] = 0.0
        return H.astype(np.float32)


# ------------------------------------------------------------------------------------------------ audio
class AudioPreprocessor(Preprocessor):
    """Audio -> log-mel spectrograms float32 (N, 1, n_mels, T), standardised per mel band.

    Pipeline per clip: decode, mono, resample to ``sample_rate`` (default: the most common rate among
    training clips), trim leading/trailing silence (``trim_db``, default 30 dB below peak; ``None`` keeps
    it), pre-emphasis, centre crop / zero-pad to ``seconds`` (default: the 95th percentile of the trimmed
    training durations, at most 10 s), log-mel with ``n_mels`` bands (default 40), a 25 ms window and a
    ``hop_seconds`` hop (default 0.015 s).
    """

    name = "audio"
    modality = "audio"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "sample_rate": Option(
            None,
            "int",
            "resample to this rate in Hz (None: the most common training rate)",
            low=1,
            none_ok=True,
        ),
        "trim_db": Option(
            30.0,
            "float",
            "trim silence this many dB below the peak (None: keep it)",
            low=0.0,
            low_open=True,
            none_ok=True,
        ),
        "n_mels": Option(40, "int", "mel bands", low=1),
        "hop_seconds": Option(0.015, "float", "hop between frames, in seconds", low=0.0, low_open=True),
        "seconds": Option(
            None,
            "float",
            "crop/pad clips to this length (None: the 95th percentile of training durations, <= 10 s)",
            low=0.0,
            low_open=True,
            none_ok=True,
        ),
    }

    def _wave(self, value: Any) -> np.ndarray:
        from modalfuse.modalities import audio as A

        sr = self.state["sample_rate"]
        trim_db = self.state["trim_db"]

        def compute() -> np.ndarray:
            wave, native = decode_media(value, "audio")
            if native != sr:
                wave = A.resample(wave, native, sr)
            if trim_db is not None and len(wave) > 1:
                trimmed = A.trim_silence(wave, top_db=trim_db)
                wave = trimmed if len(trimmed) else wave
            return np.ascontiguousarray(wave, dtype=np.float32)

        return active_cache().get_or_compute(("audio-wave", content_key(value), sr, trim_db), compute)

    def _features_of(self, wave: np.ndarray) -> np.ndarray:
        from modalfuse.modalities import audio as A

        wave = A.fix_length(A.preemphasis(wave), self.state["n_samples"])
        sr = self.state["sample_rate"]
        return A.log_mel(
            wave, sr, n_mels=self.state["n_mels"], hop_length=max(1, round(self.state["hop_seconds"] * sr))
        )[None]

    def _one(self, value: Any) -> np.ndarray:
        key = (
            "audio-feat",
            self.name,
            content_key(value),
            *sorted(
                (k, tuple(v) if isinstance(v, list) else v)
                for k, v in self.state.items()
                if not k.startswith("norm_")
            ),
        )
        return active_cache().get_or_compute(key, lambda: self._features_of(self._wave(value)))

    def _stack(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        rows: list[np.ndarray | None] = []
        shape = None
        for i, v in enumerate(table.frame[self.column]):
            feat = None
            if mask[i]:
                try:
                    feat = self._one(v)
                    shape = feat.shape
                except DecodeError:
                    mask[i] = False
            rows.append(feat)
        if shape is None:
            shape = self._empty_shape()
        out = np.zeros((len(rows), *shape), dtype=np.float32)
        for i, feat in enumerate(rows):
            if feat is not None:
                out[i] = feat
        return out

    def _empty_shape(self) -> tuple[int, ...]:
        return self._features_of(np.zeros(self.state["n_samples"], np.float32)).shape

    def output_shape(self) -> tuple[int, ...] | None:
        return tuple(int(v) for v in self._empty_shape())

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        decodable = _decodable(table.frame[self.column][mask].tolist(), "audio")
        values = [value for value, _ in decodable]
        rates = Counter(decoded[1] for _, decoded in decodable)
        sr = int(self.options["sample_rate"] or rates.most_common(1)[0][0])
        self.state = {
            "sample_rate": sr,
            "trim_db": self.options["trim_db"],
            "n_mels": self.options["n_mels"],
            "hop_seconds": self.options["hop_seconds"],
        }
        seconds = self.options["seconds"]
        if seconds is None:
            lengths = [len(self._wave(v)) for v in values]
            n = int(min(np.percentile(lengths, 95), 10 * sr))
        else:
            n = int(seconds * sr)
        # at least 8 frames: the audio CNN pools three times over time (a 10 ms clip would leave nothing)
        self.state["n_samples"] = max(n, 256, 8 * max(1, round(self.state["hop_seconds"] * sr)))
        X = self._stack(table, mask)
        self.state["norm_mean"], self.state["norm_std"] = self._norm_stats(X, mask)

    def _norm_stats(self, X: np.ndarray, mask: np.ndarray) -> tuple[list, list]:
        """Per mel band mean and standard deviation over the training rows and frames."""
        return _standardize(X, mask, (1, 3))

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = self._stack(table, mask)
        mean = np.asarray(self.state["norm_mean"], np.float32).reshape(1, 1, -1, 1)
        std = np.asarray(self.state["norm_std"], np.float32).reshape(1, 1, -1, 1)
        X = (X - mean) / std
        X[~mask] = 0.0
        return X


class MfccPreprocessor(AudioPreprocessor):
    """Classical audio features: MFCC and delta means and standard deviations, standardised, (N, 4*n_mfcc)."""

    name = "mfcc"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "n_mels": Option(40, "int", "mel bands (n_mels // 2 MFCCs are kept)", low=2),
    }

    def _features_of(self, wave: np.ndarray) -> np.ndarray:
        from modalfuse.modalities.audio import mfcc_stats

        return mfcc_stats(wave, self.state["sample_rate"], n_mfcc=self.state["n_mels"] // 2)

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self.state["norm_mean"]),)

    def _norm_stats(self, X: np.ndarray, mask: np.ndarray) -> tuple[list, list]:
        """Per feature mean and standard deviation over the training rows."""
        return _standardize(X, mask, ())

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = self._stack(table, mask)
        X = (X - np.asarray(self.state["norm_mean"], np.float32)) / np.asarray(
            self.state["norm_std"], np.float32
        )
        X[~mask] = 0.0
        return X.astype(np.float32)


# ------------------------------------------------------------------------------------------------- text
class TextPreprocessor(Preprocessor):
    """Text -> token ids int64 (N, L) with a vocabulary fitted on training rows (0 = padding)."""

    name = "text"
    modality = "text"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "min_freq": Option(
            2, "int", "fewest training rows a word must appear in to enter the vocabulary", low=1
        ),
        "max_size": Option(20000, "int", "largest vocabulary", low=1),
        "max_length": Option(
            None,
            "int",
            "tokens kept per row (None: the 95th percentile of training lengths, 8..256)",
            low=1,
            none_ok=True,
        ),
    }

    def _texts(self, table: MultimodalTable, mask: np.ndarray) -> list[str]:
        return [str(v) if m else "" for v, m in zip(table.frame[self.column], mask, strict=True)]

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        from modalfuse.modalities.text import Vocabulary, tokenize

        texts = [t for t, m in zip(self._texts(table, mask), mask, strict=True) if m]
        self._vocab = Vocabulary(min_freq=self.options["min_freq"], max_size=self.options["max_size"]).fit(
            texts
        )
        lengths = [len(tokenize(t)) for t in texts]
        max_length = self.options["max_length"] or int(min(max(np.percentile(lengths, 95), 8), 256))
        self.state = {"vocabulary": self._vocab.to_dict(), "max_length": int(max_length)}

    def _restore(self) -> None:
        from modalfuse.modalities.text import Vocabulary

        self._vocab = Vocabulary.from_dict(self.state["vocabulary"])

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def _quality_vocabulary(self) -> Any:
        return self._vocab

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        ids, lengths = self._vocab.encode(self._texts(table, mask), max_length=self.state["max_length"])
        if ids.shape[1] == 0:
            ids = np.zeros((len(table), 1), dtype=np.int64)
        mask &= lengths > 0
        return ids


class TfidfPreprocessor(Preprocessor):
    """Classical text features: TF-IDF of words and word pairs fitted on training rows, (N, D) dense."""

    name = "tfidf"
    modality = "text"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "max_features": Option(5000, "int", "largest vocabulary of words and word pairs", low=1),
    }

    def _make(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        from modalfuse.modalities.text import tokenize

        return TfidfVectorizer(
            tokenizer=tokenize,
            lowercase=False,
            token_pattern=None,
            ngram_range=(1, 2),
            min_df=2 if vocabulary is None else 1,
            sublinear_tf=True,
            max_features=self.options["max_features"],
            vocabulary=vocabulary,
        )

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        texts = [str(v) for v in table.frame[self.column][mask]]
        self._vec = self._make()
        try:
            self._vec.fit(texts)
        except ValueError:  # too few documents for min_df=2
            self._vec = self._make(None)
            self._vec.set_params(min_df=1).fit(texts)
        vocab = {str(k): int(v) for k, v in self._vec.vocabulary_.items()}
        self.state = {"vocabulary": vocab, "idf": self._vec.idf_.astype(float).tolist()}

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self.state["vocabulary"]),)

    def _quality_vocabulary(self) -> Any:
        return self.state["vocabulary"]  # words and word pairs: a word it lacks is unknown

    def _restore(self) -> None:
        self._vec = self._make(self.state["vocabulary"])
        self._vec.fit([""] if not self.state["vocabulary"] else list(self.state["vocabulary"]))
        self._vec.idf_ = np.asarray(self.state["idf"])

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        texts = [str(v) if m else "" for v, m in zip(table.frame[self.column], mask, strict=True)]
        return np.asarray(self._vec.transform(texts).todense(), dtype=np.float32)


# ---------------------------------------------------------------------------------------------- tabular
class TabularPreprocessorAdapter(Preprocessor):
    """Numeric and categorical columns -> float32 (N, D): imputed, scaled and one-hot, fitted on training rows."""

    name = "tabular"
    modality = "tabular"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "max_categories": Option(50, "int", "most one-hot columns per categorical column", low=1),
    }

    def _split(self, table: MultimodalTable) -> tuple[list[str], list[str]]:
        return (
            [c for c in self.columns if table.schema.columns.get(c) == "numeric"],
            [c for c in self.columns if table.schema.columns.get(c) == "categorical"],
        )

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        from modalfuse.modalities.tabular import TabularPreprocessor

        numeric, categorical = self._split(table)
        self._tab = TabularPreprocessor(
            numeric=numeric,
            categorical=categorical,
            max_categories=self.options["max_categories"],
        )
        self._tab.fit(table.frame.loc[mask, self.columns])
        self.state = {"preprocessor": self._tab.to_dict()}

    def _restore(self) -> None:
        from modalfuse.modalities.tabular import TabularPreprocessor

        self._tab = TabularPreprocessor.from_dict(self.state["preprocessor"])

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self._tab.feature_names_),)

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = self._tab.transform(table.frame[self.columns]).astype(np.float32)
        X[~mask] = 0.0
        return X


# ------------------------------------------------------------------------------------------------ series
class SeriesPreprocessor(Preprocessor):
    """Series -> float32 (N, C, T): resampled by timestamp, filtered, magnitudes added, cropped or padded,
    standardised per channel with the training rows' statistics.

    Pipeline per recording: decode (a file with a timestamp column, or an in-memory window), interpolate
    every channel at the times of a grid at ``rate`` (recordings given as uniform windows at that rate are
    used as they are), low-/high-/band-pass filter, append the Euclidean norm of each x/y/z sensor triplet
    (``magnitude``), keep the first ``seconds`` (shorter recordings are padded with the channel's training
    mean). A row whose channels differ from the training rows', or that has a gap longer than
    ``max_gap`` seconds, is masked.
    """

    name = "series"
    modality = "series"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "rate": Option(
            None,
            "float",
            "resample to this rate in Hz (None: the median rate of the training recordings)",
            low=0.0,
            low_open=True,
            none_ok=True,
        ),
        "seconds": Option(
            None,
            "float",
            "crop/pad recordings to this length (None: the 95th percentile of training durations)",
            low=0.0,
            low_open=True,
            none_ok=True,
        ),
        "magnitude": Option(True, "bool", "append the norm of each x/y/z sensor triplet as a channel"),
        "lowpass": Option(
            None, "float", "low-pass cut-off in Hz (None: no filter)", low=0.0, low_open=True, none_ok=True
        ),
        "highpass": Option(
            None,
            "float",
            "high-pass cut-off in Hz (None: no filter; with lowpass: band-pass)",
            low=0.0,
            low_open=True,
            none_ok=True,
        ),
        "max_gap": Option(
            1.0, "float", "mask a recording with a gap longer than this many seconds", low=0.0, low_open=True
        ),
    }

    def check_options(self) -> None:
        """A band-pass needs ``highpass < lowpass``."""
        lo, hi = self.options["lowpass"], self.options["highpass"]
        if lo is not None and hi is not None and hi >= lo:
            raise OptionError(
                f"{self.owner(self.input_name)}: highpass ({hi} Hz) must be below lowpass ({lo} Hz) for a band-pass"
            )

    def _recording(self, value: Any) -> Any:
        from modalfuse.modalities.series import decode_series

        return decode_series(value)

    def _on_grid(self, rec: Any) -> bool:
        """Whether ``rec`` is already a uniform array at the grid's rate with the training channels (a
        window cut by :func:`modalfuse.windows`, say): used as it is, without resampling."""
        st = self.state
        return (
            rec.timestamps is None
            and rec.rate is not None
            and abs(rec.rate - float(st["rate"])) < 1e-9
            and tuple(rec.channels) == tuple(st["channels"])
        )

    def _derived(self, values: np.ndarray) -> np.ndarray:
        """Grid values (samples, channels), or a stack of them (rows, samples, channels), filtered and
        with the magnitude channels appended."""
        from modalfuse.modalities.series import add_magnitudes, filter_series, magnitude_groups

        st = self.state
        values = filter_series(
            values, float(st["rate"]), lowpass=st["lowpass"], highpass=st["highpass"], axis=-2
        )
        if st["magnitude"]:
            values, _ = add_magnitudes(values, st["channels"], magnitude_groups(st["channels"]))
        return values

    def _resampled_values(self, rec: Any) -> np.ndarray | None:
        """A recording not on the grid (see :meth:`_on_grid`) resampled onto it by timestamp, filtered, with
        magnitudes: (n_samples, channels); None for a gap or other channels."""
        from modalfuse.modalities.series import resample_series

        st = self.state
        if tuple(rec.channels) != tuple(st["channels"]):
            return None
        values, valid, _ = resample_series(rec, float(st["rate"]), max_gap=float(st["max_gap"]))
        if not valid.all():
            return None
        return self._derived(values[: int(st["n_samples"])])

    def _stack(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        """(N, T, C) float64, NaN where a row is shorter than the grid or masked.

        Rows already on the grid are filtered and given their magnitudes together, one stack per length
        (the same arithmetic as row by row, in one call instead of one per row); the others are resampled
        one by one."""
        n, c = int(self.state["n_samples"]), len(self.state["out_channels"])
        out = np.full((len(table), n, c), np.nan)
        on_grid: dict[int, list[tuple[int, np.ndarray]]] = {}
        for i, v in enumerate(table.frame[self.column]):
            if not mask[i]:
                continue
            try:
                rec = self._recording(v)
                if self._on_grid(rec):
                    values = rec.values[:n]
                    on_grid.setdefault(len(values), []).append((i, values))
                    continue
                values = self._resampled_values(rec)
            except DecodeError:
                values = None
            if values is None:
                mask[i] = False
            else:
                out[i, : len(values)] = values
        for length, items in on_grid.items():
            rows = np.array([i for i, _ in items])
            out[rows, :length] = self._derived(np.stack([v for _, v in items]).astype(float, copy=False))
        return out

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        from modalfuse.modalities.series import add_magnitudes

        recs = []
        for v in table.frame[self.column][mask].tolist():
            try:
                recs.append(self._recording(v))
            except DecodeError:
                continue
        if not recs:
            raise DecodeError("none of the training rows' series cells can be decoded")
        channels = Counter(tuple(r.channels) for r in recs).most_common(1)[0][0]
        rate = self.options["rate"] or float(np.median([r.median_rate() for r in recs]))
        seconds = self.options["seconds"]
        if seconds is None:
            seconds = float(np.percentile([len(r) / r.median_rate() for r in recs], 95))
        opts = {k: self.options[k] for k in ("magnitude", "lowpass", "highpass", "max_gap")}
        out = add_magnitudes(np.zeros((1, len(channels))), channels)[1] if opts["magnitude"] else channels
        self.state = {
            "rate": float(rate),
            "n_samples": max(8, round(seconds * rate)),
            "channels": list(channels),
            "out_channels": list(out),
            **opts,
        }
        X = self._stack(table, mask.copy())
        self.state["mean"] = np.nan_to_num(np.nanmean(X, axis=(0, 1))).astype(float).tolist()
        self.state["std"] = (np.nan_to_num(np.nanstd(X, axis=(0, 1))) + 1e-6).astype(float).tolist()

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self.state["out_channels"]), int(self.state["n_samples"]))

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = (self._stack(table, mask) - np.asarray(self.state["mean"])) / np.asarray(self.state["std"])
        X = np.nan_to_num(X, nan=0.0)
        X[~mask] = 0.0
        return np.ascontiguousarray(X.transpose(0, 2, 1), dtype=np.float32)


class Catch22Preprocessor(SeriesPreprocessor):
    """Classical series features: the catch22 features (plus mean and standard deviation, "catch24") of
    every channel on the grid, from the ``pycatch22`` package (extra ``series``), standardised, (N, 24 * C)."""

    name = "catch22"

    def _features(self, values: np.ndarray) -> np.ndarray:
        from modalfuse.modalities.series import catch22_features

        key = ("catch22", content_key(np.ascontiguousarray(values, dtype=np.float64)))
        return active_cache().get_or_compute(key, lambda: catch22_features(values))

    def _feature_matrix(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        X = self._stack(table, mask)
        width = 24 * X.shape[2]
        out = np.zeros((len(table), width))
        for i in np.flatnonzero(mask):
            rows = X[i][~np.isnan(X[i]).any(axis=1)]
            if len(rows) < 3:
                mask[i] = False
                continue
            out[i] = self._features(rows)
        return out

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        super()._fit(table, mask)
        F = self._feature_matrix(table, mask.copy())
        self.state["feat_mean"], self.state["feat_std"] = _standardize(F, mask, ())

    def output_shape(self) -> tuple[int, ...] | None:
        return (len(self.state["feat_mean"]),)

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        F = (self._feature_matrix(table, mask) - np.asarray(self.state["feat_mean"])) / np.asarray(
            self.state["feat_std"]
        )
        F = np.nan_to_num(F, nan=0.0, posinf=0.0, neginf=0.0)
        F[~mask] = 0.0
        return F.astype(np.float32)


PREPROCESSORS: dict[str, type[Preprocessor]] = {
    cls.name: cls
    for cls in (
        ImagePreprocessor,
        PixelPreprocessor,
        HogPreprocessor,
        AudioPreprocessor,
        MfccPreprocessor,
        TextPreprocessor,
        TfidfPreprocessor,
        TabularPreprocessorAdapter,
        SeriesPreprocessor,
        Catch22Preprocessor,
    )
}


def make_preprocessor(name: str, input_name: str, columns: list[str], **options: Any) -> Preprocessor:
    """Instantiate the preprocessor registered as ``name`` (an :class:`~modalfuse.UnknownNameError` for
    another name; an :class:`~modalfuse.OptionError` for an option it does not declare or a bad value)."""
    if name not in PREPROCESSORS:
        raise UnknownNameError("preprocessor", name, PREPROCESSORS)
    return PREPROCESSORS[name](input_name, columns, **options)
