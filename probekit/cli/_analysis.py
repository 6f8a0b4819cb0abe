"""``probekit attention`` and ``probekit attribute``: analysis reports written to a folder."""

from __future__ import annotations

from pathlib import Path

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


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
@click.option("--layer", type=int, default=None,
              help="Layer of the heatmap: block i's attention is layer i + 1 (default: the last stored).")
@click.option("--ud-path", default=None,
              help="UD folder (e.g. the one 'probekit data path ud_ewt' prints): score heads as parsers against its "
                   "dev split.")
@click.option("--conllu", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CoNLL-U file the store was extracted from (its first N sentences): score heads as parsers.")
@click.option("--progress/--no-progress", default=False, show_default=True, help="Progress bars.")
def attention_cmd(store_dir: str, model_spec: str, out: str, example: int, layer: int | None, ud_path: str | None,
                  conllu: str | None, progress: bool) -> None:
    """Attention report of a store: head statistics, special-token mass, grids, heatmap, rollout.

    Writes, in the pipeline's layout and with its functions,
    tables/attention_heads.csv (every head statistic), tables/special_mass.csv
    (mean [CLS]/[SEP]/punctuation/self/prev/next mass and entropy per layer),
    figures/attention__special_mass.png, figures/attention__grid_{sep,cls,entropy}.png
    (layer x head), figures/attention__heatmap_ex{I}_L{B}.png (example I, the
    pattern of block B = layer - 1, mean over heads) and
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
    import torch

    from probekit.attention import AttentionSuite
    from probekit.model import Site, load_tokenizer
    from probekit.pipeline import Outputs, attention_outputs
    from probekit.plots import attention_heatmap, pattern_frame
    from probekit.store import ActivationStore, StoreError

    outp = Path(out)
    try:
        store = ActivationStore.open(store_dir)
        tokenizer = load_tokenizer(model_spec)
        suite = AttentionSuite(store, tokenizer)
        if not 0 <= example < store.n_examples:
            raise ValueError(f"--example {example} is outside the store's {store.n_examples} examples")
        stored = [b + 1 for b in suite.blocks]  # the layer axis: block i's pattern is layer i + 1
        layer = stored[-1] if layer is None else layer
        if layer not in stored:
            raise ValueError(f"--layer {layer} has no stored attention pattern; stored layers: {stored} "
                             "(block i's pattern L{i}.attn.pattern is layer i + 1)")
        gold_path = _conllu_file(ud_path, conllu)
        gold = _gold_trees(store, gold_path) if gold_path is not None else None
    except (ValueError, FileNotFoundError, OSError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    out_ = Outputs(outp)
    _, mass = attention_outputs(suite, out_, progress=progress)

    tokens = tokenizer.convert_ids_to_tokens(store.input_ids(example).tolist())
    block = layer - 1
    pattern = torch.from_numpy(store[Site(block, "attn.pattern")].example(example).astype("float32"))
    out_.figure(lambda: attention_heatmap(
        pattern_frame(pattern, tokens), title=f"example {example}, layer {layer} (L{block}.attn.pattern), "
                                              "mean over heads"), "attention", f"heatmap_ex{example}_L{block}")
    if suite.blocks == list(range(len(suite.blocks))):
        roll = suite.rollout(example)
        out_.figure(lambda: attention_heatmap(
            pattern_frame(torch.as_tensor(roll[-1]), tokens),
            title=f"example {example}, attention rollout through layer {len(suite.blocks)}"),
                    "attention", f"rollout_ex{example}")
    else:
        click.echo(f"rollout skipped: it needs every block's pattern from block 0, the store has blocks "
                   f"{suite.blocks}", err=True)

    if gold is not None:
        results, best, _ = suite.dependency_heads(*gold, progress=progress)
        out_.table(results.to_frame(), "dependency_heads")
        out_.table(best, "dependency_best")
    written = out_.written

    click.echo(f"{store.n_examples} examples, attention at layers {stored}; wrote {', '.join(written)} to {outp}")
    click.echo(mass.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if gold is not None:
        cols = ["relation", "layer", "block", "head", "direction", "accuracy", "baseline_accuracy", "n"]
        click.echo(best[cols].head(10).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


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

    Writes attribution.html (every text, one row per method), attribution_{i}.png
    per text, scores.csv (text, method, position, token, score, target,
    f_input, completeness_error, delta) and results.csv, the same scores as
    tidy result rows (task "attribution:ex{i}:{position}:{token}", metric the
    method) plus, with two or more methods, their agreement over the content
    tokens (metric "spearman:{a}~{b}", mean over texts with a bootstrap CI).
    Prints each completeness error
    (|sum of scores - (f(input) - f(baseline))|, for integrated gradients,
    deeplift and gradient SHAP).

    \b
    Examples:
      probekit attribute --model runs/sst2-model --text "a gripping, funny film" \\
          --text "dull and far too long" --method integrated_gradients --method saliency --out runs/attr
    """
    check_output(out)
    import numpy as np
    import pandas as pd

    from probekit.attribution import METHODS, Attributor, agreement, agreement_results, attribution_results
    from probekit.plots import attribution_html, attribution_png
    from probekit.variants import load_model

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise click.BadParameter(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}", param_hint="--method")
    outp = Path(out)
    try:
        model = load_model(model_spec, head="sequence-classification", num_labels=num_labels)
        by_method = {m: Attributor(model, m).attribute(list(texts), target=target, baseline=baseline,
                                                       n_steps=n_steps)
                     for m in dict.fromkeys(methods)}
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    outp.mkdir(parents=True, exist_ok=True)
    rows, fragments = [], []
    for i in range(len(texts)):
        atts = {m: res[i] for m, res in by_method.items()}
        tokens = next(iter(atts.values())).tokens
        scores = {m: np.asarray(a.scores, float) for m, a in atts.items()}
        title = f"text {i}: target class {next(iter(atts.values())).target}"
        fragments.append(attribution_html(tokens, scores, title=title))
        _save(attribution_png(tokens, scores, title=title), outp / f"attribution_{i}.png")
        for m, a in atts.items():
            err = a.completeness_error
            click.echo(f"text {i} {m}: target {a.target}, f(input) {a.f_input:.4f}, completeness error "
                       + ("n/a" if err is None else f"{err:.4g}"))
            for pos, (tok, s) in enumerate(zip(a.tokens, a.scores)):
                rows.append({"text": i, "method": m, "position": pos, "token": tok, "score": float(s),
                             "target": a.target, "f_input": a.f_input, "completeness_error": err, "delta": a.delta})
    (outp / "attribution.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>probekit attribution</title>\n" + "\n".join(fragments) + "\n",
        encoding="utf-8")
    pd.DataFrame(rows).to_csv(outp / "scores.csv", index=False)
    tidy = attribution_results(by_method, model=model_spec)
    if len(by_method) > 1:
        special = set(model.tokenizer.all_special_tokens)
        first = next(iter(by_method.values()))
        content = [np.array([t not in special for t in a.tokens]) for a in first]
        table = agreement({m: [a.scores for a in res] for m, res in by_method.items()}, content=content)
        tidy = tidy + agreement_results(table, per_example=True, model=model_spec)
    tidy.to_csv(outp / "results.csv")
    click.echo(f"wrote attribution.html, {len(texts)} PNG(s), scores.csv and results.csv to {outp}")
