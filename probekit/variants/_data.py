"""Training data for variants: one simple input contract, and the fixed Rotten Tomatoes split.

Every function that trains takes ``data`` as any of:

- a pair ``(texts, labels)`` of equal-length lists;
- a pandas DataFrame with columns ``text`` and ``label``;
- a ``datasets.Dataset`` with columns ``text`` and ``label``;
- a :class:`probekit.data.ProbingDataset` (sentence level; string labels
  become indices of ``label_names``).

For token classification, ``text`` holds word lists and ``label`` one label
id per word. A missing label (``None``, NaN, an empty cell) is an error naming
the example (and word).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.data import load_movie_reviews
from probekit.labels import check_labels

__all__ = ["as_frame", "rotten_tomatoes_splits", "encode"]


def as_frame(data) -> pd.DataFrame:
    """Normalise any accepted data form to a DataFrame with ``text`` and ``label``."""
    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, tuple) and len(data) == 2:
        texts, labels = data
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        df = pd.DataFrame({"text": list(texts), "label": list(labels)})
    elif hasattr(data, "texts") and hasattr(data, "label_names") and hasattr(data, "labels"):
        names = list(data.label_names)
        inputs = data.inputs if getattr(data, "level", "sentence") == "word" else list(data.texts)
        labels = [names.index(x) if isinstance(x, str) and x in names else x for x in data.labels]
        df = pd.DataFrame({"text": inputs, "label": labels})
    elif hasattr(data, "to_pandas") and hasattr(data, "column_names"):
        df = data.to_pandas()
    else:
        raise TypeError("data must be (texts, labels), a DataFrame or datasets.Dataset with text/label columns, "
                        f"or a ProbingDataset; got {type(data).__name__}")
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise ValueError(f"data lacks column(s) {sorted(missing)}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("data is empty")
    df = df[["text", "label"]].reset_index(drop=True)
    texts = df["text"].tolist()
    per_word = any(not isinstance(t, str) and isinstance(t, (list, tuple, np.ndarray)) for t in texts)
    check_labels(df["label"].tolist(), "word" if per_word else "sentence",
                 words=[list(t) if per_word else str(t).split() for t in texts])
    return df


def rotten_tomatoes_splits(seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                           ) -> dict[str, pd.DataFrame]:
    """The fixed train/validation/test split of Rotten Tomatoes used by the variant benchmark.

    The 8,530 sentences (``load_movie_reviews("rotten_tomatoes")``; none is a
    duplicate) are split 80/10/10 = 6,824 / 853 / 853, stratified by label,
    with scikit-learn's ``train_test_split`` at ``random_state=seed`` (first
    train vs rest, then rest into validation and test).

    Returns
    -------
    dict
        ``{"train", "validation", "test"}`` -> DataFrame ``text, label``.
    """
    from sklearn.model_selection import train_test_split

    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    df = load_movie_reviews("rotten_tomatoes")[["text", "label"]]
    train, rest = train_test_split(df, train_size=fractions[0], stratify=df["label"], random_state=seed)
    val, test = train_test_split(rest, train_size=fractions[1] / (fractions[1] + fractions[2]),
                                 stratify=rest["label"], random_state=seed)
    return {k: v.reset_index(drop=True) for k, v in (("train", train), ("validation", val), ("test", test))}


def encode(tokenizer, data, *, max_length: int, task: str = "sequence-classification"):
    """A tokenized ``datasets.Dataset`` (``input_ids``, ``attention_mask``, ``labels``)."""
    import datasets

    df = as_frame(data)
    if task == "token-classification":
        enc = tokenizer([list(w) for w in df["text"]], is_split_into_words=True, truncation=True,
                        max_length=max_length)
        labels = []
        for i, row in enumerate(df["label"]):
            prev, out = None, []
            for w in enc.word_ids(i):
                out.append(-100 if w is None or w == prev else int(row[w]))
                prev = w
            labels.append(out)
    else:
        enc = tokenizer(list(map(str, df["text"])), truncation=True, max_length=max_length)
        labels = [int(x) for x in df["label"]]
    return datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                       "labels": labels})
