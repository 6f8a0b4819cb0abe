"""Attribution scores and method agreement as tidy :class:`probekit.Results` rows.

Per-token scores (one row per token and method)::

    task     = the task name (default "attribution")
    example  = the example number
    position = the token's position in the example
    token    = the token
    site     = where the scores land ("emb", "L2.resid", "L5.attn.pattern")
    layer    = that site on the layer axis ("emb" 0, block i: i + 1)
    block    = the block, for a block's internals ("L5.attn.pattern": 5)
    metric   = the method name ("integrated_gradients", "blank_out", ...)
    value    = the token's score

Per-example summaries have ``example`` but no ``position``/``token``, and
metrics ``"<method>:f_input"``, ``"<method>:target"``, and where the method
has them ``"<method>:completeness_error"`` and ``"<method>:delta"``.
:func:`token_frame` selects the token rows as columns ``example, position,
token, method, site, value``.

Agreement between score sources (see :func:`~probekit.attribution.agreement`)
becomes ``metric = "spearman:<a>~<b>"``, ``value`` the mean over examples,
``ci_low``/``ci_high`` a percentile bootstrap interval over examples, one row
per pair (and per layer when the agreement table has a ``layer`` column).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probekit.results import Results, site_columns

__all__ = ["Attribution", "attribution_results", "agreement_results", "token_frame", "mean_ci"]

logger = logging.getLogger(__name__)


@dataclass
class Attribution:
    """Attribution of one example.

    ``scores`` are per token (raw sums over the hidden dimension);
    ``delta`` is captum's convergence delta where the method has one,
    ``f_input - f_baseline`` the quantity completeness compares it to;
    ``site`` is where the scores land (``"emb"`` for the input-token methods);
    ``n_blocks`` the model's number of blocks (the layer axis needs it for
    ``final``).
    """

    method: str
    tokens: list[str]
    scores: np.ndarray
    target: int
    f_input: float
    f_baseline: float | None = None
    delta: float | None = None
    extra: dict = field(default_factory=dict)
    site: str | None = None
    n_blocks: int | None = None

    def to_results(self, *, example: int = 0, task: str = "attribution", model: str | None = None,
                   variant: str | None = None, split: str | None = None) -> Results:
        """Tidy rows: one per token (``metric`` = the method) plus this example's summary.

        See :func:`probekit.attribution.attribution_results` for the row layout;
        ``example`` is the row's ``example`` number.
        """
        return attribution_results([self], task=task, model=model, variant=variant, split=split, examples=[example])

    @property
    def normalised(self) -> np.ndarray:
        n = np.linalg.norm(self.scores)
        return self.scores / n if n > 0 else self.scores

    @property
    def completeness_error(self) -> float | None:
        """``|sum(scores) - (f(x) - f(baseline))| / |f(x) - f(baseline)|`` (methods with completeness)."""
        if self.f_baseline is None:
            return None
        gap = self.f_input - self.f_baseline
        return float(abs(self.scores.sum() - gap) / max(abs(gap), 1e-12))


def mean_ci(values, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs dropped) with a percentile bootstrap interval over them.

    Parameters
    ----------
    values : array-like of float
    n_boot : int
        Bootstrap replicates.
    alpha : float
        1 - coverage of the interval.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (mean, low, high) : tuple of float
        All NaN when no finite value is left; ``low == high == mean`` for one value.

    Examples
    --------
    >>> m, lo, hi = mean_ci([0.1, 0.2, 0.3, 0.4, 0.5], seed=0)
    >>> round(m, 2), lo < m < hi
    (0.3, True)
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(low), float(high)


def _context(model, variant, split) -> dict:
    return {"model": model, "variant": variant, "split": split}


def attribution_results(attributions, *, task: str = "attribution", model: str | None = None,
                        variant: str | None = None, split: str | None = None,
                        examples: Sequence[int] | None = None) -> Results:
    """Tidy rows of attributions: one per token and method, plus per-example summaries.

    Parameters
    ----------
    attributions : Attribution, list of Attribution, or mapping method -> list of Attribution
        A list holds one attribution per example (in order); a mapping holds
        one such list per method, all over the same examples.
    task : str
        The ``task`` column of every row.
    model, variant, split : str, optional
        Context columns copied to every row.
    examples : list of int, optional
        Example numbers to use instead of ``0, 1, ...`` (e.g. indices into a
        test set).

    Returns
    -------
    Results

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.attribution import Attribution
    >>> a = Attribution("saliency", ["[CLS]", "fine", "[SEP]"], np.array([0.0, 0.5, 0.0]), 1, 0.9, site="emb")
    >>> df = attribution_results([a], model="m").to_frame()
    >>> df[df.metric == "saliency"][["example", "position", "token", "site", "layer", "value"]].values.tolist()[1]
    [0, 1, 'fine', 'emb', 0, 0.5]
    """
    if isinstance(attributions, Attribution):
        attributions = [attributions]
    by_method = dict(attributions) if isinstance(attributions, Mapping) else {None: list(attributions)}
    counts = {len(v) for v in by_method.values()}
    if len(counts) > 1:
        raise ValueError(f"every method needs one attribution per example; got counts {sorted(counts)}")
    n = next(iter(counts), 0)
    if examples is not None and len(examples) != n:
        raise ValueError(f"examples has {len(examples)} numbers for {n} attributions")
    ctx = _context(model, variant, split)
    rows: list[dict] = []
    for key, atts in by_method.items():
        for i, a in enumerate(atts):
            if not isinstance(a, Attribution):
                raise TypeError(f"expected Attribution objects, got {type(a).__name__} at position {i}")
            if key is not None and a.method != key:
                raise ValueError(f"attribution {i} under {key!r} was made by method {a.method!r}")
            if len(a.tokens) != len(a.scores):
                raise ValueError(f"attribution {i} ({a.method}) has {len(a.tokens)} tokens but "
                                 f"{len(a.scores)} scores")
            ex = i if examples is None else int(examples[i])
            base = {**ctx, "task": task, **site_columns(a.site or "emb", a.n_blocks), "example": ex}
            for pos, (tok, s) in enumerate(zip(a.tokens, np.asarray(a.scores, float))):
                rows.append({**base, "position": pos, "token": str(tok), "metric": a.method, "value": float(s)})
            summary = {"f_input": a.f_input, "target": float(a.target), "completeness_error": a.completeness_error,
                       "delta": a.delta}
            for name, v in summary.items():
                if v is not None:
                    rows.append({**base, "metric": f"{a.method}:{name}", "value": float(v)})
    return Results(rows)


def token_frame(results: Results | pd.DataFrame) -> pd.DataFrame:
    """The per-token rows of :func:`attribution_results` with ``example, position, token`` as columns.

    Returns
    -------
    DataFrame
        ``example, position, token, method, site, value`` (plus ``model``,
        ``variant``, ``split``), one row per token and method.
    """
    df = results.to_frame() if isinstance(results, Results) else results
    missing = {"example", "position", "token", "metric", "site", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"these results lack the attribution columns {sorted(missing)}")
    keep = df["position"].notna()
    if not keep.any():
        raise ValueError("no per-token rows (rows with a position) in these results")
    out = pd.DataFrame({"example": df.loc[keep, "example"].astype(int),
                        "position": df.loc[keep, "position"].astype(int),
                        "token": df.loc[keep, "token"].astype(str), "method": df.loc[keep, "metric"],
                        "site": df.loc[keep, "site"], "value": df.loc[keep, "value"].astype(float)})
    for col in ("model", "variant", "split"):
        out[col] = df.loc[keep, col] if col in df.columns else None
    return out.reset_index(drop=True)


def agreement_results(table: pd.DataFrame, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                      per_example: bool = False, task: str = "attribution", model: str | None = None,
                      variant: str | None = None, split: str | None = None) -> Results:
    """Mean Spearman agreement per pair of sources, with a bootstrap CI over examples.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`~probekit.attribution.agreement` (``example, a, b,
        spearman``), optionally with a ``layer`` column on the layer axis
        (several tables, one per layer, concatenated; e.g. attention of block
        ``i`` or rollout through it is layer ``i + 1``): then one row per layer
        and pair.
    n_boot, alpha, seed
        Percentile bootstrap over examples (see :func:`mean_ci`). Examples
        whose correlation is undefined (NaN: constant scores, fewer than 3
        tokens) are left out and logged.
    per_example : bool
        Also write each example's correlation (a row with ``example`` set).
    task, model, variant, split
        Context columns.

    Returns
    -------
    Results
        ``metric = "spearman:<a>~<b>"``.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.attribution import agreement
    >>> x = [np.array([1.0, 2, 3, 4]), np.array([2.0, 1, 4, 3])]
    >>> r = agreement_results(agreement({"a": x, "b": [v + 1 for v in x]})).to_frame()
    >>> r[["metric", "value"]].values.tolist()
    [['spearman:a~b', 1.0]]
    """
    missing = {"example", "a", "b", "spearman"} - set(table.columns)
    if missing:
        raise ValueError(f"agreement table lacks columns {sorted(missing)}; pass the output of agreement()")
    ctx = _context(model, variant, split)
    has_layer = "layer" in table.columns
    keys = (["layer"] if has_layer else []) + ["a", "b"]
    rows: list[dict] = []
    for key, grp in table.groupby(keys, sort=True, dropna=False):
        layer, a, b = key if has_layer else (None, *key)
        layer = None if layer is None or pd.isna(layer) else int(layer)
        if layer is not None and layer < 0:
            raise ValueError(f"agreement table layer {layer} is not on the layer axis (emb is 0, block i is i + 1)")
        rho = grp["spearman"].to_numpy(float)
        n_nan = int((~np.isfinite(rho)).sum())
        if n_nan:
            logger.info("spearman %s~%s%s: %d of %d examples undefined, left out", a, b,
                        "" if layer is None else f" (layer {layer})", n_nan, len(rho))
        mean, low, high = mean_ci(rho, n_boot=n_boot, alpha=alpha, seed=seed)
        metric = f"spearman:{a}~{b}"
        rows.append({**ctx, "task": task, "layer": layer, "seed": seed, "metric": metric, "value": mean,
                     "ci_low": low, "ci_high": high})
        if per_example:
            rows += [{**ctx, "task": task, "layer": layer, "example": int(e), "metric": metric, "value": float(v)}
                     for e, v in zip(grp["example"], rho)]
    return Results(rows)
