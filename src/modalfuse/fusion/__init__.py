"""Fusion strategies behind one registry: ``list_fusions()``, ``get_fusion(name)``, ``register_fusion``."""

from modalfuse.fusion._base import FusionStrategy, InputInfo, get_fusion, list_fusions, register_fusion
from modalfuse.fusion._early import EarlyFusion, NeuralFusion
from modalfuse.fusion._late import LateFusion, UnimodalFusion

__all__ = [
    "EarlyFusion",
    "FusionStrategy",
    "InputInfo",
    "LateFusion",
    "NeuralFusion",
    "UnimodalFusion",
    "get_fusion",
    "list_fusions",
    "register_fusion",
]
