"""``probekit extract``: write an activation store to disk."""

from __future__ import annotations

import click

from probekit.cli._errors import check_output, split_list
from probekit.cli._main import main

INTERVENE_HELP = ("Intervene during the forward pass (repeatable, applied in order): 'ablate:SITE' (zero the "
                  "site), 'heads:BLOCK:H1,H2' (zero attention heads of a block), 'erase:DIR' (an eraser saved by "
                  "'probekit erase', on the model it was fitted on; 'erase-other-model:DIR' applies it to another "
                  "model). Mean ablation, patching and steering take arrays: use the Python API. The "
                  "interventions are part of the store's fingerprint.")


def parse_intervention(spec: str):
    """One ``--intervene`` value as an intervention object; a bad value is a ``click.BadParameter``."""
    from probekit.interventions import from_spec

    try:
        return from_spec(spec)
    except (ValueError, TypeError, FileNotFoundError, LookupError) as exc:
        raise click.BadParameter(str(exc) if spec in str(exc) else f"{spec!r}: {exc}",
                                 param_hint="--intervene") from None


@main.command("extract")
@click.option("--model", "model_spec", default="minilm-l6", show_default=True,
              help="Alias, model folder or hub name.")
@click.option("--data", "source", required=True,
              help="rt / rotten_tomatoes, imdb, or a .txt (one text per line), .csv or .jsonl file "
                   "with a 'text' column.")
@click.option("--limit", type=int, default=None, help="Use only the first N examples.")
@click.option("--sites", multiple=True, default=("resid",), show_default=True,
              help="Comma-separated sites (e.g. 'emb,L3.resid,L3.attn.pattern'), 'resid' or 'all'. Repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Store directory.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True)
@click.option("--word-pooling", multiple=True, help="Also store word vectors: first, last, mean (comma-separated).")
@click.option("--sentence-pooling", multiple=True, help="Also store sentence vectors: cls, mean, last.")
@click.option("--no-tokens", is_flag=True, help="Store only the pooled views, not token rows.")
@click.option("--shard-size", type=int, default=None,
              help="Examples per shard [default: 512 with token rows, 2048 for pooled rows only].")
@click.option("--batch-tokens", default=2048, show_default=True, help="Token budget of a forward batch.")
@click.option("--long-inputs", type=click.Choice(["error", "window"]), default="error", show_default=True)
@click.option("--autocast", type=click.Choice(["bf16"]), default=None, help="Run the forward under bf16 autocast.")
@click.option("--intervene", "intervene", multiple=True, metavar="SPEC", help=INTERVENE_HELP)
@click.option("--overwrite", is_flag=True,
              help="Replace a probekit store made from other inputs (never a folder holding other files).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def extract_cmd(model_spec: str, source: str, limit: int | None, sites: tuple[str, ...], out: str, dtype: str,
                word_pooling: tuple[str, ...], sentence_pooling: tuple[str, ...], no_tokens: bool,
                shard_size: int | None, batch_tokens: int, long_inputs: str, autocast: str | None,
                intervene: tuple[str, ...], overwrite: bool, progress: bool | None) -> None:
    """Run a model over data and store activations on disk (resumable).

    Re-running the same command resumes an interrupted extraction or reuses
    a complete store. Runs data-parallel under torchrun / accelerate launch.

    \b
    Examples:
      probekit extract --data rt --limit 2000 --out runs/rt-minilm
      probekit extract --data reviews.csv --sites 'L2.resid,L5.resid' --word-pooling mean --out runs/rev
      probekit extract --data rt --limit 500 --intervene erase:runs/upos-L2 --out runs/rt-erased
      probekit extract --data rt --limit 500 --intervene heads:3:0,5 --intervene ablate:L4.mlp.out --out runs/abl
    """
    check_output(out)
    interventions = [parse_intervention(spec) for spec in intervene]
    from probekit.store import extract, load_source
    from probekit.variants import load_model

    try:
        data = load_source(source, limit=limit)
        model = load_model(model_spec)
        store = extract(model, data, split_list(sites), out, dtype=dtype, tokens=not no_tokens,
                        word_pooling=split_list(word_pooling), sentence_pooling=split_list(sentence_pooling),
                        shard_size=shard_size, batch_tokens=batch_tokens, long_inputs=long_inputs,
                        autocast=autocast, progress=progress, overwrite=overwrite, interventions=interventions)
    except (ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    st = store.manifest.get("stats", {})
    click.echo(f"{store.location}: {store.n_examples} examples, {store.manifest['n_tokens']} tokens, "
               f"{len(store.sites)} sites ({', '.join(map(str, store.sites))}), {store.settings['dtype']}; "
               f"{st.get('shards_computed', 0)} shards computed, {st.get('shards_reused', 0)} reused"
               + (f"; interventions: {', '.join(map(repr, interventions))}" if interventions else ""))


def _intervene(**kwargs) -> None:
    if not kwargs["intervene"]:
        raise click.UsageError("give at least one --intervene SPEC (without interventions, use 'probekit extract')")
    click.get_current_context().invoke(extract_cmd, **kwargs)


main.add_command(click.Command(
    "intervene", params=extract_cmd.params, callback=_intervene,
    help="Store the activations of a model run with interventions: 'probekit extract' with at least one "
         "--intervene.\n\n\b\nExamples:\n"
         "  probekit intervene --data rt --limit 500 --intervene erase:runs/upos-L2 --out runs/rt-erased\n"
         "  probekit intervene --data rt --limit 500 --intervene heads:3:0,5 --out runs/heads-ablated",
    short_help="Store activations of a model run with interventions."))
