"""Encoders: a registry of how each modality is preprocessed and embedded."""

from modalfuse.encoders._nets import (
    AudioCNN,
    FeatureMLP,
    ImageCNN,
    SeriesCNN,
    SeriesCNNLSTM,
    TextBag,
    build_network,
)
from modalfuse.encoders._prep import PREPROCESSORS, Preprocessor, make_preprocessor
from modalfuse.encoders._pretrained import PRETRAINED, ModelCard, PretrainedPreprocessor, model_cards
from modalfuse.encoders._registry import (
    EncoderSpec,
    default_encoder,
    get_encoder,
    list_encoders,
    register_encoder,
)
from modalfuse.encoders._stream import count_rows, encode_table, iter_frames

__all__ = [
    "PREPROCESSORS",
    "PRETRAINED",
    "AudioCNN",
    "EncoderSpec",
    "FeatureMLP",
    "ImageCNN",
    "ModelCard",
    "Preprocessor",
    "PretrainedPreprocessor",
    "SeriesCNN",
    "SeriesCNNLSTM",
    "TextBag",
    "build_network",
    "count_rows",
    "default_encoder",
    "encode_table",
    "get_encoder",
    "iter_frames",
    "list_encoders",
    "make_preprocessor",
    "model_cards",
    "register_encoder",
]
