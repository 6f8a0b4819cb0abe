"""The site vocabulary: where in a model an activation is read.

A :class:`Site` names one activation of one forward pass. Its canonical text
form is what users type and what stores, tables and plots show:

========================  ==========================================  ==================
text                      meaning                                     shape per example
========================  ==========================================  ==================
``emb``                   input to the first block (embeddings)       ``[tokens, d]``
``L3.resid``              residual stream after block 3               ``[tokens, d]``
``L3.attn.pattern``       attention probabilities of block 3          ``[heads, q, k]``
``L3.attn.pattern.h2``    head 2 of that pattern                      ``[q, k]``
``L3.attn.out``           attention sublayer output (before the add)  ``[tokens, d]``
``L3.mlp.hidden``         feed-forward activations after the          ``[tokens, d_ff]``
                          non-linearity
``L3.mlp.router``         router logits of a mixture-of-experts       ``[tokens, experts]``
                          block (before the softmax and top-k)
``L3.mlp.out``            feed-forward sublayer output (before add;   ``[tokens, d]``
                          of a mixture of experts: the experts'
                          combined output)
``final``                 output of the final norm (decoders, and     ``[tokens, d]``
                          encoders that end in one)
========================  ==========================================  ==================

``attn.out`` and ``mlp.out`` are the outputs of the sublayer's output
projection, as the module computes them: blocks that scale or normalise a
sublayer's output before adding it (Gemma 2/3 and OLMo 2 post-norms, Granite's
residual multiplier) add a transformed copy. ``mlp.hidden`` is the input of
the MLP's output projection (for gated MLPs, the gated product); a mixture of
experts has no single one, so it has ``mlp.router`` instead. Which components
a model has is :meth:`probekit.HookedModel.sites`; asking another model for
``mlp.router`` is an error that says why.

Blocks count from 0 (``Site.layer`` is the block index). Parsing is strict: a
typo raises a :class:`ValueError` that suggests the closest valid spelling.

The layer axis
--------------
Every results table has one ``layer`` column with one meaning, defined here
by :func:`site_layer`: ``emb`` is layer 0, every site of block ``i``
(``Li.resid``, the output of block ``i``, and the block's internals such as
``Li.attn.pattern`` or ``Li.mlp.out``) is layer ``i + 1``, and ``final`` is
layer ``n_blocks + 1``, after the last block (never 0, where it would meet
``emb``). For an encoder this is the index of Hugging Face's
``output_hidden_states`` (a decoder's last entry there is the final norm's
output, here ``final``), and the 1-based layer numbering of papers (BERT's
"layer 8" is block 7). Rows about a block's internals (attention
heads, sublayers) also carry ``block = i`` (:func:`site_block`), so the
heads of ``L3.attn.pattern`` are layer 4, block 3.
"""

from __future__ import annotations

import difflib
import numbers
import re
from dataclasses import dataclass

__all__ = ["Site", "LAYER_COMPONENTS", "GLOBAL_COMPONENTS", "TOKEN_COMPONENTS", "site_layer", "site_block"]

#: Components that exist once per block.
LAYER_COMPONENTS: tuple[str, ...] = ("resid", "attn.pattern", "attn.out", "mlp.hidden", "mlp.router", "mlp.out")
#: Components that exist once per model.
GLOBAL_COMPONENTS: tuple[str, ...] = ("emb", "final")
#: Components whose per-example value is token-major ``[tokens, features]``.
TOKEN_COMPONENTS: frozenset[str] = frozenset({"emb", "final", "resid", "attn.out", "mlp.hidden", "mlp.router",
                                              "mlp.out"})

_LAYER_RE = re.compile(r"^L(\d+)\.(.+)$")
_HEAD_RE = re.compile(r"^(.*)\.h(\d+)$")


@dataclass(frozen=True, order=True)
class Site:
    """One activation site of a model.

    Parameters
    ----------
    layer : int or None
        Block index counted from 0; ``None`` for the model-level sites
        ``emb`` and ``final``.
    component : str
        One of :data:`LAYER_COMPONENTS` or :data:`GLOBAL_COMPONENTS`.
    head : int or None
        A single attention head (only for ``attn.pattern``).

    Examples
    --------
    >>> Site.parse("L3.resid")
    Site('L3.resid')
    >>> Site.parse("L3.attn.pattern.h2").head
    2
    >>> str(Site(0, "mlp.out"))
    'L0.mlp.out'
    >>> Site.parse("emb").layer is None
    True

    ``layer`` is the block index; the ``layer`` column of results tables is
    :func:`site_layer` (block ``i`` is layer ``i + 1``).
    """

    layer: int | None
    component: str
    head: int | None = None

    def __post_init__(self) -> None:
        if self.component in GLOBAL_COMPONENTS:
            if self.layer is not None:
                raise ValueError(f"site component {self.component!r} takes no layer (got layer={self.layer})")
        elif self.component in LAYER_COMPONENTS:
            if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
                raise ValueError(f"site component {self.component!r} needs a layer index >= 0, got {self.layer!r}")
        else:
            raise ValueError(
                f"unknown site component {self.component!r}{_suggest(self.component, _ALL_COMPONENTS)}; "
                f"valid components: {', '.join(_ALL_COMPONENTS)}"
            )
        if self.head is not None:
            if self.component != "attn.pattern":
                raise ValueError(f"only attn.pattern sites take a head, not {self.component!r}")
            if not isinstance(self.head, int) or self.head < 0:
                raise ValueError(f"head must be an int >= 0, got {self.head!r}")

    # ------------------------------------------------------------------ text
    @classmethod
    def parse(cls, text: str | Site) -> Site:
        """Parse the canonical text form; a :class:`Site` is returned as is.

        Raises
        ------
        ValueError
            On any text that is not a valid site, with a suggestion when a
            valid spelling is close.
        TypeError
            When ``text`` is neither a string nor a :class:`Site`.
        """
        if isinstance(text, Site):
            return text
        if not isinstance(text, str):
            raise TypeError(f"a site is a str such as 'L3.resid' or a Site, not {type(text).__name__}")
        raw = text.strip()
        if raw in GLOBAL_COMPONENTS:
            return cls(None, raw)
        m = _LAYER_RE.match(raw)
        if m is None:
            raise ValueError(f"cannot parse site {text!r}{_suggest(raw, _EXAMPLES)}; "
                             "expected e.g. 'emb', 'L3.resid', 'L3.attn.pattern'")
        layer, rest = int(m.group(1)), m.group(2)
        head = None
        hm = _HEAD_RE.match(rest)
        if hm is not None and hm.group(1) == "attn.pattern":
            rest, head = hm.group(1), int(hm.group(2))
        if rest not in LAYER_COMPONENTS:
            close = difflib.get_close_matches(rest, LAYER_COMPONENTS, n=1, cutoff=0.5)
            hint = f" (did you mean 'L{layer}.{close[0]}'?)" if close else ""
            raise ValueError(f"unknown site {text!r}{hint}; valid per-layer components: {', '.join(LAYER_COMPONENTS)}")
        return cls(layer, rest, head)

    def __str__(self) -> str:
        if self.layer is None:
            return self.component
        base = f"L{self.layer}.{self.component}"
        return base if self.head is None else f"{base}.h{self.head}"

    def __repr__(self) -> str:
        return f"Site({str(self)!r})"

    # ------------------------------------------------------------ properties
    @property
    def is_token_level(self) -> bool:
        """True when the per-example value is ``[tokens, features]``."""
        return self.component in TOKEN_COMPONENTS

    @property
    def is_attention(self) -> bool:
        """True for attention-pattern sites (``[heads, q, k]`` per example)."""
        return self.component == "attn.pattern"

    def without_head(self) -> Site:
        """The same site with the head selection dropped."""
        return Site(self.layer, self.component)


def site_layer(site: Site | str, n_blocks: int | None = None) -> int:
    """The layer of ``site`` on the one layer axis of every results table.

    Parameters
    ----------
    site : Site or str
    n_blocks : int, optional
        The model's number of blocks; needed only for ``final``.

    Returns
    -------
    int
        ``emb``: 0; any site of block ``i`` (``Li.resid``, ``Li.attn.pattern``,
        ``Li.mlp.out``, ...): ``i + 1``; ``final``: ``n_blocks + 1``.

    Raises
    ------
    ValueError
        For ``final`` without ``n_blocks`` (its layer depends on the model).

    Examples
    --------
    >>> site_layer("emb"), site_layer("L0.resid"), site_layer("L3.attn.pattern.h2")
    (0, 1, 4)
    >>> site_layer("final", n_blocks=2)
    3
    """
    s = Site.parse(site)
    if s.component == "emb":
        return 0
    if s.component == "final":
        if n_blocks is None:
            raise ValueError("the layer of 'final' comes after the model's last block: pass n_blocks "
                             "(the model's number of blocks)")
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, numbers.Integral) or n_blocks < 1:
            raise ValueError(f"n_blocks must be an int >= 1, got {n_blocks!r}")
        return int(n_blocks) + 1
    return s.layer + 1


def site_block(site: Site | str) -> int | None:
    """The block whose internals ``site`` shows, or None.

    Rows about a block's internals (attention patterns and heads, the
    attention and MLP sublayers) carry it in their ``block`` column beside
    ``layer``; ``emb``, ``final`` and the block outputs ``Li.resid`` have none.

    Examples
    --------
    >>> site_block("L3.attn.pattern.h2"), site_block("L3.mlp.out"), site_block("L3.resid"), site_block("emb")
    (3, 3, None, None)
    """
    s = Site.parse(site)
    if s.layer is None or s.component == "resid":
        return None
    return s.layer


_ALL_COMPONENTS = GLOBAL_COMPONENTS + LAYER_COMPONENTS
_EXAMPLES = ("emb", "final") + tuple(f"L0.{c}" for c in LAYER_COMPONENTS)


def _suggest(text: str, options) -> str:
    close = difflib.get_close_matches(text, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
