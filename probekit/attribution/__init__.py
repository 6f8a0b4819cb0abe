"""Attribution of predictions (classifiers and probes) to input tokens, through captum."""

from probekit.attribution._agreement import agreement
from probekit.attribution._core import METHODS, Attribution, Attributor

__all__ = ["METHODS", "Attribution", "Attributor", "agreement"]
