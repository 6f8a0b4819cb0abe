"""Word and sentence pooling of token-level activations of one example."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

__all__ = ["pool_words", "pool_sentence", "WORD_POOLING", "SENTENCE_POOLING"]

WordPooling = Literal["first", "last", "mean"]
SentencePooling = Literal["cls", "mean", "last"]
WORD_POOLING: tuple[str, ...] = ("first", "last", "mean")
SENTENCE_POOLING: tuple[str, ...] = ("cls", "mean", "last")


def pool_words(x: torch.Tensor, spans: Sequence[tuple[int, int]], how: WordPooling = "mean") -> torch.Tensor:
    """Pool ``x`` (``[tokens, d]``) over each word's token span.

    Parameters
    ----------
    x : Tensor
        Token-level activations of one example.
    spans : sequence of (start, stop)
        Token span of every word (from :meth:`Example.word_spans`).
    how : {"first", "last", "mean"}
        Take the word's first or last subword, or the mean of its subwords.

    Returns
    -------
    Tensor
        ``[words, d]`` in ``x``'s dtype (the mean is accumulated in float32).

    Examples
    --------
    >>> x = torch.arange(8.).reshape(4, 2)
    >>> pool_words(x, [(0, 1), (1, 3)], "mean").tolist()
    [[0.0, 1.0], [3.0, 4.0]]
    """
    if how not in WORD_POOLING:
        raise ValueError(f"word pooling must be one of {WORD_POOLING}, not {how!r}")
    if how == "first":
        return x[[s for s, _ in spans]]
    if how == "last":
        return x[[e - 1 for _, e in spans]]
    starts = torch.tensor([s for s, _ in spans])
    lengths = torch.tensor([e - s for s, e in spans])
    index = torch.repeat_interleave(torch.arange(len(spans)), lengths)
    rows = torch.cat([torch.arange(s, e) for s, e in spans]) if len(spans) else starts
    out = torch.zeros(len(spans), x.shape[-1], dtype=torch.float32, device=x.device)
    out.index_add_(0, index.to(x.device), x[rows.to(x.device)].float())
    return (out / lengths.to(x.device, torch.float32)[:, None]).to(x.dtype)


def pool_sentence(x: torch.Tensor, how: SentencePooling = "mean") -> torch.Tensor:
    """Pool ``x`` (``[tokens, d]``, no padding) into one vector.

    ``cls`` takes the first token, ``last`` the last one (the usual choice for
    decoders), ``mean`` averages every token, special tokens included (as
    sentence-transformers does).
    """
    if how not in SENTENCE_POOLING:
        raise ValueError(f"sentence pooling must be one of {SENTENCE_POOLING}, not {how!r}")
    if how == "cls":
        return x[0]
    if how == "last":
        return x[-1]
    return x.float().mean(0).to(x.dtype)
