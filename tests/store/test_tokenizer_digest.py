"""The tokenizer part of a store's fingerprint: remembered per tokenizer, but never stale."""

from __future__ import annotations

import copy

from probekit.store._extract import _compute_tokenizer_digest, _tokenizer_digest


def test_digest_is_remembered_and_follows_changes(minilm):
    tok = copy.deepcopy(minilm.tokenizer)
    first = _tokenizer_digest(tok)
    assert first == _compute_tokenizer_digest(tok) == _tokenizer_digest(tok)
    tok.add_tokens(["probekitword"])  # a new vocabulary entry changes what texts tokenize to
    changed = _tokenizer_digest(tok)
    assert changed != first and changed == _compute_tokenizer_digest(tok)
    tok.add_special_tokens({"additional_special_tokens": ["[PK]"]})
    assert _tokenizer_digest(tok) not in (first, changed)
