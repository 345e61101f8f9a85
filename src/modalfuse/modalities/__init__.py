"""Per-modality loading, preprocessing, augmentation and quality scoring.

Importing this package does not import torch or librosa; the functions that need them import
them when called.
"""

from modalfuse.modalities.audio import (
    AUDIO_EXTENSIONS,
    audio_quality,
    augment_spectrograms,
    bandpass,
    compress_dynamic_range,
    fix_length,
    load_audio,
    log_mel,
    mfcc,
    mfcc_stats,
    mu_law,
    preemphasis,
    resample,
    trim_silence,
)
from modalfuse.modalities.image import (
    IMAGE_EXTENSIONS,
    augment_images,
    flip_image,
    hog_features,
    image_quality,
    load_image,
    preprocess_image,
    rotate_image,
)
from modalfuse.modalities.tabular import TabularPreprocessor
from modalfuse.modalities.text import (
    Vocabulary,
    augment_tokens,
    normalize_text,
    tag_special_tokens,
    text_quality,
    tokenize,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "TabularPreprocessor",
    "Vocabulary",
    "audio_quality",
    "augment_images",
    "augment_spectrograms",
    "augment_tokens",
    "bandpass",
    "compress_dynamic_range",
    "fix_length",
    "flip_image",
    "hog_features",
    "image_quality",
    "load_audio",
    "load_image",
    "log_mel",
    "mfcc",
    "mfcc_stats",
    "mu_law",
    "normalize_text",
    "preemphasis",
    "preprocess_image",
    "resample",
    "rotate_image",
    "tag_special_tokens",
    "text_quality",
    "tokenize",
    "trim_silence",
]
