"""The encoder registry: a name -> how to preprocess a modality and which network embeds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modalfuse._errors import UnknownNameError

__all__ = ["EncoderSpec", "default_encoder", "get_encoder", "list_encoders", "register_encoder"]


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder: its modality, the preprocessor that feeds it, the network that embeds, augmentation.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"audio-cnn"``.
    modality : str
        ``image``, ``audio``, ``text``, ``tabular`` or ``series``.
    preprocessor : str
        Name of the preprocessor in :data:`modalfuse.encoders.PREPROCESSORS`.
    network : str
        Network kind for :func:`modalfuse.encoders.build_network`.
    augment : str or None
        Train-time augmentation: ``"image"``, ``"spectrogram"``, ``"tokens"`` or None.
    description : str
        One line for ``list_encoders``.
    preprocess_options, network_options : dict
        Defaults, overridable per estimator.
    """

    name: str
    modality: str
    preprocessor: str
    network: str
    augment: str | None
    description: str
    preprocess_options: dict[str, Any] = field(default_factory=dict)
    network_options: dict[str, Any] = field(default_factory=dict)

    @property
    def trainable(self) -> bool:
        return self.network != "linear"


_REGISTRY: dict[str, EncoderSpec] = {}
_DEFAULTS = {
    "image": "image-cnn",
    "audio": "audio-cnn",
    "text": "text-bag",
    "tabular": "tabular-mlp",
    "series": "series-cnn",
}


def register_encoder(spec: EncoderSpec, *, overwrite: bool = False) -> EncoderSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"an encoder named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_encoders(modality: str | None = None) -> list[str]:
    """Names of the registered encoders (of one modality if given), sorted."""
    return sorted(n for n, s in _REGISTRY.items() if modality is None or s.modality == modality)


def get_encoder(name: str) -> EncoderSpec:
    """The encoder registered as ``name``; otherwise an :class:`~modalfuse.UnknownNameError` (a
    ``KeyError``) that suggests the closest name and lists what exists."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise UnknownNameError("encoder", str(name), list_encoders())


def default_encoder(modality: str) -> EncoderSpec:
    """The default (trainable) encoder of a modality."""
    if modality not in _DEFAULTS:
        raise UnknownNameError("modality", modality, _DEFAULTS)
    return _REGISTRY[_DEFAULTS[modality]]


for _spec in (
    EncoderSpec(
        "image-cnn", "image", "image", "image-cnn", "image", "small CNN on resized, normalised images"
    ),
    EncoderSpec("audio-cnn", "audio", "audio", "audio-cnn", "spectrogram", "CNN over log-mel spectrograms"),
    EncoderSpec("text-bag", "text", "text", "text-bag", "tokens", "mean+max pooled word embeddings"),
    EncoderSpec("tabular-mlp", "tabular", "tabular", "mlp", None, "MLP on imputed, scaled, one-hot columns"),
    EncoderSpec("pixels", "image", "pixels", "linear", None, "classical: raw normalised pixels"),
    EncoderSpec("hog", "image", "hog", "linear", None, "classical: histograms of oriented gradients"),
    EncoderSpec("mfcc", "audio", "mfcc", "linear", None, "classical: MFCC and delta statistics"),
    EncoderSpec("tfidf", "text", "tfidf", "linear", None, "classical: TF-IDF of words and word pairs"),
    EncoderSpec(
        "tabular-scaled", "tabular", "tabular", "linear", None, "classical: imputed, scaled, one-hot"
    ),
    EncoderSpec(
        "series-cnn", "series", "series", "series-cnn", None, "1-D CNN over resampled, scaled channels"
    ),
    EncoderSpec(
        "series-cnnlstm", "series", "series", "series-cnnlstm", None, "1-D CNN then an LSTM over time"
    ),
    EncoderSpec(
        "catch22", "series", "catch22", "linear", None, "classical: catch22 features of every channel"
    ),
):
    register_encoder(_spec)
