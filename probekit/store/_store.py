"""Reading a store: :class:`ActivationStore` and its per-site memory-mapped views.

A store is opened only through a complete manifest, and read as untrusted
input (:mod:`probekit.store._validate`): every shard sidecar is checked on
open (its names, sizes, shapes and dtypes, against each other and against the
manifest), every file it names is looked at (a regular file inside the store,
of the declared size) before anything is mapped, and every stream file is
checked against its checksum the first time it is touched (``verify="lazy"``,
the default) or all at once (``verify="full"``). A damaged shard raises
:class:`CorruptShardError` and is never read; re-running the same extraction
repairs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

from probekit.fingerprint import file_checksum
from probekit.model import ROLES, Site, as_hooked_model, pool_sentence, pool_words
from probekit.store._data import as_data
from probekit.store._localfs import open_file
from probekit.store._manifest import (
    EXAMPLES,
    MANIFEST,
    CorruptShardError,
    FingerprintMismatchError,
    StoreError,
    describe_mismatch,
    read_manifest,
)
from probekit.store._remote import local_path
from probekit.store._row_view import RowView
from probekit.store._shards import open_stream, read_store_sidecars, verify_file
from probekit.store._validate import stream_names

if TYPE_CHECKING:
    from probekit.store._cache import ShardCache

__all__ = ["ActivationStore", "SiteView", "Batch", "stream_names"]

logger = logging.getLogger(__name__)

Level = Literal["token", "word", "sentence"]


class Batch(NamedTuple):
    """One batch from :meth:`SiteView.iter_batches`.

    ``examples`` are the example indices of the batch; ``x`` the rows
    (``[rows, d]``); ``example_of_row`` the example of every row (for token
    and word levels; equal to ``examples`` at sentence level).
    """

    examples: np.ndarray
    x: np.ndarray | torch.Tensor
    example_of_row: np.ndarray


class ActivationStore:
    """Activations on disk: per-site, per-shard memory maps plus a manifest.

    Open with :meth:`open`; :func:`probekit.extract` returns one.

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> out = tempfile.mkdtemp() + "/acts"
    >>> _ = probekit.extract(m, ["a cat sat", "it rained"], ["L0.resid", "L1.resid"], out)
    >>> store = ActivationStore.open(out)
    >>> store["L1.resid"].example(0).shape
    (5, 32)
    >>> len(store.examples)
    2
    """

    def __init__(self, path: Path, manifest: dict, sidecars: list[dict], verify: str):
        self.path = path
        self.manifest = manifest
        self._sidecars = sidecars
        self._verify = verify
        self._checked: set[tuple[int, str]] = set()
        self._maps: dict[tuple[int, str, str], np.ndarray] = {}
        self.sites: list[Site] = [Site.parse(s) for s in manifest["sites"]]
        self.settings: dict = manifest["settings"]
        self._streams = stream_names(self.sites, self.settings)
        self._starts = np.array([sc["start"] for sc in sidecars], dtype=np.int64)
        self.n_tokens = np.array([n for sc in sidecars for n in sc["n_tokens"]], dtype=np.int64)
        self.n_words = np.array([n for sc in sidecars for n in sc["n_words"]], dtype=np.int64)
        self._tok_off = [np.concatenate([[0], np.cumsum(sc["n_tokens"])]) for sc in sidecars]
        self._word_off = [np.concatenate([[0], np.cumsum(sc["n_words"])]) for sc in sidecars]
        self._examples: pd.DataFrame | None = None
        self._examples_ok = False
        self._fetcher: ShardCache | None = None  # a store at a URL: fetches data files into the local cache

    # ---------------------------------------------------------------- open
    @classmethod
    def open(cls, path: str | os.PathLike, *, model=None, data=None, interventions=None,
             verify: Literal["lazy", "full"] = "lazy") -> ActivationStore:
        """Open a complete store.

        Parameters
        ----------
        path : path or URL
            The store directory, or its fsspec URL (``s3://bucket/run``, ``memory://...``, ``hf://...``,
            ``file://...``): a store at a URL is read through the verified local cache (see
            :mod:`probekit.store._cache`).
        model : HookedModel or ModelVariant, optional
            When given, the store must have been made from its weights, and
            with ``interventions`` (by default none: a store extracted with
            interventions is not the plain model's store).
        interventions : sequence, optional
            The interventions the store must have been extracted with
            (checked whenever ``model`` or ``interventions`` is given).
        data : optional
            When given (anything :func:`probekit.extract` takes), the store
            must have been made from exactly this data.
        verify : {"lazy", "full"}
            Check each stream file's checksum when first read, or every file now.

        Raises
        ------
        StoreError
            No manifest, an incomplete extraction, or a damaged sidecar.
        FingerprintMismatchError
            ``model`` or ``data`` differ from the store's.
        """
        if verify not in ("lazy", "full"):
            raise ValueError(f"verify must be 'lazy' or 'full', not {verify!r}")
        local = local_path(path)
        fetcher = sizes = None
        if local is None:  # a store at a URL: its small files mirrored into the cache, its data fetched on use
            from probekit.store._cache import open_remote

            path, sizes, fetcher = open_remote(str(path))
        else:
            path = local
        shown = fetcher.remote.url if fetcher is not None else path
        mpath = path / MANIFEST
        try:
            manifest = read_manifest(mpath)
        except FileNotFoundError:
            what = "does not exist" if not path.exists() else "has no manifest.json"
            raise StoreError(f"{path} {what}: it is not a probekit activation store") from None
        if not manifest["complete"]:
            raise StoreError(f"{shown} is incomplete (the extraction was interrupted or is still running); "
                             "re-run probekit.extract with the same arguments to resume it")
        if not isinstance(manifest["files"].get(EXAMPLES), str):
            raise StoreError(f"{shown}/{MANIFEST} records no checksum of {EXAMPLES} (edited by hand or damaged); "
                             "re-extract the store")
        comps = manifest["components"]
        if model is not None:
            model = as_hooked_model(model)
        if model is not None and model.weights_hash() != comps["weights"]:
            raise FingerprintMismatchError(
                f"{path} was extracted from other model weights (store weights sha256 {comps['weights'][:12]}..., "
                f"this model {model.weights_hash()[:12]}...; store model: {manifest['model']['name']})")
        if model is not None:
            forward = model.forward_settings(attention=any(Site.parse(s).is_attention for s in manifest["sites"]))
            if forward != comps.get("forward"):
                raise FingerprintMismatchError(
                    f"{path} was extracted from a model run with other settings: "
                    f"{describe_mismatch({'forward': comps.get('forward')}, {'forward': forward})}")
        if model is not None or interventions is not None:
            from probekit.fingerprint import hash_json, jsonable
            from probekit.model import as_interventions

            want = [jsonable(iv.to_dict()) for iv in as_interventions(interventions)]
            have = comps.get("interventions") or []
            if hash_json(want) != hash_json(have):
                def names(ds):
                    return ", ".join(f"{d.get('type', d.get('method'))} at {d.get('site')}" for d in ds) or "none"
                raise FingerprintMismatchError(
                    f"{path} was extracted with interventions [{names(have)}], not [{names(want)}]: its activations "
                    "are not this model's as asked; open it with the same interventions= or extract again")
        if data is not None:
            digest = as_data(data).digest()
            if digest != comps["data"]["sha256"]:
                raise FingerprintMismatchError(
                    f"{path} was extracted from other data ({comps['data']['n_examples']} examples, sha256 "
                    f"{comps['data']['sha256'][:12]}...; given data: {len(as_data(data))} examples, sha256 "
                    f"{digest[:12]}...)")
        try:
            sidecars = read_store_sidecars(path, manifest, sizes)
        except StoreError as exc:
            if fetcher is None:
                raise
            # messages name the store's URL, not the cache folder its JSON files were checked in
            raise type(exc)(str(exc).replace(str(path), fetcher.remote.url)) from None
        store = cls(path, manifest, sidecars, verify)
        store._fetcher = fetcher
        if verify == "full":
            store.verify()
        return store

    @property
    def interventions(self) -> list[dict]:
        """Descriptions of the interventions the store was extracted with (empty for the plain model)."""
        return list(self.manifest["components"].get("interventions") or [])

    def verify(self) -> None:
        """Check every file of the store against its checksum now (the example table, every stream file)."""
        self._check_examples()
        for k, sc in enumerate(self._sidecars):
            for name in sc["streams"]:
                self._check(k, name)

    def _check_examples(self) -> None:
        if self._examples_ok:
            return
        path = self.path / EXAMPLES
        recorded = self.manifest["files"][EXAMPLES]
        algorithm = recorded.partition(":")[0]
        try:
            with open_file(path) as f:
                found = file_checksum(f, algorithm)
        except FileNotFoundError:
            raise CorruptShardError(f"{path} is missing; re-run probekit.extract with the same arguments to "
                                    "repair the store") from None
        except (ValueError, ImportError) as exc:
            raise CorruptShardError(f"{path} cannot be checked: {exc}") from exc
        if found != recorded:
            raise CorruptShardError(f"{path} does not match its {algorithm} checksum (corrupted); re-run "
                                    "probekit.extract with the same arguments to repair the store")
        self._examples_ok = True

    # ---------------------------------------------------------------- facts
    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.settings["dtype"])

    def __len__(self) -> int:
        return self.n_examples

    def __repr__(self) -> str:
        return (f"ActivationStore({self.location!r}, {self.manifest['model']['name']}, {self.n_examples} examples, "
                f"{len(self.sites)} sites, {self.settings['dtype']})")

    def __contains__(self, site: object) -> bool:
        try:
            return Site.parse(site).without_head() in self._streams
        except (TypeError, ValueError):
            return False

    @property
    def examples(self) -> pd.DataFrame:
        """Example metadata: ``id``, ``text``, labels..., ``words``, ``n_tokens``, ``n_words``."""
        if self._examples is None:
            df = self._read_examples()
            df["words"] = [w for sc in self._sidecars for w in sc["words"]]
            df["n_tokens"] = self.n_tokens
            df["n_words"] = self.n_words
            self._examples = df
        return self._examples.copy()

    def _read_examples(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The example table as stored (checked against its checksum first), one row per example."""
        self._check_examples()
        with open_file(self.path / EXAMPLES) as f:
            df = pd.read_parquet(f, columns=columns)
        if len(df) != self.n_examples:
            raise StoreError(f"{self.path / EXAMPLES} has {len(df)} rows for {self.n_examples} examples (edited by "
                             "hand, damaged or forged); re-extract the store")
        return df

    def _example_columns(self) -> list[str]:
        """The columns of the stored example table."""
        import pyarrow.parquet as pq

        self._check_examples()
        with open_file(self.path / EXAMPLES) as f:
            return list(pq.read_schema(f).names)

    def words(self, i: int) -> list[str]:
        """The words of example ``i`` (the units of word pooling)."""
        k, j = self._locate(i)
        return list(self._sidecars[k]["words"][j])

    def input_ids(self, i: int) -> np.ndarray:
        """Token ids of example ``i``, special tokens included."""
        k, j = self._locate(i)
        a, b = self._tok_off[k][j], self._tok_off[k][j + 1]
        return np.asarray(self._map(k, "input_ids")[a:b])

    def word_ids(self, i: int) -> np.ndarray:
        """Word of every token of example ``i`` (-1 for special tokens)."""
        k, j = self._locate(i)
        a, b = self._tok_off[k][j], self._tok_off[k][j + 1]
        return np.asarray(self._map(k, "word_ids")[a:b])

    @property
    def is_chat(self) -> bool:
        """Whether the store holds conversations (each token's turn, role and mark are stored)."""
        return self.settings.get("chat") is True

    def _chat_stream(self, i: int, name: str) -> np.ndarray:
        if not self.is_chat:
            raise ValueError(f"{self.path} holds plain texts, not conversations: its tokens have no turns or roles")
        k, j = self._locate(i)
        a, b = self._tok_off[k][j], self._tok_off[k][j + 1]
        return np.asarray(self._map(k, name)[a:b])

    def turn_ids(self, i: int) -> np.ndarray:
        """Turn (message index) of every token of conversation ``i``."""
        return self._chat_stream(i, "turn_ids")

    def roles(self, i: int) -> list[str]:
        """Role of every token of conversation ``i`` (``"user"``, ...; see ``probekit.model.ROLES``)."""
        return [ROLES[r] for r in self._chat_stream(i, "role_ids").tolist()]

    def marked(self, i: int) -> np.ndarray:
        """Whether each token of conversation ``i`` lies in its marked part (boolean)."""
        return self._chat_stream(i, "marked").astype(bool)

    def word_spans(self, i: int) -> list[tuple[int, int]]:
        """Token span ``[start, stop)`` of every word of example ``i``."""
        wid = self.word_ids(i)
        spans = [[-1, -1] for _ in range(int(self.n_words[i]))]
        for t, w in enumerate(wid.tolist()):
            if w >= len(spans):
                raise StoreError(f"{self.path}: token {t} of example {i} belongs to word {w}, but the example has "
                                 f"{len(spans)} words (edited by hand, damaged or forged); re-extract the store")
            if w >= 0:
                if spans[w][0] < 0:
                    spans[w][0] = t
                spans[w][1] = t + 1
        return [tuple(s) for s in spans]

    def heads(self, layer: int) -> int:
        """Attention heads of ``layer`` (per layer: a head-pruned model has fewer in some)."""
        model = self.manifest["model"]
        per_layer = model.get("heads_per_layer")
        return int(per_layer[layer]) if per_layer else int(model["n_heads"])

    def __getitem__(self, site: Site | str) -> SiteView:
        s = Site.parse(site)
        if s.without_head() not in self._streams:
            raise KeyError(f"site {s} is not in this store; stored: {', '.join(map(str, self.sites))}")
        return SiteView(self, s)

    # ------------------------------------------------------------ internals
    def _locate(self, i: int) -> tuple[int, int]:
        i = int(i)
        if i < 0:
            i += self.n_examples
        if not 0 <= i < self.n_examples:
            raise IndexError(f"example {i} is out of range; the store has {self.n_examples} examples")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        return k, i - int(self._starts[k])

    @property
    def url(self) -> str | None:
        """The URL of a store opened from one (its files are then read through the local cache at ``path``)."""
        return None if self._fetcher is None else self._fetcher.remote.url

    @property
    def location(self) -> str:
        """Where the store lives: its URL, or its local path."""
        return self.url or str(self.path)

    def _check(self, k: int, name: str) -> None:
        if self._fetcher is not None:  # a store at a URL: fetched (or a cached copy hashed), the next shard prefetched
            self._fetcher.check(self, k, name)
            return
        if (k, name) not in self._checked:
            verify_file(self.path / "shards", self._sidecars[k], name)
            self._checked.add((k, name))

    def _map(self, k: int, name: str, mode: str = "r") -> np.ndarray:
        key = (k, name, mode)
        if key not in self._maps:
            self._check(k, name)
            self._maps[key] = open_stream(self.path / "shards", self._sidecars[k], name, mode)
        return self._maps[key]

    def _stream(self, site: Site, level: str, how: str | None) -> str | None:
        for name, (lv, h) in self._streams[site].items():
            if lv == level and (how is None or h == how):
                return name
        return None


class SiteView:
    """Memory-mapped access to one site of a store (``store[site]``).

    For token-level sites: ``view[i]`` / ``view.example(i)`` is example ``i``'s
    ``[tokens, d]`` rows, ``view.words(i)`` its ``[words, d]`` word vectors,
    ``view.sentences()`` one vector per example, ``view.numpy(level)`` /
    ``view.torch(level)`` every row of a level, ``view.iter_batches(...)``
    batches of rows. For attention sites ``view[i]`` is ``[heads, n, n]``
    (``[n, n]`` for a single-head site such as ``L3.attn.pattern.h2``).
    Pooled levels come from the stored pooled streams when they were
    extracted, so they do not touch token rows; otherwise they are pooled
    from the token rows on the fly.
    """

    def __init__(self, store: ActivationStore, site: Site):
        self.store = store
        self.site = site
        self._base = site.without_head()

    def __repr__(self) -> str:
        levels = sorted({lv for lv, _ in self.store._streams[self._base].values()})
        return f"SiteView({self.site}, {len(self)} examples, stored levels: {', '.join(levels)})"

    def __len__(self) -> int:
        return self.store.n_examples

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.example(int(index))
        if isinstance(index, slice):
            return [self.example(i) for i in range(*index.indices(len(self)))]
        if isinstance(index, (list, tuple, np.ndarray)):
            return [self.example(int(i)) for i in index]
        raise TypeError(f"index a SiteView with an int, a slice or a list of ints, not {type(index).__name__}")

    @property
    def d(self) -> int:
        """Feature width (heads for attention sites)."""
        sc = self.store._sidecars[0]
        name = next(iter(self.store._streams[self._base]))
        return int(sc["streams"][name]["shape"][-1]) if not self.site.is_attention else self._heads()

    def _heads(self) -> int:
        return self.store.heads(self.site.layer)

    def _token_stream(self) -> str:
        name = self.store._stream(self._base, "token", None)
        if name is None:
            raise KeyError(f"{self.site}: token rows were not stored (extracted with tokens=False); "
                           f"stored: {', '.join(self.store._streams[self._base])}")
        return name

    def example(self, i: int) -> np.ndarray:
        """Rows of example ``i``: ``[tokens, d]``, or ``[heads, n, n]`` for attention (read-only memmap)."""
        st = self.store
        k, j = st._locate(i)
        if self.site.is_attention:
            n = int(st._sidecars[k]["n_tokens"][j])
            h = self._heads()
            sizes = np.array(st._sidecars[k]["n_tokens"][:j], dtype=np.int64)
            a = int((sizes * sizes).sum()) * h
            x = st._map(k, str(self._base))[a: a + h * n * n].reshape(h, n, n)
            return x if self.site.head is None else x[self.site.head]
        a, b = st._tok_off[k][j], st._tok_off[k][j + 1]
        return st._map(k, self._token_stream())[a:b]

    def words(self, i: int, how: str | None = None) -> np.ndarray:
        """Word vectors of example ``i`` (``[words, d]``), stored or pooled from tokens."""
        self._no_attention("words")
        st = self.store
        k, j = st._locate(i)
        name = st._stream(self._base, "word", how)
        if name is not None:
            a, b = st._word_off[k][j], st._word_off[k][j + 1]
            return st._map(k, name)[a:b]
        x = torch.from_numpy(np.asarray(self.example(i), dtype=np.float32))
        return pool_words(x, st.word_spans(i), how or "mean", words=st.words(i), example=i).to(
            _torch_dtype(st.dtype)).numpy()

    def sentences(self, how: str | None = None) -> np.ndarray:
        """One vector per example (``[examples, d]``), stored or pooled from tokens."""
        return self.numpy("sentence", how)

    def numpy(self, level: Level = "token", how: str | None = None) -> np.ndarray:
        """Every row of ``level`` across the store.

        With one shard this is the memory map itself; with several, the
        shards are concatenated (a copy in memory): use :meth:`iter_batches`
        for data larger than memory.
        """
        self._no_attention("numpy")
        parts = self._level_parts(level, how, mode="r")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def row_view(self, level: Level = "token", how: str | None = None) -> RowView:
        """Every row of ``level`` as a :class:`~probekit.store.RowView`: sliced shard by shard, never concatenated."""
        self._no_attention("row_view")
        return RowView(self._level_parts(level, how, mode="r"))

    def torch(self, level: Level = "token", how: str | None = None) -> torch.Tensor:
        """:meth:`numpy` as a tensor (zero-copy over a copy-on-write map when one shard)."""
        self._no_attention("torch")
        parts = self._level_parts(level, how, mode="c")
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return torch.from_numpy(arr)

    def rows(self, level: Level = "word", how: str | None = None):
        """A :class:`~probekit.store.RowReader` over the stored rows of ``level`` (read chunk by chunk).

        Unlike :meth:`numpy`, the reader keeps nothing mapped between reads, so a
        computation that reads a store larger than memory in chunks stays within
        the memory of a chunk.

        Raises
        ------
        KeyError
            ``level`` (with ``how``) was not stored for this site (it would have to be
            pooled from token rows).
        """
        from probekit.store._rows import RowReader

        self._no_attention("rows")
        if level not in ("token", "word", "sentence"):
            raise ValueError(f"level must be 'token', 'word' or 'sentence', not {level!r}")
        name = self._token_stream() if level == "token" else self.store._stream(self._base, level, how)
        if name is None:
            raise KeyError(f"{self.site}: no stored {level} rows{'' if how is None else f' pooled by {how!r}'}; "
                           f"stored: {', '.join(self.store._streams[self._base])}")
        return RowReader(self.store, name)

    def example_of_row(self, level: Level = "token") -> np.ndarray:
        """Example index of every row of :meth:`numpy` at ``level``."""
        counts = {"token": self.store.n_tokens, "word": self.store.n_words,
                  "sentence": np.ones(len(self), dtype=np.int64)}[level]
        return np.repeat(np.arange(len(self)), counts)

    def reader(self, level: Level = "word", how: str | None = "mean"):
        """The rows of ``level`` read chunk by chunk: :meth:`rows` where stored, else pooled from tokens on read.

        Every reader of rows (probes, erasers) goes through this, so the rows are the same whoever reads them.
        """
        from probekit.store._rows import row_reader

        return row_reader(self, level, None if level == "token" else how)

    def iter_batches(self, batch_size: int = 256, level: Level = "token", how: str | None = None, *,
                     as_torch: bool = False) -> Iterator[Batch]:
        """Batches of ``batch_size`` examples: their rows at ``level`` and the example of each row."""
        self._no_attention("iter_batches")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for a in range(0, len(self), batch_size):
            idx = np.arange(a, min(a + batch_size, len(self)))
            if level == "sentence":
                x = np.stack([self._sentence(int(i), how) for i in idx])
                rows = idx
            else:
                parts = [self.example(int(i)) if level == "token" else self.words(int(i), how) for i in idx]
                x = np.concatenate(parts)
                rows = np.repeat(idx, [len(p) for p in parts])
            yield Batch(idx, torch.from_numpy(np.array(x)) if as_torch else np.asarray(x), rows)

    # ------------------------------------------------------------ internals
    def _no_attention(self, what: str) -> None:
        if self.site.is_attention:
            raise TypeError(f"{what} is for token-level sites; {self.site} is an attention pattern "
                            "([heads, n, n] per example): use view[i]")

    def _sentence(self, i: int, how: str | None) -> np.ndarray:
        st = self.store
        name = st._stream(self._base, "sentence", how)
        if name is not None:
            k, j = st._locate(i)
            return np.asarray(st._map(k, name)[j])
        x = torch.from_numpy(np.asarray(self.example(i), dtype=np.float32))
        return pool_sentence(x, how or "mean").to(_torch_dtype(st.dtype)).numpy()

    def _level_parts(self, level: str, how: str | None, mode: str) -> list[np.ndarray]:
        if level not in ("token", "word", "sentence"):
            raise ValueError(f"level must be 'token', 'word' or 'sentence', not {level!r}")
        st = self.store
        name = self._token_stream() if level == "token" else st._stream(self._base, level, how)
        if name is not None:
            return [st._map(k, name, mode) for k in range(len(st._sidecars))]
        if level == "word":
            return [np.concatenate([self.words(i, how) for i in range(len(self))])]
        return [np.stack([self._sentence(i, how) for i in range(len(self))])]


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]
