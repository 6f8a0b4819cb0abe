"""``probekit data``: fetch pinned gold data (UD English EWT) into the cache, verified."""

from __future__ import annotations

import click

from probekit.cli._main import main


@main.group("data")
def data() -> None:
    """Gold data fetched from its pinned release, every file checked against the checksums in probekit.

    \b
    Files go to $PROBEKIT_CACHE/data/NAME-RELEASE (PROBEKIT_CACHE defaults to ~/.cache/probekit).
    Tasks built with source ud and no --ud-path use the fetched UD English EWT
    ($PROBEKIT_UD_PATH, when set, comes first).

    \b
    Examples:
      probekit data list
      probekit data fetch ud_ewt                              # from GitHub (UniversalDependencies/UD_English-EWT)
      probekit data fetch ud_ewt --from /media/usb/ud_en_ewt  # offline, from a local copy
      probekit data fetch ud_ewt --from https://mirror.example.org/ud/r2.16/
      probekit data fetch ud_ewt --splits train,dev
      probekit data path ud_ewt
      probekit data verify ud_ewt
    """


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc))


@data.command("list")
def list_cmd() -> None:
    """The datasets probekit can fetch: release, files, licence, and where (if) they are fetched."""
    from probekit.data import DATASETS, data_home, fetched_path

    for spec in DATASETS.values():
        where = fetched_path(spec)
        click.echo(f"{spec.name}  {spec.release}  {spec.title}")
        click.echo(f"  files:   {', '.join(f'{f.split}={f.name}' for f in spec.files)}")
        click.echo(f"  source:  {spec.base_url}")
        click.echo(f"  licence: {spec.license}; cite {spec.citation}")
        click.echo(f"  fetched: {where if where else 'no (would go to ' + str(data_home() / spec.folder) + ')'}")


@data.command("fetch")
@click.argument("name")
@click.option("--from", "source", default=None, metavar="DIR_OR_URL",
              help="Read the files from a local folder or a mirror's base URL (https://, http://, file://) instead "
                   "of the release URL; the same checksums are checked.")
@click.option("--splits", default=None, metavar="LIST",
              help="Only these files, comma-separated (e.g. train,dev); default all.")
@click.option("--force", is_flag=True, help="Download again even files that are already there and verify.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar per file.")
def fetch_cmd(name: str, source: str | None, splits: str | None, force: bool, progress: bool) -> None:
    """Download dataset NAME (see 'probekit data list'), verify every file, and print its folder.

    Each file is written under a temporary name, checked, then renamed: a file
    that does not match its checksum is deleted and named in the error, and an
    interrupted download leaves no file that looks complete.
    """
    from probekit.data import fetch

    parts = None if splits is None else [s.strip() for s in splits.split(",") if s.strip()]
    try:
        folder = fetch(name, source=source, splits=parts, force=force, progress=progress)
    except (LookupError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    click.echo(str(folder))


@data.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the folder of fetched dataset NAME (an error saying how to fetch it when it is not there)."""
    from probekit.data import fetched_path

    try:
        click.echo(str(fetched_path(name, required=True)))
    except (LookupError, FileNotFoundError) as exc:
        raise _fail(exc) from None


@data.command("verify")
@click.argument("name")
def verify_cmd(name: str) -> None:
    """Check every file of fetched dataset NAME against its checksum again."""
    from probekit.data import verify_fetched

    try:
        folder = verify_fetched(name)
    except (LookupError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    click.echo(f"{folder}: every file matches its pin")
