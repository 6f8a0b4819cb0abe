"""Attribution of predictions (classifiers and probes) to input tokens, through captum."""

from probekit.attribution._agreement import agreement
from probekit.attribution._core import METHODS, Attribution, Attributor
from probekit.attribution._results import agreement_results, attribution_results, mean_ci, token_frame

__all__ = ["METHODS", "Attribution", "Attributor", "agreement", "agreement_results", "attribution_results",
           "mean_ci", "token_frame"]
