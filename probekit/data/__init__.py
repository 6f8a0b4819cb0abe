"""Probing data: corpora, annotations, task builders, and fetching pinned gold data.

Notes
-----
Gold UD English EWT comes from the network, once, into
``$PROBEKIT_CACHE/data`` (checked against its pinned checksums); then
``source="ud"`` reads the fetched copy::

    from probekit.data import build_task, fetch
    fetch("ud_ewt")                      # UD English EWT r2.16, verified
    t = build_task("upos", source="ud")  # the fetched copy

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
