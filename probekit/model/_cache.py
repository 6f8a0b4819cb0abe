"""In-memory activation cache returned by :meth:`HookedModel.run_with_cache`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from probekit.model._pooling import SentencePooling, WordPooling, pool_sentence, pool_words
from probekit.model._sites import Site
from probekit.model._tokenize import TokenizedBatch

__all__ = ["ActivationCache"]


class ActivationCache(Mapping):
    """Activations of a few examples, keyed by :class:`Site`.

    Values are kept per example without padding. ``cache[site]`` (a site or
    its text) gives the padded batch tensor, ``[batch, tokens, d]`` for token
    sites and ``[batch, heads, q, k]`` for attention patterns, zero at padding;
    :attr:`attention_mask` tells real tokens from padding.

    The cache knows the tokenizer of the model that made it, so
    :meth:`tokens` and :meth:`plot_attention` need nothing more.

    For data that does not fit in memory use :func:`probekit.extract`, which
    writes to disk.

    Examples
    --------
    >>> import probekit
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> cache = m.run_with_cache(["the cat sat"], ["L1.attn.pattern"])
    >>> cache.tokens()[0]
    ['[CLS]', 'the', 'cat', 'sat', '[SEP]']
    >>> fig = cache.plot_attention("L1.attn.pattern", example=0)
    """

    def __init__(self, batch: TokenizedBatch, per_example: dict[Site, list[torch.Tensor]], tokenizer=None):
        self.batch = batch
        self._data = per_example
        self.tokenizer = tokenizer

    # ------------------------------------------------------------- mapping
    def __getitem__(self, site: Site | str) -> torch.Tensor:
        return _pad(self.examples(site))

    def __iter__(self) -> Iterator[Site]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        sites = ", ".join(str(s) for s in self._data)
        return f"ActivationCache({len(self.batch)} examples; {sites})"

    # ----------------------------------------------------------- accessors
    def examples(self, site: Site | str) -> list[torch.Tensor]:
        """Unpadded per-example tensors of ``site``."""
        s = Site.parse(site)
        if s.head is not None:
            return [x[s.head] for x in self._lookup(s.without_head())]
        return self._lookup(s)

    def _lookup(self, s: Site) -> list[torch.Tensor]:
        try:
            return self._data[s]
        except KeyError:
            raise KeyError(f"site {s} is not in this cache; cached: {', '.join(map(str, self._data))}") from None

    @property
    def input_ids(self) -> torch.Tensor:
        """Padded token ids ``[batch, tokens]`` (0 at padding)."""
        return _pad([torch.tensor(ex.input_ids) for ex in self.batch.examples])

    @property
    def attention_mask(self) -> torch.Tensor:
        """``[batch, tokens]``, 1 for real tokens."""
        return _pad([torch.ones(ex.n_tokens, dtype=torch.long) for ex in self.batch.examples])

    @property
    def word_ids(self) -> list[tuple[int | None, ...]]:
        """Word of every token of every example (``None`` for special tokens)."""
        return [ex.word_ids for ex in self.batch.examples]

    def tokens(self, tokenizer=None) -> list[list[str]]:
        """Token strings of every example (with the cache's own tokenizer unless another is given)."""
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError("this cache was made without a tokenizer: pass one, tokens(tokenizer)")
        return [tokenizer.convert_ids_to_tokens(list(ex.input_ids)) for ex in self.batch.examples]

    def plot_attention(self, site: Site | str, *, example: int = 0, head: int | str = "mean", title: str | None = None):
        """One example's attention pattern as a labelled heatmap (a matplotlib Figure).

        Parameters
        ----------
        site : Site or str
            An attention-pattern site, e.g. ``"L5.attn.pattern"`` (block 5, layer 6 on the layer axis).
        example : int
        head : int or "mean"
            One head, or the mean over heads.

        Raises
        ------
        ValueError
            ``site`` is not an attention pattern, or ``example`` is out of range.
        """
        s = Site.parse(site)
        if not s.is_attention:
            raise ValueError(f"{s} is not an attention pattern site (e.g. L{s.layer or 0}.attn.pattern)")
        patterns = self.examples(s)
        if not 0 <= example < len(patterns):
            raise ValueError(f"example {example} is outside the cache's {len(patterns)} examples")
        from probekit.plots import attention_heatmap, pattern_frame  # drawing is asked for: only then

        label = "mean over heads" if head == "mean" else f"head {head}"
        return attention_heatmap(pattern_frame(patterns[example], self.tokens()[example], head=head),
                                 title=title or f"example {example}, {s} (layer {s.layer + 1}), {label}")

    def word_pooled(self, site: Site | str, how: WordPooling = "mean") -> list[torch.Tensor]:
        """``[words, d]`` per example, pooling each word's subword tokens."""
        s = _token_site(site)
        return [pool_words(x, ex.word_spans(), how, words=ex.words, example=k)
                for k, (x, ex) in enumerate(zip(self.examples(s), self.batch.examples))]

    def sentence_pooled(self, site: Site | str, how: SentencePooling = "mean") -> torch.Tensor:
        """``[batch, d]``, one vector per example."""
        s = _token_site(site)
        return torch.stack([pool_sentence(x, how) for x in self.examples(s)])


def _token_site(site: Site | str) -> Site:
    s = Site.parse(site)
    if not s.is_token_level:
        raise ValueError(f"pooling needs a token-level site, not {s} (attention patterns are [heads, q, k])")
    return s


def _pad(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Right-pad per-example tensors along every dimension that varies."""
    shape = [len(tensors)] + [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_zeros(shape)
    for i, t in enumerate(tensors):
        out[(i,) + tuple(slice(0, n) for n in t.shape)] = t
    return out
