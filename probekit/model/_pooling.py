"""Word and sentence pooling of token-level activations.

One implementation pools any number of examples at once: a :class:`PoolPlan`
says which rows of a flat ``[rows, d]`` tensor belong to which word and to
which example, and :func:`pool_words_many` / :func:`pool_sentences_many` turn
them into word and sentence vectors with a handful of tensor operations
(one ``index_add_`` per call, however many examples). :func:`pool_words` and
:func:`pool_sentence` are the one-example case of the same code, so an
activation store's rows are the same bytes whether they were pooled during a
forward pass (a whole batch at a time), derived from a store's token rows (a
shard at a time) or pooled one example at a time by a reader.

Means are accumulated in float32: each word's (or example's) rows are summed
in token order, then divided by the count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from probekit.model._chat import CHAT_POOLING

__all__ = ["pool_words", "pool_sentence", "pool_words_many", "pool_sentences_many", "PoolPlan", "check_word_spans",
           "WORD_POOLING", "SENTENCE_POOLING", "POOLING_VERSION"]

WordPooling = Literal["first", "last", "mean"]
SentencePooling = Literal["cls", "mean", "last"]
WORD_POOLING: tuple[str, ...] = ("first", "last", "mean")
SENTENCE_POOLING: tuple[str, ...] = ("cls", "mean", "last", *CHAT_POOLING)
#: Changes whenever pooled bytes may change; part of the fingerprint of every store holding pooled rows.
#: 2: sentence means are summed in token order then divided (as word means always were), batched.
#: 3: a batch holding attention patterns is pooled at its real padded width (word and sentence rows beside
#: ``attn.pattern`` sites could be pooled from the wrong rows before).
POOLING_VERSION = 3


@dataclass(frozen=True)
class PoolPlan:
    """Where the tokens of several examples sit in a flat ``[rows, d]`` tensor, and their words.

    Build it with :meth:`build`. ``token_rows`` lists, example after example,
    the flat row of every token; ``word_rows``/``word_index`` the rows of
    every word's tokens and the (global) word each belongs to.
    """

    #: flat row of the first token and token count of each example
    starts: torch.Tensor
    lengths: torch.Tensor
    #: flat rows of every token, example after example, and the example each belongs to
    token_rows: torch.Tensor
    token_index: torch.Tensor
    #: flat rows of every word token, and the word (0..n_words-1) each belongs to
    word_rows: torch.Tensor
    word_index: torch.Tensor
    #: token count, first and last flat row of every word
    word_lengths: torch.Tensor
    word_first: torch.Tensor
    word_last: torch.Tensor
    #: words of each example, in order
    n_words: tuple[int, ...]
    #: chat poolings: for each selection (a role or ``"mark"``), the flat rows it selects and the example of each
    selected: Mapping[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def build(cls, starts: Sequence[int], lengths: Sequence[int],
              spans: Sequence[Sequence[tuple[int, int]]] | None = None,
              selections: Mapping[str, Sequence[Sequence[int]]] | None = None) -> PoolPlan:
        """A plan for examples whose tokens are rows ``starts[e] .. starts[e] + lengths[e]``.

        Parameters
        ----------
        starts, lengths : sequence of int
            Flat row of each example's first token, and its token count.
        spans : sequence of sequence of (start, stop), optional
            Token span of each word of each example, relative to the
            example's first token (as :meth:`Example.word_spans` gives them).
            Needed for word pooling only.
        selections : mapping of str to sequence of sequence of int, optional
            For chat poolings: the token positions (relative to the
            example's first token) each selection picks in each example
            (:meth:`Example.selection`).

        Raises
        ------
        ValueError
            A word has no tokens, or a span leaves its example.

        Examples
        --------
        >>> plan = PoolPlan.build([0, 10], [3, 2], [[(1, 2)], [(0, 1), (1, 2)]])
        >>> plan.word_rows.tolist(), plan.word_index.tolist()
        ([1, 10, 11], [0, 1, 2])
        """
        starts_t = torch.as_tensor(list(starts), dtype=torch.long)
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        tok_index, tok_rows = _runs(starts_t, lengths_t)
        selected = {name: _selected(name, starts, lengths, picks) for name, picks in (selections or {}).items()}
        if spans is None:
            empty = torch.zeros(0, dtype=torch.long)
            return cls(starts_t, lengths_t, tok_rows, tok_index, empty, empty, empty, empty, empty, (), selected)
        firsts: list[int] = []
        counts: list[int] = []
        n_words: list[int] = []
        for e, (s0, n, ex_spans) in enumerate(zip(starts, lengths, spans)):
            n_words.append(len(ex_spans))
            for w, (a, b) in enumerate(ex_spans):
                if not 0 <= a < b <= n:
                    raise ValueError(f"example {e}, word {w}: token span [{a}, {b}) is empty or outside the "
                                     f"example's {n} tokens, so the word has no vector")
                firsts.append(s0 + a)
                counts.append(b - a)
        first = torch.as_tensor(firsts, dtype=torch.long)
        wlen = torch.as_tensor(counts, dtype=torch.long)
        index, rows = _runs(first, wlen)
        return cls(starts_t, lengths_t, tok_rows, tok_index, rows, index, wlen, first, first + wlen - 1,
                   tuple(n_words), selected)

    @property
    def total_words(self) -> int:
        return int(self.word_lengths.numel())


def _selected(name: str, starts: Sequence[int], lengths: Sequence[int],
              picks: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    rows: list[int] = []
    index: list[int] = []
    for e, (s0, n, pos) in enumerate(zip(starts, lengths, picks)):
        if not pos:
            what = "marked part" if name == "mark" else f"{name!r} turn with content"
            raise ValueError(f"example {e} has no {what}, so it has no '{name}' pooled row")
        if not all(0 <= p < n for p in pos):
            raise ValueError(f"example {e}: a '{name}' position lies outside the example's {n} tokens")
        rows.extend(s0 + p for p in pos)
        index.extend([e] * len(pos))
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(index, dtype=torch.long)


def _runs(starts: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For runs of rows ``starts[i] .. starts[i] + lengths[i]``: the run of every row, and the row itself."""
    index = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    offset_in_run = torch.arange(len(index)) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return index, starts[index] + offset_in_run


def pool_words_many(x: torch.Tensor, plan: PoolPlan, how: WordPooling = "mean", *,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Word vectors of every example of ``plan``: ``[total words, d]``.

    ``x`` is the flat ``[rows, d]`` tensor the plan indexes (e.g. a padded
    batch ``[batch, tokens, d]`` reshaped to ``[batch * tokens, d]``). The
    result is in ``dtype`` (default: ``x``'s), cast once from the float32
    mean, or from the selected rows.

    Examples
    --------
    >>> x = torch.arange(8.).reshape(4, 2)
    >>> plan = PoolPlan.build([0], [4], [[(0, 1), (1, 3)]])
    >>> pool_words_many(x, plan, "mean").tolist()
    [[0.0, 1.0], [3.0, 4.0]]
    """
    if how not in WORD_POOLING:
        raise ValueError(f"word pooling must be one of {WORD_POOLING}, not {how!r}")
    picks = {"first": lambda: plan.word_first, "last": lambda: plan.word_last}
    return _pool(x, how, picks, plan.word_rows, plan.word_index, plan.word_lengths, dtype or x.dtype)


def pool_sentences_many(x: torch.Tensor, plan: PoolPlan, how: SentencePooling = "mean", *,
                        dtype: torch.dtype | None = None) -> torch.Tensor:
    """One vector per example of ``plan``: ``[examples, d]`` in ``dtype`` (default: ``x``'s).

    ``cls`` takes each example's first token, ``last`` its last one (the usual
    choice for decoders), ``mean`` averages every token, special tokens
    included (as sentence-transformers does). For conversations,
    ``last.<role>`` / ``mean.<role>`` take the last content token of the
    role's turns or average their content tokens, and ``last.mark`` /
    ``mean.mark`` do the same over the marked part (the plan's ``selected``).
    """
    if how not in SENTENCE_POOLING:
        raise ValueError(f"sentence pooling must be one of {SENTENCE_POOLING}, not {how!r}")
    if how in CHAT_POOLING:
        dev, dtype = x.device, dtype or x.dtype
        kind, name = how.split(".", 1)
        if name not in plan.selected:
            raise ValueError(f"sentence pooling {how!r} needs the plan's {name!r} selection (conversations only)")
        rows, index = (t.to(dev) for t in plan.selected[name])
        n = len(plan.lengths)
        if kind == "last":
            last = torch.full((n,), -1, dtype=torch.long, device=dev).scatter_reduce(0, index, rows, "amax")
            return x[last].to(dtype)
        out = torch.zeros(n, x.shape[-1], dtype=torch.float32, device=dev)
        out.index_add_(0, index, x[rows].float())
        counts = torch.bincount(index, minlength=n).to(torch.float32)
        return (out / counts[:, None]).to(dtype)
    picks = {"cls": lambda: plan.starts, "last": lambda: plan.starts + plan.lengths - 1}
    return _pool(x, how, picks, plan.token_rows, plan.token_index, plan.lengths, dtype or x.dtype)


def _pool(x: torch.Tensor, how: str, picks: dict, rows: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
          dtype: torch.dtype) -> torch.Tensor:
    """One row per segment in ``dtype``: the row ``picks[how]()`` names, or else the mean of the rows ``x[rows]``
    of each segment of ``index`` (``lengths`` rows each), summed in float32."""
    dev = x.device
    if how in picks:
        return x[picks[how]().to(dev)].to(dtype)
    n = len(lengths)
    rows, index = rows.to(dev), index.to(dev)
    if x.dtype == torch.float32 and 2 * len(rows) > x.shape[0]:
        # most rows are pooled: sum straight from x, the others (padding, rows of no segment) into a spare row,
        # rather than gathering a copy first; the same additions in the same order, so the same bits. Only
        # while every row belongs to one segment (a row in two would be counted once)
        full = torch.full((x.shape[0],), n, dtype=torch.long, device=dev)
        full[rows] = index
        if bool((full[rows] == index).all()):
            out = torch.zeros(n + 1, x.shape[-1], dtype=torch.float32, device=dev)
            return (out.index_add_(0, full, x)[:n] / lengths.to(dev, torch.float32)[:, None]).to(dtype)
    out = torch.zeros(n, x.shape[-1], dtype=torch.float32, device=dev)
    out.index_add_(0, index, x[rows].float())
    return (out / lengths.to(dev, torch.float32)[:, None]).to(dtype)


def check_word_spans(spans: Sequence[tuple[int, int]], words: Sequence[str] | None = None, *,
                     example: int | None = None) -> None:
    """Refuse word rows for a text with a word that produced no tokens, naming the example and the word.

    A word made only of characters the tokenizer drops (control characters
    such as ``'\x97'``, private-use symbols) has no token, so it can have no
    word row (and the word rows would no longer line up with the words). Its
    text's token and sentence rows are well defined and are not refused.

    Examples
    --------
    >>> check_word_spans([(1, 2), (-1, -1)], ["film", "\x97"], example=3)
    Traceback (most recent call last):
    ...
    ValueError: example 3: word 1 ('\x97') produced no tokens with this tokenizer ...
    """
    empty = [j for j, (a, b) in enumerate(spans) if b <= a]
    if not empty:
        return
    j = empty[0]
    word = f" ({words[j]!r})" if words is not None and j < len(words) else ""
    where = f"example {example}: " if example is not None else ""
    more = f" (and {len(empty) - 1} more in this example)" if len(empty) > 1 else ""
    raise ValueError(
        f"{where}word {j}{word} produced no tokens with this tokenizer (it drops characters such as control "
        f"characters){more}, so it has no word row; token and sentence rows of this text are fine. Remove or "
        "replace the character (probekit.data.load_movie_reviews repairs the corpus's), or keep no word rows")


def pool_words(x: torch.Tensor, spans: Sequence[tuple[int, int]], how: WordPooling = "mean", *,
               words: Sequence[str] | None = None, example: int | None = None) -> torch.Tensor:
    """Pool ``x`` (``[tokens, d]``, one example) over each word's token span.

    Parameters
    ----------
    x : Tensor
        Token-level activations of one example.
    spans : sequence of (start, stop)
        Token span of every word (from :meth:`Example.word_spans`).
    how : {"first", "last", "mean"}
        Take the word's first or last subword, or the mean of its subwords.
    words, example : optional
        Named in the error for a word with no tokens (see :func:`check_word_spans`).

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
    check_word_spans(spans, words, example=example)
    return pool_words_many(x, PoolPlan.build([0], [x.shape[0]], [spans]), how)


def pool_sentence(x: torch.Tensor, how: SentencePooling = "mean") -> torch.Tensor:
    """Pool ``x`` (``[tokens, d]``, no padding) into one vector (see :func:`pool_sentences_many`)."""
    if how not in SENTENCE_POOLING:
        raise ValueError(f"sentence pooling must be one of {SENTENCE_POOLING}, not {how!r}")
    return pool_sentences_many(x, PoolPlan.build([0], [x.shape[0]]), how)[0]
