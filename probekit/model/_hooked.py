"""HookedModel: a Hugging Face model plus its site table and tokenizer."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from probekit.fingerprint import config_hash, foreign_hooks, module_settings_hash, weights_hash
from probekit.model._adapters import Adapter, Hook
from probekit.model._cache import ActivationCache
from probekit.model._discovery import adapter_for, linear_widths
from probekit.model._hooks import as_interventions, capture, intervene, resolve_module
from probekit.model._placement import input_device, placement_of, quantization_of
from probekit.model._sites import GLOBAL_COMPONENTS, LAYER_COMPONENTS, Site
from probekit.model._tokenize import LongInputPolicy, TokenizedBatch, Window, tokenize

__all__ = ["HookedModel", "as_hooked_model"]

logger = logging.getLogger(__name__)


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once everything a caller reads has been computed."""


def _raise_stop(_module, _args, _output):
    raise _StopForward


class HookedModel:
    """A Hugging Face model wrapped with probekit's site vocabulary.

    Hooks exist only during :meth:`run_with_cache` (or inside
    :meth:`hooks`); the wrapped model is otherwise untouched and is available
    as :attr:`model`.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A base model or a task-head model of a supported family.
    tokenizer : PreTrainedTokenizerFast
    name : str
        How the model is named in stores and tables.
    source : dict, optional
        Provenance (alias, path or config) recorded in fingerprints.

    Examples
    --------
    >>> import probekit
    >>> model = probekit.load_model("minilm-l6")
    >>> cache = model.run_with_cache(["The cat sat."], sites=["L3.resid"])
    >>> cache["L3.resid"].shape
    torch.Size([1, 6, 384])
    """

    def __init__(self, model: nn.Module, tokenizer, *, name: str, source: dict | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.source = dict(source or {})
        self.config = model.config
        self.adapter: Adapter = adapter_for(model)
        self.base = model.base_model
        self._blocks = self.adapter.blocks(self.base)
        # what runs on token ids: the model, or an encoder-decoder's encoder
        self._runner = model.get_submodule(self.adapter.runner) if self.adapter.runner else model
        try:
            self._takes_use_cache = "use_cache" in inspect.signature(self._runner.forward).parameters
        except (TypeError, ValueError):
            self._takes_use_cache = False
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            # decoder classification heads find each row's last token through it
            model.config.pad_token_id = tokenizer.pad_token_id

    # --------------------------------------------------------------- facts
    @property
    def n_layers(self) -> int:
        return len(self._blocks)

    @property
    def n_heads(self) -> int:
        c = self.config
        return getattr(c, "num_attention_heads", None) or getattr(c, "n_head", None) or c.n_heads

    def heads_per_layer(self) -> list[int]:
        """Attention heads of every block as the weights stand (fewer after structured head pruning).

        Read from the width of each block's attention output projection
        divided by the head size, so it follows pruned models; the config's
        count (:attr:`n_heads`) when the adapter names no projection.
        """
        path = self.adapter.attn_output_proj
        if not path:
            return [self.n_heads] * self.n_layers
        c = self.config
        head_dim = getattr(c, "head_dim", None) or getattr(c, "d_kv", None) or self.d_model // self.n_heads
        out = []
        for block in self._blocks:
            width = linear_widths(resolve_module(block, path))[0]
            out.append(int(width) // head_dim)
        return out

    @property
    def d_model(self) -> int:
        c = self.config
        return getattr(c, "hidden_size", None) or getattr(c, "n_embd", None) or c.dim

    @property
    def kind(self) -> str:
        """``"encoder"`` or ``"decoder"``."""
        return self.adapter.kind

    @property
    def device(self) -> torch.device:
        """Where inputs go: the model's device, or the first accelerator of a model spread by a device map."""
        return input_device(self.model)

    @property
    def placement(self) -> dict | None:
        """The module-to-device map of a model spread over devices or offloaded (``None`` on one device)."""
        return placement_of(self.model)

    @property
    def quantization(self) -> dict | None:
        """The Hugging Face quantization config the weights were loaded with (``None`` if none)."""
        return quantization_of(self.model)

    @property
    def max_length(self) -> int:
        """Longest input the model takes, special tokens included."""
        c = self.config
        n_pos = getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", None) or 512
        n_pos -= self.adapter.position_offset
        tok_max = getattr(self.tokenizer, "model_max_length", None) or n_pos
        return int(min(n_pos, tok_max))

    def __repr__(self) -> str:
        return (f"HookedModel({self.name!r}, {type(self.model).__name__}, {self.n_layers} layers, "
                f"d_model={self.d_model}, {self.n_heads} heads)")

    # --------------------------------------------------------------- sites
    def sites(self, components: Iterable[str] | None = None) -> list[Site]:
        """Every site of this model, in forward order (``emb``, blocks, ``final``)."""
        wanted = set(components) if components is not None else None
        out = [Site(None, "emb")]
        for layer in range(self.n_layers):
            table = self.adapter.components_of(layer)
            out.extend(Site(layer, c) for c in LAYER_COMPONENTS if c in table)
        if self.adapter.final is not None:
            out.append(Site(None, "final"))
        return [s for s in out if wanted is None or s.component in wanted]

    def residual_sites(self) -> list[Site]:
        """``emb`` and every ``L{i}.resid``: the layer axis of probing tables."""
        return self.sites(["emb", "resid"])

    def site(self, site: Site | str) -> Site:
        """Parse ``site`` and check it exists in this model."""
        s = Site.parse(site)
        if s.component == "final" and self.adapter.final is None:
            raise ValueError(f"{self.name} ({self.adapter.family}) has no final norm, so no 'final' site; "
                             f"its last residual site is L{self.n_layers - 1}.resid")
        if s.layer is not None and s.layer >= self.n_layers:
            raise ValueError(f"site {s}: layer {s.layer} is out of range; {self.name} has layers 0-{self.n_layers - 1}")
        if s.component not in GLOBAL_COMPONENTS and s.component not in self.adapter.components_of(s.layer):
            if s.component == "mlp.router":
                raise ValueError(f"site {s}: block {s.layer} of {self.name} ({self.adapter.family}) has no "
                                 "mixture-of-experts layer, so no router logits")
            if s.component == "mlp.hidden" and "mlp.router" in self.adapter.components_of(s.layer):
                raise ValueError(f"site {s}: block {s.layer} of {self.name} is a mixture of experts; its hidden "
                                 f"activations belong to each expert (read L{s.layer}.mlp.router or "
                                 f"L{s.layer}.mlp.out)")
            raise ValueError(f"site {s}: the {self.adapter.family} adapter has no component {s.component!r}")
        if s.head is not None:
            n = self.heads_per_layer()[s.layer]
            if s.head >= n:
                raise ValueError(f"site {s}: head {s.head} is out of range; layer {s.layer} of {self.name} "
                                 f"has heads 0-{n - 1}")
        return s

    @property
    def blocks(self) -> list[nn.Module]:
        """The transformer blocks (layers), in order: block ``i`` holds the sites ``L{i}.*``.

        Examples
        --------
        >>> import probekit, transformers
        >>> from probekit.model import tiny_config
        >>> m = probekit.load_model(tiny_config())
        >>> len(m.blocks), type(m.blocks[0]).__name__
        (2, 'BertLayer')
        """
        return list(self._blocks)

    def module_of(self, site: Site | str) -> tuple[nn.Module, Hook]:
        """The module a site is read at and how (the :class:`Hook`: its path, input or output, which tensor).

        Examples
        --------
        >>> import probekit, transformers
        >>> from probekit.model import tiny_config
        >>> m = probekit.load_model(tiny_config())
        >>> module, hook = m.module_of("L1.resid")
        >>> module is m.blocks[1]
        True
        """
        site = self.site(site)
        if site.component == "emb":
            hook = self.adapter.emb_hook(self.base)
            return resolve_module(self.base, hook.path), hook
        if site.component == "final":
            return resolve_module(self.base, self.adapter.final.path), self.adapter.final
        hook = self.adapter.components_of(site.layer)[site.component]
        return resolve_module(self._blocks[site.layer], hook.path), hook

    # ------------------------------------------------------------- running
    def tokenize(self, inputs, *, long_inputs: LongInputPolicy = "error", stride: int | None = None) -> TokenizedBatch:
        """Tokenize with word alignment (see :func:`probekit.model._tokenize.tokenize`)."""
        return tokenize(self.tokenizer, inputs, max_length=self.max_length, long_inputs=long_inputs, stride=stride)

    @contextlib.contextmanager
    def hooks(self, sites: Sequence[Site | str], sink, *, detach: bool = True, interventions=(),
              examples: Sequence[int] | None = None, check_models: bool = True) -> Iterator[None]:
        """Low-level: call ``sink(site, tensor)`` for each site during forwards in the block.

        Hooks are removed when the block exits, also on error. Attention
        patterns switch the model to eager attention for the block.
        ``interventions`` are applied first (see :meth:`intervening`), so what
        ``sink`` receives is the intervened activation.
        """
        parsed = [self.site(s).without_head() for s in sites]
        targets = {s: self.module_of(s) for s in dict.fromkeys(parsed)}
        needs_eager = any(s.is_attention for s in parsed)
        with self.eager_attention(needs_eager), \
                self.intervening(interventions, examples=examples, check_models=check_models), \
                self._token_shape() as shape, \
                capture(targets, lambda s, t: sink(s, _unflatten(t, shape) if s.is_token_level else t), detach=detach):
            yield

    def check_interventions(self, interventions) -> list:
        """Check interventions against this model before any work: each may refuse it (``check_model(model)``,
        e.g. an eraser fitted on another), and each must name a site and heads the model has and that can be
        replaced (not an attention pattern, not router logits).

        Returns the interventions as a list (see :func:`as_interventions`).

        Raises
        ------
        ValueError
            An intervention refuses the model, or its site or heads cannot be intervened on.
        """
        ivs = as_interventions(interventions)
        for iv in ivs:
            check = getattr(iv, "check_model", None)
            if callable(check):
                check(self)
            self._intervention_target(iv, None)  # a bad site or head fails here
        return ivs

    @contextlib.contextmanager
    def _token_shape(self) -> Iterator[list]:
        """``[batch, tokens]`` of the forward pass running now, read at the first block's input.

        Some modules see the tokens flattened (OPT's MLP, mixture-of-experts
        routers: ``[batch * tokens, ...]``); :func:`_unflatten` restores them.
        """
        shape: list = []
        first = Hook("", port="in", index=0, keyword="hidden_states")
        with capture({"shape": (self._blocks[0], first)}, lambda _k, t: shape.__setitem__(slice(None), t.shape[:2])):
            yield shape

    @contextlib.contextmanager
    def intervening(self, interventions, *, examples: Sequence[int] | None = None,
                    check_models: bool = True) -> Iterator[None]:
        """Apply ``interventions`` (in order) to every forward pass run inside the block.

        Parameters
        ----------
        interventions : intervention or sequence of interventions
            Objects of :mod:`probekit.interventions` (or anything
            :class:`probekit.model.InterventionLike`); an empty sequence
            changes nothing.
        examples : sequence of int, optional
            The example index of each batch row, for interventions that
            differ per example (patching stored activations back in).
        check_models : bool
            Let each intervention refuse this model first
            (:meth:`check_interventions`); callers that checked once before a
            loop of forward passes skip it.

        Notes
        -----
        Each intervention replaces the output of its site's module (or the
        input, for sites read at a module's input, and for head
        interventions the per-head input of the attention output
        projection). The hooks are removed when the block exits, also when
        the forward pass raises.

        Examples
        --------
        >>> import probekit, transformers, torch
        >>> from probekit.interventions import Ablate
        >>> from probekit.model import tiny_config
        >>> m = probekit.load_model(tiny_config())
        >>> rows = m.tokenize(["a cat sat"]).windows[0].row_ids
        >>> with torch.no_grad(), m.intervening([Ablate("L1.resid", "zero")]):
        ...     out = m.forward_rows([rows]).last_hidden_state
        >>> float(out.abs().max())
        0.0
        """
        ivs = self.check_interventions(interventions) if check_models else as_interventions(interventions)
        if not ivs:
            yield
            return
        rows = _RowLengths()
        wanted = any("lengths" in inspect.signature(iv.apply).parameters for iv in ivs)
        handle = self.model.register_forward_pre_hook(rows, with_kwargs=True) if wanted else None
        try:
            with self._token_shape() as shape, \
                    intervene([self._intervention_target(iv, examples, shape, rows) for iv in ivs]):
                yield
        finally:
            if handle is not None:
                handle.remove()

    def _intervention_target(self, iv, examples, shape: Sequence[int] = (), rows: _RowLengths | None = None):
        site, heads = iv.target()
        site = self.site(site)
        if heads is None:
            if site.is_attention:
                raise ValueError(f"{site}: attention patterns are read, not replaced; to remove heads use "
                                 "probekit.interventions.AblateHeads")
            if site.component == "mlp.router":
                raise ValueError(f"{site}: router logits are read, not replaced (the router picks its experts "
                                 f"inside the block); intervene on L{site.layer}.mlp.out instead")
            module, hook = self.module_of(site)
            if rows is not None and "lengths" in inspect.signature(iv.apply).parameters:
                return module, hook, _tokenwise(lambda x: iv.apply(x, examples, lengths=rows.lengths), shape)
            return module, hook, _tokenwise(lambda x: iv.apply(x, examples), shape)
        path = self.adapter.attn_output_proj
        if not path:
            raise ValueError(f"the {self.adapter.family} adapter names no attention output projection, so heads "
                             "cannot be intervened on")
        n = self.heads_per_layer()[site.layer]
        bad = [h for h in heads if not 0 <= int(h) < n]
        if bad:
            raise ValueError(f"heads {bad} out of range: layer {site.layer} of {self.name} has heads 0-{n - 1}")

        def per_head(x: torch.Tensor) -> torch.Tensor:
            *lead, width = x.shape
            y = iv.apply(x.reshape(*lead, n, width // n), examples)
            return y.reshape(*lead, width)

        module = resolve_module(self._blocks[site.layer], path)
        return module, Hook(path, port="in", index=0), _tokenwise(per_head, shape)

    @contextlib.contextmanager
    def eager_attention(self, enabled: bool = True) -> Iterator[None]:
        """Temporarily use eager attention (other kernels return no weights)."""
        current = getattr(self.config, "_attn_implementation", "eager")
        if not enabled or current == "eager":
            yield
            return
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """``eval()`` mode inside the block; every module's own mode (``train()`` too) is restored after.

        Analysis runs with dropout off, but it must not change the mode a user
        left the model in (e.g. ``train()`` between fine-tuning steps).
        """
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode

    def forward_rows(self, rows: Sequence[Sequence[int]], *, stop_after: Sequence[Site | str] | None = None,
                     **kwargs):
        """Run the model on right-padded rows of token ids; returns the HF output.

        ``stop_after`` names the sites a caller reads (through :meth:`hooks`): the pass then ends once the
        deepest block among them has run and returns ``None``, skipping the blocks after it, the final norm
        and a language-model head (SmolLM2's vocabulary head is 28M of its ~150M multiply-adds per token).
        Sites outside the blocks (``final``) run the whole pass.
        """
        stop = self._stop_block(stop_after) if stop_after is not None else None
        if stop is not None:
            handle = stop.register_forward_hook(_raise_stop)  # after the caller's hooks, which ran first
            try:
                self._forward_padded(rows, **kwargs)
            except _StopForward:
                return None
            finally:
                handle.remove()
        return self._forward_padded(rows, **kwargs)

    def _stop_block(self, sites: Sequence[Site | str]) -> nn.Module | None:
        """The block after which nothing ``sites`` read is computed, or ``None`` when the whole pass is needed."""
        parsed = [self.site(s) for s in sites]
        if not parsed or any(s.component == "final" for s in parsed):
            return None
        layers = [s.layer for s in parsed if s.layer is not None]
        block = self._blocks[max(layers) if layers else 0]
        # a block shared between layers (ALBERT) runs more than once: its first return is not the end
        return None if sum(b is block for b in self._blocks) > 1 else block

    def _forward_padded(self, rows: Sequence[Sequence[int]], **kwargs):
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        dev = self.device
        if self._takes_use_cache:  # a decoder's key/value cache is never read again here
            kwargs.setdefault("use_cache", False)
        return self._runner(input_ids=ids.to(dev), attention_mask=mask.to(dev), **kwargs)

    def run_with_cache(
        self,
        inputs,
        sites: Sequence[Site | str] | None = None,
        *,
        batch_size: int = 32,
        long_inputs: LongInputPolicy = "error",
        stride: int | None = None,
        to_cpu: bool = True,
        interventions=(),
    ) -> ActivationCache:
        """Run the model on ``inputs`` and keep the activations at ``sites``.

        Parameters
        ----------
        inputs : str, list of str, list of list of str, or TokenizedBatch
            Plain texts or pre-split words.
        sites : sequence of Site or str, optional
            Default: the residual sites (``emb`` and every ``L{i}.resid``).
        batch_size : int
            Rows per forward pass.
        long_inputs : {"error", "window"}
            What to do with an input longer than :attr:`max_length`.
        stride : int, optional
            Overlap between windows, in tokens.
        to_cpu : bool
            Move captured tensors to the CPU.
        interventions : sequence, optional
            Interventions applied (in order) during every forward pass (see
            :meth:`intervening` and :mod:`probekit.interventions`); the cache
            holds the intervened activations. Empty: the plain model.

        Returns
        -------
        ActivationCache
        """
        if isinstance(inputs, TokenizedBatch):
            batch = inputs
        else:
            batch = self.tokenize(inputs, long_inputs=long_inputs, stride=stride)
        wanted = [self.site(s) for s in (sites if sites is not None else self.residual_sites())]
        if not wanted:
            raise ValueError("sites is empty; name at least one site, e.g. 'L0.resid'")
        plain = list(dict.fromkeys(s.without_head() for s in wanted))
        if batch.is_windowed and any(s.is_attention for s in plain):
            raise ValueError("attention patterns cannot be stitched across windows; shorten the inputs "
                             "or drop the attn.pattern sites when using long_inputs='window'")
        rows_out: dict[Site, list[torch.Tensor]] = {s: [] for s in plain}
        wants_weights = self.adapter.weights_on_request and any(s.is_attention for s in plain)
        ask = {"output_attentions": True} if wants_weights else {}
        ivs = self.check_interventions(interventions)
        with self.evaluating():  # eval() for the passes; the model's own mode comes back after
            for chunk in _chunks(batch.windows, batch_size):
                captured: dict[Site, torch.Tensor] = {}
                examples = None if batch.is_windowed else [w.example for w in chunk]
                with torch.inference_mode(), self.hooks(plain, captured.__setitem__, interventions=ivs,
                                                        examples=examples, check_models=False):
                    self.forward_rows([w.row_ids for w in chunk], stop_after=plain, **ask)
                for s in plain:
                    t = captured[s].to("cpu") if to_cpu else captured[s]
                    for k, w in enumerate(chunk):
                        n = len(w.row_ids)
                        rows_out[s].append(t[k, :, :n, :n] if s.is_attention else t[k, :n])
        per_example = {s: _stitch(batch, rows) for s, rows in rows_out.items()}
        return ActivationCache(batch, per_example, tokenizer=self.tokenizer)

    # --------------------------------------------------------- fingerprint
    def weights_hash(self, *, refresh: bool = False) -> str:
        """SHA-256 over every parameter and buffer (names, dtypes, shapes, bytes), as the weights stand now.

        Remembered between calls and taken again whenever a parameter or
        buffer may have changed (see :func:`probekit.fingerprint.weights_hash`
        for exactly what is noticed); ``refresh=True`` hashes every byte again.
        """
        return weights_hash(self.model, refresh=refresh)

    def forward_settings(self, *, attention: bool = False) -> dict:
        """What the forward depends on besides the weights, as hashes: part of every store's fingerprint.

        ``modules``: every submodule's name, class and settings (``extra_repr()``: ``LayerNorm`` eps,
        ``Dropout`` p, ...); ``config``: the model config without its provenance;
        ``attn_implementation``: the attention kernel the forward runs with (eager whenever attention
        patterns are read, ``attention=True``). Training flags are not included: stored forwards run
        in ``eval()`` mode.

        Raises
        ------
        ValueError
            A forward hook or pre-hook is on one of the model's modules (or a global module hook is
            registered) that probekit did not put there for this call: what it does to the activations
            cannot be fingerprinted. Use :mod:`probekit.interventions` instead, which can.

        Examples
        --------
        >>> import probekit, transformers
        >>> from probekit.model import tiny_config
        >>> m = probekit.load_model(tiny_config())
        >>> before = m.forward_settings()
        >>> m.model.embeddings.LayerNorm.eps = 1e-3
        >>> m.forward_settings()["modules"] != before["modules"]
        True
        """
        hooks = foreign_hooks(self.model)
        if hooks:
            shown = "; ".join(hooks[:3]) + (f"; and {len(hooks) - 3} more" if len(hooks) > 3 else "")
            raise ValueError(
                f"{self.name} has forward hooks probekit did not register: {shown}. What a hook does to the "
                "activations cannot be fingerprinted, so a store would be mixed up with the unhooked model's; "
                "remove the hook (handle.remove()) and express the change as an intervention "
                "(probekit.interventions: Ablate, Steer, Patch, ProjectOut, AblateHeads, a fitted eraser), "
                "which enters the store's fingerprint")
        current = getattr(self.config, "_attn_implementation", None)
        return {"modules": module_settings_hash(self.model), "config": config_hash(self.config),
                "attn_implementation": "eager" if attention else current}


def _unflatten(t: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A token-level tensor flattened to ``[batch * tokens, features]`` as ``[batch, tokens, features]``."""
    return t.reshape(*shape, t.shape[-1]) if t.dim() == 2 and len(shape) == 2 else t


def _tokenwise(fn, shape: Sequence[int]):
    """``fn`` applied to ``[batch, tokens, ...]`` whether or not the module sees the tokens flattened."""
    def run(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and len(shape) == 2:
            return fn(x.reshape(*shape, x.shape[-1])).reshape(x.shape)
        return fn(x)
    return run


class _RowLengths:
    """A forward pre-hook that reads each batch row's real token count from the attention mask.

    Interventions whose ``apply`` takes ``lengths`` get it (``None`` when the
    pass has no mask, or a mask that is not right-padded), so what they do to
    a row never depends on which other rows share its batch.
    """

    def __init__(self):
        self.lengths: list[int] | None = None

    def __call__(self, _module, args, kwargs):
        mask = kwargs.get("attention_mask")
        self.lengths = None
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            lengths = mask.sum(-1)
            prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
            if bool((prefix == mask.bool()).all()):  # right-padded: the row's tokens come first
                self.lengths = [int(n) for n in lengths.tolist()]
        return None


def as_hooked_model(model) -> HookedModel:
    """The :class:`HookedModel` behind ``model``: itself, or a model variant's ``.model``.

    Every function that takes a model calls this first, so a
    :class:`probekit.variants.ModelVariant` is accepted wherever a
    ``HookedModel`` is (the variant carries its model; the model needs to
    know nothing of variants).

    Raises
    ------
    TypeError
        ``model`` is neither.

    Examples
    --------
    >>> import probekit, transformers
    >>> from probekit.model import tiny_config
    >>> m = probekit.load_model(tiny_config())
    >>> as_hooked_model(m) is m
    True
    """
    if isinstance(model, HookedModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, HookedModel) and hasattr(model, "recipe"):
        return inner
    raise TypeError(f"expected a HookedModel or a ModelVariant, not {type(model).__name__}")


def _chunks(items: Sequence[Window], n: int) -> Iterator[Sequence[Window]]:
    if n < 1:
        raise ValueError(f"batch_size must be >= 1, got {n}")
    for i in range(0, len(items), n):
        yield items[i: i + n]


def _stitch(batch: TokenizedBatch, rows: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-window tensors back to one tensor per example."""
    if not batch.is_windowed:
        return rows
    out: list[list[torch.Tensor]] = [[] for _ in batch.examples]
    last: dict[int, int] = {}
    for k, w in enumerate(batch.windows):
        last[w.example] = k
    for k, (w, t) in enumerate(zip(batch.windows, rows)):
        ex = batch.examples[w.example]
        pieces = out[w.example]
        if not pieces:
            pieces.append(t[: ex.n_prefix])
        a = ex.n_prefix + w.keep_start - w.start
        pieces.append(t[a: a + w.keep_stop - w.keep_start])
        if last[w.example] == k:
            pieces.append(t[len(w.row_ids) - ex.n_suffix: len(w.row_ids)])
    return [torch.cat(p) for p in out]
