"""Interventions on activations. So far: concept erasure fitted from stores or arrays.

:class:`LeaceEraser` (closed-form least-squares concept erasure, Belrose et
al. 2023) is fitted streaming from a store's memory maps in float64 with
bounded memory; :class:`InlpEraser` (iterative nullspace projection, Ravfogel
et al. 2020) records the held-out accuracy after each projection;
:func:`random_eraser_like` gives the random-subspace control of the same rank
(Elazar et al. 2021). Every eraser applies itself to ``[..., d]`` features of
its site, describes itself as canonical JSON (``to_dict``, ``fingerprint``) and
saves/loads as safetensors + JSON.

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
"""

from probekit.interventions._eraser import ERASER_FORMAT, Eraser
from probekit.interventions._inlp import InlpEraser
from probekit.interventions._leace import LeaceEraser, LeaceStatistics, linear_shrinkage
from probekit.interventions._random import RandomEraser, random_eraser_like

__all__ = [
    "ERASER_FORMAT",
    "Eraser",
    "InlpEraser",
    "LeaceEraser",
    "LeaceStatistics",
    "RandomEraser",
    "linear_shrinkage",
    "random_eraser_like",
]
