"""Text modality: normalisation, special-token tagging, tokenisation, vocabulary, augmentation, quality.

The pipeline is ``normalize_text -> tag_special_tokens -> tokenize``; :class:`Vocabulary` maps the
tokens to integer ids for trainable encoders. ``torch`` is imported lazily in
:func:`augment_tokens` only.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modalfuse._errors import NotFittedError

if TYPE_CHECKING:
    import torch

__all__ = [
    "TEXT_QUALITY_SCORES",
    "Vocabulary",
    "augment_tokens",
    "normalize_text",
    "tag_special_tokens",
    "text_quality",
    "text_quality_scores",
    "tokenize",
]

PAD = "<pad>"
UNK = "<unk>"
URL = "<url>"
EMAIL = "<email>"
NUM = "<num>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, URL, EMAIL, NUM)

_WS_RE = re.compile(r"\s+")
# URLs: an explicit scheme, or "www." not inside an e-mail address; trailing punctuation is not part of it.
_URL_RE = re.compile(
    r"(?:\b(?:https?|ftp)://|(?<![@\w.])www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]",
    re.IGNORECASE,
)
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
# Numbers: 42, 3.5, 1,000, 1,000,000.25; not digits glued to the end of a word (mp3, covid19).
_NUM_RE = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
_TOKEN_RE = re.compile(r"<url>|<email>|<num>|\w+(?:'\w+)*|[^\w\s]")
_PUNCT_RE = re.compile(r"[^\w\s]")


def _is_missing(s: object) -> bool:
    """True for None, float NaN and pandas' missing-value scalars."""
    if s is None:
        return True
    if isinstance(s, float | np.floating):
        return bool(np.isnan(s))
    if type(s).__module__.startswith("pandas"):
        import pandas as pd

        try:
            return bool(pd.isna(s))
        except (TypeError, ValueError):
            return False
    return False


def normalize_text(s: object) -> str:
    """Unicode-NFKC, lower-case, collapse whitespace and strip.

    Parameters
    ----------
    s : str or None
        Missing values (``None``, NaN, ``pd.NA``) give ``""``; other non-strings are ``str()``-ed.

    Returns
    -------
    str
    """
    if _is_missing(s):
        return ""
    text = s if isinstance(s, str) else str(s)
    text = unicodedata.normalize("NFKC", text).lower()
    return _WS_RE.sub(" ", text).strip()


def tag_special_tokens(s: str) -> str:
    """Replace URLs with ``<url>``, e-mail addresses with ``<email>`` and numbers with ``<num>``.

    Numbers include decimals and thousands separators (``3.5``, ``1,000``, ``1,000.25``); digits
    glued to the end of a word (``mp3``) are left alone.

    Parameters
    ----------
    s : str

    Returns
    -------
    str
    """
    if _is_missing(s):
        return ""
    text = _URL_RE.sub(URL, str(s))
    text = _EMAIL_RE.sub(EMAIL, text)
    return _NUM_RE.sub(NUM, text)


def tokenize(s: object) -> list[str]:
    """Split text into word and punctuation tokens after :func:`normalize_text` and tagging.

    Words keep inner apostrophes (``don't``); each punctuation character is its own token; the tags
    ``<url>``, ``<email>`` and ``<num>`` are single tokens.

    Parameters
    ----------
    s : str or None

    Returns
    -------
    list of str
    """
    return _TOKEN_RE.findall(tag_special_tokens(normalize_text(s)))


class Vocabulary:
    """Token-to-id mapping fitted on a corpus.

    Ids 0-4 are always ``<pad>``, ``<unk>``, ``<url>``, ``<email>``, ``<num>``; the other tokens
    follow by decreasing frequency, ties alphabetical, so fitting is deterministic.

    Parameters
    ----------
    min_freq : int, default 1
        Tokens seen fewer times are left out (they encode as ``<unk>``).
    max_size : int, default 20000
        Largest vocabulary size, special tokens included.

    Attributes
    ----------
    itos_ : list of str
        Token of each id.
    stoi_ : dict of str to int
        Id of each token.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, *, min_freq: int = 1, max_size: int = 20000) -> None:
        self.min_freq = min_freq
        self.max_size = max_size

    def fit(self, texts: Iterable[object]) -> Vocabulary:
        """Count the tokens of ``texts`` and build the mapping.

        Parameters
        ----------
        texts : iterable of str
            Missing values count as empty texts.

        Returns
        -------
        Vocabulary
            ``self``.
        """
        if self.max_size < len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must be at least {len(SPECIAL_TOKENS)}, got {self.max_size}")
        if isinstance(texts, str):
            texts = [texts]
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        kept = sorted(
            (tok for tok, c in counts.items() if c >= self.min_freq), key=lambda tok: (-counts[tok], tok)
        )
        self._set_tokens(list(SPECIAL_TOKENS) + kept[: self.max_size - len(SPECIAL_TOKENS)])
        return self

    def _set_tokens(self, tokens: list[str]) -> None:
        self.itos_ = tokens
        self.stoi_ = {tok: i for i, tok in enumerate(tokens)}

    def _check_fitted(self) -> None:
        if not hasattr(self, "stoi_"):
            raise NotFittedError("this Vocabulary is not fitted yet; call fit() first")

    def __len__(self) -> int:
        self._check_fitted()
        return len(self.itos_)

    def __contains__(self, token: object) -> bool:
        return hasattr(self, "stoi_") and token in self.stoi_

    def encode(self, texts: Iterable[object], *, max_length: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Turn texts into padded id arrays.

        Parameters
        ----------
        texts : iterable of str
            A single string is treated as one text. Missing values encode as empty texts.
        max_length : int, default 128
            Longer texts are truncated (their first ``max_length`` tokens kept).

        Returns
        -------
        ids : numpy.ndarray of shape (N, L), int64
            Right-padded with 0 (``<pad>``); unknown tokens are 1 (``<unk>``).
            ``L = max(1, min(max_length, longest))`` so the array always has a column.
        lengths : numpy.ndarray of shape (N,), int64
            Tokens kept per text (0 for an empty text).
        """
        self._check_fitted()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if isinstance(texts, str):
            texts = [texts]
        unk = self.unk_id
        seqs = [[self.stoi_.get(tok, unk) for tok in tokenize(t)][:max_length] for t in texts]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        width = max(1, int(lengths.max(initial=0)))
        ids = np.zeros((len(seqs), width), dtype=np.int64)
        for i, seq in enumerate(seqs):
            ids[i, : len(seq)] = seq
        return ids, lengths

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Map ids back to tokens, dropping padding.

        Parameters
        ----------
        ids : sequence of int, shape (L,)

        Returns
        -------
        list of str
        """
        self._check_fitted()
        return [self.itos_[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) != self.pad_id]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (parameters and tokens in id order)."""
        self._check_fitted()
        return {
            "type": "Vocabulary",
            "min_freq": int(self.min_freq),
            "max_size": int(self.max_size),
            "tokens": list(self.itos_),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vocabulary:
        """Rebuild a fitted vocabulary from :meth:`to_dict` output."""
        tokens = [str(t) for t in state["tokens"]]
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError("vocabulary state does not start with the special tokens")
        vocab = cls(min_freq=int(state.get("min_freq", 1)), max_size=int(state.get("max_size", 20000)))
        vocab._set_tokens(tokens)
        return vocab

    def __repr__(self) -> str:
        size = f", size={len(self.itos_)}" if hasattr(self, "itos_") else ""
        return f"Vocabulary(min_freq={self.min_freq}, max_size={self.max_size}{size})"


def augment_tokens(
    ids: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    drop_prob: float = 0.1,
    unk_id: int = Vocabulary.unk_id,
    pad_id: int = Vocabulary.pad_id,
) -> torch.Tensor:
    """Token dropout: replace random non-padding tokens with ``<unk>``.

    Parameters
    ----------
    ids : torch.Tensor of shape (N, L), integer
    generator : torch.Generator, optional
        Source of randomness; the same state gives the same output.
    drop_prob : float, default 0.1
        Probability that each non-padding token is replaced.
    unk_id, pad_id : int
        Ids of ``<unk>`` and ``<pad>``.

    Returns
    -------
    torch.Tensor of shape (N, L), same dtype and device
    """
    import torch

    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    r = torch.rand(tuple(ids.shape), generator=generator, device=gdev).to(ids.device)
    drop = (r < drop_prob) & (ids != pad_id)
    return torch.where(drop, torch.full_like(ids, unk_id), ids)


def text_quality(s: object) -> float:
    """Score a text in ``[0, 1]`` from its length, how word-like it is and how much is punctuation.

    With ``content`` the tokens that are not punctuation and ``n = len(content)``:

    * ``length = min(1, log(1 + n) / log(11))`` (ten words or more count as long enough);
    * ``wordy`` = mean over ``content`` of 1 for a token with a letter, 0.5 for a tag
      (``<url>``, ``<email>``, ``<num>``) and 0 otherwise (bare digits, symbols glued to digits);
    * ``tidy = 1 - clip((p - 0.5) / 0.5, 0, 1)`` where ``p`` is the fraction of punctuation tokens
      (more than half punctuation is penalised, all punctuation scores 0).

    The score is ``length * wordy * tidy``. Empty or missing text scores 0.

    Parameters
    ----------
    s : str or None

    Returns
    -------
    float
    """
    tokens = tokenize(s)
    if not tokens:
        return 0.0
    content = [tok for tok in tokens if not _PUNCT_RE.fullmatch(tok)]
    n = len(content)
    if n == 0:
        return 0.0
    length = min(1.0, math.log1p(n) / math.log(11.0))
    score = 0.0
    for tok in content:
        if tok in (URL, EMAIL, NUM):
            score += 0.5
        elif any(ch.isalpha() for ch in tok):
            score += 1.0
    punct_frac = 1.0 - n / len(tokens)
    tidy = 1.0 - min(1.0, max(0.0, (punct_frac - 0.5) / 0.5))
    return float(min(1.0, length * (score / n) * tidy))


#: The scores of :func:`text_quality_scores`, in order.
TEXT_QUALITY_SCORES = ("length", "unknown")


def text_quality_scores(s: object, vocabulary: Vocabulary | None = None) -> dict[str, float]:
    """Per-text quality scores: length and the share of unknown tokens.

    * ``length``: ``log10(1 + n)`` for ``n`` tokens (:func:`tokenize`): 0 empty, 1 for 9 tokens, 2 for 99;
    * ``unknown``: the share of the tokens that ``vocabulary`` does not hold (it would encode them as
      ``<unk>``; the tags ``<url>``, ``<email>``, ``<num>`` are known); 0 without tokens or vocabulary.

    Parameters
    ----------
    s : str or None
    vocabulary : Vocabulary, optional
        A fitted vocabulary (a model's, fitted on its training rows).

    Returns
    -------
    dict
        ``{"length", "unknown"}``.
    """
    tokens = tokenize(s)
    unknown = 0.0
    if tokens and vocabulary is not None:
        unknown = sum(tok not in vocabulary for tok in tokens) / len(tokens)
    return {"length": float(np.log10(1.0 + len(tokens))), "unknown": float(unknown)}
