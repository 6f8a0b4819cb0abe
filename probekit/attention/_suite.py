"""AttentionSuite: dataset-level attention analysis read from an activation store.

The suite never needs the model: it reads ``L{i}.attn.pattern`` sites of a
store one example at a time (memory-mapped), plus the stored token ids and
word alignment. Its rows carry ``site = "L{i}.attn.pattern"``, ``block = i``,
``head`` and ``layer = i + 1`` (the one layer axis of every results table:
the pattern of block ``i`` produces layer ``i + 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from probekit.attention._flow import attention_flow, attention_rollout
from probekit.attention._stats import HeadStatistics, punctuation_mask, word_attention
from probekit.attention._syntax import DependencyHeadAccuracy, fixed_offset_baseline
from probekit.model import Site
from probekit.results import Results, site_columns
from probekit.validation import Boolean, Interval, ListOf, declare, validate_params

__all__ = ["AttentionSuite", "MASS_METRICS", "special_mass"]


_EXAMPLE = Interval(Integral, 0, None, closed="left")


class AttentionSuite:
    """Head statistics, heads as parsers, rollout and flow over a store.

    Parameters
    ----------
    store : ActivationStore
        Extracted with ``L{i}.attn.pattern`` sites.
    tokenizer : tokenizer
        The model's tokenizer (for [CLS]/[SEP] ids and punctuation); e.g.
        ``probekit.load_tokenizer("minilm-l6")``.
    blocks : sequence of int, optional
        Blocks whose patterns to analyse (``i`` for ``L{i}.attn.pattern``;
        default: every stored pattern).

    Examples
    --------
    .. code-block:: python

        store = probekit.extract(model, texts, [f"L{i}.attn.pattern" for i in range(6)], "runs/attn")
        suite = AttentionSuite(store, model.tokenizer)
        suite.head_statistics().to_frame().query("metric == 'sep'")
    """

    #: What each setting accepts (checked when given).
    _parameter_constraints = {
        "blocks": [ListOf(Interval(Integral, 0, None, closed="left"), min_len=1), None],
    }

    def __init__(self, store, tokenizer, *, blocks: Sequence[int] | None = None):
        validate_params(AttentionSuite, {"blocks": blocks})
        for attr in ("sites", "manifest", "n_examples"):
            if not hasattr(store, attr):
                raise TypeError(f"store must be an ActivationStore (probekit.ActivationStore.open(path)), not "
                                f"{type(store).__name__}")
        for attr in ("cls_token_id", "sep_token_id", "convert_ids_to_tokens"):
            if not hasattr(tokenizer, attr):
                raise TypeError(f"tokenizer must be a Hugging Face tokenizer (e.g. model.tokenizer), not "
                                f"{type(tokenizer).__name__}")
        stored = sorted(s.layer for s in store.sites if s.is_attention)
        if not stored:
            raise ValueError("this store holds no attention patterns; extract with sites like 'L0.attn.pattern'")
        if blocks is not None:
            missing = sorted(set(blocks) - set(stored))
            if missing:
                raise ValueError(f"blocks {missing} have no stored attention pattern (L{{i}}.attn.pattern); "
                                 f"stored blocks: {stored}")
        self.store = store
        self.tokenizer = tokenizer
        self.blocks = list(blocks) if blocks is not None else stored
        self.model_name = store.manifest.get("model", {}).get("name")

    def _row(self, **kw) -> dict:
        return {"model": self.model_name, **kw}

    def _tokens(self, i: int) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(self.store.input_ids(i).tolist())

    @declare({"progress": [Boolean()]})
    def head_statistics(self, *, progress: bool = True) -> Results:
        """Entropy and mass on [CLS]/[SEP]/punctuation/self/previous/next, attended distance, per head.

        A tokenizer without a [CLS] token (a decoder's) has its ``cls`` mass measured on each
        example's first token, where a decoder's heads park attention (the attention sink); without
        a [SEP] token, ``sep`` is 0.
        """
        validate_params(AttentionSuite.head_statistics, locals())
        acc = HeadStatistics()
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        for i in tqdm(range(self.store.n_examples), desc="head statistics", unit="ex", disable=not progress):
            ids = torch.as_tensor(self.store.input_ids(i).astype(np.int64))
            punct = punctuation_mask(self._tokens(i))
            cls = ids == cls_id if cls_id is not None else torch.arange(len(ids)) == 0
            sep = ids == sep_id if sep_id is not None else torch.zeros(len(ids), dtype=torch.bool)
            for block in self.blocks:
                p = torch.from_numpy(np.asarray(self.store[Site(block, "attn.pattern")].example(i), np.float32))
                acc.update(block, p, cls=cls, sep=sep, punct=punct)
        df = acc.to_frame()
        return Results(self._row(**site_columns(Site(int(r.block), "attn.pattern", int(r.head))),
                                 metric=r.metric, value=r.value) for r in df.itertuples())

    def run(self, *, progress: bool = True) -> Results:
        """The suite's results: every head statistic (:meth:`head_statistics`), as every suite's ``run`` gives."""
        return self.head_statistics(progress=progress)

    def special_mass_by_layer(self, stats: Results | None = None) -> pd.DataFrame:
        """:func:`special_mass` of :meth:`head_statistics` (or of ``stats``, when already computed)."""
        return special_mass(stats if stats is not None else self.head_statistics())

    def dependency_heads(self, heads: Sequence[Sequence[int]], relations: Sequence[Sequence[str]], *,
                         progress: bool = True) -> tuple[Results, pd.DataFrame, pd.DataFrame]:
        """Each head as a parser, against gold (or silver) trees of the stored examples.

        Parameters
        ----------
        heads, relations : per example, UD heads (1-based, 0 = root) and relation labels
            One entry per stored word.

        Returns
        -------
        results : Results
            ``metric="head_accuracy"``, ``task="dep:<relation>:<direction>"`` per (block, head).
        best : DataFrame
            Best head per relation with the fixed-offset baseline beside it.
        baseline : DataFrame
            The fixed-offset baseline per relation.
        """
        if len(heads) != self.store.n_examples or len(relations) != self.store.n_examples:
            raise ValueError(f"the store has {self.store.n_examples} examples; got {len(heads)} head lists "
                             f"and {len(relations)} relation lists")
        acc = DependencyHeadAccuracy()
        for i in tqdm(range(self.store.n_examples), desc="heads as parsers", unit="ex", disable=not progress):
            spans = self.store.word_spans(i)
            if len(spans) != len(heads[i]):
                raise ValueError(f"example {i}: {len(spans)} stored words but {len(heads[i])} heads")
            for block in self.blocks:
                p = torch.from_numpy(np.asarray(self.store[Site(block, "attn.pattern")].example(i), np.float32))
                acc.update(block, word_attention(p, spans), heads=heads[i], relations=relations[i])
        table = acc.to_frame()
        results = Results(self._row(task=f"dep:{r.relation}:{r.direction}",
                                    **site_columns(Site(int(r.block), "attn.pattern", int(r.head))),
                                    metric="head_accuracy", value=r.accuracy)
                          for r in table.itertuples())
        baseline = fixed_offset_baseline(list(zip(heads, relations)))
        best = acc.best_heads().merge(baseline.rename(columns={"accuracy": "baseline_accuracy",
                                                               "offset": "baseline_offset", "n": "n_baseline"}),
                                      on="relation", how="left")
        return results, best, baseline

    @declare({"i": [_EXAMPLE]})
    def rollout(self, i: int) -> np.ndarray:
        """Attention rollout of example ``i`` after each block: ``[blocks, T, T]`` (entry k: through layer k + 1)."""
        validate_params(AttentionSuite.rollout, locals())
        return attention_rollout(self._patterns(i))

    @declare({"i": [_EXAMPLE], "output": [Interval(Integral, 0, None, closed="left")],
              "max_tokens": [Interval(Integral, 1, None, closed="left")]})
    def flow(self, i: int, *, output: int = 0, max_tokens: int = 64) -> np.ndarray:
        """Attention flow into token ``output`` of example ``i`` after each block: ``[blocks, T]``."""
        validate_params(AttentionSuite.flow, locals())
        return attention_flow(self._patterns(i), output=output, max_tokens=max_tokens)

    def _patterns(self, i: int) -> list[torch.Tensor]:
        if i >= self.store.n_examples:
            raise ValueError(f"example {i} is out of range: the store holds examples 0-{self.store.n_examples - 1}")
        if self.blocks != list(range(len(self.blocks))):
            raise ValueError(f"rollout and flow need every block's pattern from block 0; analysed blocks are "
                             f"{self.blocks}")
        return [torch.from_numpy(np.asarray(self.store[Site(block, "attn.pattern")].example(i), np.float32))
                for block in self.blocks]


#: The head statistics averaged per layer by :func:`special_mass`, in column order.
MASS_METRICS = ("cls", "sep", "punct", "self", "prev", "next", "entropy")


def special_mass(stats: Results | pd.DataFrame) -> pd.DataFrame:
    """Mean over heads, per layer, of the attention on [CLS], [SEP], punctuation, self, previous and next token,
    and of the entropy (Clark et al. 2019, figure 2).

    One row per analysed pattern: ``layer`` on the layer axis (block ``i``'s pattern is layer ``i + 1``),
    ``block``, then the columns of :data:`MASS_METRICS` that ``stats`` has. The ``probekit attention``
    command and the pipeline's attention stage both write this table as ``special_mass``.

    Examples
    --------
    >>> rows = pd.DataFrame({"layer": [1, 1, 2], "block": [0, 0, 1], "head": [0, 1, 0],
    ...                      "metric": ["sep", "sep", "sep"], "value": [0.2, 0.4, 0.9]})
    >>> special_mass(rows).round(3).values.tolist()
    [[1.0, 0.0, 0.3], [2.0, 1.0, 0.9]]
    """
    df = stats.to_frame() if isinstance(stats, Results) else stats
    df = df[df["metric"].isin(MASS_METRICS)]
    out = df.pivot_table(index=["layer", "block"], columns="metric", values="value", aggfunc="mean").reset_index()
    out.columns.name = None
    return out[["layer", "block"] + [c for c in MASS_METRICS if c in out.columns]]
