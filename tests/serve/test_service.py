"""The work behind the endpoints, in this process: what a request gets when the model's strategy gives no
contributions."""

from __future__ import annotations

from pathlib import Path

import pytest

import modalfuse as mf
from modalfuse.serve import ServeOptions
from modalfuse.serve._service import ModelService


def test_a_strategy_without_contributions_still_predicts(
    served_clf, serve_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ModelService(served_clf, serve_model_dir, ServeOptions())
    record = {"num": 0.5, "colour": "red"}
    [plain], _ = service.predict([record], contributions=False)
    assert "contributions" not in plain

    def no_explanation(X):
        raise mf.ModalfuseError("fusion 'cca' does not explain its predictions")

    monkeypatch.setattr(served_clf, "explain", no_explanation)
    [answer], _ = service.predict([record], contributions=True)
    assert answer["contributions"] is None
    assert answer["notes"] == ["no contributions: fusion 'cca' does not explain its predictions"]
    assert answer["probabilities"] == plain["probabilities"]
    assert answer["inputs_used"] == ["tabular"]
