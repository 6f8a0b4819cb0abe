"""Interventions on activations: ablate, patch, steer, project out, ablate heads, erase concepts.

Site interventions (:class:`Ablate`, :class:`Patch`, :class:`Steer`,
:class:`ProjectOut`, :class:`AblateHeads`) and every fitted eraser are passed
as ``interventions=[...]`` to :meth:`probekit.model.HookedModel.run_with_cache`,
:func:`probekit.extract` (the intervened activations are stored, and the
interventions' descriptions are part of the store fingerprint),
:func:`probekit.variants.evaluate` and :class:`probekit.attribution.Attributor`.
They enter through the same hooks as caching, are applied in list order, and
their hooks are removed when the forward pass ends or raises.

Concept erasure: :class:`LeaceEraser` (closed-form least-squares concept
erasure, Belrose et al. 2023) is fitted streaming from a store's memory maps
in float64 with bounded memory; :class:`InlpEraser` (iterative nullspace
projection, Ravfogel et al. 2020) records the held-out accuracy after each
projection; :func:`random_eraser_like` gives the random-subspace control of
the same rank (Elazar et al. 2021). Every eraser applies itself to
``[..., d]`` features of its site, describes itself as canonical JSON
(``to_dict``, ``fingerprint``) and saves/loads as safetensors + JSON.

Written as data: :func:`from_dict` rebuilds an intervention from its
``to_dict`` (where the description holds it all) and :func:`from_spec` reads
the text forms (``ablate:SITE``, ``heads:BLOCK:H1,H2``, ``erase:DIR``) that
``--intervene`` and a ``probekit run`` config's ``interventions:`` take.

:func:`amnesic_probe` (Elazar et al. 2021) erases a property at each layer
and measures the change in the model's behaviour against a same-rank random
erasure, with the probe accuracy before and after.

One line per file:

- ``_amnesic``: Amnesic probing (Elazar et al. 2021): does the model *use* what a probe finds?
- ``_base``: Interventions at sites: change an activation during the forward pass.
- ``_behaviour``: What a model *does*, measured per example, with and without interventions.
- ``_eraser``: The fitted eraser: an affine map that removes a concept subspace from one site's features.
- ``_inlp``: INLP: iterative nullspace projection (Ravfogel et al. 2020).
- ``_io``: Saving and loading erasers: safetensors for the tensors, JSON for the description. No pickle.
- ``_leace``: LEACE: least-squares concept erasure in closed form (Belrose et al. 2023), fitted streaming.
- ``_patch``: Activation patching: put activations from another run (or from a store) in place of a site's own.
- ``_random``: The random-subspace control: project out ``rank`` random directions.
- ``_rows``: Feature rows and their labels, from memory or from a store, read in bounded chunks.
- ``_spec``: Interventions written as data: :func:`from_dict` (the inverse of ``to_dict``) and :func:`from_spec`
  (text).

Examples
--------
>>> import numpy as np
>>> from probekit.interventions import Eraser, LeaceEraser
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400)
>>> X = rng.normal(size=(400, 5)) + 2 * y[:, None]
>>> eraser = LeaceEraser(site="L3.resid").fit(X, y)
>>> Xe = eraser(X)
>>> bool(abs(Xe[y == 0].mean(0) - Xe[y == 1].mean(0)).max() < 1e-9)
True
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "upos-L3")
>>> eraser.save(path)
>>> Eraser.load(path).fingerprint() == eraser.fingerprint()
True

Intervening during a forward pass:

>>> import probekit, transformers
>>> from probekit.interventions import Ablate, Steer
>>> m = probekit.load_model(probekit.model.tiny_config())
>>> cache = m.run_with_cache(["a cat sat"], ["L0.resid", "L1.resid"],
...                          interventions=[Ablate("L0.resid", "zero")])
>>> float(cache["L0.resid"].abs().max())
0.0
"""

from probekit.interventions._amnesic import AMNESIC_METHODS, amnesic_probe, amnesic_table
from probekit.interventions._base import (
    INTERVENTION_FORMAT,
    Ablate,
    AblateHeads,
    Intervention,
    ProjectOut,
    Steer,
    site_mean,
)
from probekit.interventions._behaviour import Behaviour, ClassifierBehaviour, NextTokenBehaviour
from probekit.interventions._eraser import ERASER_FORMAT, Eraser
from probekit.interventions._inlp import InlpEraser
from probekit.interventions._leace import LeaceEraser, LeaceStatistics, linear_shrinkage
from probekit.interventions._patch import Patch
from probekit.interventions._random import RandomEraser, random_eraser_like
from probekit.interventions._spec import INTERVENTION_GRAMMAR, from_dict, from_spec

__all__ = [
    "AMNESIC_METHODS",
    "Ablate",
    "AblateHeads",
    "Behaviour",
    "ClassifierBehaviour",
    "ERASER_FORMAT",
    "Eraser",
    "INTERVENTION_FORMAT",
    "InlpEraser",
    "Intervention",
    "LeaceEraser",
    "LeaceStatistics",
    "NextTokenBehaviour",
    "Patch",
    "ProjectOut",
    "RandomEraser",
    "Steer",
    "amnesic_probe",
    "amnesic_table",
    "linear_shrinkage",
    "random_eraser_like",
    "site_mean",
    "INTERVENTION_GRAMMAR",
    "from_dict",
    "from_spec",
]
