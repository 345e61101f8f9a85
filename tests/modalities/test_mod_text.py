"""Tests for modalfuse.modalities.text."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from modalfuse._errors import NotFittedError
from modalfuse.modalities import (
    Vocabulary,
    augment_tokens,
    normalize_text,
    tag_special_tokens,
    text_quality,
    tokenize,
)


def test_normalize_text() -> None:
    assert normalize_text("  Hello\t\nWORLD  ") == "hello world"
    assert normalize_text("ﬁne Ｃａｆé") == "fine café"  # NFKC folds ligatures and full-width forms
    assert normalize_text(None) == ""
    assert normalize_text(float("nan")) == ""
    assert normalize_text(np.float64("nan")) == ""
    assert normalize_text(pd.NA) == ""
    assert normalize_text(42) == "42"


def test_tag_special_tokens() -> None:
    text = "See https://example.com/a?b=1. or www.shop.org, mail ann.lee@mail.example.co.uk now"
    assert tag_special_tokens(text) == "See <url>. or <url>, mail <email> now"
    assert tag_special_tokens("it costs 3.5 or 1,000 or 1,000,000.25 euros") == (
        "it costs <num> or <num> or <num> euros"
    )
    assert tag_special_tokens("my mp3 player, 10kg") == "my mp3 player, <num>kg"
    assert tag_special_tokens("x@y") == "x@y"  # not an e-mail address


def test_tokenize() -> None:
    assert tokenize("Don't pay $1,000.50 at https://x.io!") == [
        "don't",
        "pay",
        "$",
        "<num>",
        "at",
        "<url>",
        "!",
    ]
    assert tokenize("Hello,world...") == ["hello", ",", "world", ".", ".", "."]
    assert tokenize(None) == []
    assert tokenize("   ") == []


def test_vocabulary_fit_order_and_specials() -> None:
    texts = ["b a c a", "a b d", "e 42"]
    vocab = Vocabulary().fit(texts)
    assert vocab.itos_[:5] == ["<pad>", "<unk>", "<url>", "<email>", "<num>"]
    # a:3, b:2, then c, d, e with 1 each in alphabetical order; <num> is not counted twice
    assert vocab.itos_[5:] == ["a", "b", "c", "d", "e"]
    assert len(vocab) == 10
    assert vocab.stoi_["a"] == 5
    assert "a" in vocab and "zzz" not in vocab
    assert Vocabulary(min_freq=2).fit(texts).itos_[5:] == ["a", "b"]
    assert Vocabulary(max_size=6).fit(texts).itos_[5:] == ["a"]
    with pytest.raises(ValueError):
        Vocabulary(max_size=3).fit(texts)


def test_vocabulary_encode() -> None:
    vocab = Vocabulary().fit(["the cat sat", "the dog"])
    ids, lengths = vocab.encode(["The cat ran", "", "the the the the the", "dog 7"], max_length=4)
    the, cat, dog = vocab.stoi_["the"], vocab.stoi_["cat"], vocab.stoi_["dog"]
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.shape == (4, 4)
    np.testing.assert_array_equal(lengths, [3, 0, 4, 2])
    np.testing.assert_array_equal(ids[0], [the, cat, 1, 0])  # unknown "ran" -> 1, padding 0
    np.testing.assert_array_equal(ids[1], [0, 0, 0, 0])
    np.testing.assert_array_equal(ids[2], [the] * 4)  # truncated
    np.testing.assert_array_equal(ids[3], [dog, 4, 0, 0])  # numbers map to <num>
    short, short_len = vocab.encode(["cat"], max_length=128)
    assert short.shape == (1, 1) and short_len.tolist() == [1]
    empty, empty_len = vocab.encode(["", None])
    assert empty.shape == (2, 1) and empty_len.tolist() == [0, 0]
    single, _ = vocab.encode("the dog")
    assert single.shape == (1, 2)
    assert vocab.decode(ids[0]) == ["the", "cat", "<unk>"]


def test_vocabulary_round_trip() -> None:
    texts = ["Great product, 5 stars! https://a.b", "bad", "great value for money"]
    vocab = Vocabulary(min_freq=1, max_size=100).fit(texts)
    state = json.loads(json.dumps(vocab.to_dict()))
    clone = Vocabulary.from_dict(state)
    assert clone.itos_ == vocab.itos_
    assert clone.max_size == 100
    for a, b in zip(vocab.encode(texts), clone.encode(texts), strict=True):
        np.testing.assert_array_equal(a, b)


def test_vocabulary_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        Vocabulary().encode(["x"])


def test_augment_tokens() -> None:
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 9, 9, 9, 9, 9]])
    a = augment_tokens(ids, generator=torch.Generator().manual_seed(0), drop_prob=0.5)
    b = augment_tokens(ids, generator=torch.Generator().manual_seed(0), drop_prob=0.5)
    c = augment_tokens(ids, generator=torch.Generator().manual_seed(3), drop_prob=0.5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.all(a[0, 4:] == 0)  # padding untouched
    assert torch.all((a == ids) | (a == 1))
    everything = augment_tokens(ids, generator=torch.Generator(), drop_prob=1.0)
    assert torch.equal(everything, torch.where(ids == 0, ids, torch.ones_like(ids)))
    assert torch.equal(augment_tokens(ids, generator=torch.Generator(), drop_prob=0.0), ids)


def test_text_quality() -> None:
    good = text_quality("This dress fits perfectly and the fabric feels soft and well made for the price.")
    short = text_quality("ok")
    junk = text_quality("!!! ??? ... 123 456 ###")
    assert good > 0.9
    assert 0.0 < short < good
    assert junk < 0.3
    assert text_quality("") == 0.0
    assert text_quality(None) == 0.0
