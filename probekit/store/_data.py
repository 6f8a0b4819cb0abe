"""What :func:`probekit.extract` accepts as data, normalised to one form.

Accepted: a list of texts, a list of word lists, a list of conversations
(lists of ``{"role", "content"}`` messages, formatted with the tokenizer's
chat template), a pandas DataFrame with a ``text``, ``words`` or ``messages``
column and optional metadata columns (labels, ids),
or anything with a ``to_frame()`` method returning such a DataFrame. A
missing value in a ``label`` (or ``labels``) column is an error naming the
example (and word), never a class named ``'nan'``. The CLI also names
sources: ``rt``/``rotten_tomatoes`` and ``imdb`` (the bundled movie
reviews), a ``.txt`` file (one text per line), a ``.csv`` or ``.jsonl``
file with a ``text`` column.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probekit.data import load_movie_reviews
from probekit.fingerprint import hash_json_lines
from probekit.labels import MissingLabelError, check_labels
from probekit.model import conversation_text, is_conversation, validate_conversations, validate_inputs

__all__ = ["ExtractData", "as_data", "load_source", "LABEL_COLUMNS"]

logger = logging.getLogger(__name__)

#: metadata columns holding labels: a missing value in them is an error, not a class named 'nan'
LABEL_COLUMNS = ("label", "labels")


@dataclass(frozen=True)
class ExtractData:
    """Examples to extract: texts, optional pre-split words and a metadata frame.

    ``frame`` has columns ``id``, ``text``, ``words`` (when pre-split) and any
    metadata columns, one row per example in data order.
    """

    texts: tuple[str, ...]
    words: tuple[tuple[str, ...], ...] | None
    frame: pd.DataFrame
    #: the conversations, when the data is chat-formatted (``texts`` then holds their contents)
    conversations: tuple[tuple[dict, ...], ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_chat(self) -> bool:
        return self.conversations is not None

    def inputs(self, start: int, stop: int) -> list:
        """Model inputs of examples ``[start, stop)``: texts, word lists or conversations."""
        if self.conversations is not None:
            return [list(c) for c in self.conversations[start:stop]]
        if self.words is not None:
            return [list(w) for w in self.words[start:stop]]
        return list(self.texts[start:stop])

    def digest(self) -> str:
        """SHA-256 over every example's text, words and metadata, in order."""
        cols = [str(c) for c in self.frame.columns]
        return hash_json_lines(itertools.chain([cols], self.frame.itertuples(index=False, name=None)))


def as_data(data: Any) -> ExtractData:
    """Normalise ``data`` (see module docs); raise a clear error on anything else."""
    if isinstance(data, ExtractData):
        return data
    if not isinstance(data, pd.DataFrame) and hasattr(data, "to_frame") and callable(data.to_frame):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        return _from_frame(data)
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, Sequence):
        raise TypeError(f"data must be a list of texts, a list of word lists, a list of conversations or a pandas "
                        f"DataFrame with a 'text', 'words' or 'messages' column, not {type(data).__name__}")
    if len(data) and is_conversation(data[0]):
        return _from_conversations(pd.DataFrame({"id": np.arange(len(data)), "messages": list(data)}))
    texts, words = validate_inputs(list(data))
    split = words[0] is not None
    frame = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
    if split:
        frame["words"] = [list(w) for w in words]
    return ExtractData(tuple(texts), tuple(words) if split else None, frame)


def _from_conversations(df: pd.DataFrame) -> ExtractData:
    """Chat data: a frame whose ``messages`` column holds one conversation per row."""
    convs = validate_conversations(list(df["messages"]))
    frame = df.reset_index(drop=True).copy()
    if "id" not in frame.columns:
        frame.insert(0, "id", np.arange(len(frame)))
    elif frame["id"].duplicated().any():
        raise ValueError(f"the 'id' column has duplicates (e.g. {frame['id'][frame['id'].duplicated()].iloc[0]!r})")
    texts = [conversation_text(c) for c in convs]
    # stored as JSON text: the example table is Parquet, and the digest hashes it row by row
    frame["messages"] = [json.dumps(list(c), ensure_ascii=False) for c in convs]
    frame["text"] = texts
    for col in LABEL_COLUMNS:
        if col in frame.columns:
            check_labels(frame[col].tolist(), "sentence", words=[t.split() for t in texts],
                         what=f"value of column {col!r}")
    return ExtractData(tuple(texts), None, frame, tuple(convs))


def _from_frame(df: pd.DataFrame) -> ExtractData:
    if len(df) == 0:
        raise ValueError("data is an empty DataFrame; pass at least one row")
    if "messages" in df.columns:
        return _from_conversations(df)
    if "words" in df.columns:
        items = [list(w) if not isinstance(w, str) else w.split() for w in df["words"]]
    elif "text" in df.columns:
        items = list(df["text"])
    else:
        raise ValueError(f"the DataFrame needs a 'text' or a 'words' column; it has {list(df.columns)}")
    texts, words = validate_inputs(items)
    split = words[0] is not None
    frame = df.reset_index(drop=True).copy()
    if "id" in frame.columns:
        if frame["id"].duplicated().any():
            dup = frame["id"][frame["id"].duplicated()].iloc[0]
            raise ValueError(f"the 'id' column has duplicates (e.g. {dup!r}); ids must be unique")
    else:
        frame.insert(0, "id", np.arange(len(frame)))
    frame["text"] = texts
    if split:
        frame["words"] = [list(w) for w in words]
    for col in LABEL_COLUMNS:
        if col in frame.columns:
            values = frame[col].tolist()
            per_word = any(isinstance(v, (list, tuple, np.ndarray)) for v in values)
            check_labels(values, "word" if per_word else "sentence",
                         words=[w if w is not None else t.split() for t, w in zip(texts, words)],
                         what=f"value of column {col!r}")
    return ExtractData(tuple(texts), tuple(words) if split else None, frame)


def load_source(source: str, *, limit: int | None = None) -> ExtractData:
    """Data named on the command line.

    Parameters
    ----------
    source : str
        ``rt`` / ``rotten_tomatoes`` or ``imdb`` (the ``movie-reviews``
        package), or a path to a ``.txt`` (one text per line; blank lines
        are skipped, and each example's ``id`` is its line's 0-based number,
        so ids keep naming lines), ``.csv`` or ``.jsonl`` file with a ``text``
        column.
    limit : int, optional
        Keep only the first ``limit`` examples.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    key = source.strip().lower()
    if key in ("rt", "rotten_tomatoes", "rotten-tomatoes", "imdb"):
        df = load_movie_reviews("imdb" if key == "imdb" else "rotten_tomatoes")
    else:
        path = Path(os.path.expanduser(source))
        if not path.exists():
            raise FileNotFoundError(f"data source {source!r} is neither a known corpus (rt, rotten_tomatoes, imdb) "
                                    "nor an existing file")
        suffix = path.suffix.lower()
        if suffix == ".txt":
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            kept = [(i, ln) for i, ln in enumerate(lines) if ln.strip()]
            if len(kept) < len(lines):
                logger.warning("%s: %d blank lines skipped; each example's id is its line's 0-based number (line "
                               "id + 1), so ids still name lines", path, len(lines) - len(kept))
            # the id of every text is its line's 0-based number, blank lines or not
            df = pd.DataFrame({"id": [i for i, _ in kept], "text": [ln for _, ln in kept]})
        elif suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True)
        else:
            raise ValueError(f"unsupported data file type {suffix!r} ({path}); use .txt, .csv or .jsonl")
        if "text" not in df.columns and "words" not in df.columns:
            raise ValueError(f"{path} has no 'text' column; columns: {list(df.columns)}")
    if limit is not None:
        df = df.head(limit)
    try:
        return _from_frame(df)
    except MissingLabelError as exc:
        raise MissingLabelError(f"{source}: {exc}", exc.example, exc.word) from None
