"""Fusion strategies behind one registry: ``list_fusions()``, ``get_fusion(name)``, ``register_fusion``."""

from modalfuse.fusion._base import FusionStrategy, InputInfo, get_fusion, list_fusions, register_fusion
from modalfuse.fusion._early import EarlyFusion, NeuralFusion
from modalfuse.fusion._joint import AttentionFusion, LowRankFusion, TensorFusion
from modalfuse.fusion._late import LateFusion, UnimodalFusion
from modalfuse.fusion._linear import LinearFusion
from modalfuse.fusion._shared import CCAFusion, SharedFusion, info_nce

__all__ = [
    "AttentionFusion",
    "CCAFusion",
    "EarlyFusion",
    "FusionStrategy",
    "InputInfo",
    "LateFusion",
    "LinearFusion",
    "LowRankFusion",
    "NeuralFusion",
    "SharedFusion",
    "TensorFusion",
    "UnimodalFusion",
    "get_fusion",
    "info_nce",
    "list_fusions",
    "register_fusion",
]
