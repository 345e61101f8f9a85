"""Joint-representation fusion heads: tensor fusion, low-rank multimodal fusion, cross-modal attention.

Each strategy is a :class:`~modalfuse.fusion.NeuralFusion`: by default its head is trained on the
embeddings of the per-input encoders shared with late fusion (cross-fitted, one head per inner fold), or,
with ``end_to_end=True``, together with its own encoders. Every head inherits training-time generation of
new rows (recombination of same-class rows, multimodal mixup), modality dropout, saving and occlusion
explanations, and takes any number of inputs and rows where some of them are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from modalfuse._errors import OptionError
from modalfuse._options import DEFAULT_HIDDEN, Option
from modalfuse.fusion._base import register_fusion
from modalfuse.fusion._early import HIDDEN_OPTION, NeuralFusion

__all__ = [
    "AttentionFusion",
    "AttentionHead",
    "LowRankFusion",
    "LowRankHead",
    "TensorFusion",
    "TensorHead",
    "tensor_width",
]

#: Largest number of features of the flattened outer product that :func:`tensor_width` aims for.
MAX_TENSOR_FEATURES = 20_000


def tensor_width(n_inputs: int, requested: int = 16, max_features: int = MAX_TENSOR_FEATURES) -> int:
    """Per-input projection width of tensor fusion: ``requested``, shrunk until ``(d + 1) ** n_inputs``
    (the size of the outer product of the inputs' ``[z; 1]`` vectors) is at most ``max_features``.

    Never below 1, so with more than ``log2(max_features)`` (14) inputs the product exceeds the limit.

    Parameters
    ----------
    n_inputs : int
        Number of inputs.
    requested : int, default=16
        The width asked for.
    max_features : int, default=20000
        The bound on the product's size.

    Returns
    -------
    int
    """
    d = max(1, int(requested))
    while d > 1 and (d + 1) ** n_inputs > max_features:
        d -= 1
    return d


def _check_dims(dims: Mapping[str, int], head: str) -> list[str]:
    if not dims:
        raise ValueError(f"{head} needs at least one input")
    return list(dims)


def _masked(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``z`` with the rows where ``mask`` is False set to zero (exactly, whatever ``z`` holds there)."""
    return torch.where(mask.unsqueeze(1), z, torch.zeros((), dtype=z.dtype, device=z.device))


def _with_one(z: torch.Tensor) -> torch.Tensor:
    """``[z; 1]``: a constant 1 appended to every row."""
    return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], dim=1)


class TensorHead(nn.Module):
    """Tensor Fusion Network head (Zadeh et al., 2017).

    Each input's embedding is projected to ``width`` features ``z_m`` (zeros where the input is missing),
    a constant 1 is appended, and the outer product ``[z_1; 1] x ... x [z_M; 1]`` is flattened: it holds
    every input's unimodal terms and all their bi-, tri- and higher-order interactions. An MLP maps it to
    logits. A missing input keeps only its 1, so the product still carries the other inputs' unimodal and
    cross terms.

    Parameters
    ----------
    dims : dict of str to int
        Embedding width of each input.
    n_classes : int
        Number of classes.
    width : int, default=16
        Projection width per input, shrunk with :func:`tensor_width` so the product stays at most 20,000
        features.
    hidden : int, default=128
        Width of the MLP's hidden layer; 0 for a linear classifier on the product.
    dropout : float, default=0.2
        Dropout before each of the MLP's layers.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        n_classes: int,
        *,
        width: int = 16,
        hidden: int = DEFAULT_HIDDEN,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.names = _check_dims(dims, type(self).__name__)
        self.width = tensor_width(len(self.names), width)
        self.proj = nn.ModuleDict({n: nn.Linear(d, self.width) for n, d in dims.items()})
        self.n_features = (self.width + 1) ** len(self.names)
        if hidden:
            self.mlp: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(self.n_features, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.n_features, n_classes))

    def fused(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The flattened outer product, (N, (width + 1) ** n_inputs), in the inputs' order (the last
        input's index varying fastest)."""
        out: torch.Tensor | None = None
        for n in self.names:
            z = _with_one(_masked(self.proj[n](embeddings[n]), masks[n]))
            out = z if out is None else (out.unsqueeze(2) * z.unsqueeze(1)).flatten(1)
        assert out is not None
        return out

    def forward(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits (N, n_classes) from embeddings (N, dim) and presence masks (N,) per input."""
        return self.mlp(self.fused(embeddings, masks))


class LowRankHead(nn.Module):
    """Low-rank Multimodal Fusion head (Liu et al., 2018).

    The tensor-fusion product followed by a linear layer, with that layer's weight tensor factorised into
    ``rank`` modality-specific factors: ``h = sum_r prod_m (W_m^r [z_m; 1])``, where ``z_m`` is input
    ``m``'s embedding (zeros where the input is missing, so only its constant 1 is used) and ``W_m^r`` is
    a ``(dim_m + 1) x width`` matrix; then ``logits = V h + b``. Its cost is linear in the number of
    inputs, not exponential.

    The factors' rows for the constant 1 start at 1, so at initialisation a missing input is close to the
    identity of the product (as it is in tensor fusion).

    Parameters
    ----------
    dims : dict of str to int
        Embedding width of each input.
    n_classes : int
        Number of classes.
    rank : int, default=4
        Number of rank-one terms.
    width : int, default=128
        Width of the fused vector ``h``.
    dropout : float, default=0.2
        Dropout on ``h`` before the output layer.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        n_classes: int,
        *,
        rank: int = 4,
        width: int = DEFAULT_HIDDEN,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.names = _check_dims(dims, type(self).__name__)
        self.rank = int(rank)
        self.factors = nn.ParameterDict()
        for n, d in dims.items():
            w = torch.empty(self.rank, d + 1, width)
            for r in range(self.rank):
                nn.init.xavier_normal_(w[r])
            with torch.no_grad():
                w[:, -1, :] = 1.0
            self.factors[n] = nn.Parameter(w)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, n_classes)

    def fused(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The fused vector ``h``, (N, width)."""
        prod: torch.Tensor | None = None
        for n in self.names:
            a = _with_one(_masked(embeddings[n], masks[n]))
            t = torch.einsum("nd,rdh->nrh", a, self.factors[n])
            prod = t if prod is None else prod * t
        assert prod is not None
        return prod.sum(dim=1)

    def forward(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits (N, n_classes) from embeddings (N, dim) and presence masks (N,) per input."""
        return self.out(self.dropout(self.fused(embeddings, masks)))


class AttentionHead(nn.Module):
    """Cross-modal attention head: a small Transformer encoder over one token per input and a CLS token.

    Input ``m``'s token is a linear projection of its embedding plus a learned type embedding. Where the
    input is missing its token is a learned per-input "missing" token and it is masked out of attention
    (``src_key_padding_mask``), so nothing about a missing input's values reaches the prediction; a learned
    CLS token is always present, so a row is never fully masked. The prediction is read from the CLS
    token's output.

    Parameters
    ----------
    dims : dict of str to int
        Embedding width of each input.
    n_classes : int
        Number of classes.
    d_model : int, default=64
        Token width.
    nhead : int, default=4
        Attention heads.
    layers : int, default=2
        Transformer encoder layers (pre-norm).
    dim_feedforward : int, default=128
        Width of each layer's feed-forward block.
    dropout : float, default=0.1
        Dropout inside the layers.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        n_classes: int,
        *,
        d_model: int = 64,
        nhead: int = 4,
        layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.names = _check_dims(dims, type(self).__name__)
        m = len(self.names)
        self.proj = nn.ModuleDict({n: nn.Linear(d, d_model) for n, d in dims.items()})
        self.type_embedding = nn.Parameter(torch.randn(m, d_model) * 0.02)
        self.missing_token = nn.Parameter(torch.randn(m, d_model) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.out = nn.Linear(d_model, n_classes)

    def tokens(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The token sequence (N, 1 + n_inputs, d_model), CLS first, and its padding mask (True = ignored)."""
        toks, pad = [], []
        for i, n in enumerate(self.names):
            m = masks[n]
            present = self.proj[n](embeddings[n]) + self.type_embedding[i]
            toks.append(torch.where(m.unsqueeze(1), present, self.missing_token[i].expand_as(present)))
            pad.append(~m)
        n_rows = len(toks[0]) if toks else 0
        cls = self.cls_token.expand(n_rows, -1)
        seq = torch.stack([cls, *toks], dim=1)
        padding = torch.stack([torch.zeros(n_rows, dtype=torch.bool, device=seq.device), *pad], dim=1)
        return seq, padding

    def forward(
        self, embeddings: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits (N, n_classes) from embeddings (N, dim) and presence masks (N,) per input."""
        seq, padding = self.tokens(embeddings, masks)
        return self.out(self.encoder(seq, src_key_padding_mask=padding)[:, 0])


@register_fusion
class TensorFusion(NeuralFusion):
    """Tensor Fusion Network: the outer product of the inputs' projected embeddings (each with a constant 1
    appended), flattened and classified by an MLP (see :class:`TensorHead`).

    Options: ``tensor_dim`` (projection width per input, default 16, shrunk automatically so the product has
    at most ~20,000 features; also settable as ``"tensor:8"``), ``hidden`` (MLP width, default 128),
    ``aux_heads`` (see :class:`NeuralFusion`).
    """

    name = "tensor"
    argument_name: ClassVar[str | None] = "tensor_dim"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "tensor_dim": Option(
            16, "int", "projection width per input, shrunk so the product has <= 20,000 features", low=1
        ),
        "hidden": HIDDEN_OPTION,
    }

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        """A :class:`TensorHead` over ``dims``."""
        return TensorHead(dims, n_classes, width=self.options["tensor_dim"], hidden=self.options["hidden"])


@register_fusion
class LowRankFusion(NeuralFusion):
    """Low-rank Multimodal Fusion: tensor fusion with the output weights factorised into ``rank``
    modality-specific factors, linear in the number of inputs (see :class:`LowRankHead`).

    Options: ``rank`` (default 4; also settable as ``"lowrank:8"``), ``hidden`` (width of the fused vector,
    default 128), ``aux_heads`` (see :class:`NeuralFusion`).
    """

    name = "lowrank"
    argument_name: ClassVar[str | None] = "rank"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "rank": Option(4, "int", "number of rank-one terms ('lowrank:8' sets it)", low=1),
        "hidden": Option(DEFAULT_HIDDEN, "int", "width of the fused vector", low=1),
    }

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        """A :class:`LowRankHead` over ``dims``."""
        return LowRankHead(dims, n_classes, rank=self.options["rank"], width=self.options["hidden"])


@register_fusion
class AttentionFusion(NeuralFusion):
    """Cross-modal attention: a 2-layer Transformer encoder over one token per input plus a CLS token,
    missing inputs masked out of attention (see :class:`AttentionHead`).

    Options: ``d_model`` (default 64, a multiple of ``nhead``), ``nhead`` (4), ``layers`` (2),
    ``dim_feedforward`` (128), ``dropout`` (0.1), ``aux_heads`` (see :class:`NeuralFusion`). It has no
    ``hidden`` option.
    """

    name = "attention"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "d_model": Option(64, "int", "token width (a multiple of nhead)", low=1),
        "nhead": Option(4, "int", "attention heads", low=1),
        "layers": Option(2, "int", "Transformer encoder layers", low=1),
        "dim_feedforward": Option(128, "int", "width of each layer's feed-forward block", low=1),
        "dropout": Option(0.1, "float", "dropout inside the layers", low=0.0, high=1.0, high_open=True),
    }

    def check_options(self) -> None:
        """``d_model`` must split evenly into ``nhead`` heads."""
        d_model, nhead = self.options["d_model"], self.options["nhead"]
        if d_model % nhead:
            raise OptionError(
                f"{self.owner()}: option 'd_model' ({d_model}) must be a multiple of 'nhead' ({nhead})"
            )

    def make_head(self, dims: Mapping[str, int], n_classes: int) -> nn.Module:
        """An :class:`AttentionHead` over ``dims``."""
        o = self.options
        return AttentionHead(
            dims,
            n_classes,
            d_model=o["d_model"],
            nhead=o["nhead"],
            layers=o["layers"],
            dim_feedforward=o["dim_feedforward"],
            dropout=o["dropout"],
        )
