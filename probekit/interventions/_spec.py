"""Interventions written as data: :func:`from_dict` (the inverse of ``to_dict``) and :func:`from_spec` (text).

One grammar for every door: the ``--intervene`` option of the commands, the
``interventions:`` section of a ``probekit run`` config and Python all go
through :func:`from_spec` / :func:`from_dict`:

=============================  =====================================================
text                           intervention
=============================  =====================================================
``ablate:SITE``                ``Ablate(SITE, "zero")``
``heads:BLOCK:H1,H2``          ``AblateHeads(BLOCK, [H1, H2])``
``erase:DIR``                  ``Eraser.load(DIR)`` (an eraser saved by ``Eraser.save``)
``erase-other-model:DIR``      the same, allowed to act on another model
=============================  =====================================================

A mapping is either such a description (``to_dict()`` of an intervention
without arrays: ``ablate`` zero, ``ablate_heads``) or ``{"eraser": DIR}``.
Interventions that carry arrays (a mean ablation, a steering vector, a
projection, a patch) are described by their arrays' hash only, so they are
built in Python; their description cannot rebuild them, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from probekit.interventions._base import INTERVENTION_FORMAT, Ablate, AblateHeads, Intervention
from probekit.interventions._eraser import Eraser

__all__ = ["from_dict", "from_spec", "INTERVENTION_GRAMMAR"]

#: The text forms :func:`from_spec` reads (for help texts and error messages).
INTERVENTION_GRAMMAR = "ablate:SITE, heads:BLOCK:H1,H2, erase:DIR or erase-other-model:DIR"


def from_dict(desc: Mapping) -> Intervention | Eraser:
    """The intervention a description stands for: the inverse of ``to_dict`` where the description holds it all.

    Parameters
    ----------
    desc : mapping
        ``to_dict()`` of an :class:`Ablate` (zero) or :class:`AblateHeads`, or ``{"eraser": DIR}`` (optionally
        with ``"allow_other_model": true``).

    Raises
    ------
    ValueError
        The description is of another kind or format, or of an intervention whose arrays it covers only by
        their hash (build those in Python, or save an eraser and name its folder).

    Examples
    --------
    >>> iv = AblateHeads(1, [0, 2])
    >>> from_dict(iv.to_dict()).fingerprint() == iv.fingerprint()
    True
    >>> from_dict({"type": "ablate", "site": "L1.resid"})
    Ablate('L1.resid', how='zero')
    """
    if not isinstance(desc, Mapping):
        raise ValueError(f"an intervention description is a mapping, not {type(desc).__name__}")
    if "eraser" in desc:
        extra = set(desc) - {"eraser", "allow_other_model"}
        if extra:
            raise ValueError(f"an eraser entry takes 'eraser' (its folder) and 'allow_other_model', not "
                             f"{sorted(extra)}")
        return Eraser.load(desc["eraser"], allow_other_model=bool(desc.get("allow_other_model", False)))
    if desc.get("kind", "intervention") != "intervention":
        raise ValueError(f"{desc.get('kind')!r} descriptions are not interventions; a saved eraser is named by its "
                         "folder: {'eraser': DIR}")
    if desc.get("format", INTERVENTION_FORMAT) != INTERVENTION_FORMAT:
        raise ValueError(f"intervention description format {desc.get('format')}; this probekit reads "
                         f"{INTERVENTION_FORMAT}")
    if desc.get("arrays"):
        raise ValueError(f"a {desc.get('type')} intervention with arrays is described by their hash only "
                         f"({desc['arrays'].get('sha256', '')[:12]}...), so its description cannot rebuild it; "
                         "build it in Python")
    kind, site, params = desc.get("type"), desc.get("site"), dict(desc.get("params") or {})
    positions = desc.get("positions")
    if site is None:
        raise ValueError(f"the intervention description names no site: {dict(desc)}")
    if kind == "ablate":
        how = params.pop("how", "zero")
        if how != "zero" or params:
            raise ValueError(f"only a zero ablation is rebuilt from its description (a mean ablation carries its "
                             f"mean); got how={how!r} {params or ''}")
        return Ablate(site, "zero", positions=positions)
    if kind == "ablate_heads":
        if set(params) != {"heads"} or positions is not None:
            raise ValueError(f"an ablate_heads description holds params {{'heads': [...]}} and no positions; got "
                             f"{params}")
        return AblateHeads(site, params["heads"])
    raise ValueError(f"intervention type {kind!r} cannot be rebuilt from a description (ablate and ablate_heads "
                     "can; an eraser is named by its folder)")


def from_spec(spec: str | Mapping) -> Intervention | Eraser:
    """An intervention from its text form (see the module docstring) or a description (:func:`from_dict`).

    Raises
    ------
    ValueError
        Not one of the forms, or the named eraser or site is unusable (the message says which).

    Examples
    --------
    >>> from_spec("ablate:L1.resid"), from_spec("heads:0:1,3")
    (Ablate('L1.resid', how='zero'), AblateHeads(0, [1, 3]))
    """
    if not isinstance(spec, str):
        return from_dict(spec)
    kind, _, rest = spec.partition(":")
    if kind == "ablate" and rest:
        site, _, how = rest.partition(":")
        if how not in ("", "zero"):
            raise ValueError(f"{spec!r}: only zero ablation has a text form, got {how!r}")
        return Ablate(site, "zero")
    if kind == "heads" and rest.count(":") == 1:
        block, heads = rest.split(":")
        try:
            return AblateHeads(int(block), [int(h) for h in heads.split(",") if h.strip()])
        except ValueError as exc:
            raise ValueError(f"{spec!r}: {exc}") from None
    if kind in ("erase", "erase-other-model") and rest:
        return Eraser.load(rest, allow_other_model=kind == "erase-other-model")
    raise ValueError(f"{spec!r} is not {INTERVENTION_GRAMMAR}")
