"""``probekit finetune | prune | quantize | distill | export``: make model variants from the shell.

DATA sources: ``rotten_tomatoes`` (the fixed 80/10/10 split of
:func:`probekit.variants.rotten_tomatoes_splits`: train for training,
validation for evaluation), or a ``.csv`` / ``.jsonl`` / ``.parquet`` file with
``text`` and ``label`` columns.
"""

from __future__ import annotations

import json

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main


def _read(source: str, part: str = "train"):
    import pandas as pd

    if source in ("rotten_tomatoes", "rt"):
        from probekit.variants import rotten_tomatoes_splits

        return rotten_tomatoes_splits(seed=0)[part]
    if source.endswith(".csv"):
        return pd.read_csv(source)
    if source.endswith(".jsonl"):
        return pd.read_json(source, lines=True)
    if source.endswith(".parquet"):
        return pd.read_parquet(source)
    raise click.BadParameter(f"unknown data source {source!r}: use rotten_tomatoes or a .csv/.jsonl/.parquet file")


def _load(spec: str, head: str | None):
    from probekit.variants import load_model

    return load_model(spec, head=head)


def _done(variant, out: str) -> None:
    variant.save(out)
    click.echo(f"{variant!r}\nsaved to {out} (fingerprint {variant.fingerprint()[:12]})")


@main.command("finetune")
@click.option("--model", "spec", required=True, help="Alias, folder or hub name of the model to fine-tune.")
@click.option("--data", "source", required=True, help="rotten_tomatoes, or a csv/jsonl/parquet with text,label.")
@click.option("--eval-data", default=None, help="Validation data (default: the source's validation split, if any).")
@click.option("--out", required=True, type=click.Path(), help="Folder for checkpoints and the best model.")
@click.option("--task", type=click.Choice(["sequence-classification", "token-classification"]),
              default="sequence-classification", show_default=True)
@click.option("--epochs", default=3.0, show_default=True)
@click.option("--lr", default=5e-5, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--grad-accum", default=1, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--max-length", default=128, show_default=True)
@click.option("--early-stopping", default=2, show_default=True, help="Patience in epochs (0: off).")
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT/checkpoints.")
def finetune_cmd(spec, source, eval_data, out, task, epochs, lr, batch_size, grad_accum, precision, max_length,
                 early_stopping, seed, resume):
    """Fine-tune a model for classification (Hugging Face Trainer; works under `accelerate launch`).

    \b
    Example:
      probekit finetune --model minilm-l6 --data rotten_tomatoes --out runs/ft --epochs 1 --max-length 64
    """
    check_output(out)
    from probekit.variants import FinetuneRecipe, finetune

    recipe = FinetuneRecipe(task=task, epochs=epochs, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                            precision=precision, max_length=max_length, early_stopping=early_stopping or None,
                            seed=seed)
    train = _read(source, "train")
    val = _read(eval_data, "validation") if eval_data else (
        _read(source, "validation") if source in ("rotten_tomatoes", "rt") else None)
    v = finetune(spec, train, recipe, eval_data=val, out=out, resume=resume)
    click.echo(f"{v!r}\nsaved to {out}")
    if "eval" in v.report:
        ev = v.report["eval"]
        click.echo(f"validation accuracy {ev['accuracy']:.4f}, macro-F1 {ev['macro_f1']:.4f}")


@main.command("prune")
@click.option("--model", "spec", required=True, help="Model folder (e.g. from probekit finetune).")
@click.option("--out", required=True, type=click.Path())
@click.option("--head", "task_head", default="sequence-classification", show_default=True,
              help="Head to load a plain (non-variant) folder with.")
@click.option("--sparsity", type=float, default=None, help="Unstructured magnitude pruning to this sparsity.")
@click.option("--scope", type=click.Choice(["global", "layer"]), default="global", show_default=True)
@click.option("--heads-fraction", type=float, default=None, help="Structured: remove this fraction of heads.")
@click.option("--ffn-fraction", type=float, default=0.0, show_default=True)
@click.option("--importance", type=click.Choice(["michel", "magnitude"]), default="magnitude", show_default=True)
@click.option("--data", "source", default=None, help="Data for Michel importance and the recovery fine-tune.")
@click.option("--recover-epochs", type=float, default=0.0, show_default=True,
              help="Recovery fine-tune on --data after pruning (pruned weights stay zero, removed heads removed).")
def prune_cmd(spec, out, task_head, sparsity, scope, heads_fraction, ffn_fraction, importance, source,
              recover_epochs):
    """Prune a model: unstructured (--sparsity) or structured heads/FFN (--heads-fraction, --ffn-fraction).

    \b
    Examples:
      probekit prune --model runs/ft --out runs/sparse50 --sparsity 0.5
      probekit prune --model runs/ft --out runs/heads40 --heads-fraction 0.4 --importance michel \\
          --data rotten_tomatoes --recover-epochs 0.5
    """
    check_output(out)
    from probekit.variants import HeadPruneRecipe, MagnitudePruneRecipe, magnitude_prune, prune_heads

    if (sparsity is None) == (heads_fraction is None and not ffn_fraction):
        raise click.UsageError("give either --sparsity or --heads-fraction/--ffn-fraction")
    if recover_epochs and not source:
        raise click.UsageError("--recover-epochs needs --data for the recovery fine-tune")
    data = _read(source, "train") if source else None
    if sparsity is not None:
        recipe = MagnitudePruneRecipe(sparsity=sparsity, scope=scope, recover_epochs=recover_epochs)
        v = magnitude_prune(_load(spec, task_head), recipe, data=data)
        total = v.report["sparsity"].iloc[-1]
        click.echo(f"sparsity {total['sparsity']:.4f} over {int(total['numel'])} weights")
    else:
        recipe = HeadPruneRecipe(fraction=heads_fraction or 0.0, ffn_fraction=ffn_fraction, importance=importance,
                                 recover_epochs=recover_epochs)
        v = prune_heads(_load(spec, task_head), recipe, data=data)
        click.echo(f"heads {v.report['heads_before']} -> {v.report['heads_after']}")
    _done(v, out)


@main.command("quantize")
@click.option("--model", "spec", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--head", "task_head", default="sequence-classification", show_default=True)
@click.option("--method", type=click.Choice(["dynamic-int8", "static-int8", "weight-int8", "weight-int4"]),
              default="dynamic-int8", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "torch.ao", "torchao", "probekit"]), default="auto",
              show_default=True)
@click.option("--calibration", default=None, help="Data whose texts calibrate static-int8.")
def quantize_cmd(spec, out, task_head, method, backend, calibration):
    """Quantize the linear layers (the folder stores float weights; loading re-applies the recipe).

    \b
    Example:
      probekit quantize --model runs/ft --out runs/int8
    """
    check_output(out)
    from probekit.variants import QuantizeRecipe, quantize

    texts = list(_read(calibration, "train")["text"]) if calibration else None
    v = quantize(_load(spec, task_head), QuantizeRecipe(method=method, backend=backend), calibration=texts)
    _done(v, out)


@main.command("distill")
@click.option("--teacher", "spec", required=True, help="A fine-tuned sequence classifier folder.")
@click.option("--data", "source", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--layers", default=None, help="Teacher layers to copy, e.g. 0,2,4 (default: every other).")
@click.option("--n-layers", type=int, default=None, help="Student depth (layers spread evenly).")
@click.option("--alpha", default=0.5, show_default=True)
@click.option("--temperature", default=2.0, show_default=True)
@click.option("--cosine", default=0.0, show_default=True, help="Weight of the hidden-state cosine loss.")
@click.option("--epochs", default=3.0, show_default=True)
@click.option("--lr", default=5e-5, show_default=True)
@click.option("--max-length", default=128, show_default=True)
@click.option("--seed", default=0, show_default=True)
def distill_cmd(spec, source, out, layers, n_layers, alpha, temperature, cosine, epochs, lr, max_length, seed):
    """Distil a teacher classifier into a smaller student (DistilBERT-style initialisation).

    \b
    Example:
      probekit distill --teacher runs/ft --data rotten_tomatoes --out runs/student --epochs 1
    """
    check_output(out)
    from probekit.variants import DistillRecipe, distill

    recipe = DistillRecipe(layers=tuple(int(x) for x in layers.split(",")) if layers else None, n_layers=n_layers,
                           alpha=alpha, temperature=temperature, cosine=cosine, epochs=epochs, lr=lr,
                           max_length=max_length, seed=seed)
    val = _read(source, "validation") if source in ("rotten_tomatoes", "rt") else None
    v = distill(_load(spec, "sequence-classification"), _read(source, "train"), recipe, eval_data=val, out=out)
    click.echo(f"{v!r}\nsaved to {out}; student layer -> teacher layer: {list(v.layer_map.layers)}")


@main.command("export")
@click.option("--model", "spec", required=True)
@click.option("--out", required=True, type=click.Path(), help="Output file (.pt, .pt2 or .onnx).")
@click.option("--head", "task_head", default="sequence-classification", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["torchscript", "torch.export", "onnx"]), default="onnx",
              show_default=True)
def export_cmd(spec, out, task_head, fmt):
    """Export a model or variant and check parity and latency against the eager model.

    \b
    Example:
      probekit export --model runs/ft --out runs/ft.onnx --format onnx
    """
    check_output(out, kind="file")
    from probekit.variants import export

    e = export(_load(spec, task_head), out, format=fmt)
    click.echo(json.dumps({"path": str(e.path), "format": e.format, "max_abs_diff": e.max_abs_diff,
                           "latency_ms": e.latency_ms, "note": e.note}, indent=2))
