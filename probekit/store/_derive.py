"""``probekit.store.derive``: a store of pooled rows made from other stores of the same model, without the model.

Extract once, analyse many: the token rows of a store, with the word
alignment it keeps (each token's word), are all a word- or sentence-pooled
store of some of its examples needs. :func:`derive` finds each wanted example
in the source stores (by its words, or by its text for untokenized texts),
pools its token rows exactly as :func:`probekit.extract` pools a captured
forward (in float32, then cast) -- or copies the pooled rows when a source
stored them -- and writes an ordinary store: shards committed atomically with
checksums, resumable, refused over anything probekit did not write.

Its fingerprint names the sources' fingerprints, the examples, sites,
pooling and dtype, and carries the sources' model identity (weights, recipe,
interventions, tokenization), so ``ActivationStore.open(path, model=m)``
checks a derived store like an extracted one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from probekit.fingerprint import hash_json
from probekit.model import (
    SENTENCE_POOLING,
    WORD_POOLING,
    PoolPlan,
    Site,
    check_word_spans,
    pool_sentences_many,
    pool_words_many,
)
from probekit.profiling import phase
from probekit.store._data import as_data
from probekit.store._extract import check_pooling, pooling_component
from probekit.store._layout import begin_store, finish_store, writing
from probekit.store._manifest import FORMAT_VERSION, MANIFEST, StoreError, read_manifest
from probekit.store._remote import local_path
from probekit.store._shards import ShardWriter, reuse_shard
from probekit.store._store import ActivationStore, stream_names
from probekit.store._writer import to_store_dtype

__all__ = ["derive", "MissingExamplesError", "find_examples"]

logger = logging.getLogger(__name__)

#: components every source must share: together they say "the same model, run the same way"
#: token rows pooled in one go (bounds the float32 copy of a chunk of a shard's token rows)
_POOL_ROWS = 1 << 16
_IDENTITY = ("weights", "forward", "recipe", "interventions", "tokenization")
_DTYPES = {"float16": np.float16, "float32": np.float32}


class MissingExamplesError(StoreError, LookupError):
    """Some examples are in none of the source stores (so they need a forward pass)."""

    def __init__(self, message: str, missing: Sequence[int]):
        super().__init__(message)
        self.missing = list(missing)


def _pre_split(store: ActivationStore) -> bool:
    return "words" in store._example_columns()


def _keys(store: ActivationStore) -> list[tuple]:
    """A lookup key per example: its words (pre-split data) or its text."""
    if _pre_split(store):
        return [("words", *w) for sc in store._sidecars for w in sc["words"]]
    df = store._read_examples(columns=["text"])
    return [("text", t) for t in df["text"].tolist()]


def _data_keys(data) -> list[tuple]:
    if data.words is not None:
        return [("words", *w) for w in data.words]
    return [("text", t) for t in data.texts]


def find_examples(sources: Sequence[ActivationStore], data) -> tuple[np.ndarray, np.ndarray]:
    """Where each example of ``data`` is in ``sources``: ``(source index, example index)``, ``-1`` when absent.

    Pre-split examples match by their words, texts by their text (a text is
    not looked up among pre-split examples: the two tokenize differently).
    The first source holding an example wins.
    """
    data = as_data(data)
    where: dict[tuple, tuple[int, int]] = {}
    for k, st in enumerate(sources):
        for i, key in enumerate(_keys(st)):
            where.setdefault(key, (k, i))
    found = [where.get(key, (-1, -1)) for key in _data_keys(data)]
    src = np.array([f[0] for f in found], dtype=np.int64)
    ex = np.array([f[1] for f in found], dtype=np.int64)
    return src, ex


def _check_sources(sources: Sequence[ActivationStore]) -> dict[str, Any]:
    if not sources:
        raise ValueError("derive needs at least one source store")
    first = sources[0].manifest["components"]
    for st in sources[1:]:
        comps = st.manifest["components"]
        for key in _IDENTITY:
            if hash_json(comps.get(key)) != hash_json(first.get(key)):
                raise StoreError(f"the source stores come from different models or settings: {st.path} and "
                                 f"{sources[0].path} differ in {key!r}; derive from stores of one model")
        if comps["dtype"].get("autocast") != first["dtype"].get("autocast"):
            raise StoreError(f"{st.path} and {sources[0].path} were extracted with different autocast settings")
    return first


def _source_stream(store: ActivationStore, site: Site, level: str, how: str) -> tuple[str, bool]:
    """The stream of ``store`` that gives ``level`` rows pooled by ``how``: ``(name, pooled already)``."""
    name = store._stream(site, level, how)
    if name is not None:
        return name, True
    tok = store._stream(site, "token", None)
    if tok is None:
        raise StoreError(f"{store.path} holds neither token rows nor {level} rows pooled by {how!r} at {site} "
                         f"(stored: {', '.join(store._streams[site])}); it cannot give these rows")
    return tok, False


def derive(
    sources: ActivationStore | str | os.PathLike | Sequence[ActivationStore | str | os.PathLike],
    data: Any,
    out: str | os.PathLike,
    sites: Sequence[Site | str] | None = None,
    *,
    word_pooling: Sequence[str] = ("mean",),
    sentence_pooling: Sequence[str] = ("mean",),
    dtype: Literal["float16", "float32"] | None = None,
    shard_size: int = 512,
    overwrite: bool = False,
    progress: bool | None = None,
    device: str | torch.device | None = None,
) -> ActivationStore:
    """Write the pooled rows of ``data``'s examples, taken from stores that hold them, without running a model.

    Parameters
    ----------
    sources : store or path, or a sequence of them
        Stores of one model (same weights, recipe, interventions and
        tokenization) that together hold every example of ``data``: token
        rows (pooled here, using the word alignment the store keeps) or the
        pooled rows asked for (copied).
    data : list of str, list of list of str, or DataFrame
        The examples, in the order the new store keeps (as for
        :func:`probekit.extract`; metadata columns are kept). Pre-split
        examples are found by their words, texts by their text.
    out : path or URL
        Store directory (reused when it holds this derivation, resumed when
        interrupted; anything probekit did not write is refused untouched). A
        URL (``s3://...``) is derived into a local staging folder, then pushed
        (see :func:`probekit.store.push`).
    sites : sequence of Site or str, optional
        Default: every token-level site of the first source.
    word_pooling, sentence_pooling : sequence of str
        Pooled levels to store (token rows are never copied).
    dtype : {"float16", "float32"}, optional
        Default: the first source's dtype. Pooling runs in float32 either way.
    shard_size : int
        Examples per shard of the new store.
    overwrite : bool
        Replace a probekit store with another fingerprint at ``out``.
    progress : bool, optional
        Show a progress bar (default: when attached to a terminal).
    device : str or torch.device, optional
        Where token rows are pooled (default CPU; ``"cuda"`` pools on a GPU). The
        rows are the same up to float32 rounding.

    Returns
    -------
    ActivationStore

    Raises
    ------
    MissingExamplesError
        Some examples are in no source (``.missing`` lists them); nothing is written.
    StoreLockedError
        Another process is writing ``out``.
    StoreError
        The sources come from different models, or lack the rows asked for.

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> d = tempfile.mkdtemp()
    >>> tokens = probekit.extract(m, [["a", "cat", "sat"], ["it", "rained"], ["so", "it", "goes"]],
    ...                           out=d + "/tokens", progress=False)
    >>> words = derive(tokens, [["so", "it", "goes"], ["a", "cat", "sat"]], d + "/words", sentence_pooling=())
    >>> words["L1.resid"].words(0).shape
    (3, 32)
    """
    if isinstance(sources, (ActivationStore, str, os.PathLike)):
        sources = [sources]
    sources = [s if isinstance(s, ActivationStore) else ActivationStore.open(s) for s in sources]
    if local_path(out) is None:  # a URL: derived in a local staging folder, then pushed (manifest last)
        import shutil

        from probekit.store._cache import cache_root, url_key
        from probekit.store._transfer import push

        stage = cache_root() / "staging" / f"{url_key(str(out))}.derive"
        derive(sources, data, stage, sites, word_pooling=word_pooling, sentence_pooling=sentence_pooling,
               dtype=dtype, shard_size=shard_size, overwrite=True, progress=progress, device=device)
        push(stage, str(out), overwrite=overwrite)
        shutil.rmtree(stage)
        return ActivationStore.open(str(out))
    first = _check_sources(sources)
    word_pooling = check_pooling(word_pooling, WORD_POOLING, "word_pooling")
    sentence_pooling = check_pooling(sentence_pooling, SENTENCE_POOLING, "sentence_pooling")
    if not word_pooling and not sentence_pooling:
        raise ValueError("derive stores pooled rows only: give word_pooling or sentence_pooling")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1, got {shard_size!r}")
    dtype = dtype or sources[0].settings["dtype"]
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, not {dtype!r}")
    site_list = _sites(sources[0], sites)
    for st in sources:
        for s in site_list:
            if s not in st._streams:
                raise StoreError(f"site {s} is not in the source store {st.path} (stored: "
                                 f"{', '.join(map(str, st.sites))})")
    data = as_data(data)
    src, ex = find_examples(sources, data)
    missing = np.flatnonzero(src < 0)
    if len(missing):
        i = int(missing[0])
        shown = data.words[i] if data.words is not None else data.texts[i]
        raise MissingExamplesError(
            f"{len(missing)} of {len(data)} examples are in none of the source stores, first example {i}: "
            f"{' '.join(shown)[:80] if data.words is not None else str(shown)[:80]!r}. Extract them with "
            "probekit.extract (same model) and pass that store as a source too", missing.tolist())
    settings = dict(dtype=dtype, tokens=False, word_pooling=word_pooling, sentence_pooling=sentence_pooling,
                    shard_size=shard_size, long_inputs=sources[0].settings.get("long_inputs", "error"),
                    stride=sources[0].settings.get("stride"), autocast=sources[0].settings.get("autocast"))
    components = {
        "format_version": FORMAT_VERSION,
        **{k: first.get(k) for k in _IDENTITY if k in first},
        "data": {"sha256": data.digest(), "n_examples": len(data)},
        "sites": [str(s) for s in site_list],
        "pooling": pooling_component(settings),
        "dtype": {"store": dtype, "autocast": first["dtype"].get("autocast"), "params": first["dtype"].get("params")},
        "layout": {"shard_size": shard_size},
        # which source gives each example decides its rows, so the sources are part of the identity
        "derived_from": {"sources": [st.fingerprint for st in sources],
                         "rows": hash_json([src.tolist(), ex.tolist()])},
    }
    fp = hash_json(components)
    out = Path(out)
    n_shards = -(-len(data) // shard_size)
    with writing(out):  # one writer at a time, from the folder check to the complete manifest
        begin_store(out, {
            "format_version": FORMAT_VERSION, "fingerprint": fp, "components": components, "complete": False,
            "model": dict(sources[0].manifest["model"]), "sites": [str(s) for s in site_list], "settings": settings,
            "n_examples": len(data), "n_shards": n_shards, "files": {},
            "derived_from": [st.location for st in sources],
        }, overwrite, data)
        root = out / "shards"
        manifest = read_manifest(out / MANIFEST)

        t0 = time.perf_counter()
        dev = torch.device(device) if device is not None else torch.device("cpu")
        streams = stream_names(site_list, settings)
        computed = reused = 0
        from tqdm.auto import tqdm

        bar = tqdm(total=len(data), unit="ex", desc="derive", dynamic_ncols=True,
                   disable=(not progress) if progress is not None else None)
        try:
            for k in range(n_shards):
                start, stop = k * shard_size, min((k + 1) * shard_size, len(data))
                if reuse_shard(root, k, manifest):
                    reused += 1
                    bar.update(stop - start)
                    continue
                _write_shard(root, k, start, stop, sources, src, ex, site_list, streams, _DTYPES[dtype], fp, dev)
                computed += 1
                bar.update(stop - start)
        finally:
            bar.close()
        finish_store(out, fp, n_shards, {"ranks": 1, "seconds": time.perf_counter() - t0, "shards_computed": computed,
                                         "shards_reused": reused, "tokens_computed": 0, "examples_computed": 0,
                                         "derived": True}, "deriving")
    logger.info("%s: derived %d examples from %d store(s) without a forward pass", out, len(data), len(sources))
    return ActivationStore.open(out)


def _sites(store: ActivationStore, sites) -> list[Site]:
    if sites is None:
        out = [s for s in store.sites if not s.is_attention]
        if not out:
            raise StoreError(f"{store.path} has no token-level sites to pool")
        return out
    out = [Site.parse(s).without_head() for s in ([sites] if isinstance(sites, (str, Site)) else sites)]
    for s in out:
        if s.is_attention:
            raise ValueError(f"{s} is an attention pattern; derive pools token-level sites only")
    if not out:
        raise ValueError("sites is empty; name at least one site, e.g. 'L0.resid'")
    return list(dict.fromkeys(out))


def _chunks(items: list[int], sizes: list[int], budget: int) -> list[list[int]]:
    """``items`` in order, cut into runs whose ``sizes`` add up to at most ``budget`` (a larger item runs alone)."""
    out: list[list[int]] = []
    total = 0
    for item, size in zip(items, sizes):
        if not out or total + size > budget:
            out.append([])
            total = 0
        out[-1].append(item)
        total += size
    return out


def _write_shard(root: Path, k: int, start: int, stop: int, sources, src, ex, sites, streams, np_dtype, fp,
                 device: torch.device) -> None:
    items = [(sources[int(src[i])], int(ex[i])) for i in range(start, stop)]
    n_tok = [int(st.n_tokens[j]) for st, j in items]
    n_words = [int(st.n_words[j]) for st, j in items]
    specs: dict[str, tuple[Any, tuple[int, ...]]] = {"input_ids": (np.int32, (sum(n_tok),)),
                                                     "word_ids": (np.int32, (sum(n_tok),))}
    for s in sites:
        d = sources[0][s].d
        for name, (level, _how) in streams[s].items():
            rows = sum(n_words) if level == "word" else len(items)
            specs[name] = (np_dtype, (rows, d))
    meta = {"fingerprint": fp, "start": start, "stop": stop, "n_tokens": n_tok, "n_words": n_words,
            "words": [st.words(j) for st, j in items]}
    sw = ShardWriter(root, k, specs, meta)
    try:
        sw.write("input_ids", 0, np.concatenate([st.input_ids(j) for st, j in items]).astype(np.int32))
        sw.write("word_ids", 0, np.concatenate([st.word_ids(j) for st, j in items]).astype(np.int32))
        word_at = np.concatenate([[0], np.cumsum(n_words)]).tolist()
        out_dtype = torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype
        for s in sites:
            # examples whose source has no such pooled rows are pooled from their token rows, a chunk at a time
            todo = {name: [] for name in streams[s]}
            for e, (st, j) in enumerate(items):
                for name, (level, how) in streams[s].items():
                    if not _source_stream(st, s, level, how)[1]:
                        todo[name].append(e)
                        continue
                    row = np.asarray(st[s].words(j, how)) if level == "word" else \
                        np.asarray(st[s]._sentence(j, how))[None]
                    sw.write(name, word_at[e] if level == "word" else e,
                             to_store_dtype(row, np_dtype, name, k))
            wanted = sorted({e for es in todo.values() for e in es})
            for chunk in _chunks(wanted, [n_tok[e] for e in wanted], _POOL_ROWS):
                lengths = [n_tok[e] for e in chunk]
                with phase("read"):
                    x = torch.from_numpy(np.concatenate([np.asarray(items[e][0][s].example(items[e][1]),
                                                                    dtype=np.float32) for e in chunk])).to(device)
                with phase("pool"):
                    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
                    spans = [items[e][0].word_spans(items[e][1]) for e in chunk] \
                        if any(level == "word" for level, _ in streams[s].values()) else None
                    for e, ex_spans in zip(chunk, spans or ()):  # a word with no tokens has no word row
                        check_word_spans(ex_spans, items[e][0].words(items[e][1]), example=start + e)
                    plan = PoolPlan.build(starts, lengths, spans)
                for name, (level, how) in streams[s].items():
                    keep = set(todo[name])
                    if not keep:
                        continue
                    with phase("pool"):
                        pooled = to_store_dtype(pool_words_many(x, plan, how, dtype=torch.float32) if level == "word"
                                                else pool_sentences_many(x, plan, how, dtype=torch.float32),
                                                out_dtype, name, k).cpu().numpy()
                    with phase("write"):
                        if level == "word":
                            at = np.concatenate([[0], np.cumsum(plan.n_words)]).tolist()
                            for i, e in enumerate(chunk):
                                if e in keep:
                                    sw.write(name, word_at[e], pooled[at[i]: at[i + 1]])
                        else:
                            for i, e in enumerate(chunk):
                                if e in keep:
                                    sw.write(name, e, pooled[i: i + 1])
        with phase("write"):
            sw.commit()
    except BaseException:
        sw.abort()
        raise

