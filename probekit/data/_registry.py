"""The task registry: every task by name, filled explicitly from the builder modules' tables.

``TASKS`` is filled once, here, from :data:`probekit.data._tasks.WORD_TASKS`
and :data:`probekit.data._senteval.SENTENCE_TASKS` (no module registers
anything as a side effect of being imported); :func:`register_task` adds a
user's own task.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from numbers import Integral

import pandas as pd

from probekit.data._control import control_task
from probekit.data._dataset import Level, ProbingDataset
from probekit.data._senteval import SENTENCE_TASKS
from probekit.data._tasks import SOURCES, WORD_TASKS, Task, TaskSpec, load_sentences
from probekit.validation import Interval, Options, declare, validate_params

__all__ = ["TASKS", "register_task", "list_tasks", "build_task"]

logger = logging.getLogger(__name__)

#: Every task by name: the built-in word, edge and structural tasks, then the sentence tasks.
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (*WORD_TASKS, *SENTENCE_TASKS)}


def register_task(name: str, level: Level, sources: tuple[str, ...], description: str):
    """Decorator: register ``builder(sentences, splits, seed, source) -> (labels, names, meta, keep)``.

    Examples
    --------
    >>> from probekit.data import TASKS, register_task
    >>> @register_task("n_words", "sentence", ("ud", "rt"), "Sentence length, even or odd.")
    ... def _n_words(sents, splits, seed, source):
    ...     labels = ["even" if len(s.words) % 2 == 0 else "odd" for s in sents]
    ...     return labels, ("even", "odd"), {"skipped": {}}, list(range(len(sents)))
    >>> TASKS["n_words"].level
    'sentence'
    >>> del TASKS["n_words"]
    """

    def deco(fn):
        TASKS[name] = TaskSpec(name, level, sources, description, fn)
        return fn

    return deco


def list_tasks() -> pd.DataFrame:
    """Every registered task: ``name, level, sources, description``."""
    return pd.DataFrame([{"name": s.name, "level": s.level, "sources": ",".join(s.sources),
                          "description": s.description} for s in TASKS.values()])


@declare({
    "name": [str],
    "source": [Options(SOURCES)],
    "limit": [Interval(Integral, 1, None, closed="left"), None],
    "seed": [Interval(Integral, 0, None, closed="left")],
})
def build_task(name: str, source: str = "ud", *,
               path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None, limit: int | None = None,
               seed: int = 0) -> Task:
    """Build a registered task on real data.

    Parameters
    ----------
    name : str
        A name from :func:`list_tasks`; ``NAME.control`` builds its control task.
    source : {"ud", "rt"}
        Gold UD English EWT, or Rotten Tomatoes with silver spaCy parses.
    path : path-like, optional
        The UD folder (or one ``.conllu`` file, or a mapping split -> file,
        see :func:`probekit.data.ud_files`) for ``source="ud"``; default
        ``$PROBEKIT_UD_PATH``, else the copy fetched by ``probekit data fetch
        ud_ewt`` (an error naming that command when there is none).
    limit : int, optional
        Use only this many sentences (of each UD file; of RT).
    seed : int
        Seed of every random choice (splits for RT, sampling, balancing).

    Examples
    --------
    A gold UD task from a CoNLL-U file (here two sentences written on the spot):

    >>> import pathlib, tempfile
    >>> row = "{}\\t{}\\t_\\t{}\\t_\\t_\\t{}\\t{}\\t_\\t_\\n"   # ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL ...
    >>> conllu = (row.format(1, "Cats", "NOUN", 2, "nsubj") + row.format(2, "sleep", "VERB", 0, "root") + "\\n"
    ...           + row.format(1, "Dogs", "NOUN", 2, "nsubj") + row.format(2, "bark", "VERB", 0, "root") + "\\n")
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "en_ewt-ud-train.conllu"
    >>> _ = p.write_text(conllu)
    >>> t = build_task("upos", "ud", path=p)
    >>> t.label_names, t.dataset.words[0]
    (('NOUN', 'VERB'), ('Cats', 'sleep'))

    Sentiment of the bundled Rotten Tomatoes sentences (the corpus's own labels):

    >>> build_task("sentiment", "rt", limit=40).label_names
    ('neg', 'pos')
    """
    validate_params(build_task, locals())
    if name.endswith(".control"):
        return control_task(build_task(name[: -len(".control")], source, path=path, limit=limit, seed=seed), seed)
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LookupError(f"unknown task {name!r}{hint} (known: {', '.join(TASKS)})")
    spec = TASKS[name]
    if source not in spec.sources:
        raise ValueError(f"task {name!r} is built from source {' or '.join(spec.sources)}, not {source!r}")
    sents, splits = load_sentences(source, path=path, limit=limit, seed=seed)
    labels, names, meta, keep = spec.builder(sents, splits, seed, source)
    if not keep:
        raise ValueError(f"task {name!r} has no examples on this slice of {source!r} ({len(sents)} sentences; "
                         f"skipped: {meta.get('skipped')}); use more data (a larger --limit)")
    sents_k = [sents[i] for i in keep]
    words = list(meta.pop("words")) if "words" in meta else [s.words for s in sents_k]
    ds = ProbingDataset(tuple(" ".join(w) for w in words), tuple(tuple(w) for w in words), tuple(labels),
                        spec.level, tuple(splits[i] for i in keep), tuple(names), dict(meta.get("skipped", {})))
    meta.setdefault("skipped", {})
    meta["n_source_sentences"] = len(sents)
    meta["source_index"] = list(keep)  # example k comes from source sentence keep[k]
    for reason, n in meta["skipped"].items():
        if n:
            logger.info("task %s/%s: skipped %d sentences (%s)", name, source, n, reason)
    return Task(name, spec.level, ds, tuple(names), seed, spec.description, source, None, meta)
