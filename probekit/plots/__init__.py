"""Plots (seaborn/matplotlib). Every function takes a DataFrame and returns a matplotlib Figure.

One line per file:

- ``_amnesic``: Amnesic probing plot: probe accuracy before/after erasure and the behaviour change against random
  erasure.
- ``_attention``: Attention heatmaps and layer x head grids.
- ``_attribution``: Token-coloured attribution views: self-contained HTML and PNG, methods side by side.
- ``_compare``: Model-variant comparison plots: aligned-layer similarity curves and a task x layer probe-delta
  heatmap.
- ``_probes``: Probe-suite plots: accuracy by layer with intervals and controls, a task x layer heatmap,
  selectivity.
- ``_similarity``: Layer x layer similarity heatmaps.
"""

from probekit.plots._amnesic import amnesic_plot
from probekit.plots._attention import attention_heatmap, layer_head_grid, pattern_frame
from probekit.plots._attribution import attribution_html, attribution_png
from probekit.plots._compare import diagonal_curves, probe_delta_heatmap
from probekit.plots._probes import probe_curves, probe_heatmap, selectivity_curves
from probekit.plots._similarity import similarity_heatmap

__all__ = [
    "amnesic_plot",
    "attention_heatmap",
    "attribution_html",
    "attribution_png",
    "diagonal_curves",
    "layer_head_grid",
    "pattern_frame",
    "probe_delta_heatmap",
    "probe_curves",
    "probe_heatmap",
    "selectivity_curves",
    "similarity_heatmap",
]
