"""Tests of modalfuse.evaluate.classification_metrics and summarize against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modalfuse._errors import SchemaError
from modalfuse.evaluate import classification_metrics, summarize

BINARY_CLASSES = ["neg", "pos"]
BINARY_Y = np.array(["neg", "neg", "pos", "pos", "pos"])
BINARY_P_POS = np.array([0.1, 0.6, 0.8, 0.4, 0.9])
BINARY_PROBA = np.column_stack([1 - BINARY_P_POS, BINARY_P_POS])


def test_binary_metrics_match_hand_computed_values() -> None:
    m = classification_metrics(BINARY_Y, BINARY_PROBA, BINARY_CLASSES)
    # predictions: neg, pos, pos, neg, pos
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    # recall neg 1/2, pos 2/3; precision neg 1/2, pos 2/3; F1 neg 1/2, pos 2/3
    assert m["balanced_accuracy"] == pytest.approx(7 / 12)
    assert m["precision_macro"] == pytest.approx(7 / 12)
    assert m["recall_macro"] == pytest.approx(7 / 12)
    assert m["f1_macro"] == pytest.approx(7 / 12)
    # supports 2 and 3
    assert m["precision_weighted"] == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    assert m["recall_weighted"] == pytest.approx(3 / 5)
    assert m["f1_weighted"] == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    # positive scores 0.8, 0.4, 0.9 against negative 0.1, 0.6: 5 of 6 pairs ordered correctly
    assert m["roc_auc"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_loss)
    assert m["f1_positive"] == pytest.approx(2 / 3)
    # ranked: 0.9 pos, 0.8 pos, 0.6 neg, 0.4 pos -> AP = 1/3 + 1/3 + 1/3 * 3/4
    assert m["pr_auc_positive"] == pytest.approx(11 / 12)


def test_binary_positive_class_is_classes_1() -> None:
    flipped = classification_metrics(BINARY_Y, BINARY_PROBA[:, ::-1], ["pos", "neg"])
    # positive class is now "neg" with scores 0.9, 0.4 against positives' 0.2, 0.6, 0.1
    assert flipped["roc_auc"] == pytest.approx(5 / 6)
    assert flipped["f1_positive"] == pytest.approx(0.5)
    assert flipped["confusion_matrix"] == [[2, 1], [1, 1]]


THREE_Y = np.array([0, 0, 1, 1, 2, 2])
THREE_PROBA = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.6, 0.2],
        [0.1, 0.3, 0.6],
        [0.1, 0.1, 0.8],
        [0.5, 0.2, 0.3],
    ]
)


def test_three_class_metrics_match_hand_computed_values() -> None:
    m = classification_metrics(THREE_Y, THREE_PROBA, [0, 1, 2])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(0.5)
    for name in (
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
    ):
        assert m[name] == pytest.approx(0.5), name
    # one-vs-rest AUCs: 7/8, 7/8, 6.5/8 (one tie)
    assert m["roc_auc"] == pytest.approx((7 + 7 + 6.5) / 24)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(THREE_Y, THREE_PROBA, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.3, 0.6, 0.3, 0.8, 0.3])))
    assert "f1_positive" not in m and "pr_auc_positive" not in m


def test_roc_auc_none_when_a_class_is_absent_from_the_fold() -> None:
    m = classification_metrics(THREE_Y[:4], THREE_PROBA[:4], [0, 1, 2])
    assert m["roc_auc"] is None
    # macro averages run over the classes seen in y_true or predictions (0, 1, 2 here: row 3 predicts 2)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    binary = classification_metrics(["neg", "neg"], [[0.8, 0.2], [0.3, 0.7]], BINARY_CLASSES)
    assert binary["roc_auc"] is None
    assert binary["pr_auc_positive"] is None
    assert binary["accuracy"] == pytest.approx(0.5)
    assert binary["f1_positive"] == 0.0


def test_macro_average_skips_classes_neither_true_nor_predicted() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.3, 0.7, 0.0]])
    m = classification_metrics(y, proba, [0, 1, 2])
    # class 2 neither occurs nor is predicted: recall 0 and 1 -> (1/2 + 1) / 2
    assert m["recall_macro"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx(0.75)


def test_log_loss_is_clipped_and_finite() -> None:
    m = classification_metrics(["neg", "pos"], [[0.0, 1.0], [0.0, 1.0]], BINARY_CLASSES)
    assert math.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-np.log(1e-15) / 2, rel=1e-6)


def test_results_are_plain_python_and_json_safe() -> None:
    m = classification_metrics(BINARY_Y, BINARY_PROBA, np.array(BINARY_CLASSES))
    for key, value in m.items():
        if key == "confusion_matrix":
            assert all(type(v) is int for row in value for v in row)
        else:
            assert value is None or type(value) is float, key
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_invalid_inputs_raise_schema_errors() -> None:
    with pytest.raises(SchemaError, match="'cat'"):
        classification_metrics(["neg", "cat"], [[0.5, 0.5], [0.5, 0.5]], BINARY_CLASSES)
    with pytest.raises(SchemaError, match="shape"):
        classification_metrics(["neg", "pos"], [[0.5, 0.5]], BINARY_CLASSES)
    with pytest.raises(SchemaError, match="NaN"):
        classification_metrics(["neg", "pos"], [[np.nan, 0.5], [0.5, 0.5]], BINARY_CLASSES)


def test_summarize_uses_sample_std_and_keeps_none_folds() -> None:
    s = summarize([0.5, None, 0.7, np.float64(0.9)])
    assert s["mean"] == pytest.approx(0.7)
    assert s["std"] == pytest.approx(0.2)  # ddof=1 over 0.5, 0.7, 0.9
    assert s["folds"] == [0.5, None, 0.7, 0.9]
    assert all(v is None or type(v) is float for v in s["folds"])
    assert summarize([0.8]) == {"mean": 0.8, "std": 0.0, "folds": [0.8]}
    assert summarize([None, float("nan")]) == {"mean": None, "std": None, "folds": [None, None]}
