"""Training and inference loops shared by every neural strategy."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["Batch", "ConcatHead", "FusionNet", "TrainConfig", "augmenter", "predict_logits", "seeded", "train_network"]

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (see ``MultimodalClassifier`` for their meaning)."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    modality_dropout: float = 0.0
    augment: bool = True
    recombine_ratio: float = 0.0
    mixup_alpha: float = 0.0
    seed: int = 0
    device: str = "cpu"


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with PyTorch's global generator seeded with ``seed`` (its state restored afterwards),
    so a network's initial weights depend on the seed only, not on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class ConcatHead(nn.Module):
    """Early-fusion head: masked embeddings concatenated with presence indicators, then an MLP.

    With one input it is a linear classifier on that input's embedding. Missing inputs contribute zeros
    and a 0 indicator, so the head learns what absence means.
    """

    def __init__(self, dims: Mapping[str, int], n_classes: int, *, hidden: int = 128,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.names = list(dims)
        width = sum(dims.values()) + (len(dims) if len(dims) > 1 else 0)
        if len(dims) > 1 and hidden:
            self.net: nn.Module = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(),
                                                nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout if hidden else 0.0), nn.Linear(width, n_classes))

    def forward(self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [embeddings[n] * masks[n].float().unsqueeze(1) for n in self.names]
        if len(self.names) > 1:
            parts.append(torch.stack([masks[n].float() for n in self.names], dim=1))
        return self.net(torch.cat(parts, dim=1))


class FusionNet(nn.Module):
    """Encoders per input, then a fusion head ``head(embeddings, masks) -> logits``.

    ``head`` defaults to :class:`ConcatHead` (early fusion; with one input, a unimodal model).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], n_classes: int, *, hidden: int = 128,
                 dropout: float = 0.2, aux_heads: bool = False, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        # Auxiliary per-input classifiers (training only): each encoder must learn on its own, so a fast
        # learner (one modality) cannot starve the others of gradient.
        self.aux = nn.ModuleDict({n: nn.Linear(e.dim, n_classes) for n, e in self.encoders.items()}
                                 if aux_heads and len(self.encoders) > 1 else {})
        self.head = head if head is not None else ConcatHead(
            {n: e.dim for n, e in self.encoders.items()}, n_classes, hidden=hidden, dropout=dropout)

    def encode(self, xs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each input's embedding, (N, dim) per input, ignoring masks."""
        return {name: enc(xs[name]) for name, enc in self.encoders.items()}

    def fuse(self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits from embeddings through the fusion head."""
        return self.head(embeddings, masks)

    def forward(self, xs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse(self.encode(xs), masks)

    def training_loss(self, xs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                      train_masks: Mapping[str, torch.Tensor], y: torch.Tensor,
                      loss_fn: nn.Module) -> torch.Tensor:
        """Loss of the fused prediction under ``train_masks`` (masks after modality dropout) plus, with
        auxiliary heads, the mean loss of each input's own prediction on the rows where it is present."""
        emb = self.encode(xs)
        loss = loss_fn(self.fuse(emb, train_masks), y)
        aux = [loss_fn(head(emb[n][masks[n]]), y[masks[n]]) for n, head in self.aux.items() if masks[n].any()]
        if aux:
            loss = loss + torch.stack(aux).mean()
        return loss


def augmenter(kind: str | None) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """The train-time augmentation function for an encoder's ``augment`` kind."""
    if kind == "image":
        from modalfuse.modalities.image import augment_images

        return lambda x, g: augment_images(x, generator=g, max_rotate=10.0, max_shift=0.1, max_scale=0.1)
    if kind == "spectrogram":
        from modalfuse.modalities.audio import augment_spectrograms

        return lambda x, g: augment_spectrograms(x, generator=g)
    if kind == "tokens":
        from modalfuse.modalities.text import augment_tokens

        return lambda x, g: augment_tokens(x, generator=g, drop_prob=0.1)
    return None


def _to_tensors(data: Mapping[str, tuple[np.ndarray, np.ndarray]], device: str) -> Batch:
    xs = {n: torch.from_numpy(np.ascontiguousarray(x)).to(device) for n, (x, _) in data.items()}
    ms = {n: torch.from_numpy(np.ascontiguousarray(m)).to(device) for n, (_, m) in data.items()}
    return xs, ms


def train_network(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: TrainConfig,
    *,
    augment: Mapping[str, str | None] | None = None,
    class_weight: np.ndarray | None = None,
) -> FusionNet:
    """Train ``net`` on ``data`` (input -> (X, mask), one row per label in ``y``, ints 0..K-1).

    AdamW with a one-cycle learning-rate schedule; seeded shuffling, dropout and augmentation, so the
    same config gives the same weights. Returns the network in eval mode.
    """
    with torch.random.fork_rng(devices=[]):  # seeded dropout, without touching the caller's RNG state
        torch.manual_seed(config.seed)
        return _train(net, data, y, config, augment=augment, class_weight=class_weight)


def _train(
    net: FusionNet,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    config: TrainConfig,
    *,
    augment: Mapping[str, str | None] | None,
    class_weight: np.ndarray | None,
) -> FusionNet:
    gen = torch.Generator().manual_seed(config.seed)
    net.to(config.device).train()
    xs, ms = _to_tensors(data, config.device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(config.device)
    n = len(yt)
    bs = max(1, min(config.batch_size, n))
    steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = max(1, config.epochs * steps_per_epoch)
    # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step is degenerate
    pct_start = 0.25 if total_steps != 4 else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=total_steps,
                                                pct_start=pct_start)
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    augs = {n: augmenter(k) for n, k in (augment or {}).items()} if config.augment else {}
    names = list(xs)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2 and n >= 2:
                continue  # BatchNorm needs two rows
            bx = {k: xs[k][idx] for k in names}
            bm = {k: ms[k][idx] for k in names}
            for k, fn in augs.items():
                if fn is not None:
                    bx[k] = fn(bx[k], gen)
            train_masks = bm
            if config.modality_dropout > 0 and len(names) > 1:
                train_masks = _drop_modalities(bm, config.modality_dropout, gen)
            loss = net.training_loss(bx, bm, train_masks, yt[idx], loss_fn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def _drop_modalities(masks: dict[str, torch.Tensor], p: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Hide each present input with probability ``p``, never hiding every input of a row."""
    stacked = torch.stack([masks[k] for k in masks], dim=1)
    drop = torch.rand(stacked.shape, generator=gen) < p
    kept = stacked & ~drop
    none_left = ~kept.any(dim=1)
    kept[none_left] = stacked[none_left]
    return {k: kept[:, i] for i, k in enumerate(masks)}


@torch.no_grad()
def predict_logits(net: FusionNet, data: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                   batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Logits (N, K) of ``net`` in eval mode."""
    net.to(device).eval()
    xs, ms = _to_tensors(data, device)
    n = len(next(iter(ms.values())))
    out = [net({k: v[s:s + batch_size] for k, v in xs.items()}, {k: v[s:s + batch_size] for k, v in ms.items()})
           for s in range(0, n, batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)
