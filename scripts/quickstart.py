"""Quick start: a research script over cached activations.

Extract once (re-runs reuse the store), then fit linear probes for sentiment
on three layers of MiniLM-L6 without loading the model again, and plot.

    python scripts/quickstart.py --n 1000 --out runs/quickstart
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import probekit  # noqa: E402
from probekit.data import load_movie_reviews  # noqa: E402
from probekit.probes import LinearProbe, bootstrap_ci, fit_batched  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="Rotten Tomatoes sentences")
    ap.add_argument("--out", default="runs/quickstart")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. extract (once): sentence-pooled residual stream of every layer
    data = load_movie_reviews("rotten_tomatoes").sample(n=args.n, random_state=0)[["text", "label"]]
    store = probekit.extract("minilm-l6", data, sites="resid", out=out / "store", sentence_pooling=["mean"])

    # 2. research over the cache: no model needed from here on
    store = probekit.ActivationStore.open(out / "store")
    y = store.examples["label"].to_numpy()
    layers = ["emb", "L2.resid", "L5.resid"]
    rng = np.random.default_rng(0)
    test = rng.random(len(y)) < 0.25
    Xs = [store[s].sentences("mean").astype(np.float32) for s in layers]
    probes = fit_batched(LinearProbe(random_state=0), [x[~test] for x in Xs], y[~test])
    rows = []
    for site, x, (probe,) in zip(layers, Xs, probes):
        ci = bootstrap_ci(y[test], probe.predict(x[test]), metric="accuracy", random_state=0)
        rows.append((site, ci.estimate, ci.low, ci.high))
        print(f"{site:9s} accuracy {ci.estimate:.3f} [{ci.low:.3f}, {ci.high:.3f}]")

    # 3. plot
    fig, ax = plt.subplots(figsize=(4.5, 3))
    acc = [r[1] for r in rows]
    ax.errorbar(layers, acc, yerr=[[a - r[2] for a, r in zip(acc, rows)], [r[3] - a for a, r in zip(acc, rows)]],
                marker="o", capsize=3)
    ax.axhline(max(np.mean(y[test]), 1 - np.mean(y[test])), ls="--", c="grey", label="majority")
    ax.set_ylabel("sentiment accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "probe_by_layer.png", dpi=120)
    print(f"plot: {out / 'probe_by_layer.png'}")


if __name__ == "__main__":
    main()
