"""Which modality drove a prediction: modality Shapley values, interactions and global summaries.

``clf.explain(X)`` (method ``"shapley"``, the default) and ``clf.shapley_values(X)`` use
:func:`shapley_values` on the strategy's coalition predictions
(:meth:`~modalfuse.FusionStrategy.coalition_proba`); :func:`global_summary` turns the values of a set of
rows into per-input importances beside the leave-one-input-out accuracy drop.
"""

from modalfuse.explain._model import occlusion, strategy_shapley
from modalfuse.explain._shapley import (
    MAX_EXACT_INPUTS,
    ShapleyValues,
    coalition_matrix,
    interaction_weights,
    log_odds,
    shapley_values,
    shapley_weights,
)
from modalfuse.explain._summary import combine_folds, fold_explanation, global_summary, ranking_agrees

__all__ = [
    "MAX_EXACT_INPUTS",
    "ShapleyValues",
    "coalition_matrix",
    "combine_folds",
    "fold_explanation",
    "global_summary",
    "interaction_weights",
    "log_odds",
    "occlusion",
    "ranking_agrees",
    "shapley_values",
    "shapley_weights",
    "strategy_shapley",
]
