"""``probekit attention`` and ``probekit attribute``: analysis reports written to a folder."""

from __future__ import annotations

from pathlib import Path

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main


def _conllu_file(ud_path: str | None, conllu: str | None) -> Path | None:
    if conllu:
        return Path(conllu)
    if ud_path:
        from probekit.data import ud_files

        files = ud_files(ud_path)
        if "dev" not in files:
            raise FileNotFoundError(f"no dev split in {ud_path}; pass the file with --conllu")
        return files["dev"]
    return None


def _gold_trees(store, path: Path) -> tuple[list, list]:
    """Heads and relations of the store's examples, checked word by word against the CoNLL-U sentences."""
    from probekit.data import read_conllu

    sents = read_conllu(path, limit=store.n_examples)
    if len(sents) < store.n_examples:
        raise ValueError(f"{path} has {len(sents)} sentences but the store holds {store.n_examples} examples")
    for i, s in enumerate(sents):
        if list(s.words) != store.words(i):
            raise ValueError(f"example {i} of the store is not sentence {i} of {path} (store words "
                             f"{store.words(i)[:6]}..., file words {list(s.words)[:6]}...); extract the store "
                             "from that file's sentences (word lists) to score heads as parsers")
    return [s.heads for s in sents], [s.deprels for s in sents]


@main.command("attention")
@click.option("--store", "store_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Activation store with L{i}.attn.pattern sites (see 'probekit extract').")
@click.option("--model", "model_spec", default="minilm-l6", show_default=True,
              help="The store's model (alias, folder or hub name); only its tokenizer is loaded.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--example", "example", default=0, show_default=True, help="Example drawn as heatmap and rollout.")
@click.option("--layer", "layers", type=int, multiple=True,
              help="Layer of a heatmap: block i's attention is layer i + 1 (repeatable; default: the first, middle "
                   "and last stored).")
@click.option("--ud-path", default=None,
              help="UD folder (e.g. the one 'probekit data path ud_ewt' prints): score heads as parsers against its "
                   "dev split.")
@click.option("--conllu", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CoNLL-U file the store was extracted from (its first N sentences): score heads as parsers.")
@click.option("--progress/--no-progress", default=False, show_default=True, help="Progress bars.")
def attention_cmd(store_dir: str, model_spec: str, out: str, example: int, layers: tuple[int, ...],
                  ud_path: str | None,
                  conllu: str | None, progress: bool) -> None:
    """Attention report of a store: head statistics, special-token mass, grids, heatmap, rollout.

    Writes what the attention stage of 'probekit run' writes, with the same
    function:
    tables/attention_heads.csv (every head statistic), tables/special_mass.csv
    (mean [CLS]/[SEP]/punctuation/self/prev/next mass and entropy per layer),
    figures/attention__special_mass.png, figures/attention__grid_{sep,cls,entropy}.png
    (layer x head), figures/attention__heatmap_ex{I}_L{B}.png (example I, the
    pattern of block B = layer - 1, mean over heads, one per --layer) and
    figures/attention__rollout_ex{I}.png. With --conllu or --ud-path, also
    tables/dependency_heads.csv (every head as a parser) and
    tables/dependency_best.csv (best head per relation beside the
    fixed-offset baseline); the store must hold that file's sentences as word
    lists, in order.

    \b
    Examples:
      probekit extract --data rt --limit 200 --sites 'L0.attn.pattern,L1.attn.pattern,L2.attn.pattern,\\
          L3.attn.pattern,L4.attn.pattern,L5.attn.pattern' --out runs/attn
      probekit attention --store runs/attn --model minilm-l6 --out runs/attn-report --example 3 --layer 6
    """
    check_output(out)
    from probekit.attention import AttentionSuite
    from probekit.model import load_tokenizer
    from probekit.pipeline import attention_outputs
    from probekit.runfolder import Outputs
    from probekit.store import ActivationStore, StoreError

    try:
        store = ActivationStore.open(store_dir)
        suite = AttentionSuite(store, load_tokenizer(model_spec))
        gold_path = _conllu_file(ud_path, conllu)
        gold = _gold_trees(store, gold_path) if gold_path is not None else None
        written = Outputs(out)
        tables = attention_outputs(suite, written, example=example, layers=list(layers) or None, gold=gold,
                                   progress=progress)
    except (ValueError, FileNotFoundError, OSError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    stored = [b + 1 for b in suite.blocks]
    click.echo(f"{store.n_examples} examples, attention at layers {stored}; wrote {', '.join(written.written)} "
               f"to {out}")
    click.echo(tables["special_mass"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if gold is not None:
        cols = ["relation", "layer", "block", "head", "direction", "accuracy", "baseline_accuracy", "n"]
        click.echo(tables["dependency_best"][cols].head(10).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@main.command("attribute")
@click.option("--model", "model_spec", required=True,
              help="A sequence-classification model (alias, folder or hub name).")
@click.option("--text", "texts", multiple=True, required=True, help="Input text. Repeatable.")
@click.option("--method", "methods", multiple=True, default=("integrated_gradients", "saliency"), show_default=True,
              help="Attribution method (integrated_gradients, saliency, input_x_gradient, deeplift, "
                   "gradient_shap, layer_conductance, attention_x_gradient, blank_out). Repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--target", type=int, default=None, help="Class to explain (default: each text's predicted class).")
@click.option("--baseline", type=click.Choice(["pad", "mask", "unk"]), default="pad", show_default=True)
@click.option("--n-steps", default=50, show_default=True, help="Integration steps.")
@click.option("--num-labels", type=int, default=None, help="Labels of the classification head, if not saved.")
def attribute_cmd(model_spec: str, texts: tuple[str, ...], methods: tuple[str, ...], out: str, target: int | None,
                  baseline: str, n_steps: int, num_labels: int | None) -> None:
    """Attribute a classifier's prediction to input tokens, methods side by side.

    Writes what the attribution stage of 'probekit run' writes, with the same
    function: attributions/example_{i}.html and figures/attributions__example_{i}.png
    per text (one row per method), tables/attributions.csv (tidy rows),
    tables/attribution_scores.csv (example, method, position, token, score,
    target, f_input, completeness_error, delta) and, with two or more
    methods, tables/attribution_agreement.csv (Spearman correlation per text
    and pair of methods, over the content tokens).
    Prints each completeness error
    (|sum of scores - (f(input) - f(baseline))|, for integrated gradients,
    deeplift and gradient SHAP).

    \b
    Examples:
      probekit attribute --model runs/sst2-model --text "a gripping, funny film" \\
          --text "dull and far too long" --method integrated_gradients --method saliency --out runs/attr
    """
    check_output(out)
    from probekit.attribution import METHODS, Attributor
    from probekit.pipeline import attribution_outputs
    from probekit.runfolder import Outputs
    from probekit.variants import load_model

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise click.BadParameter(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}", param_hint="--method")
    try:
        model = load_model(model_spec, head="sequence-classification", num_labels=num_labels)
        by_method = {m: Attributor(model, m).attribute(list(texts), target=target, baseline=baseline,
                                                       n_steps=n_steps)
                     for m in dict.fromkeys(methods)}
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    written = Outputs(out)
    attribution_outputs(by_method, written, special_tokens=model.tokenizer.all_special_tokens, model=model_spec)
    for i in range(len(texts)):
        for m, res in by_method.items():
            a = res[i]
            err = a.completeness_error
            click.echo(f"text {i} {m}: target {a.target}, f(input) {a.f_input:.4f}, completeness error "
                       + ("n/a" if err is None else f"{err:.4g}"))
    click.echo(f"wrote {', '.join(written.written)} to {out}")
