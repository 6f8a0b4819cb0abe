"""Chat-formatted input: conversations rendered with the tokenizer's chat template.

A conversation is a list of messages ``{"role": ..., "content": ...}``. It is
rendered by the tokenizer's own chat template (the text the model is trained
on, special markers included), tokenized with character offsets, and every
token is given:

- its **turn** (the message it belongs to: the template's header and end
  markers of a message count to that message's turn; anything the template
  adds before the first message, such as a default system prompt, counts to
  turn 0);
- its **role** (the turn's role, an index into :data:`ROLES`);
- its **word** (whitespace-separated words of the message contents, numbered
  across the conversation; template tokens have none), so word pooling and
  word-level tasks work as for plain text;
- whether it is **marked**: a message may carry ``"mark": True`` (its whole
  content) or ``"mark": [start, stop]`` (a character range of its content),
  the part of the conversation a label is about.

Turn boundaries come from rendering the conversation's prefixes: the text of
the first ``i`` messages must be a prefix of the text of the first ``i + 1``
(true of the templates of Llama, Qwen, Mistral, Gemma, Phi and SmolLM); a
template for which it is not is refused with an error naming the message.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence

__all__ = ["ROLES", "CHAT_POOLING", "is_conversation", "validate_conversations", "encode_conversation",
           "chat_template_of", "conversation_text"]

#: Roles a message may have; a token's role is stored as its index here (-1: no turn).
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool", "developer")
#: Sentence poolings of conversations: the last or mean content token of a role's turns, or of the marked part.
CHAT_POOLING: tuple[str, ...] = tuple(f"{how}.{who}" for who in (*ROLES, "mark") for how in ("last", "mean"))
_WORD_RE = re.compile(r"\S+")


def is_conversation(item) -> bool:
    """Whether ``item`` is a conversation (a non-empty list of mappings), not a text or a word list."""
    return isinstance(item, (list, tuple)) and len(item) > 0 and all(isinstance(m, Mapping) for m in item)


def validate_conversations(inputs: Sequence, first_index: int = 0) -> list[tuple[dict, ...]]:
    """Check a list of conversations and return them as tuples of plain message dicts.

    Raises a ``TypeError``/``ValueError`` naming the conversation and the message.

    Examples
    --------
    >>> validate_conversations([[{"role": "user", "content": "Hi"}]])
    [({'role': 'user', 'content': 'Hi'},)]
    >>> validate_conversations([[{"role": "narrator", "content": "Hi"}]])
    Traceback (most recent call last):
    ...
    ValueError: conversation 0, message 0: role 'narrator' is not one of system, user, assistant, tool, developer
    """
    out = []
    for i, conv in enumerate(inputs):
        where = f"conversation {first_index + i}"
        if not is_conversation(conv):
            raise TypeError(f"{where} is {type(conv).__name__}; a conversation is a list of "
                            "{'role': ..., 'content': ...} messages (do not mix conversations with plain texts)")
        msgs = []
        for j, m in enumerate(conv):
            unknown = set(m) - {"role", "content", "mark"}
            if unknown:
                raise ValueError(f"{where}, message {j}: unknown keys {sorted(unknown)}; a message has 'role', "
                                 "'content' and optionally 'mark'")
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                raise ValueError(f"{where}, message {j}: role {role!r} is not one of {', '.join(ROLES)}")
            if not isinstance(content, str) or not content.strip():
                raise ValueError(f"{where}, message {j}: content must be a non-empty string, not {content!r}")
            msg = {"role": role, "content": content}
            if "mark" in m:
                msg["mark"] = _check_mark(m["mark"], content, f"{where}, message {j}")
            msgs.append(msg)
        if sum("mark" in m for m in msgs) > 1:
            raise ValueError(f"{where}: more than one message is marked; mark one part per conversation "
                             "(one row per labelled turn: repeat the conversation with another mark)")
        out.append(tuple(msgs))
    return out


def _check_mark(mark, content: str, where: str):
    if mark is True:
        return True
    if (isinstance(mark, (list, tuple)) and len(mark) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                   for v in mark)
            and 0 <= mark[0] < mark[1] <= len(content)):
        return [int(mark[0]), int(mark[1])]
    raise ValueError(f"{where}: 'mark' must be true (the whole content) or [start, stop] with "
                     f"0 <= start < stop <= {len(content)} (characters of the content), not {mark!r}")


def conversation_text(messages: Sequence[Mapping]) -> str:
    """The contents of a conversation, one message a line: the example's ``text`` in tables."""
    return "\n".join(m["content"] for m in messages)


def chat_template_of(tokenizer) -> str:
    """The tokenizer's chat template, or a ``ValueError`` saying it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one renders conversations
        template = template.get("default")
    if not isinstance(template, str) or not template:
        raise ValueError(f"the tokenizer ({type(tokenizer).__name__}, {getattr(tokenizer, 'name_or_path', '')!r}) "
                         "has no chat template, so conversations cannot be formatted; pass plain texts, or a "
                         "tokenizer with one (set tokenizer.chat_template)")
    return template


def encode_conversation(tokenizer, index: int, messages: Sequence[Mapping]) -> dict:
    """Render, tokenize and align one conversation: the fields of its :class:`~probekit.model.Example`.

    Examples
    --------
    >>> import probekit
    >>> tok = probekit.load_tokenizer("smollm2-135m")  # doctest: +SKIP
    >>> ex = encode_conversation(tok, 0, [{"role": "user", "content": "Hi there"}])  # doctest: +SKIP
    >>> ex["words"]  # doctest: +SKIP
    ('Hi', 'there')
    """
    chat_template_of(tokenizer)
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    full = _render(tokenizer, plain)
    bounds = [0]
    for i in range(1, len(plain)):
        prefix = _render(tokenizer, plain[:i])
        if not full.startswith(prefix):
            raise ValueError(f"conversation {index}: the chat template renders the first {i} messages as text that "
                             "is not a prefix of the whole conversation's, so the turns cannot be told apart")
        bounds.append(len(prefix))
    bounds.append(len(full))
    word_spans: list[tuple[int, int]] = []
    words: list[str] = []
    mark_span: tuple[int, int] | None = None
    for i, m in enumerate(messages):
        at = full.find(m["content"], bounds[i], bounds[i + 1])
        if at < 0:
            raise ValueError(f"conversation {index}, message {i}: the chat template changes the message's content "
                             "(it is not found verbatim in the rendered text), so its tokens cannot be aligned")
        for w in _WORD_RE.finditer(m["content"]):
            word_spans.append((at + w.start(), at + w.end()))
            words.append(w.group())
        mark = m.get("mark")
        if mark is True:
            mark_span = (at, at + len(m["content"]))
        elif mark is not None:
            mark_span = (at + mark[0], at + mark[1])
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    starts = [a for a, _ in word_spans]
    word_ids: list[int | None] = []
    turns: list[int] = []
    roles: list[int] = []
    marked: list[bool] = []
    for a, b in offsets:
        w = bisect.bisect_right(starts, b - 1) - 1 if b > a else -1
        word_ids.append(w if w >= 0 and b - 1 < word_spans[w][1] else None)
        turn = min(max(bisect.bisect_right(bounds, a) - 1, 0), len(messages) - 1)
        turns.append(turn)
        roles.append(ROLES.index(messages[turn]["role"]))
        marked.append(mark_span is not None and b > a and a < mark_span[1] and b > mark_span[0])
    return {"text": conversation_text(messages), "words": tuple(words), "input_ids": tuple(ids),
            "word_ids": tuple(word_ids), "n_prefix": 0, "n_suffix": 0, "turns": tuple(turns), "roles": tuple(roles),
            "marked": tuple(marked), "messages": tuple(plain)}


def _render(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
