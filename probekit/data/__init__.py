"""Probing data: corpora, annotations and task builders.

Examples
--------
>>> from probekit.data import build_task, control_task      # doctest: +SKIP
>>> t = build_task("upos", source="ud", path="../shared/data/ud_en_ewt")   # doctest: +SKIP
>>> c = control_task(t, seed=0)                             # doctest: +SKIP
>>> t.class_stats()                                         # doctest: +SKIP
"""

from probekit.data._conllu import ConlluError, Sentence, read_conllu, tree_depths, tree_distances, ud_files
from probekit.data._control import control_task
from probekit.data._dataset import ProbingDataset, from_conllu
from probekit.data._movie_reviews import load_movie_reviews
from probekit.data._spacy import annotate
from probekit.data._tasks import TASKS, Task, build_task, list_tasks, load_sentences, register_task

__all__ = [
    "ConlluError",
    "ProbingDataset",
    "Sentence",
    "TASKS",
    "Task",
    "annotate",
    "build_task",
    "control_task",
    "from_conllu",
    "list_tasks",
    "load_movie_reviews",
    "load_sentences",
    "read_conllu",
    "register_task",
    "tree_depths",
    "tree_distances",
    "ud_files",
]
