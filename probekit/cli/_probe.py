"""``probekit probe``: run the probe suite over stores extracted for tasks."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import pandas as pd

from probekit.cli import main

logger = logging.getLogger(__name__)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _store_key(spec: str):
    """``DIR``, ``MODEL=DIR`` or ``MODEL:VARIANT=DIR``."""
    if "=" in spec:
        label, path = spec.split("=", 1)
        key = tuple(label.split(":", 1)) if ":" in label else label
        return key, path
    return None, spec


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model/variant/task/probe: best layer, its accuracy, majority, selectivity, expected layer."""
    rows = []
    df = df.copy()
    df["variant"] = df["variant"].fillna("")
    real = df[~df["task"].astype(str).str.endswith(".control")]
    for (model, variant, task), g in real.groupby(["model", "variant", "task"], sort=False):
        major = g[(g["probe"] == "majority") & (g["metric"] == "accuracy")]["value"]
        for probe, gp in g[g["probe"] != "majority"].groupby("probe", sort=False):
            acc = gp[gp["metric"] == "accuracy_mean"].set_index("site")
            row = {"model": model, "variant": variant, "task": task, "probe": probe}
            if not acc.empty:
                best = acc["value"].idxmax()
                sel = gp[(gp["metric"] == "selectivity_mean") & (gp["site"] == best)]["value"]
                el = gp[gp["metric"] == "expected_layer"]["value"]
                row.update(best_site=best, best_layer=int(acc.loc[best, "layer"]),
                           accuracy=round(float(acc.loc[best, "value"]), 4),
                           majority=round(float(major.iloc[0]), 4) if len(major) else None,
                           selectivity=round(float(sel.iloc[0]), 4) if len(sel) else None,
                           expected_layer=round(float(el.iloc[0]), 2) if len(el) else None)
            else:  # structural
                for metric in ("uuas_mean", "root_accuracy_mean"):
                    m = gp[gp["metric"] == metric]
                    if not m.empty:
                        i = m["value"].idxmax()
                        row.update(best_site=m.loc[i, "site"], best_layer=int(m.loc[i, "layer"]),
                                   **{metric: round(float(m.loc[i, "value"]), 4)})
            rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in r.values) + " |")
    return "\n".join(lines) + "\n"


@main.command("probe")
@click.option("--store", "stores", multiple=True, required=True,
              help="Store directory (from extract_task), or MODEL=DIR / MODEL:VARIANT=DIR. Repeatable; the first "
                   "is the reference of model comparisons.")
@click.option("--task", "tasks", multiple=True, required=True, help="Task names (comma-separated; repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--source", type=click.Choice(["ud", "rt"]), default="ud", show_default=True)
@click.option("--ud-path", type=click.Path(), default=None, help="UD folder or .conllu file (source ud).")
@click.option("--limit", type=int, default=None, help="Sentences per source file, as used for the store.")
@click.option("--task-seed", type=int, default=0, show_default=True, help="Seed the tasks were built with.")
@click.option("--probe", "probes", multiple=True, type=click.Choice(["linear", "mlp"]), default=("linear",),
              show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated probe seeds.")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--controls/--no-controls", default=True, show_default=True, help="Run control tasks.")
def probe_cmd(stores: tuple[str, ...], tasks: tuple[str, ...], out: str, source: str, ud_path: str | None,
              limit: int | None, task_seed: int, probes: tuple[str, ...], seeds: str, n_boot: int,
              controls: bool) -> None:
    """Probe stored activations for tasks; write results.csv, summary.md and PNG plots.

    Each store must hold exactly the task's examples: build it with
    probekit.probes.extract_task (same --source, --ud-path, --limit, --task-seed).

    \b
    Examples:
      probekit probe --store runs/upos-minilm --task upos,deprel --ud-path data/ud_en_ewt --limit 500 --out res
      probekit probe --store minilm=runs/a --store minilm:random-init=runs/b --task upos --out res --seeds 0,1,2
    """
    import matplotlib.pyplot as plt

    from probekit.data import build_task
    from probekit.plots import probe_curves, probe_heatmap, selectivity_curves
    from probekit.probes import ProbeSuite
    from probekit.store import ActivationStore

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        opened = {}
        for spec in stores:
            key, path = _store_key(spec)
            st = ActivationStore.open(path)
            opened[key if key is not None else (str((st.manifest.get("model") or {}).get("name") or
                                                    Path(path).name))] = st
        task_objs = [build_task(t, source, path=ud_path, limit=limit, seed=task_seed) for t in _split(tasks)]
        suite = ProbeSuite(task_objs, list(probes), seed_list, controls=controls, n_boot=n_boot)
        results = suite.run(opened)
    except (ValueError, LookupError, FileNotFoundError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "results.csv")
    df = results.to_frame()
    table = summary_table(df)
    (out_dir / "summary.md").write_text(_markdown(table), encoding="utf-8")
    written = ["results.csv", "summary.md"]
    plots = [("curves.png", lambda: probe_curves(df)), ("heatmap.png", lambda: probe_heatmap(df))]
    if controls:
        plots.append(("selectivity.png", lambda: selectivity_curves(df)))
    for name, make in plots:
        try:
            fig = make()
        except ValueError as exc:  # e.g. only structural tasks: nothing of that kind to plot
            logger.info("skipping %s: %s", name, exc)
            continue
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)
    click.echo(_markdown(table))
    click.echo(f"wrote {', '.join(written)} to {out_dir}")
