"""Probes: torch-backed scikit-learn classifiers trained in batches over layers, structural
probes, MDL (online code) and the statistics the probe suite reports.

One line per file:

- ``_base``: The scikit-learn classifier shared by the linear, rank-limited and MLP probes.
- ``_batched``: Fit the probes of all layers (and seeds) of one task as one batched computation.
- ``_engine``: The batched training core shared by every classification probe.
- ``_lbfgs``: Full-batch L-BFGS for L2 (or unpenalised) linear probes, batched over probes.
- ``_linear``: Linear and rank-limited probes: multinomial logistic regression in torch.
- ``_mdl``: Minimum description length probing, online code (Voita & Titov 2020).
- ``_mlp``: A one- or two-hidden-layer MLP probe with dropout.
- ``_stats``: Statistics for probe results: bootstrap CIs, McNemar, paired bootstrap, expected layer.
- ``_stream``: Linear probes trained from features streamed out of a store, in bounded memory.
- ``_structural``: Structural probes of Hewitt & Manning (2019): distance and depth probes of rank ``r``.
- ``_suite``: ProbeSuite: tasks x sites x probes x seeds over one or more activation stores.
- ``_task_store``: Stores extracted *for* a probing task, and the probe inputs they give.
- ``_tree_metrics``: Tree metrics of Hewitt & Manning (2019): MST, UUAS, root accuracy and Spearman correlations.

Examples
--------
>>> import numpy as np
>>> from probekit.probes import LinearProbe, fit_batched
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 200)
>>> Xs = np.stack([rng.normal(size=(200, 4)) + k * y[:, None] for k in (0, 2)])
>>> probes = fit_batched(LinearProbe(random_state=0), Xs, y)
>>> len(probes), probes[1][0].score(Xs[1], y) > 0.8
(2, True)
"""

from probekit.probes._batched import fit_batched
from probekit.probes._linear import LinearProbe, RankProbe
from probekit.probes._mdl import DEFAULT_FRACTIONS, MDLResult, codelength_bits, online_codelength, uniform_codelength
from probekit.probes._mlp import MLPProbe
from probekit.probes._stats import (
    BootstrapCI,
    McNemarResult,
    PairedBootstrap,
    bootstrap_ci,
    center_of_gravity,
    expected_layer,
    mcnemar,
    mcnemar_from_counts,
    paired_bootstrap,
    paired_bootstrap_seeds,
)
from probekit.probes._stream import StreamConfig, StreamedFit, fit_streamed
from probekit.probes._structural import DepthProbe, DistanceProbe
from probekit.probes._suite import PROBES, ProbeSuite
from probekit.probes._task_store import (
    StoreTaskMismatchError,
    TaskInputs,
    check_alignment,
    extract_task,
    extract_tasks,
    group_tasks,
    random_init_copy,
    stream_inputs,
    task_inputs,
)
from probekit.probes._tree_metrics import depth_spearman, distance_spearman, mst_edges, root_accuracy, uuas

__all__ = [
    "DEFAULT_FRACTIONS",
    "BootstrapCI",
    "DepthProbe",
    "DistanceProbe",
    "LinearProbe",
    "MDLResult",
    "MLPProbe",
    "McNemarResult",
    "PairedBootstrap",
    "PROBES",
    "ProbeSuite",
    "RankProbe",
    "StreamConfig",
    "StreamedFit",
    "StoreTaskMismatchError",
    "TaskInputs",
    "bootstrap_ci",
    "center_of_gravity",
    "check_alignment",
    "codelength_bits",
    "depth_spearman",
    "distance_spearman",
    "expected_layer",
    "extract_task",
    "extract_tasks",
    "group_tasks",
    "fit_batched",
    "fit_streamed",
    "mcnemar",
    "mcnemar_from_counts",
    "mst_edges",
    "online_codelength",
    "paired_bootstrap",
    "paired_bootstrap_seeds",
    "random_init_copy",
    "root_accuracy",
    "stream_inputs",
    "task_inputs",
    "uniform_codelength",
    "uuas",
]
