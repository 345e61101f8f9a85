"""Encoders: a registry of how each modality is preprocessed and embedded."""

from modalfuse.encoders._nets import AudioCNN, FeatureMLP, ImageCNN, TextBag, build_network
from modalfuse.encoders._prep import PREPROCESSORS, Preprocessor, make_preprocessor
from modalfuse.encoders._pretrained import PRETRAINED, ModelCard, PretrainedPreprocessor, model_cards
from modalfuse.encoders._registry import (
    EncoderSpec,
    default_encoder,
    get_encoder,
    list_encoders,
    register_encoder,
)

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
    "TextBag",
    "build_network",
    "default_encoder",
    "get_encoder",
    "list_encoders",
    "make_preprocessor",
    "model_cards",
    "register_encoder",
]
