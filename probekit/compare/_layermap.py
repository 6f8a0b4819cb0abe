"""Which layer of one store stands for which layer of another, read from the variant records in the manifests.

A store's manifest records the model that made it: for a variant, its last
recipe (``components.recipe``; ``model.source.recipe`` with its ``kind``), its
layer map back to the original base (``model.source.layer_map``: base layer
and surviving base heads of every layer) and, when it was loaded from a saved
folder, that folder (``model.source.path``), whose ``layer_map.json`` holds
the same map (read for stores made before the map was recorded).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from probekit.model import Site

__all__ = ["layer_map_for", "head_map_for", "store_layer_map", "store_head_map", "variant_record"]

logger = logging.getLogger(__name__)

_DISTILL_KEYS = {"temperature", "alpha", "n_layers", "layers"}


def variant_record(store) -> dict | None:
    """``{"recipe": dict with kind, "path": folder or None}`` of the variant behind a store, or ``None``.

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> base = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> from probekit.variants import prune_heads
    >>> pruned = prune_heads(base, heads=[(0, 1)], importance="magnitude")
    >>> store = probekit.extract(pruned, ["a cat sat", "it rained"], out=tempfile.mkdtemp() + "/acts")
    >>> rec = variant_record(store)
    >>> rec["recipe"]["kind"], rec["path"]      # path: None until the variant is saved
    ('head-prune', None)
    >>> variant_record(probekit.extract(base, ["a cat sat"], out=tempfile.mkdtemp() + "/acts")) is None
    True
    """
    man = store.manifest
    source = (man.get("model") or {}).get("source") or {}
    recipe = source.get("recipe") if isinstance(source, dict) else None
    if recipe is None:
        recipe = (man.get("components") or {}).get("recipe")
        if recipe is not None and "kind" not in recipe:
            recipe = dict(recipe, kind="distill" if _DISTILL_KEYS <= set(recipe) else "unknown")
    if recipe is None:
        return None
    path = source.get("path") if isinstance(source, dict) else None
    return {"recipe": dict(recipe), "path": path}


def _recorded_map(store) -> dict | None:
    """The variant's layer map as recorded in the manifest, else from its folder's ``layer_map.json``."""
    source = (store.manifest.get("model") or {}).get("source") or {}
    if not isinstance(source, dict):
        return None
    if isinstance(source.get("layer_map"), dict):
        return source["layer_map"]
    rec = variant_record(store)
    if rec is not None and rec["path"]:
        f = Path(rec["path"]) / "layer_map.json"
        if f.is_file():
            return json.loads(f.read_text())
    return None


def _n_layers(store) -> int:
    n = (store.manifest.get("model") or {}).get("n_layers")
    if n is None:
        raise ValueError(f"{store.path}: the manifest records no layer count")
    return int(n)


def store_layer_map(store) -> tuple[int, ...] | None:
    """Base layer behind each layer of the store's model, or ``None`` when nothing is recorded.

    Read from the variant folder's ``layer_map.json`` when the folder still
    exists (it is composed over the whole lineage), else from a distillation
    recipe (relative to the teacher it was distilled from); other recipes
    keep the layers (identity).
    """
    rec = variant_record(store)
    if rec is None:
        return None
    n = _n_layers(store)
    recorded = _recorded_map(store)
    if recorded is not None:
        layers = tuple(int(x) for x in recorded["layers"])
        if len(layers) == n:
            return layers
        logger.warning("%s: the variant's layer map names %d layers but the store's model has %d; ignoring it",
                       store.path, len(layers), n)
    recipe = rec["recipe"]
    if recipe.get("kind") == "distill":
        if recipe.get("layers"):
            return tuple(int(x) for x in recipe["layers"])
        return None  # needs the teacher's depth: resolved by layer_map_for
    return tuple(range(n))


def _distill_layers(recipe: dict, n_teacher: int) -> tuple[int, ...]:
    from probekit.variants import recipe_from_dict  # probekit.variants imports transformers: only for a distillate

    fields = {k: v for k, v in recipe.items() if k != "kind"}
    return recipe_from_dict({"kind": "distill", **fields}).teacher_layers(n_teacher)


def _side_map(store, other) -> tuple[int, ...] | None:
    rec = variant_record(store)
    if rec is not None and rec["recipe"].get("kind") == "distill":
        layers = store_layer_map(store)
        return layers if layers is not None else _distill_layers(rec["recipe"], _n_layers(other))
    return store_layer_map(store)


def _sites(store) -> set[str]:
    return {str(s) for s in store.sites if s.component in ("emb", "resid")}


def layer_map_for(store_a, store_b) -> dict[str, str]:
    """The residual-site layer map (site of A -> site of B) of two stores, for :func:`compare`.

    Each store's layers are placed on the original base model's layers (see
    :func:`store_layer_map`); layer ``i`` of B pairs with the layer of A that
    has the same base layer, and ``emb`` with ``emb``. With no variant
    record on either side, same-named sites pair up.

    Parameters
    ----------
    store_a, store_b : ActivationStore
        Typically the base (or teacher) and the variant (or student).

    Returns
    -------
    dict
        E.g. ``{"emb": "emb", "L1.resid": "L0.resid", "L3.resid": "L1.resid", "L5.resid": "L2.resid"}``
        for a 3-layer student distilled from a 6-layer teacher.

    Examples
    --------
    A 2-layer student distilled (one step, for the example) from a 4-layer teacher:

    >>> import probekit, tempfile, transformers
    >>> from probekit.variants import distill
    >>> cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
    ...                               intermediate_size=37)
    >>> teacher = probekit.load_model(cfg, head="sequence-classification", num_labels=2, seed=0)
    >>> texts, labels = ["a fine film", "a dull film", "great fun", "long and boring"] * 2, [1, 0, 1, 0] * 2
    >>> student = distill(teacher, (texts, labels), epochs=1, batch_size=8, progress=False)
    >>> d = tempfile.mkdtemp()
    >>> teacher_store = probekit.extract(teacher, texts, out=d + "/teacher")
    >>> student_store = probekit.extract(student, texts, out=d + "/student")
    >>> layer_map_for(teacher_store, student_store)
    {'emb': 'emb', 'L0.resid': 'L0.resid', 'L2.resid': 'L1.resid'}
    """
    sa, sb = _sites(store_a), _sites(store_b)
    if not sa or not sb:
        raise ValueError("both stores need residual sites (emb, L{i}.resid) to align layers")
    ma, mb = _side_map(store_a, store_b), _side_map(store_b, store_a)
    na, nb = _n_layers(store_a), _n_layers(store_b)
    ma = ma if ma is not None else tuple(range(na))
    mb = mb if mb is not None else tuple(range(nb))
    base_to_a = {}
    for i, k in enumerate(ma):
        base_to_a.setdefault(k, i)
    out = {"emb": "emb"} if "emb" in sa and "emb" in sb else {}
    for j, k in enumerate(mb):
        i = base_to_a.get(k)
        if i is None:
            continue
        a, b = str(Site(i, "resid")), str(Site(j, "resid"))
        if a in sa and b in sb:
            out[a] = b
    if all(k == "emb" for k in out):
        logger.warning("no layers of %s and %s share a base layer; falling back to same-named sites",
                       store_a.path, store_b.path)
        out = {s: s for s in sa if s in sb}
    return out


def store_head_map(store) -> tuple[tuple[int, ...], ...] | None:
    """The base heads behind each layer's heads (in the layer's order), or ``None`` when all heads are kept.

    Raises ``ValueError`` when the store's model has lost heads but records no
    layer map saying which ones survive.
    """
    recorded = _recorded_map(store)
    heads = recorded.get("heads") if recorded is not None else None
    if heads is not None:
        return tuple(tuple(int(h) for h in layer) for layer in heads)
    model = store.manifest.get("model") or {}
    per_layer, n_heads = model.get("heads_per_layer"), model.get("n_heads")
    if per_layer and n_heads and any(int(h) != int(n_heads) for h in per_layer):
        raise ValueError(f"{store.path}: the model has {per_layer} heads per layer (head-pruned) but its store "
                         "records no layer map naming the surviving heads; pass head_map")
    return None


def head_map_for(store_a, store_b) -> dict[tuple[int, int], tuple[int, int]]:
    """(layer, head) of A -> (layer, head) of B for the heads that are the same head of the base model.

    Layers pair up as in :func:`layer_map_for` (a distilled student's layer
    ``i`` with its teacher's layer) and heads by the base head they descend
    from (the surviving heads of a head-pruned variant); only layers whose
    attention patterns both stores hold are mapped.

    Examples
    --------
    >>> import probekit, tempfile
    >>> from probekit.variants import prune_heads
    >>> base = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> pruned = prune_heads(base, heads=[(0, 1), (1, 3)], importance="magnitude")
    >>> sites, d = ["L0.attn.pattern", "L1.attn.pattern"], tempfile.mkdtemp()
    >>> base_store = probekit.extract(base, ["a cat sat", "it rained"], sites, d + "/base")
    >>> pruned_store = probekit.extract(pruned, ["a cat sat", "it rained"], sites, d + "/pruned")
    >>> head_map_for(base_store, pruned_store)
    {(0, 0): (0, 0), (0, 2): (0, 1), (0, 3): (0, 2), (1, 0): (1, 0), (1, 1): (1, 1), (1, 2): (1, 2)}
    """
    la = sorted({s.layer for s in store_a.sites if s.is_attention})
    lb = sorted({s.layer for s in store_b.sites if s.is_attention})
    if not la or not lb:
        return {}
    ma, mb = _side_map(store_a, store_b), _side_map(store_b, store_a)
    ma = ma if ma is not None else tuple(range(_n_layers(store_a)))
    mb = mb if mb is not None else tuple(range(_n_layers(store_b)))
    ha, hb = store_head_map(store_a), store_head_map(store_b)
    by_base = {}
    for i in la:
        for k, h in enumerate(ha[i] if ha is not None else range(store_a.heads(i))):
            by_base.setdefault((ma[i], h), (i, k))
    out = {}
    for j in lb:
        for k, h in enumerate(hb[j] if hb is not None else range(store_b.heads(j))):
            a = by_base.get((mb[j], h))
            if a is not None:
                out[a] = (j, k)
    return dict(sorted(out.items()))
