"""Early fusion: one joint vector per row from every input's embedding, trained end to end."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.special import softmax

from modalfuse.fusion._base import Data, FusionStrategy, register_fusion
from modalfuse.fusion._train import FusionNet, predict_logits, seeded, train_network

__all__ = ["EarlyFusion"]


@register_fusion
class EarlyFusion(FusionStrategy):
    """Concatenate the inputs' embeddings (zeros for a missing input) and their presence indicators, and
    classify with an MLP; encoders and head are trained together. ``hidden`` sets the head's width.

    Each encoder also gets an auxiliary classifier during training (``aux_heads``, default True), so an
    input that is quick to fit cannot leave the others untrained; the auxiliary heads are not used to
    predict.
    """

    name = "early"

    def _net(self) -> FusionNet:
        def build() -> FusionNet:
            return FusionNet({n: info.build() for n, info in self.inputs.items()}, self.n_classes,
                             hidden=int(self.options.get("hidden", 128)),
                             aux_heads=bool(self.options.get("aux_heads", True)))

        return seeded(self.config.seed, build)

    def fit(self, data: Data, y: np.ndarray, groups: np.ndarray | None) -> FusionStrategy:
        self.net_ = train_network(self._net(), data, y, self.config,
                                  augment={n: info.spec.augment for n, info in self.inputs.items()})
        return self

    def predict_proba(self, data: Data) -> np.ndarray:
        return softmax(predict_logits(self.net_, data, device=self.config.device), axis=1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.net_ = self._net()
        self.net_.load_state_dict(dict(tensors))
        self.net_.eval()

    def contributions(self, data: Data) -> dict[str, np.ndarray]:
        """Per input: drop in the predicted class's probability when that input is hidden (occlusion)."""
        full = self.predict_proba(data)
        pred = full.argmax(1)
        rows = np.arange(len(pred))
        out = {}
        for n in self.inputs:
            x, m = data[n]
            hidden = dict(data)
            hidden[n] = (x, np.zeros_like(m))
            out[n] = np.where(m, full[rows, pred] - self.predict_proba(hidden)[rows, pred], 0.0)
        return out
