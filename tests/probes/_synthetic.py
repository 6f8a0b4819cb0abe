"""Synthetic data with planted structure for the probe tests."""

from __future__ import annotations

import numpy as np


def random_tree(n: int, rng: np.random.Generator) -> np.ndarray:
    """Parent index of each node of a random tree on ``n`` nodes (root 0 has parent -1)."""
    parents = np.full(n, -1)
    for i in range(1, n):
        parents[i] = rng.integers(0, i)
    return parents


def tree_distances(parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gold distance matrix and depth vector of a tree given by parent indices."""
    n = len(parents)
    paths = []
    for i in range(n):
        path, j = [], i
        while j != -1:
            path.append(j)
            j = parents[j]
        paths.append(path)
    depth = np.array([len(p) - 1 for p in paths])
    D = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        anc = {a: k for k, a in enumerate(paths[i])}
        for j in range(n):
            for k, a in enumerate(paths[j]):
                if a in anc:
                    D[i, j] = anc[a] + k
                    break
    return D, depth


def planted_treebank(n_sentences: int, d: int = 48, k: int = 16, noise: float = 3.0, seed: int = 0):
    """Sentences whose word vectors embed their tree: ``||A^T (h_i - h_j)||^2`` = tree distance.

    Each edge of a sentence's tree gets its own direction of a ``k``-dim space (randomly
    rotated per sentence); word ``i`` is the sum of the edges from the root to it, so
    squared distances are path lengths and squared norms are depths. That code is placed
    in a ``k``-dim subspace ``A`` of ``R^d``; the other ``d - k`` dimensions carry noise.
    """
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A, N = Q[:, :k], Q[:, k:]
    X, dists, depths = [], [], []
    for _ in range(n_sentences):
        n = int(rng.integers(5, k + 1))
        parents = random_tree(n, rng)
        D, depth = tree_distances(parents)
        z = np.zeros((n, k))
        edge_dir = rng.permutation(k)[: n - 1]
        for i in range(n):  # z_i = sum of edge vectors root -> i (edge into node j is e_{edge_dir[j-1]})
            j = i
            while parents[j] != -1:
                z[i, edge_dir[j - 1]] += 1.0
                j = parents[j]
        R, _ = np.linalg.qr(rng.normal(size=(k, k)))
        h = z @ R.T @ A.T + rng.normal(scale=noise, size=(n, d - k)) @ N.T
        X.append(h.astype(np.float32))
        dists.append(D)
        depths.append(depth)
    return X, dists, depths, A
