"""Prediction agreement of two classifiers on the same texts (e.g. a model and its variant)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probekit.model import as_hooked_model
from probekit.results import Results

__all__ = ["PredictionAgreement", "prediction_agreement", "agreement_from_predictions"]


def _kappa(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Cohen's kappa of two label-code vectors (``nan`` when chance agreement is 1)."""
    n = len(a)
    po = float(np.mean(a == b))
    pe = float(np.dot(np.bincount(a, minlength=k), np.bincount(b, minlength=k))) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else float("nan")


@dataclass
class PredictionAgreement:
    """How often two classifiers agree, and where they do not.

    Attributes
    ----------
    agreement, kappa : float
        Share of examples with the same predicted label, and Cohen's kappa
        (agreement corrected for chance).
    accuracy_a, accuracy_b : float or None
        Accuracies against the gold labels (when given).
    intervals : dict
        ``metric -> (low, high)``: percentile bootstrap over examples.
    table : DataFrame
        With gold labels: counts of (A right/wrong) x (B right/wrong);
        without: the confusion of A's labels (rows) against B's (columns).
    disagreements : DataFrame
        The examples where the predictions differ: ``index, text, label,
        pred_a, pred_b, p_a, p_b`` (``p_*``: probability of the predicted
        class, when logits were given).
    names : tuple of str
    """

    agreement: float
    kappa: float
    accuracy_a: float | None
    accuracy_b: float | None
    intervals: dict
    table: pd.DataFrame
    disagreements: pd.DataFrame
    n: int
    names: tuple[str | None, str | None] = (None, None)

    def to_results(self, *, extra: dict | None = None) -> Results:
        """Tidy rows: ``agreement``, ``kappa``, ``accuracy_a``, ``accuracy_b``, ``delta_accuracy`` (B - A)."""
        base = {"model": self.names[0], "variant": self.names[1], **(extra or {})}
        rows = []
        values = {"agreement": self.agreement, "kappa": self.kappa, "accuracy_a": self.accuracy_a,
                  "accuracy_b": self.accuracy_b,
                  "delta_accuracy": None if self.accuracy_a is None else self.accuracy_b - self.accuracy_a}
        for metric, v in values.items():
            if v is None:
                continue
            lo, hi = self.intervals.get(metric, (np.nan, np.nan))
            rows.append({**base, "metric": metric, "value": float(v), "ci_low": float(lo), "ci_high": float(hi)})
        return Results(rows)

    def to_frame(self) -> pd.DataFrame:
        """:meth:`to_results` as a DataFrame."""
        return self.to_results().to_frame()


def agreement_from_predictions(pred_a, pred_b, labels=None, *, texts=None, proba_a=None, proba_b=None,
                               names: tuple = (None, None), n_boot: int = 1000, alpha: float = 0.05,
                               seed: int = 0) -> PredictionAgreement:
    """Agreement statistics of two prediction vectors on the same examples.

    Parameters
    ----------
    pred_a, pred_b : array-like
        Predicted labels of A and B, same length.
    labels : array-like, optional
        Gold labels (adds both accuracies, their difference and the
        right/wrong table).
    texts : sequence of str, optional
        Shown in :attr:`PredictionAgreement.disagreements`.
    proba_a, proba_b : array-like, optional
        Probability each model gave its predicted label.
    n_boot, alpha, seed
        Percentile bootstrap over examples (``1 - alpha`` intervals).

    Examples
    --------
    >>> ag = agreement_from_predictions([0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1], n_boot=50)
    >>> ag.agreement, round(ag.kappa, 3), ag.accuracy_a, ag.accuracy_b
    (0.75, 0.5, 0.75, 0.5)
    """
    pa, pb = np.asarray(pred_a), np.asarray(pred_b)
    if pa.ndim != 1 or pa.shape != pb.shape:
        raise ValueError(f"pred_a and pred_b must be 1-D and of the same length, got {pa.shape} and {pb.shape}")
    n = len(pa)
    if n == 0:
        raise ValueError("no predictions to compare")
    y = None if labels is None else np.asarray(labels)
    if y is not None and y.shape != pa.shape:
        raise ValueError(f"{len(y)} labels for {n} predictions")
    pool = [pa, pb] + ([y] if y is not None else [])
    classes = np.unique(np.concatenate([p.astype(str) for p in pool]))
    code = lambda v: np.searchsorted(classes, v.astype(str))
    ca, cb = code(pa), code(pb)
    cy = code(y) if y is not None else None
    k = len(classes)

    def stats(idx):
        a, b = ca[idx], cb[idx]
        out = {"agreement": float(np.mean(a == b)), "kappa": _kappa(a, b, k)}
        if cy is not None:
            out["accuracy_a"] = float(np.mean(a == cy[idx]))
            out["accuracy_b"] = float(np.mean(b == cy[idx]))
            out["delta_accuracy"] = out["accuracy_b"] - out["accuracy_a"]
        return out

    point = stats(np.arange(n))
    rng = np.random.default_rng(seed)
    boot = pd.DataFrame([stats(rng.integers(0, n, n)) for _ in range(n_boot)])
    with warnings.catch_warnings():  # kappa is undefined (NaN) on replicates where one side predicts one class
        warnings.simplefilter("ignore", RuntimeWarning)
        intervals = {m: tuple(float(q) for q in np.nanquantile(boot[m], [alpha / 2, 1 - alpha / 2])) for m in boot}
    if y is not None:
        ra, rb = pa.astype(str) == y.astype(str), pb.astype(str) == y.astype(str)
        table = pd.DataFrame([[int(np.sum(ra & rb)), int(np.sum(ra & ~rb))],
                              [int(np.sum(~ra & rb)), int(np.sum(~ra & ~rb))]],
                             index=pd.Index(["A right", "A wrong"]), columns=pd.Index(["B right", "B wrong"]))
    else:
        table = pd.crosstab(pd.Series(pa, name="A"), pd.Series(pb, name="B"))
    diff = np.flatnonzero(ca != cb)
    dis = pd.DataFrame({"index": diff})
    if texts is not None:
        texts = list(texts)
        if len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} predictions")
        dis["text"] = [texts[i] for i in diff]
    if y is not None:
        dis["label"] = y[diff]
    dis["pred_a"], dis["pred_b"] = pa[diff], pb[diff]
    for name, p in (("p_a", proba_a), ("p_b", proba_b)):
        if p is not None:
            dis[name] = np.asarray(p, dtype=np.float64)[diff]
    return PredictionAgreement(point["agreement"], point["kappa"], point.get("accuracy_a"), point.get("accuracy_b"),
                               intervals, table, dis, n, tuple(names))


def prediction_agreement(model_a, model_b, texts, labels=None, *, batch_size: int = 64, max_length: int = 128,
                         n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> PredictionAgreement:
    """Run two sequence classifiers over ``texts`` and compare their predictions.

    Parameters
    ----------
    model_a, model_b : HookedModel or ModelVariant
        Sequence classifiers with the same label set (e.g. a fine-tuned
        model and its pruned, quantized or distilled variant).
    texts : sequence of str
    labels : sequence of int, optional
        Gold labels.
    batch_size, max_length
        As in :func:`probekit.variants.predict_logits`.

    Returns
    -------
    PredictionAgreement

    Examples
    --------
    A classifier against its dynamically quantized copy:

    >>> import probekit, transformers
    >>> from probekit.variants import quantize
    >>> model = probekit.load_model(probekit.model.tiny_config(),
    ...                             head="sequence-classification", num_labels=2, seed=0)
    >>> texts, labels = ["a fine film", "a dull film", "great fun", "long and boring"], [1, 0, 1, 0]
    >>> ag = prediction_agreement(model, quantize(model, method="dynamic-int8"), texts, labels, n_boot=100)
    >>> 0.0 <= ag.agreement <= 1.0, list(ag.disagreements.columns)
    (True, ['index', 'text', 'label', 'pred_a', 'pred_b', 'p_a', 'p_b'])
    """
    models = [as_hooked_model(m) for m in (model_a, model_b)]
    for which, m in zip("ab", models):
        if not type(getattr(m, "model", None)).__name__.endswith("ForSequenceClassification"):
            raise TypeError(f"model_{which} is not a sequence classifier ({type(getattr(m, 'model', m)).__name__}); "
                            "prediction agreement needs two classifiers")
    na, nb = (int(m.model.config.num_labels) for m in models)
    if na != nb:
        raise ValueError(f"the classifiers have different label sets: {na} vs {nb} labels")
    from probekit.variants import predict_logits  # probekit.variants imports transformers: only here

    texts = [str(t) for t in texts]
    probs = [predict_logits(m, texts, batch_size=batch_size, max_length=max_length).softmax(-1).numpy()
             for m in models]
    preds = [p.argmax(-1) for p in probs]
    return agreement_from_predictions(
        preds[0], preds[1], None if labels is None else np.asarray(labels).astype(int), texts=texts,
        proba_a=probs[0].max(-1), proba_b=probs[1].max(-1), names=(models[0].name, models[1].name),
        n_boot=n_boot, alpha=alpha, seed=seed)
