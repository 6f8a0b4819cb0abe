"""The ``probekit`` command group; each ``probekit.cli._<topic>`` module adds its commands to it."""

from __future__ import annotations

import logging

import click

from probekit.cli._errors import Group
from probekit.version import __version__

__all__ = ["main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probekit")
@click.option("-v", "--verbose", count=True,
              help="More logging (-v info, -vv debug); -v also shows the traceback of an error.")
def main(verbose: int) -> None:
    """probekit: probing and interpretability for Hugging Face transformers.

    \b
    Examples:
      probekit demo                 # the main job on the bundled model and data -> runs/demo/report.html
      probekit run examples/ud_ewt_probes.yaml   # an experiment from a YAML config
      probekit sites minilm-l6      # list a model's sites
      probekit data fetch ud_ewt    # gold UD English EWT into the cache, checksums verified
      probekit probe --model minilm-l6 --task upos,deprel --out runs/upos

    A failure prints one line, "Error: ...", and exits with status 1.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
