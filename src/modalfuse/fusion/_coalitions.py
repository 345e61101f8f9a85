"""Fast coalition predictions of fusion heads: encoders run once, heads once per coalition.

A *coalition* is a set of inputs left present; the inputs outside it are masked, exactly as a missing
input is. Explanations (:mod:`modalfuse.explain`) evaluate many coalitions of the same rows; for a neural
head only the head depends on the masks, so the inputs' embeddings are computed once
(:func:`encode_once`) and every coalition costs one pass of the head (:func:`head_coalition_proba`), the
rows of many coalitions stacked into one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import softmax

from modalfuse.fusion._train import FusionNet

__all__ = ["HeadWork", "encode_once", "head_coalition_proba"]

#: Rows per head pass when the rows of several coalitions are stacked.
STACKED_ROWS = 16384


@dataclass
class HeadWork:
    """The embeddings each network's head reads, computed once.

    ``nets[k]`` reads ``embeddings[k]`` (input -> (N, dim) float32) with presence ``masks[k]`` (input ->
    (N,) bool); the prediction is the mean of the nets' softmax outputs.
    """

    nets: Sequence[FusionNet]
    embeddings: Sequence[Mapping[str, np.ndarray]]
    masks: Sequence[Mapping[str, np.ndarray]]
    n_rows: int


@torch.no_grad()
def encode_once(
    net: FusionNet, data: Mapping[str, tuple[np.ndarray, np.ndarray]], *, device: str, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """``net.encode`` of every input of ``data`` (masks ignored, as in ``net.forward``), (N, dim) each."""
    net.to(device).eval()
    n = len(next(iter(data.values()))[1]) if data else 0
    parts: dict[str, list[np.ndarray]] = {name: [] for name in net.encoders}
    for start in range(0, n, batch_size):
        xs = {
            name: torch.from_numpy(np.ascontiguousarray(data[name][0][start : start + batch_size])).to(device)
            for name in net.encoders
        }
        for name, z in net.encode(xs).items():
            parts[name].append(z.float().cpu().numpy())
    return {
        name: np.concatenate(p) if p else np.zeros((0, getattr(net.encoders[name], "dim", 0)), np.float32)
        for name, p in parts.items()
    }


def _coalition_masks(
    masks: Mapping[str, np.ndarray], names: Sequence[str], coalitions: np.ndarray
) -> dict[str, np.ndarray]:
    """Each input's mask under every coalition, stacked: (C * N,), coalition-major."""
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for name, m in masks.items():
        keep = coalitions[:, index[name]] if name in index else np.ones(len(coalitions), bool)
        out[name] = (keep[:, None] & np.asarray(m, bool)[None, :]).reshape(-1)
    return out


@torch.no_grad()
def _fused_logits(
    net: FusionNet,
    embeddings: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    n_rows: int,
    device: str,
) -> np.ndarray:
    """``net.fuse`` of embeddings of ``n_rows`` rows already computed, under ``masks`` stacked over
    coalitions (stacked row ``r`` reads row ``r % n_rows``)."""
    net.to(device).eval()
    total = len(next(iter(masks.values())))
    emb = {name: torch.from_numpy(np.ascontiguousarray(e)).to(device) for name, e in embeddings.items()}
    out = []
    for start in range(0, total, STACKED_ROWS):
        source = torch.arange(start, min(start + STACKED_ROWS, total), device=device) % n_rows
        z = {name: e[source] for name, e in emb.items()}
        m = {name: torch.from_numpy(masks[name][start : start + STACKED_ROWS]).to(device) for name in emb}
        out.append(net.fuse(z, m).float().cpu().numpy())
    return np.concatenate(out)


def head_coalition_proba(
    work: HeadWork, names: Sequence[str], coalitions: np.ndarray, n_classes: int, *, device: str = "cpu"
) -> np.ndarray:
    """Probabilities (C, N, n_classes) of every coalition: each net's head on its embeddings with the
    inputs outside the coalition masked, softmax, averaged over the nets (as ``predict_proba`` does)."""
    coalitions = np.asarray(coalitions, dtype=bool).reshape(-1, len(names))
    n_coal, n = len(coalitions), work.n_rows
    total = np.zeros((n_coal, n, n_classes))
    if not n_coal or not n or not work.nets:
        return total
    for net, emb, masks in zip(work.nets, work.embeddings, work.masks, strict=True):
        logits = _fused_logits(net, emb, _coalition_masks(masks, names, coalitions), n, device)
        total += softmax(logits.astype(np.float64), axis=1).reshape(n_coal, n, -1)
    return total / len(work.nets)
