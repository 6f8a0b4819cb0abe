"""Benchmark: batched LinearProbe over all layers vs scikit-learn LogisticRegression per layer.

Not collected by pytest. Run::

    python -m tests.probes.bench_batched --n 205000 --d 384 --layers 7 --classes 17

Features are a float16 memory map ``[layers, n, d]`` (as an activation store holds them); the
probes read it chunk by chunk, scikit-learn gets each layer as float32 in RAM.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from probekit.probes import LinearProbe, fit_batched

logger = logging.getLogger("bench_batched")


def make_layers(path: Path, n: int, d: int, n_layers: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d)).astype(np.float32)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n_layers, n, d))
    for layer in range(n_layers):
        strength = 0.05 + 0.04 * layer
        for start in range(0, n, 50000):
            stop = min(n, start + 50000)
            X[layer, start:stop] = strength * means[y[start:stop]] + rng.normal(size=(stop - start, d)).astype(
                np.float32
            )
    X.flush()
    return np.load(path, mmap_mode="r"), y


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--classes", type=int, default=17)
    parser.add_argument("--sklearn-layers", type=int, default=None, help="fit sklearn on the first few layers only")
    parser.add_argument("--solver", default="adam", choices=["adam", "lbfgs"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        X, y = make_layers(Path(tmp) / "x.npy", args.n, args.d, args.layers, args.classes)
        n_test = args.n // 5
        tr, te = slice(0, args.n - n_test), slice(args.n - n_test, args.n)
        t0 = time.perf_counter()
        probes = fit_batched(LinearProbe(solver=args.solver, random_state=0), X[:, tr], y[tr])
        t_batched = time.perf_counter() - t0
        ours = [p[0].score(np.asarray(X[i, te], np.float32), y[te]) for i, p in enumerate(probes)]
        n_sk = args.layers if args.sklearn_layers is None else args.sklearn_layers
        t0 = time.perf_counter()
        ref = []
        for i in range(n_sk):
            clf = LogisticRegression(max_iter=1000).fit(np.asarray(X[i, tr], np.float32), y[tr])
            ref.append(clf.score(np.asarray(X[i, te], np.float32), y[te]))
        t_sk = (time.perf_counter() - t0) * args.layers / n_sk
        logger.info("batched LinearProbe, %d layers: %.1f s", args.layers, t_batched)
        logger.info("iterations per probe: %s", [p[0].n_iter_ for p in probes])
        logger.info("sklearn LogisticRegression per layer (x%d layers): %.1f s", args.layers, t_sk)
        logger.info("speed-up: %.1fx", t_sk / t_batched)
        for i in range(n_sk):
            logger.info(
                "layer %d: probe %.4f  sklearn %.4f  diff %+.2f pt", i, ours[i], ref[i], 100 * (ours[i] - ref[i])
            )


if __name__ == "__main__":
    main()
