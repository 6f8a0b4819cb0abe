"""``probekit.extract``: run a model over data and write an :class:`ActivationStore`.

The data is cut into shards of ``shard_size`` consecutive examples (in data
order). Each shard is tokenized on its own, its rows are sorted by length
and grouped into batches by a token budget, run under
``torch.inference_mode`` (optionally with bf16 autocast), and the captured
activations are written unpadded (by a background thread while the next
batch computes, when the forward leaves a core free). Shards are committed
atomically with checksums (see :mod:`probekit.store._shards`), so a killed
run resumes from its last complete shard and produces the same bytes as an
uninterrupted one.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) rank ``r``
computes the shards ``k`` with ``k % world_size == r``; since shard
boundaries depend only on the data, the store is identical to a
single-process one. Rank 0 writes the manifest; ``torch.distributed``
(gloo) is used only where the ranks meet: after the preparation, after the
shards and after the manifest, where a failure on any rank is raised on
every rank (no rank is left waiting), and to gather run statistics.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from probekit.fingerprint import hash_json, jsonable, tokenizer_hash
from probekit.model import (
    CHAT_POOLING,
    LONG_INPUTS,
    POOLING_VERSION,
    SENTENCE_POOLING,
    WORD_POOLING,
    HookedModel,
    LongInputPolicy,
    ModelLike,
    Site,
    as_hooked_model,
    chat_template_of,
    check_word_spans,
    recipe_of,
    tokenize,
)
from probekit.profiling import current, phase
from probekit.store._batching import token_budget_batches
from probekit.store._data import ExtractData, as_data
from probekit.store._distributed import dist_env, distributed
from probekit.store._layout import begin_store, finish_store, writing
from probekit.store._manifest import (
    FORMAT_VERSION,
    MANIFEST,
    FingerprintMismatchError,
    read_manifest,
)
from probekit.store._remote import local_path
from probekit.store._remote_write import RemoteTarget
from probekit.store._shards import ShardWriter, reuse_shard
from probekit.store._store import ActivationStore, stream_names
from probekit.store._writer import CHAT_STREAMS, ShardContext, Writer, commit, trim_heap, write_ids
from probekit.validation import Boolean, Interval, ListOf, Options, declare, validate_params

__all__ = ["extract", "resolve_sites", "DTYPES"]

logger = logging.getLogger(__name__)

DTYPES = {"float16": (np.float16, torch.float16), "float32": (np.float32, torch.float32)}


def resolve_sites(model: HookedModel, sites: str | Sequence[Site | str] | None) -> list[Site]:
    """Parse ``sites``: a list, a comma-separated string, ``"resid"`` (the default) or ``"all"``."""
    if sites is None or sites == "resid":
        return model.residual_sites()
    if sites == "all":
        return model.sites()
    if isinstance(sites, (str, Site)):
        sites = [s for s in str(sites).split(",") if s.strip()] if isinstance(sites, str) else [sites]
    parsed: list[Site] = []
    for s in sites:
        if isinstance(s, str) and s.strip() in ("resid", "all"):
            parsed.extend(resolve_sites(model, s.strip()))
        else:
            parsed.append(model.site(s).without_head())
    if not parsed:
        raise ValueError("sites is empty; name at least one site, e.g. 'L0.resid'")
    return list(dict.fromkeys(parsed))


_POSITIVE = Interval(Integral, 1, None, closed="left")
#: Default examples per shard of a store with token rows or attention patterns, and of one with pooled rows only.
SHARD_SIZE, POOLED_SHARD_SIZE = 512, 2048


@declare({
    "dtype": [Options(DTYPES)],
    "tokens": [Boolean()],
    "word_pooling": [ListOf(Options(WORD_POOLING)), Options(WORD_POOLING)],
    "sentence_pooling": [ListOf(Options(SENTENCE_POOLING)), Options(SENTENCE_POOLING)],
    "shard_size": [_POSITIVE, None],
    "batch_tokens": [_POSITIVE],
    "long_inputs": [Options(LONG_INPUTS)],
    "stride": [Interval(Integral, 0, None, closed="left"), None],
    "autocast": [Options({"bf16"}), None],
    "overlap": [Boolean(), None],
    "progress": [Boolean(), None],
    "overwrite": [Boolean()],
})
def extract(
    model: ModelLike | str,
    data: Any,
    sites: str | Sequence[Site | str] | None = None,
    out: str | os.PathLike = "activations",
    *,
    dtype: Literal["float16", "float32"] = "float16",
    tokens: bool = True,
    word_pooling: Sequence[str] = (),
    sentence_pooling: Sequence[str] = (),
    shard_size: int | None = None,
    batch_tokens: int = 2048,
    long_inputs: LongInputPolicy = "error",
    stride: int | None = None,
    autocast: Literal["bf16"] | None = None,
    overlap: bool | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    interventions=(),
) -> ActivationStore:
    """Run ``model`` over ``data`` and store the activations at ``sites`` on disk.

    Parameters
    ----------
    model : ModelLike or str
        A loaded model or variant (a variant's recipe enters the store's fingerprint; its bare
        ``.model`` records none), or anything :func:`probekit.model.load_hooked_model` takes (a saved
        variant folder: load it with :func:`probekit.load_model` first).
    data : list of str, list of list of str, or DataFrame
        Texts, pre-split words, or a DataFrame with a ``text`` (or
        ``words``) column; other columns (labels, ``id``) are kept as
        example metadata.
    sites : str or sequence of Site or str, optional
        Default: the residual sites (``emb`` and every ``L{i}.resid``);
        ``"all"`` for every site. Attention-pattern sites are stored per
        example as ``[heads, n, n]`` without padding.
    out : path or URL
        Store directory, or an fsspec URL (``s3://bucket/run``, ``memory://...``; ``file://`` is a local
        path): a store at a URL is written shard by shard through a local staging folder, each shard
        committed by its sidecar and the store by its manifest, uploaded last (see
        :mod:`probekit.store._remote_write`). An existing store with the same fingerprint is
        reused (and completed or repaired if needed); one with another
        fingerprint is an error unless ``overwrite``. A directory holding
        anything probekit did not write is refused and left untouched. The
        directory is locked while it is written (one writer at a time).
    dtype : {"float16", "float32"}
    tokens : bool
        Store token-level rows (set False to keep only pooled views).
    word_pooling : sequence of {"first", "last", "mean"}
        Also store word-pooled rows, computed in float32 before the cast.
    sentence_pooling : sequence of {"cls", "mean", "last"}
        Also store one vector per example.
    shard_size : int, optional
        Examples per shard (the unit of resumption and of data parallelism);
        examples are length-sorted within a shard, so larger shards pad less.
        Default: 512 where token rows or attention patterns are stored,
        2048 for pooled rows only (a few rows per example: on UD English
        sentences 2% padding against 6%, and 44% fewer forward calls).
    batch_tokens : int
        Token budget of a forward batch (rows x longest row). The default
        suits CPUs (on 2 Xeon cores 2,048 ran ~1.3x faster than 4,096: the
        batch's activations stay in cache); raise it on a GPU (e.g. 16,384).
    long_inputs : {"error", "window"}
        Inputs longer than the model's maximum are an error, or run in
        overlapping windows and stitched.
    stride : int, optional
        Window overlap for ``long_inputs="window"``.
    autocast : {"bf16"}, optional
        Run the forward under bf16 autocast.
    overlap : bool, optional
        Write shards from a background thread while the next batch computes.
        Default: when the forward leaves a core free (a GPU model, or fewer
        torch threads than usable cores). When torch's threads already fill
        every core, a writer thread only takes turns with them: on 2 Xeon
        cores writing inline cost ~7% against ~13% from a background thread.
    progress : bool, optional
        Show a progress bar (default: when attached to a terminal).
    overwrite : bool
        Replace a probekit store with a different fingerprint (or the parts
        of one whose manifest was lost); nothing else is ever deleted.

    Returns
    -------
    ActivationStore

    Raises
    ------
    StoreLockedError
        Another process is writing ``out`` (the message names it: pid, host, since when);
        ``overwrite`` does not get past it. The lock of a killed writer is taken over.
    ValueError
        A forward hook that probekit did not register is on the model (or a global module hook is
        registered): its effect cannot be fingerprinted; use ``interventions`` instead.
    FingerprintMismatchError
        ``out`` holds a store made from other inputs (weights, module settings, data, ...) and not
        ``overwrite``.

    Notes
    -----
    The fingerprint hashes every byte of the weights at each call (about 0.1 s for MiniLM-L6), so an
    edit the cheap weights signature misses (a sparse write through ``.data``) never reuses a store,
    and covers what the forward depends on besides the weights (see
    :meth:`~probekit.HookedModel.forward_settings`).

    Examples
    --------
    >>> import probekit, transformers
    >>> m = probekit.load_model(probekit.model.tiny_config())
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> store = probekit.extract(m, ["a cat sat", "it rained"], ["L1.resid"], d + "/s")
    >>> store["L1.resid"].example(0).shape
    (5, 32)
    """
    validate_params(extract, locals())  # every setting, before a model is loaded or a file written
    if isinstance(model, (str, os.PathLike)):
        from probekit.model import load_hooked_model  # imports transformers, only where a model is named

        model = load_hooked_model(model)
    recipe = recipe_of(model)
    try:
        model = as_hooked_model(model)
    except TypeError:
        raise TypeError(f"model must be a HookedModel, a model variant or a load_model spec, not "
                        f"{type(model).__name__}") from None
    if autocast == "bf16" and not native_bf16(model.device):
        logger.warning("autocast='bf16': this CPU has no native bf16 arithmetic (AVX-512 BF16 or AMX; torch reports "
                       "%s), so bf16 is emulated and the forward runs slower than float32, not faster",
                       torch.backends.cpu.get_cpu_capability())
    check_stride(model, long_inputs, stride)
    word_pooling = check_pooling(word_pooling, WORD_POOLING, "word_pooling")
    sentence_pooling = check_pooling(sentence_pooling, SENTENCE_POOLING, "sentence_pooling")
    site_list = resolve_sites(model, sites)
    ivs = model.check_interventions(interventions)  # another model's eraser, a bad site or head: before any work
    if not tokens and not word_pooling and not sentence_pooling and not any(s.is_attention for s in site_list):
        raise ValueError("tokens=False with no word_pooling or sentence_pooling would store nothing")
    if shard_size is None:
        shard_size = SHARD_SIZE if tokens or any(s.is_attention for s in site_list) else POOLED_SHARD_SIZE
    if long_inputs == "window" and any(s.is_attention for s in site_list):
        raise ValueError("attention patterns cannot be stitched across windows; drop the attn.pattern sites "
                         "or use long_inputs='error'")
    data = as_data(data)
    check_chat(model, data, sentence_pooling)
    local = local_path(out)
    if overlap is None:
        overlap = _spare_core(model)
    rank, world = dist_env()
    target = None if local is not None else RemoteTarget(str(out), rank)  # a URL: shards staged, then uploaded
    out = local if target is None else target.stage
    if world > 1 and torch.cuda.is_available() and model.device.type == "cpu":
        local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
        model.model.to(f"cuda:{local}")

    settings = dict(dtype=dtype, tokens=tokens, word_pooling=word_pooling, sentence_pooling=sentence_pooling,
                    shard_size=shard_size, long_inputs=long_inputs, stride=stride, autocast=autocast)
    if data.is_chat:  # absent for plain text, so its stores keep their fingerprints
        settings["chat"] = True
    components = _components(model, data, site_list, settings, batch_tokens, recipe)
    if ivs:  # absent for the plain model, so its stores keep their fingerprints
        components["interventions"] = [jsonable(iv.to_dict()) for iv in ivs]
    fp = hash_json(components)
    n_shards = -(-len(data) // shard_size)

    # rank 0 holds the store's writer lock from before the folder is prepared until the manifest is complete
    with contextlib.ExitStack() as lock, distributed(world) as dist:
        with dist.step("preparing the store"):
            if rank == 0:
                lock.enter_context(writing(out) if target is None else target.writing())
                _start_store(out, fp, components, overwrite, model, site_list, settings, data, n_shards, target)
        stats = None
        with dist.step("extracting its shards"):
            manifest = read_manifest(out / MANIFEST) if target is None else target.read_manifest()
            if manifest["fingerprint"] != fp:
                raise FingerprintMismatchError(f"rank {rank}: the manifest written by rank 0 has another "
                                               "fingerprint; every rank must get the same model, data and settings")
            job = _Job(model, data, site_list, settings, manifest, out / "shards", batch_tokens, overlap, ivs, target)
            mine = [k for k in range(n_shards) if k % world == rank]
            stats = job.run(mine, progress=progress if rank == 0 else False)
        all_stats = dist.gather_stats(stats)
        with dist.step("finishing the store"):
            if rank == 0:
                _finish(out, fp, n_shards, all_stats, target)
    if target is not None:
        target.cleanup()
        return ActivationStore.open(target.url)
    return ActivationStore.open(out)


def _start_store(out: Path, fp: str, components: dict, overwrite: bool, model: HookedModel, site_list: list[Site],
                 settings: dict, data: ExtractData, n_shards: int, target: RemoteTarget | None = None) -> None:
    """Rank 0: check or create the directory, then write the (incomplete) manifest and the examples."""
    (functools.partial(begin_store, out) if target is None else target.begin)({
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "components": components,
        "complete": False,
        "model": {"name": model.name, "source": jsonable(model.source), "n_layers": model.n_layers,
                  "d_model": model.d_model, "n_heads": model.n_heads,
                  "heads_per_layer": model.heads_per_layer(),
                  # where the blocks ran (device map, offload): recorded, not fingerprinted, as it changes no value
                  **({"placement": model.placement} if model.placement is not None else {})},
        "sites": [str(s) for s in site_list],
        "settings": settings,
        "n_examples": len(data),
        "n_shards": n_shards,
        "files": {},
    }, overwrite, data)


# --------------------------------------------------------------------- setup
def check_stride(model: HookedModel, long_inputs: str, stride: int | None) -> None:
    """A window overlap must leave each window room to move: ``stride`` below the window's content width."""
    if long_inputs != "window" or stride is None:
        return
    width = model.max_length - model.tokenizer.num_special_tokens_to_add(pair=False)
    if not stride < width:
        raise ValueError(f"stride must be in [0, {width}) for {model.name} (windows of {width} content tokens); "
                         f"got {stride}")


def check_pooling(values: Sequence[str], allowed: tuple[str, ...], name: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = list(dict.fromkeys(values))
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} entries must be among {allowed}, not {v!r}")
    return values


def pooling_component(settings: dict) -> dict[str, Any]:
    """The ``pooling`` fingerprint component: the levels stored and, with pooled levels, the pooling code's version."""
    out = {"tokens": settings["tokens"], "word": settings["word_pooling"], "sentence": settings["sentence_pooling"]}
    if out["word"] or out["sentence"]:
        out["impl"] = POOLING_VERSION
    return out


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively on ``device`` (a GPU that supports it, or a CPU with AVX-512 BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def _spare_core(model: HookedModel) -> bool:
    """Whether a background writer thread would run beside the forward rather than take turns with it."""
    if model.device.type != "cpu":
        return True
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores > torch.get_num_threads()


def batch_dependent(model: HookedModel) -> bool:
    """Whether the model's outputs depend on which examples share a batch.

    Dynamically quantized layers (``torch.ao`` dynamic int8) pick their activation scale from the whole
    input batch, so the same sentence gets (slightly) different activations in different batches.
    """
    return any(".quantized.dynamic" in type(m).__module__ for m in model.model.modules())


def _components(model: HookedModel, data: ExtractData, sites: list[Site], settings: dict,
                batch_tokens: int | None = None, recipe: Any = None) -> dict[str, Any]:
    layout: dict[str, Any] = {"shard_size": settings["shard_size"]}
    if batch_tokens is not None and batch_dependent(model):
        # the batches (and so the activations) follow from the shard size and the token budget
        layout["batch_tokens"] = int(batch_tokens)
    return {
        "format_version": FORMAT_VERSION,
        # every byte hashed again: a sparse write through .data escapes the cheap signature, and the hash
        # (0.1 s for MiniLM-L6) is small next to an extraction's forward passes (benchmarks/fingerprint.py)
        "weights": model.weights_hash(refresh=True),
        "forward": model.forward_settings(attention=any(s.is_attention for s in sites)),
        "recipe": jsonable(recipe) if recipe is not None else None,
        "data": {"sha256": data.digest(), "n_examples": len(data)},
        "sites": [str(s) for s in sites],
        "tokenization": _tokenization(model, data, settings),
        "pooling": pooling_component(settings),
        "dtype": {"store": settings["dtype"], "autocast": settings["autocast"],
                  "params": str(next(model.model.parameters()).dtype)},
        "layout": layout,
    }


def _tokenization(model: HookedModel, data: ExtractData, settings: dict) -> dict[str, Any]:
    out = {"tokenizer": tokenizer_hash(model.tokenizer), "max_length": model.max_length,
           "long_inputs": settings["long_inputs"], "stride": settings["stride"]}
    if data.is_chat:  # the template decides every token of a conversation
        out["chat_template"] = hash_json(chat_template_of(model.tokenizer))
    return out


def check_chat(model: HookedModel, data: ExtractData, sentence_pooling: Sequence[str]) -> None:
    """Chat poolings need conversations, and conversations a tokenizer with a chat template."""
    chat_only = [p for p in sentence_pooling if p in CHAT_POOLING]
    if chat_only and not data.is_chat:
        raise ValueError(f"sentence_pooling {chat_only} pools over turns of a conversation; the data is plain text "
                         "(pass conversations: lists of {'role', 'content'} messages)")
    if data.is_chat:
        chat_template_of(model.tokenizer)


def _finish(out: Path, fp: str, n_shards: int, stats: list[dict], target: RemoteTarget | None = None) -> None:
    finish = functools.partial(finish_store, out) if target is None else target.finish
    manifest = finish(fp, n_shards, {
        "ranks": len(stats),
        "seconds": max(s["seconds"] for s in stats),
        "shards_computed": sum(s["shards_computed"] for s in stats),
        "shards_reused": sum(s["shards_reused"] for s in stats),
        "tokens_computed": sum(s["tokens"] for s in stats),
        "examples_computed": sum(s["examples"] for s in stats),
    }, "extraction")
    where = out if target is None else target.url
    logger.info("%s: complete (%d examples, %d tokens)", where, manifest["n_examples"], manifest["n_tokens"])


# --------------------------------------------------------------- the work
class _Job:
    """Compute and write a set of shards."""

    def __init__(self, model: HookedModel, data: ExtractData, sites: list[Site], settings: dict, manifest: dict,
                 root: Path, batch_tokens: int, overlap: bool, interventions: Sequence = (),
                 target: RemoteTarget | None = None):
        self.model, self.data, self.sites, self.s = model, data, sites, settings
        self.manifest, self.fp = manifest, manifest["fingerprint"]
        self.interventions = list(interventions)
        self.root, self.batch_tokens, self.overlap = root, batch_tokens, overlap
        self.target = target  # a store at a URL: shards are reused from it and uploaded to it
        self.np_dtype, self.torch_dtype = DTYPES[settings["dtype"]]
        self.weights_on_request = model.adapter.weights_on_request and any(s.is_attention for s in sites)
        self._dims: dict[Site, int] | None = None

    def _site_dims(self) -> dict[Site, int]:
        """Feature width of every token site and head count of attention sites (one tiny forward)."""
        if self._dims is None:
            row = self.model.tokenize(["probe"]).windows[0].row_ids
            seen: dict[Site, torch.Tensor] = {}
            ask = {"output_attentions": True} if self.weights_on_request else {}
            with torch.inference_mode(), self.model.hooks(self.sites, seen.__setitem__):
                self.model.forward_rows([row], stop_after=self.sites, **ask)
            self._dims = {s: int(seen[s].shape[1] if s.is_attention else seen[s].shape[-1]) for s in self.sites}
        return self._dims

    def run(self, shards: list[int], progress: bool | None) -> dict:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        todo = []
        reused = 0
        for k in shards:
            if (reuse_shard(self.root, k, self.manifest) if self.target is None
                    else self.target.reuse(k, self.manifest)):
                reused += 1
            else:
                todo.append(k)
        n_todo = sum(min((k + 1) * self.s["shard_size"], len(self.data)) - k * self.s["shard_size"] for k in todo)
        stats = {"shards_computed": len(todo), "shards_reused": reused, "tokens": 0, "examples": 0}
        if todo:
            logger.info("extracting %d shards (%d examples); %d complete shards reused", len(todo), n_todo, reused)
            bar = tqdm(total=n_todo, unit="ex", disable=(not progress) if progress is not None else None,
                       desc="extract", dynamic_ncols=True)
            writer = Writer(self.overlap)
            try:
                with self.model.evaluating():  # the user's train()/eval() mode comes back after
                    for k in todo:
                        self._shard(k, writer, bar, stats)
                writer.close()
            finally:
                writer.stop()
                bar.close()
        stats["seconds"] = time.perf_counter() - t0
        if stats["tokens"]:
            logger.info("extracted %d examples, %d tokens in %.1f s (%.0f tokens/s)", stats["examples"],
                        stats["tokens"], stats["seconds"], stats["tokens"] / stats["seconds"])
        return stats

    def _shard(self, k: int, writer: Writer, bar, stats: dict) -> None:
        start = k * self.s["shard_size"]
        stop = min(start + self.s["shard_size"], len(self.data))
        try:
            with phase("tokenize"):
                batch = tokenize(self.model.tokenizer, self.data.inputs(start, stop),
                                 max_length=self.model.max_length, long_inputs=self.s["long_inputs"],
                                 stride=self.s["stride"], first_index=start)
        except ValueError as exc:
            msg = str(exc)
            msg = "example " + msg[len("input "):] if msg.startswith("input ") else msg
            raise ValueError(f"{msg} (shard {k}; the complete shards before it are kept)") from exc
        exs = batch.examples
        if self.s["word_pooling"]:  # word rows of a word with no tokens: refused before the shard is computed
            for e, ex in enumerate(exs):
                try:
                    check_word_spans(ex.word_spans(), ex.words, example=start + e)
                except ValueError as exc:
                    raise ValueError(f"{exc} (shard {k}; the complete shards before it are kept)") from None
        for how in (p for p in self.s["sentence_pooling"] if p in CHAT_POOLING):
            name = how.split(".", 1)[1]
            for e, ex in enumerate(exs):
                if not ex.selection(name):
                    what = "marked part" if name == "mark" else f"{name!r} turn with content"
                    raise ValueError(f"example {start + e} has no {what}, so it has no {how!r} row (shard {k}; "
                                     "the complete shards before it are kept)")
        n_tok = [ex.n_tokens for ex in exs]
        n_words = [len(ex.words) for ex in exs]
        dims = self._site_dims()
        streams = stream_names(self.sites, self.s)
        specs: dict[str, tuple[Any, tuple[int, ...]]] = {"input_ids": (np.int32, (sum(n_tok),)),
                                                         "word_ids": (np.int32, (sum(n_tok),))}
        if self.s.get("chat"):
            specs.update({name: (dtype, (sum(n_tok),)) for name, _attr, dtype in CHAT_STREAMS})
        for s in self.sites:
            for name, (level, _how) in streams[s].items():
                if level == "attention":
                    specs[name] = (self.np_dtype, (sum(dims[s] * n * n for n in n_tok),))
                else:
                    rows = {"token": sum(n_tok), "word": sum(n_words), "sentence": len(exs)}[level]
                    specs[name] = (self.np_dtype, (rows, dims[s]))
        meta = {"fingerprint": self.fp, "start": start, "stop": stop, "n_tokens": n_tok, "n_words": n_words,
                "words": [list(ex.words) for ex in exs]}
        prof = current()
        sw = ShardWriter(self.root, k, specs, meta)
        writer.submit(write_ids, sw, exs, prof)
        ctx = ShardContext(sw, exs, n_tok, n_words, dims, streams, self.torch_dtype,
                           windows=batch.windows, by_example=_windows_by_example(batch), inline=not self.overlap)
        plan = token_budget_batches([len(w.row_ids) for w in batch.windows], self.batch_tokens)
        ask = {"output_attentions": True} if self.weights_on_request else {}
        dev = self.model.device
        amp = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if self.s["autocast"] == "bf16"
               else contextlib.nullcontext())
        for rows in plan:
            wins = [batch.windows[i] for i in rows]
            captured: dict[Site, torch.Tensor] = {}
            examples = None if batch.is_windowed else [w.example for w in wins]
            with phase("forward"), torch.inference_mode(), amp, \
                    self.model.hooks(self.sites, captured.__setitem__, interventions=self.interventions,
                                     examples=examples, check_models=False):
                self.model.forward_rows([w.row_ids for w in wins], stop_after=self.sites, **ask)
            writer.submit(ctx.write_batch, rows, wins, captured)
            real = sum(len(w.row_ids) for w in wins)
            stats["tokens"] += real
            done = len({w.example for w in wins})
            stats["examples"] += done
            bar.update(done)
            rate = stats["tokens"] / max(bar.format_dict.get("elapsed", 0) or 1e-9, 1e-9)
            bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
        writer.submit(commit, sw, prof)
        if self.target is not None:
            writer.submit(self.target.publish, k)
        trim_heap()  # the shard's batches are freed: return their memory, or the heap grows shard after shard


def _windows_by_example(batch) -> dict[int, list[int]] | None:
    if not batch.is_windowed:
        return None
    out: dict[int, list[int]] = {}
    for i, w in enumerate(batch.windows):
        out.setdefault(w.example, []).append(i)
    return out


