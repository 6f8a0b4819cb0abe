"""Tokenization with word alignment, and the long-input policy.

Inputs are plain strings (words are its whitespace-separated pieces) or
pre-split words (as in a treebank). Either way the model sees its natural
tokenization of the text, and every subword token is mapped back to the word
it came from through character offsets, so BERT WordPiece, GPT-2 byte-level
BPE and SentencePiece all align the same way. A word made only of characters
the tokenizer drops (control characters such as ``'\x97'``, private-use
symbols) gets no token: the text's token and sentence rows are well defined,
and only word rows of such a text are refused, naming the example and the
word (:func:`probekit.model.check_word_spans`).

An example longer than the model's maximum length is never cut silently:
``long_inputs="error"`` (the default) raises naming the example, and
``long_inputs="window"`` runs overlapping windows and keeps, for every token,
the window in which it is farthest from an edge.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from probekit.model._chat import ROLES, encode_conversation, is_conversation, validate_conversations

__all__ = ["Example", "TokenizedBatch", "tokenize", "validate_inputs", "Window", "LONG_INPUTS"]

LongInputPolicy = Literal["error", "window"]
#: The policies for inputs longer than the model's maximum (``long_inputs=``).
LONG_INPUTS: tuple[str, ...] = ("error", "window")
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Window:
    """One forward-pass row: a slice of an example's content tokens."""

    example: int
    row_ids: tuple[int, ...]
    #: content tokens [start, stop) of the example covered by this row
    start: int
    stop: int
    #: content tokens [keep_start, keep_stop) this row is responsible for
    keep_start: int
    keep_stop: int


@dataclass(frozen=True)
class Example:
    """One tokenized example with its word alignment.

    ``input_ids`` is the full sequence the model conceptually sees (special
    tokens included); ``word_ids[t]`` is the word of token ``t`` or ``None``
    for special tokens.
    """

    text: str
    words: tuple[str, ...]
    input_ids: tuple[int, ...]
    word_ids: tuple[int | None, ...]
    n_prefix: int
    n_suffix: int
    #: conversations only (see :mod:`probekit.model._chat`): the turn, role (index into ``ROLES``) and
    #: marked flag of every token, and the messages
    turns: tuple[int, ...] | None = None
    roles: tuple[int, ...] | None = None
    marked: tuple[bool, ...] | None = None
    messages: tuple[dict, ...] | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def is_chat(self) -> bool:
        return self.turns is not None

    def selection(self, name: str) -> list[int]:
        """Token positions a chat pooling selects: content tokens of a role's turns, or the marked tokens.

        ``name`` is a role (``"assistant"``) or ``"mark"``.
        """
        if not self.is_chat:
            raise ValueError(f"pooling over {name!r} needs a conversation; this example is plain text")
        if name == "mark":
            return [t for t, m in enumerate(self.marked) if m]
        r = ROLES.index(name)
        return [t for t, (role, w) in enumerate(zip(self.roles, self.word_ids)) if role == r and w is not None]

    def word_spans(self) -> list[tuple[int, int]]:
        """Token span ``[start, stop)`` of every word."""
        spans: list[list[int]] = [[-1, -1] for _ in self.words]
        for t, w in enumerate(self.word_ids):
            if w is None:
                continue
            if spans[w][0] < 0:
                spans[w][0] = t
            spans[w][1] = t + 1
        return [tuple(s) for s in spans]


@dataclass(frozen=True)
class TokenizedBatch:
    """Tokenized examples plus the rows the model runs on."""

    examples: tuple[Example, ...]
    windows: tuple[Window, ...]
    max_length: int

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def is_windowed(self) -> bool:
        return len(self.windows) != len(self.examples)


def validate_inputs(inputs) -> tuple[list[str], list[tuple[str, ...] | None]]:
    """Check user input and return ``(texts, words_or_None)``.

    Accepts one string, a list of strings, or a list of word lists. Raises a
    ``ValueError``/``TypeError`` naming the offending item's index.
    """
    if inputs is None:
        raise TypeError("inputs is None; pass a string, a list of strings, or a list of word lists")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, bytes):
        raise TypeError(f"inputs must be a string or a list, not {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError("inputs is an empty list; pass at least one text")
    texts: list[str] = []
    words: list[tuple[str, ...] | None] = []
    kinds: set[str] = set()
    for i, item in enumerate(inputs):
        if item is None:
            raise TypeError(f"input {i} is None")
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"input {i} is empty or whitespace only: {item!r}")
            kinds.add("plain")
            texts.append(item)
            words.append(None)
        elif isinstance(item, (list, tuple)):
            if len(item) == 0:
                raise ValueError(f"input {i} is an empty word list")
            for j, w in enumerate(item):
                if not isinstance(w, str):
                    raise TypeError(f"input {i}, word {j} is {type(w).__name__}, not str: {w!r}")
                if not w.strip() or any(c.isspace() for c in w):
                    raise ValueError(f"input {i}, word {j} is empty or contains whitespace: {w!r}")
            kinds.add("split")
            texts.append(" ".join(item))
            words.append(tuple(item))
        else:
            raise TypeError(f"input {i} is {type(item).__name__}; expected a string or a list of words")
        if len(kinds) > 1:
            raise ValueError(
                f"input {i} mixes pre-split words and plain text in one batch; pass all plain strings or all word lists"
            )
    return texts, words


def tokenize(
    tokenizer,
    inputs,
    *,
    max_length: int,
    long_inputs: LongInputPolicy = "error",
    stride: int | None = None,
    first_index: int = 0,
) -> TokenizedBatch:
    """Tokenize ``inputs`` with word alignment and plan the forward rows.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        A fast tokenizer (character offsets are needed for the alignment).
    inputs : str, list of str, list of list of str, or list of conversations
        A conversation is a list of ``{"role", "content"}`` messages, rendered with the tokenizer's chat
        template (see :mod:`probekit.model._chat`).
    max_length : int
        The model's maximum sequence length, special tokens included.
    long_inputs : {"error", "window"}
    stride : int, optional
        Content tokens shared by neighbouring windows (default: a quarter of
        the window).
    first_index : int
        The number of the first input in error messages (the example number
        of a slice of a larger data set).

    Raises
    ------
    ValueError
        An input longer than ``max_length`` (with ``long_inputs="error"``),
        naming the input.
    """
    if long_inputs not in ("error", "window"):
        raise ValueError(f"long_inputs must be 'error' or 'window', not {long_inputs!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("word alignment needs a fast tokenizer (tokenizers backend); got a slow one")
    if isinstance(inputs, Sequence) and not isinstance(inputs, str) and len(inputs) and is_conversation(inputs[0]):
        convs = validate_conversations(inputs, first_index)
        examples = [Example(**encode_conversation(tokenizer, first_index + i, c)) for i, c in enumerate(convs)]
    else:
        texts, given_words = validate_inputs(inputs)
        examples = _encode_all(tokenizer, texts, given_words)
    windows: list[Window] = []
    for i, ex in enumerate(examples):
        if ex.n_tokens <= max_length:
            n = ex.n_tokens - ex.n_prefix - ex.n_suffix
            windows.append(Window(i, ex.input_ids, 0, n, 0, n))
            continue
        if long_inputs == "error":
            raise ValueError(
                f"input {first_index + i} has {ex.n_tokens} tokens, more than the model's maximum of {max_length} "
                f"(text starts {ex.text[:60]!r}); pass long_inputs='window' to run it in overlapping windows"
            )
        windows.extend(_plan_windows(i, ex, max_length, stride))
    return TokenizedBatch(tuple(examples), tuple(windows), max_length)


def _encode_all(tokenizer, texts: list[str], given: list[tuple[str, ...] | None]) -> list[Example]:
    """Every text in one call of the tokenizer (its batch path: the same encodings as one call per text, at
    half the time), then each aligned to its words."""
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True,
                    return_special_tokens_mask=True, truncation=False, verbose=False)
    return [_align(text, w, ids, offsets, special)
            for text, w, ids, offsets, special in zip(texts, given, enc["input_ids"], enc["offset_mapping"],
                                                      enc["special_tokens_mask"])]


def _align(text: str, given: tuple[str, ...] | None, ids, offsets, special) -> Example:
    """The example of ``text`` from its encoding: each token's word from its character offsets."""
    spans = [(m.start(), m.end()) for m in _WORD_RE.finditer(text)]
    words = given if given is not None else tuple(text[a:b] for a, b in spans)
    starts = [a for a, _ in spans]
    word_ids: list[int | None] = []
    for (a, b), sp in zip(offsets, special):
        if sp or b <= a:
            word_ids.append(None)
            continue
        w = bisect.bisect_right(starts, b - 1) - 1
        word_ids.append(w if w >= 0 and b - 1 < spans[w][1] else None)
    n_prefix = 0
    while n_prefix < len(special) and special[n_prefix]:
        n_prefix += 1
    n_suffix = 0
    while n_suffix < len(special) - n_prefix and special[len(special) - 1 - n_suffix]:
        n_suffix += 1
    return Example(text, tuple(words), tuple(ids), tuple(word_ids), n_prefix, n_suffix)


def _plan_windows(i: int, ex: Example, max_length: int, stride: int | None) -> list[Window]:
    prefix = ex.input_ids[: ex.n_prefix]
    suffix = ex.input_ids[len(ex.input_ids) - ex.n_suffix:]
    content = ex.input_ids[ex.n_prefix: len(ex.input_ids) - ex.n_suffix]
    width = max_length - ex.n_prefix - ex.n_suffix
    overlap = width // 4 if stride is None else stride
    if not 0 <= overlap < width:
        raise ValueError(f"stride must be in [0, {width}) for this model, got {overlap}")
    step = width - overlap
    starts = list(range(0, max(len(content) - width, 0) + 1, step))
    if starts[-1] + width < len(content):
        starts.append(len(content) - width)
    rows = []
    for k, s in enumerate(starts):
        e = min(s + width, len(content))
        # each token belongs to the window where it is farthest from an edge:
        # split every overlap at its midpoint
        keep_s = 0 if k == 0 else (s + min(starts[k - 1] + width, len(content))) // 2
        keep_e = len(content) if k == len(starts) - 1 else (starts[k + 1] + e) // 2
        rows.append(Window(i, prefix + content[s:e] + suffix, s, e, keep_s, keep_e))
    return rows
