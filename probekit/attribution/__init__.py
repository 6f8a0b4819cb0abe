"""Attribution of predictions (classifiers and probes) to input tokens, through captum.

One line per file:

- ``_agreement``: Agreement between attribution methods (and attention-based scores).
- ``_core``: One interface over captum's attribution methods, for classifiers and probes.
- ``_results``: Attribution scores and method agreement as tidy :class:`probekit.Results` rows.
"""

from probekit.attribution._agreement import agreement
from probekit.attribution._core import METHODS, Attribution, Attributor
from probekit.attribution._results import agreement_results, attribution_results, mean_ci, token_frame

__all__ = ["METHODS", "Attribution", "Attributor", "agreement", "agreement_results", "attribution_results",
           "mean_ci", "token_frame"]
