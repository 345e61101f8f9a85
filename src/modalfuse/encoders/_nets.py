"""Trainable PyTorch encoders: a modality batch in, an embedding (N, dim) out."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AudioCNN", "FeatureMLP", "ImageCNN", "SeriesCNN", "SeriesCNNLSTM", "TextBag", "build_network"]


def _block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


class _ConvNet(nn.Module):
    """Base of the CNN encoders: weights and activations in channels-last layout, which oneDNN's CPU
    convolutions, batch norm and pooling run about 1.3x faster than the default layout (measured in
    ``benchmarks/encoder_speed.py``); the arithmetic is the same."""

    features: nn.Module
    proj: nn.Module

    def _channels_last(self) -> None:
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.contiguous(memory_format=torch.channels_last))
        return self.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


class ImageCNN(_ConvNet):
    """Small CNN for images (N, C, H, W) -> (N, dim): five conv blocks, global average and max pooling."""

    def __init__(self, in_channels: int, dim: int = 128, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w, False),
            *_block(w, w, True),
            *_block(w, 2 * w, False),
            *_block(2 * w, 2 * w, True),
            *_block(2 * w, 4 * w, False),
        )
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, dim), nn.ReLU())
        self.dim = dim
        self._channels_last()


class AudioCNN(_ConvNet):
    """CNN over log-mel spectrograms (N, 1, n_mels, T) -> (N, dim); pools early, then over time."""

    def __init__(self, in_channels: int = 1, dim: int = 128, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w, True),
            *_block(w, 2 * w, True),
            *_block(2 * w, 4 * w, True),
            *_block(4 * w, 4 * w, False),
        )
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, dim), nn.ReLU())
        self.dim = dim
        self._channels_last()


class TextBag(nn.Module):
    """Mean-pooled word embeddings (N, L) int ids -> (N, dim); id 0 is padding."""

    def __init__(self, vocab_size: int, dim: int = 128, embed: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * embed, dim), nn.ReLU())
        self.dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embedding(ids)
        keep = (ids != 0).unsqueeze(-1).float()
        mean = (e * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        mx = (e + (keep - 1) * 1e4).amax(1).clamp_min(-1.0) * (keep.sum(1) > 0).float()
        return self.proj(torch.cat([mean, mx], dim=1))


class FeatureMLP(nn.Module):
    """Encoder for a feature vector (N, D) -> (N, dim); ``hidden=0`` makes it the identity (a linear model)."""

    def __init__(self, in_features: int, dim: int = 64, hidden: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_features, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.ReLU()
            )
            self.dim = dim
        else:
            self.net = nn.Identity()
            self.dim = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Conv1d(nn.Conv1d):
    """A ``Conv1d`` (same parameters, same saved weights) that also takes a channels-last ``(N, C, 1, T)``
    batch, convolved as a 2-D convolution with a ``(1, kernel)`` window: the same arithmetic, but
    oneDNN's channels-last 2-D kernels run a training step of ``series-cnn`` 1.5x faster on one CPU thread
    than its 1-D path (1.2x for ``series-cnnlstm``; ``benchmarks/encoder_speed.py --encoders series-cnn
    series-cnnlstm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return super().forward(x)
        return nn.functional.conv2d(
            x,
            self.weight.unsqueeze(2),
            self.bias,
            (1, self.stride[0]),
            (0, self.padding[0]),  # type: ignore[index]
            (1, self.dilation[0]),
            self.groups,
        )


class _BatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` (same parameters and statistics) that also takes an ``(N, C, 1, T)`` batch."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {input.dim()}D input)")


def _block1d(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [_Conv1d(cin, cout, kernel, padding=kernel // 2, bias=False), _BatchNorm1d(cout), nn.ReLU()]


def _pool1d() -> nn.Module:
    """Max pooling by 2 over time (a last odd sample pooled alone) of an ``(N, C, 1, T)`` batch."""
    return nn.MaxPool2d((1, 2), ceil_mode=True)


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T) -> channels-last (N, C, 1, T), the layout the series networks' layers run in."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class SeriesCNN(nn.Module):
    """1-D CNN for series (N, C, T) -> (N, dim): three conv blocks (kernels 5, 5, 3; one pooling), then
    global average and max pooling over time."""

    def __init__(self, in_channels: int, dim: int = 64, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block1d(in_channels, w, 5),
            *_block1d(w, 2 * w, 5),
            _pool1d(),
            *_block1d(2 * w, 2 * w, 3),
        )
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, dim), nn.ReLU())
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(_as_rows(x)).squeeze(2)
        return self.proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class SeriesCNNLSTM(nn.Module):
    """CNN-LSTM for series (N, C, T) -> (N, dim): two conv blocks and a pooling extract local features,
    an LSTM reads them in time order; its last state and its mean over time are projected."""

    def __init__(self, in_channels: int, dim: int = 64, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(*_block1d(in_channels, w, 5), *_block1d(w, w, 5), _pool1d())
        self.lstm = nn.LSTM(w, w, batch_first=True)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * w, dim), nn.ReLU())
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.features(_as_rows(x)).squeeze(2).transpose(1, 2).contiguous())
        return self.proj(torch.cat([h[:, -1], h.mean(dim=1)], dim=1))


class TransformerTail(nn.Module):
    """The last ``layers`` blocks of all-MiniLM-L6-v2 (copied from the shipped weights), then masked
    mean pooling and L2 normalisation: (N, L, 385) token states with the mask last (encoder
    ``minilm-ft``) -> (N, 384), as the frozen ``minilm`` encoder pools.

    ``lr_scale`` multiplies the learning rate of these blocks in training (the fusion head keeps the full
    rate): pretrained weights need small steps.
    """

    def __init__(self, in_shape: tuple[int, ...], layers: int = 1, lr_scale: float = 0.03) -> None:
        import copy

        from modalfuse._errors import OptionError
        from modalfuse.encoders._pretrained import minilm_model

        super().__init__()
        model = minilm_model()
        blocks = model.encoder.layer
        layers = int(layers)
        if not 1 <= layers <= len(blocks):
            raise OptionError(f"network 'minilm-tail': layers must be 1..{len(blocks)}, got {layers}")
        hidden = int(model.config.hidden_size)
        if len(in_shape) != 2 or in_shape[1] != hidden + 1:
            raise OptionError(
                f"network 'minilm-tail' reads (tokens, {hidden + 1}) token states (encoder 'minilm-ft'), "
                f"got per-row shape {tuple(in_shape)}"
            )
        self.blocks = nn.ModuleList(copy.deepcopy(blocks[len(blocks) - layers :]))
        self.blocks.train()
        self.dim = hidden
        self.lr_scale = float(lr_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[..., -1]
        n = max(1, int(mask.sum(1).max().item()))  # drop the columns that are padding in every row
        h, mask = x[:, :n, :-1], mask[:, :n]
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min
        for block in self.blocks:
            out = block(h, bias)
            h = out[0] if isinstance(out, tuple) else out
        keep = mask.unsqueeze(-1)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return nn.functional.normalize(pooled, dim=1)


def build_network(
    kind: str, *, in_shape: tuple[int, ...], vocab_size: int | None, **options: int | float
) -> nn.Module:
    """Build the network ``kind`` for inputs of per-row shape ``in_shape``."""
    if kind == "image-cnn":
        return ImageCNN(in_shape[0], **options)
    if kind == "audio-cnn":
        return AudioCNN(in_shape[0], **options)
    if kind == "text-bag":
        assert vocab_size is not None
        return TextBag(vocab_size, **options)
    if kind == "series-cnn":
        return SeriesCNN(in_shape[0], **options)
    if kind == "series-cnnlstm":
        return SeriesCNNLSTM(in_shape[0], **options)
    if kind == "mlp":
        return FeatureMLP(in_shape[0], **options)
    if kind == "minilm-tail":
        return TransformerTail(in_shape, **options)
    if kind == "linear":
        return FeatureMLP(in_shape[0], hidden=0)
    raise ValueError(f"unknown network kind {kind!r}")
