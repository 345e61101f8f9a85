"""Honest evaluation: stratified and grouped folds, metrics, and paired comparison of strategies.

Everything here works on duck-typed tables (``len``, ``y``, ``groups``, ``group_column``, ``name``,
``take``) and scikit-learn style estimators (``fit(table)``, ``predict_proba(table)``, ``classes_``).
"""

from __future__ import annotations

from modalfuse.evaluate._cv import compare, cross_validate, format_table, paired_difference, recommend
from modalfuse.evaluate._metrics import classification_metrics, summarize
from modalfuse.evaluate._retrieval import retrieval_recall
from modalfuse.evaluate._robustness import curve_area, format_robustness, plot_robustness, robustness
from modalfuse.evaluate._split import make_splits

__all__ = [
    "classification_metrics",
    "compare",
    "cross_validate",
    "curve_area",
    "format_robustness",
    "format_table",
    "make_splits",
    "paired_difference",
    "plot_robustness",
    "recommend",
    "retrieval_recall",
    "robustness",
    "summarize",
]
