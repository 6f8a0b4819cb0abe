"""Word alignment, pooling, long inputs and bad input."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

import probekit
from probekit.model._pooling import pool_sentence, pool_words
from probekit.model._tokenize import tokenize
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def bert_tok():
    return probekit.load_tokenizer("minilm-l6")


@pytest.fixture(scope="module")
def bpe_tok():
    """A byte-level BPE tokenizer (GPT-2 style, spaces attached to words) trained on the spot."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["the cat sat on the mat", "unbelievable performances everywhere", "dogs and cats"] * 20
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _words_from_tokens(tok, ex):
    """Rebuild each word from its tokens' text (checks the alignment, not just its shape)."""
    pieces = {}
    toks = tok.convert_ids_to_tokens(list(ex.input_ids))
    for t, w in zip(toks, ex.word_ids):
        if w is not None:
            pieces.setdefault(w, []).append(t)
    return pieces


def test_bert_alignment_plain_and_split(bert_tok):
    b = tokenize(bert_tok, ["Unbelievable performances, truly."], max_length=512)
    ex = b.examples[0]
    assert ex.words == ("Unbelievable", "performances,", "truly.")
    assert ex.word_ids[0] is None and ex.word_ids[-1] is None
    pieces = _words_from_tokens(bert_tok, ex)
    assert "".join(pieces[0]).replace("##", "") == "unbelievable"
    assert pieces[1][-1] == ","
    split = tokenize(bert_tok, [["Unbelievable", "performances", ",", "truly", "."]], max_length=512).examples[0]
    assert split.words == ("Unbelievable", "performances", ",", "truly", ".")
    assert split.word_spans()[2] == (split.word_ids.index(2), split.word_ids.index(2) + 1)
    assert split.input_ids == ex.input_ids  # same natural tokenization


def test_bpe_alignment(bpe_tok):
    ex = tokenize(bpe_tok, [["the", "unbelievable", "dogs"]], max_length=64).examples[0]
    pieces = _words_from_tokens(bpe_tok, ex)
    assert [bpe_tok.convert_tokens_to_string(pieces[i]).strip() for i in range(3)] == ["the", "unbelievable", "dogs"]
    toks = bpe_tok.convert_ids_to_tokens(list(ex.input_ids))
    # no special tokens here: only tokens that are pure whitespace ("Ġ") belong to no word
    assert all((w is None) == (t == "Ġ") for t, w in zip(toks, ex.word_ids))


def test_a_word_the_tokenizer_drops_has_tokens_and_sentences_but_no_word_row(bert_tok):
    """Plain text with a character the tokenizer drops still tokenizes (token and sentence rows are well defined);
    only its word rows are refused, naming the example and the word (issue 25, item 9)."""
    b = tokenize(bert_tok, ["a fine film", "the film \x97 a mess"], max_length=512)
    ex = b.examples[1]
    assert ex.words == ("the", "film", "\x97", "a", "mess")
    assert ex.word_spans()[2] == (-1, -1) and ex.word_spans()[3][0] > 0
    pieces = _words_from_tokens(bert_tok, ex)
    assert [pieces[j] for j in (0, 1, 3, 4)] == [["the"], ["film"], ["a"], ["mess"]]  # the others still align
    x = torch.arange(float(ex.n_tokens * 2)).reshape(ex.n_tokens, 2)
    with pytest.raises(ValueError, match=r"example 1: word 2 \('\\x97'\) produced no tokens"):
        pool_words(x, ex.word_spans(), "mean", words=ex.words, example=1)
    for how in ("first", "last"):  # never a silent row from index -1
        with pytest.raises(ValueError, match="produced no tokens"):
            pool_words(x, ex.word_spans(), how)
    split = tokenize(bert_tok, [["bad", "\x97", "film"]], max_length=512).examples[0]
    assert split.word_spans()[1] == (-1, -1)
    ex = tokenize(bert_tok, ["the film \u2014 a mess"], max_length=512).examples[0]
    assert len(ex.words) == 5 and len(set(w for w in ex.word_ids if w is not None)) == 5


def test_extract_stores_tokens_and_sentences_and_names_the_example_for_word_rows(tmp_path):
    import probekit
    from tests.conftest import tiny_config

    m = probekit.load_model(tiny_config("bert"), seed=0)
    texts = [f"sentence number {i}" for i in range(9)] + ["the film \x97 a mess"]
    store = probekit.extract(m, texts, ["L0.resid"], tmp_path / "s", shard_size=4, sentence_pooling=["mean"],
                             progress=False)
    assert store.n_examples == 10 and store["L0.resid"].example(9).shape[0] == 6  # [CLS] the film a mess [SEP]
    with pytest.raises(ValueError, match=r"example 9: word 2 \('\\x97'\) produced no tokens"):
        store["L0.resid"].words(9)
    with pytest.raises(ValueError, match=r"example 9: word 2 \('\\x97'\) produced no tokens.* \(shard 2;"):
        probekit.extract(m, texts, ["L0.resid"], tmp_path / "w", shard_size=4, word_pooling=["mean"],
                         progress=False)
    cache = m.run_with_cache(texts[-2:], ["L0.resid"])
    with pytest.raises(ValueError, match=r"example 1: word 2"):
        cache.word_pooled("L0.resid")


@pytest.mark.parametrize("bad, exc, msg", [
    ([], ValueError, "empty list"),
    (None, TypeError, "None"),
    (["fine", ""], ValueError, "input 1 is empty"),
    (["fine", "   "], ValueError, "input 1 is empty"),
    (["fine", None], TypeError, "input 1 is None"),
    (["fine", 3], TypeError, "input 1 is int"),
    (["fine", ["a", "b"]], ValueError, "input 1 mixes"),
    ([["a", "b"], "plain"], ValueError, "input 1 mixes"),
    ([["a", ""]], ValueError, "input 0, word 1 is empty"),
    ([["a b"]], ValueError, "contains whitespace"),
    ([["a", 5]], TypeError, "input 0, word 1 is int"),
    ([[]], ValueError, "input 0 is an empty word list"),
    (42, TypeError, "not int"),
])
def test_bad_input(bert_tok, bad, exc, msg):
    with pytest.raises(exc, match=msg):
        tokenize(bert_tok, bad, max_length=512)


def test_bad_input_through_model():
    m = probekit.load_model(tiny_config("bert"))
    with pytest.raises(ValueError, match="input 2 is empty"):
        m.run_with_cache(["a", "b", " "])
    with pytest.raises(ValueError, match="sites is empty"):
        m.run_with_cache(["a"], sites=[])


def test_long_input_error_and_windows():
    m = probekit.load_model(tiny_config("bert"), seed=3)
    m.tokenizer.model_max_length = 12  # shrink the window to exercise the policy
    text = " ".join(f"word{i}" for i in range(15))
    with pytest.raises(ValueError, match="input 1 has .* tokens, more than the model's maximum of 12"):
        m.run_with_cache(["short text", text])
    batch = m.tokenize([text], long_inputs="window", stride=4)
    ex = batch.examples[0]
    assert batch.is_windowed and all(len(w.row_ids) <= 12 for w in batch.windows)
    # every content token is kept by exactly one window, in order
    kept = [t for w in batch.windows for t in range(w.keep_start, w.keep_stop)]
    assert kept == list(range(ex.n_tokens - ex.n_prefix - ex.n_suffix))
    cache = m.run_with_cache(batch, sites=["L1.resid"])
    got = cache.examples("L1.resid")[0]
    assert got.shape == (ex.n_tokens, 32)
    # the first window's first kept tokens equal a direct forward of that row
    first = batch.windows[0]
    with torch.inference_mode():
        out = m.forward_rows([first.row_ids], output_hidden_states=True).hidden_states[2][0]
    n = ex.n_prefix + first.keep_stop
    assert torch.allclose(got[:n], out[:n], atol=1e-6)
    # the last token ([SEP]) comes from the last window
    last = batch.windows[-1]
    with torch.inference_mode():
        out = m.forward_rows([last.row_ids], output_hidden_states=True).hidden_states[2][0]
    assert torch.allclose(got[-1], out[len(last.row_ids) - 1], atol=1e-6)
    with pytest.raises(ValueError, match="cannot be stitched"):
        m.run_with_cache(batch, sites=["L0.attn.pattern"])


def test_pooling():
    x = torch.arange(12.0).reshape(6, 2)
    spans = [(1, 2), (2, 5)]
    assert pool_words(x, spans, "first").tolist() == [[2, 3], [4, 5]]
    assert pool_words(x, spans, "last").tolist() == [[2, 3], [8, 9]]
    assert pool_words(x, spans, "mean").tolist() == [[2, 3], [6, 7]]
    assert pool_sentence(x, "cls").tolist() == [0, 1]
    assert pool_sentence(x, "last").tolist() == [10, 11]
    assert pool_sentence(x, "mean").tolist() == [5, 6]
    with pytest.raises(ValueError, match="word pooling"):
        pool_words(x, spans, "max")


def test_cache_word_pooling_matches_tokens():
    m = probekit.load_model(tiny_config("bert"))
    c = m.run_with_cache([["Unbelievable", "cats", "."], ["Dogs", "bark"]], sites=["L1.resid", "L0.attn.pattern"])
    words = c.word_pooled("L1.resid", "mean")
    assert [w.shape[0] for w in words] == [3, 2]
    tok = c.examples("L1.resid")[0]
    span = c.batch.examples[0].word_spans()[0]
    assert torch.allclose(words[0][0], tok[span[0]:span[1]].mean(0), atol=1e-6)
    assert c.sentence_pooled("L1.resid", "cls").shape == (2, 32)
    assert c.examples("L0.attn.pattern.h1")[0].shape == c.examples("L0.attn.pattern")[0].shape[1:]
    with pytest.raises(ValueError, match="needs a token-level site"):
        c.word_pooled("L0.attn.pattern")
    with pytest.raises(KeyError, match="not in this cache"):
        c["L0.resid"]


@pytest.mark.parametrize("which", ["bert_tok", "bpe_tok"])
def test_one_batch_call_encodes_as_one_call_per_text(which, request):
    """``tokenize`` encodes all its texts in one call of the tokenizer: each example is the one a call per text
    gives (ids, special-token counts, word alignment), whatever the mix of lengths."""
    tok = request.getfixturevalue(which)
    texts = ["the cat sat on the mat", "unbelievable", "dogs and cats , everywhere !", "a " * 40 + "end"]
    batch = tokenize(tok, texts, max_length=512)
    for text, ex in zip(texts, batch.examples):
        alone = tokenize(tok, [text], max_length=512).examples[0]
        enc = tok(text, add_special_tokens=True)
        assert ex == alone and list(ex.input_ids) == enc["input_ids"]
