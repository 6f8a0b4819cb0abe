"""``probekit store``: move stores between disks and object storage, list and verify them."""

from __future__ import annotations

import click

from probekit.cli._main import main


@main.group("store")
def store() -> None:
    """Stores at URLs: upload, download, list and verify them (only probekit's own files are touched).

    \b
    A store can live in a local folder or at any fsspec URL (s3://bucket/run, gs://..., memory://...;
    hf://datasets/ORG/REPO read-only); S3 needs pip install 'probekit[remote]'. Every command checks
    every byte against the store's checksums, and push and pull are resumable: run them again after an
    interruption and they copy only what is missing.

    \b
    Examples:
      probekit store push runs/acts s3://bucket/acts
      probekit store ls s3://bucket
      probekit store verify s3://bucket/acts
      probekit store pull s3://bucket/acts /scratch/acts
    """


@store.command("push")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("url")
@click.option("--overwrite", is_flag=True, help="Replace another probekit store at URL.")
def push_cmd(src: str, url: str, overwrite: bool) -> None:
    """Upload the local store SRC to URL (verified first; shards already there are skipped)."""
    from probekit.store import push

    click.echo(f"{src} -> {url}: {push(src, url, overwrite=overwrite)}")


@store.command("pull")
@click.argument("url")
@click.argument("dest", type=click.Path(file_okay=False))
def pull_cmd(url: str, dest: str) -> None:
    """Download the store at URL into the local folder DEST (each file checked before it is kept)."""
    from probekit.store import pull

    click.echo(f"{url} -> {dest}: {pull(url, dest)}")


@store.command("ls")
@click.argument("url")
def ls_cmd(url: str) -> None:
    """The stores at or under URL: model, examples, shards, sites, dtype, complete or not."""
    from probekit.store import list_stores

    found = list_stores(url)
    for where, info in found:
        if info is None:
            click.echo(f"{where}  (unreadable manifest)")
            continue
        state = "complete" if info["complete"] else "incomplete" + (", being written" if info["locked"] else "")
        click.echo(f"{where}  {info['model']}  {info['examples']} examples  {info['shards']} shards  "
                   f"{info['sites']} sites  {info['dtype']}  {state}  {info['fingerprint']}")
    if not found:
        click.echo(f"no probekit store at or under {url}")


@store.command("verify")
@click.argument("location")
def verify_cmd(location: str) -> None:
    """Check every byte of the store at LOCATION (a folder or URL) against its checksums; exit 1 on damage."""
    from probekit.store import verify_store

    problems = verify_store(location)
    if problems:
        raise click.ClickException(f"{location}: {len(problems)} problems: " + "; ".join(problems[:5]))
    click.echo(f"{location}: every file matches its checksum")
