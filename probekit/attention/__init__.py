"""Attention analysis: head statistics, heads as parsers, rollout and flow.

One line per file:

- ``_flow``: Attention rollout and attention flow (Abnar & Zuidema 2020).
- ``_importance``: Head importance for a classifier (Michel, Levy & Neubig 2019).
- ``_stats``: Per-head attention statistics over a whole dataset.
- ``_suite``: AttentionSuite: dataset-level attention analysis read from an activation store.
- ``_syntax``: Attention heads as dependency parsers (Clark et al. 2019, section 4).
"""

from probekit.attention._flow import MAX_FLOW_TOKENS, attention_flow, attention_rollout, residual_attention
from probekit.attention._importance import head_importance, head_mask
from probekit.attention._stats import HEAD_METRICS, HeadStatistics, punctuation_mask, word_attention
from probekit.attention._suite import MASS_METRICS, AttentionSuite, special_mass
from probekit.attention._syntax import DependencyHeadAccuracy, fixed_offset_baseline

__all__ = [
    "AttentionSuite",
    "HEAD_METRICS",
    "MASS_METRICS",
    "MAX_FLOW_TOKENS",
    "DependencyHeadAccuracy",
    "HeadStatistics",
    "attention_flow",
    "attention_rollout",
    "fixed_offset_baseline",
    "head_importance",
    "head_mask",
    "punctuation_mask",
    "residual_attention",
    "special_mass",
    "word_attention",
]
