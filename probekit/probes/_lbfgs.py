"""Full-batch L-BFGS for L2 (or unpenalised) linear probes, batched over probes.

The multinomial logistic-regression objective of every probe is convex and
smooth, so a quasi-Newton method on the full training set converges in a
few dozen iterations -- provided the problem is well conditioned. Raw
transformer features are not (a few dimensions have means and variances
orders of magnitude above the rest), so each layer's probe is trained in
whitened coordinates: ``W = T V`` and ``b = c - mu W`` with ``mu`` the
feature mean and ``T = (Sigma + delta I)^(-1/2)`` from the feature
covariance of a subsample. This is a change of variables only: the
objective (mean cross-entropy plus ``reg / 2 * ||W||^2`` on the original
weights) and hence its minimiser are unchanged, while the data part of the
Hessian becomes close to isotropic.

Every probe runs its own L-BFGS (own history, own Armijo backtracking step,
own stopping); the probes share only the loop. One iteration evaluates the
loss and gradient of all still-running probes with one matrix product per
layer and its transpose (float32), and a layer leaves the computation once
all of its probes have stopped. A probe stops when the largest entry of
its gradient falls below ``GTOL`` (scikit-learn's default ``tol``), when
its validation loss (checked every ``ROUND`` iterations) has not improved
by ``tol`` for ``n_iter_no_change`` checks, when no step decreases its
loss any more, or after ``max_iter`` rounds; it ends at the parameters of
its best validation loss. Training starts from a fit on a subsample of the
rows (a warm start that costs a fraction of a full-data iteration per
step).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

__all__ = ["train_linear_lbfgs", "ROUND", "GTOL"]

logger = logging.getLogger(__name__)

HISTORY = 10  # L-BFGS memory
ROUND = 5  # L-BFGS iterations per max_iter unit; validation loss is checked after each round
GTOL = 1e-4  # stop when max |gradient| (original parameters) is below this
COV_ROWS = 20000  # rows used to estimate the whitening transform
WARM_FRACTION = 0.1  # the warm start fits this fraction of the rows (at least WARM_MIN_ROWS)
WARM_MIN_ROWS = 4000
WARM_ITERS = 40
ARMIJO = 1e-4
MAX_BACKTRACK = 20


class _Problem:
    """Loss and gradient of ``P = L * S`` linear probes in whitened coordinates.

    The flat parameter vector of a probe is ``[V.ravel(), c.ravel()]`` with ``V`` ``[d, k]``.
    """

    def __init__(self, X, y, n_seeds, k, reg, mu, T):
        self.X, self.y = X, y
        self.L, self.n, self.d = X.shape
        self.S, self.k, self.reg = n_seeds, k, reg
        self.mu, self.T = mu, T  # [L, 1, d], [L, d, d]

    def unpack(self, x_l):
        """``x_l`` ``[S, m]`` -> ``W`` ``[d, S*k]`` and ``b`` ``[1, S*k]`` for one layer."""
        d, k, S = self.d, self.k, self.S
        V = x_l[:, : d * k].reshape(S, d, k).permute(1, 0, 2).reshape(d, S * k)
        c = x_l[:, d * k:].reshape(1, S * k)
        return V, c

    def original(self, x, layer):
        """``W`` ``[S, d, k]`` and ``b`` ``[S, 1, k]`` of the probes of ``layer`` in the original coordinates."""
        V, c = self.unpack(x[layer * self.S:(layer + 1) * self.S])
        W = self.T[layer] @ V
        b = c - self.mu[layer] @ W
        S, d, k = self.S, self.d, self.k
        return W.reshape(d, S, k).permute(1, 0, 2), b.reshape(S, 1, k)

    def evaluate(self, x, layers, f_out, g_out, gmax_out, X=None, y=None, grad=True):
        """Write loss (and gradient, max |original gradient|) of the probes of ``layers`` into the outputs."""
        X = self.X if X is None else X
        y = self.y if y is None else y
        n, S, k, d = X.shape[1], self.S, self.k, self.d
        idx = y.view(n, 1, 1).expand(n, S, 1)
        for layer in layers:
            sl = slice(layer * S, (layer + 1) * S)
            V, c = self.unpack(x[sl])
            W = self.T[layer] @ V  # [d, S*k]
            b = c - self.mu[layer] @ W
            Z = torch.addmm(b, X[layer], W).view(n, S, k)
            zmax = Z.amax(2, keepdim=True)
            E = torch.sub(Z, zmax).exp_()  # one exp pass serves the loss and the softmax
            sums = E.sum(2, keepdim=True)  # [n, S, 1]
            lse = sums.log().add_(zmax).squeeze(2)  # [n, S]
            f = (lse - Z.gather(2, idx).squeeze(2)).mean(0)  # [S]
            if self.reg > 0:
                f = f + 0.5 * self.reg * W.view(d, S, k).pow(2).sum((0, 2))
            f_out[sl] = f
            if not grad:
                continue
            G = E.div_(sums)  # softmax
            G.scatter_add_(2, idx, torch.full((n, S, 1), -1.0, device=X.device))
            G = G.view(n, S * k).div_(n)
            gW = torch.mm(G.T, X[layer]).T  # [d, S*k]
            if self.reg > 0:
                gW.add_(W, alpha=self.reg)
            gb = G.sum(0, keepdim=True)  # [1, S*k]
            gmax_out[sl] = torch.maximum(gW.abs().view(d, S, k).amax((0, 2)), gb.abs().view(S, k).amax(1))
            gV = self.T[layer] @ (gW - self.mu[layer].T @ gb)  # T is symmetric
            g_out[sl, : d * k] = gV.view(d, S, k).permute(1, 0, 2).reshape(S, d * k)
            g_out[sl, d * k:] = gb.view(S, k)


def _whitener(X, reg, rows: int):
    """Per-layer mean ``[L, 1, d]`` and ``(Sigma + delta I)^(-1/2)`` ``[L, d, d]`` from the first ``rows`` rows."""
    L, n, d = X.shape
    m = min(n, rows)
    mus, Ts = [], []
    for layer in range(L):
        sub = X[layer, :m]
        mu = sub.mean(0, keepdim=True)
        centred = sub - mu
        cov = (centred.T @ centred).double() / max(m - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(0.0)
        delta = max(float(reg), 1e-6 * float(evals.max()), 1e-12)
        T = (evecs * (evals + delta).rsqrt()) @ evecs.T
        mus.append(mu)
        Ts.append(T.float())
    return torch.stack(mus), torch.stack(Ts)


def _direction(g, s_hist, y_hist, rho):
    """The L-BFGS direction ``-H g`` of each probe (two-loop recursion over its history)."""
    q = g.clone()
    H = s_hist.shape[1]
    alpha = torch.zeros(g.shape[0], H, device=g.device, dtype=g.dtype)
    for i in range(H - 1, -1, -1):  # newest first
        alpha[:, i] = rho[:, i] * (s_hist[:, i] * q).sum(1)
        q -= alpha[:, i: i + 1] * y_hist[:, i]
    sy = (s_hist[:, -1] * y_hist[:, -1]).sum(1)
    yy = (y_hist[:, -1] * y_hist[:, -1]).sum(1)
    gamma = torch.where((rho[:, -1] > 0) & (yy > 0), sy / yy.clamp_min(1e-30), torch.ones_like(sy))
    r = q * gamma.unsqueeze(1)
    for i in range(H):
        beta = rho[:, i] * (y_hist[:, i] * r).sum(1)
        r += s_hist[:, i] * (alpha[:, i] - beta).unsqueeze(1)
    return -r


def _run(prob: _Problem, x, iters: int, gtol: float, monitor=None, stopped=None):
    """Per-probe L-BFGS from ``x`` for at most ``iters`` iterations.

    Returns ``(x, stopped, stop_at)``: ``stop_at[p]`` is the iteration probe ``p`` stopped at (``iters`` if
    it did not stop).
    """
    P, m = x.shape
    S = prob.S
    dev = x.device
    s_hist = torch.zeros(P, HISTORY, m, device=dev)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(P, HISTORY, device=dev)
    f = torch.zeros(P, device=dev)
    g = torch.zeros(P, m, device=dev)
    gmax = torch.zeros(P, device=dev)
    stopped = torch.zeros(P, dtype=torch.bool, device=dev) if stopped is None else stopped.clone()
    all_layers = range(prob.L)
    prob.evaluate(x, all_layers, f, g, gmax)
    stopped |= gmax <= gtol
    stop_at = torch.where(stopped, 0, iters)
    f_new, g_new, gmax_new = f.clone(), g.clone(), gmax.clone()
    it = 0
    for it in range(1, iters + 1):
        active = ~stopped
        layers = [la for la in all_layers if bool(active[la * S:(la + 1) * S].any())]
        if not layers:
            break
        d = _direction(g, s_hist, y_hist, rho)
        slope = (g * d).sum(1)
        bad = slope >= 0  # not a descent direction: forget the history, take the gradient
        if bool(bad.any()):
            d[bad] = -g[bad]
            rho[bad] = 0.0
            slope = (g * d).sum(1)
        t = torch.ones(P, device=dev)
        if it == 1:
            t = torch.clamp(1.0 / g.abs().sum(1).clamp_min(1e-30), max=1.0)
        pending = active.clone()
        x_new = x.clone()
        for _ in range(MAX_BACKTRACK):
            x_new[pending] = x[pending] + t[pending].unsqueeze(1) * d[pending]
            ev = [la for la in layers if bool(pending[la * S:(la + 1) * S].any())]
            prob.evaluate(x_new, ev, f_new, g_new, gmax_new)
            ok = torch.isfinite(f_new) & (f_new <= f + ARMIJO * t * slope)
            pending &= ~ok
            if not bool(pending.any()):
                break
            t = torch.where(pending, t * 0.5, t)
        failed = pending & active  # no decrease found: the probe is at its optimum to float precision
        moved = active & ~failed
        s = x_new - x
        yv = g_new - g
        sy = (s * yv).sum(1)
        upd = moved & (sy > 1e-10 * (s * s).sum(1).sqrt() * (yv * yv).sum(1).sqrt())
        s_hist = torch.roll(s_hist, -1, dims=1)
        y_hist = torch.roll(y_hist, -1, dims=1)
        rho = torch.roll(rho, -1, dims=1)
        s_hist[:, -1] = torch.where(upd.unsqueeze(1), s, 0.0)
        y_hist[:, -1] = torch.where(upd.unsqueeze(1), yv, 0.0)
        rho[:, -1] = torch.where(upd, 1.0 / sy.clamp_min(1e-30), 0.0)
        x = torch.where(moved.unsqueeze(1), x_new, x)
        f = torch.where(moved, f_new, f)
        g = torch.where(moved.unsqueeze(1), g_new, g)
        gmax = torch.where(moved, gmax_new, gmax)
        newly = active & (failed | (gmax <= gtol))
        if monitor is not None and it % ROUND == 0:
            newly |= monitor(x, f, stopped | newly)
        stop_at = torch.where(newly, it, stop_at)
        stopped |= newly
    return x, stopped, stop_at


def train_linear_lbfgs(cfg, X_tr, y_tr, n_classes: int, n_seeds: int, X_val=None, y_val=None):
    """Train ``L * n_seeds`` linear probes; the ``solver="lbfgs"`` path of ``train_probes`` for L2 probes.

    Every seed starts at zero (the problem is convex), so the seeds of a layer give the same probe.

    Returns
    -------
    params : ``[W [P, d, k], b [P, 1, k]]`` as float32 arrays.
    n_iter : array ``[P]``: rounds of ``ROUND`` iterations each probe ran.
    """
    L, n, d = X_tr.shape
    k = int(n_classes)
    P, m = L * n_seeds, (d + 1) * k
    dev = X_tr.device
    reg = float(cfg.reg)
    mu, T = _whitener(X_tr, reg, COV_ROWS)
    prob = _Problem(X_tr, y_tr, n_seeds, k, reg, mu, T)
    x = torch.zeros(P, m, device=dev)

    n_warm = max(WARM_MIN_ROWS, int(WARM_FRACTION * n))
    if n_warm < n // 2:  # warm start on the first (already shuffled) rows
        warm = _Problem(X_tr[:, :n_warm], y_tr[:n_warm], n_seeds, k, reg, mu, T)
        x, _, warm_at = _run(warm, x, WARM_ITERS, 10 * GTOL)
        logger.debug("warm start on %d rows: %d iterations", n_warm, int(warm_at.max()))

    best_loss = torch.full((P,), float("inf"), device=dev)
    best_x = x.clone()
    stall = torch.zeros(P, dtype=torch.long, device=dev)
    scratch_g = torch.zeros(0)

    def monitor(x_now, f_now, stopped):
        if X_val is not None:
            current = torch.zeros(P, device=dev)
            prob.evaluate(x_now, range(L), current, scratch_g, None, X=X_val, y=y_val, grad=False)
        else:
            current = f_now
        active = ~stopped
        improved = (current < best_loss - cfg.tol) & active
        better = (current < best_loss) & active
        best_x[better] = x_now[better]
        best_loss.copy_(torch.where(better, current, best_loss))
        stall[improved] = 0
        stall[active & ~improved] += 1
        return active & (stall >= cfg.n_iter_no_change)

    x, stopped, stop_at = _run(prob, x, cfg.max_iter * ROUND, GTOL, monitor)
    n_iter = np.maximum(1, np.ceil(stop_at.cpu().numpy() / ROUND)).astype(int)
    # a probe that stopped between checks (gradient small, no decrease possible) is compared once more
    final = torch.zeros(P, device=dev)
    if X_val is not None:
        prob.evaluate(x, range(L), final, scratch_g, None, X=X_val, y=y_val, grad=False)
    else:
        prob.evaluate(x, range(L), final, scratch_g, None, grad=False)
    better = final <= best_loss
    best_x[better] = x[better]
    if not bool(stopped.all()):
        logger.info("%d of %d probes reached max_iter=%d before converging", int((~stopped).sum()), P, cfg.max_iter)
    Ws, bs = zip(*(prob.original(best_x, layer) for layer in range(L)))
    W = torch.cat(Ws).detach().cpu().numpy().astype(np.float32)
    b = torch.cat(bs).detach().cpu().numpy().astype(np.float32)
    return [W, b], n_iter
