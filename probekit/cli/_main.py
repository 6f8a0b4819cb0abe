"""The ``probekit`` command group; each ``probekit.cli._<topic>`` module adds its commands to it."""

from __future__ import annotations

import logging
import os

import click

from probekit.cli._errors import Group
from probekit.version import __version__

__all__ = ["main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probekit")
@click.option("-v", "--verbose", count=True,
              help="More logging (-v info, -vv debug); -v also shows the traceback of an error.")
@click.option("--profile", is_flag=True,
              help="When the command ends, print where its time went: seconds per phase (load, tokenize, forward, "
                   "pool, write, read, fit, bootstrap, tables, figures).")
def main(verbose: int, profile: bool) -> None:
    """probekit: probing and interpretability for Hugging Face transformers.

    \b
    Examples:
      probekit demo                 # the main job on the bundled model and data -> runs/demo/report.html
      probekit run examples/ud_ewt_probes.yaml   # an experiment from a YAML config
      probekit sites minilm-l6      # list a model's sites
      probekit data fetch ud_ewt    # gold UD English EWT into the cache, checksums verified
      probekit probe --model minilm-l6 --task upos,deprel --out runs/upos
      probekit --profile probe ...  # and where its time went

    A failure prints one line, "Error: ...", and exits with status 1.
    """
    # the commands write figures to files: no window, whatever display the machine has (the library itself
    # leaves the backend to the user)
    os.environ.setdefault("MPLBACKEND", "Agg")
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if profile:
        from probekit.profiling import Profile

        prof = Profile().__enter__()

        def report() -> None:
            prof.__exit__(None, None, None)
            click.echo("\nwhere the time went (wall seconds per phase):\n" + prof.table(), err=True)

        click.get_current_context().call_on_close(report)
