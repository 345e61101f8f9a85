"""Neural fusion trained end to end: the ``NeuralFusion`` extension point and early fusion."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from modalfuse.fusion._base import Data, FusionStrategy, register_fusion
from modalfuse.fusion._train import ConcatHead, FusionNet, predict_logits, seeded, train_network

__all__ = ["EarlyFusion", "NeuralFusion"]


class NeuralFusion(FusionStrategy):
    """Base of strategies that train every input's encoder and a fusion head together, end to end.

    The one method to write is :meth:`make_head`: given each input's embedding width and the number of
    classes, return a ``torch.nn.Module`` whose ``forward(embeddings, masks)`` maps a dict of (N, dim)
    embeddings and a dict of (N,) boolean presence masks to (N, n_classes) logits. Training (AdamW,
    one-cycle schedule, augmentation, modality dropout, auxiliary per-input heads, and the generation of
    new rows set by ``TrainConfig.recombine_ratio`` and ``TrainConfig.mixup_alpha``), prediction, saving
    and per-input explanations come with the base class. For example::

        @mf.register_fusion
        class MaxPool(mf.NeuralFusion):
            name = "maxpool"

            def make_head(self, dims, n_classes):
                return MaxHead(dims, n_classes)   # forward(embeddings, masks) -> logits

    Options: ``hidden`` (head width, default 128), ``aux_heads`` (default True: each encoder also gets an
    auxiliary classifier during training, so an input that is quick to fit cannot leave the others
    untrained; not used to predict).
    """

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        raise NotImplementedError  # pragma: no cover - abstract

    def _net(self) -> FusionNet:
        def build() -> FusionNet:
            encoders = {n: info.build() for n, info in self.inputs.items()}
            head = self.make_head({n: e.dim for n, e in encoders.items()}, self.n_classes)
            return FusionNet(encoders, self.n_classes, head=head,
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


@register_fusion
class EarlyFusion(NeuralFusion):
    """Early fusion: the inputs' embeddings (zeros for a missing input) concatenated with presence
    indicators, classified by an MLP; encoders and head trained together."""

    name = "early"

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        return ConcatHead(dims, n_classes, hidden=int(self.options.get("hidden", 128)))
