"""The batched training core shared by every classification probe.

``P`` probes (layers x seeds) of one task are held as stacked parameters
with a leading probe dimension and trained as one computation: every
minibatch is one ``torch.bmm`` per layer of the probe network, the loss is
the sum of the per-probe losses (so each probe's gradient is exactly its own
gradient), and early stopping is decided per probe. Adam is written out
with a per-probe learning rate: a probe whose validation loss stopped
improving restarts from its best parameters at a tenth of its learning rate
(``LR_DECAYS`` times), then is frozen (learning rate 0) while the others
keep training, and every probe ends at its best parameters.

The features of the ``L`` layers are held as one float32 tensor
``[L, n, d]``; the ``S`` seeds of a layer share it (the first matmul is a
single ``bmm`` against ``[L, d, S * width]``), so memory does not grow with
the number of seeds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from probekit.probes._lbfgs import train_linear_lbfgs

__all__ = ["Arch", "TrainConfig", "train_probes", "to_layer_tensor", "resolve_device"]

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 65536
MIN_STEPS = 10  # minimum optimiser steps per iteration (early-stopping check)
LR_DECAYS = 2  # times a probe's Adam learning rate is divided by 10 on a plateau before it stops


@dataclass(frozen=True)
class Arch:
    """The probe network: ``kind`` is ``"linear"``, ``"rank"`` or ``"mlp"``."""

    kind: str
    rank: int | None = None
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0

    def widths(self, d: int, k: int) -> list[int]:
        if self.kind == "linear":
            return [d, k]
        if self.kind == "rank":
            return [d, int(self.rank), k]
        if self.kind == "mlp":
            return [d, *map(int, self.hidden), k]
        raise ValueError(f"unknown probe kind {self.kind!r}")

    def has_bias(self, i: int, n_layers: int) -> bool:
        # a rank-limited probe is W = U V with one bias on the output
        return self.kind != "rank" or i == n_layers - 1

    @property
    def nonlinear(self) -> bool:
        return self.kind == "mlp"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (see the probe classes for their meaning)."""

    solver: str = "adam"
    penalty: str = "l2"
    reg: float = 0.0  # penalty weight on the per-example mean loss
    lr: float = 1e-2
    batch_size: int = 4096
    max_iter: int = 100
    tol: float = 1e-4
    n_iter_no_change: int = 5
    shuffle_seed: int = 0


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or ``None`` picks CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_layer_tensor(Xs, device: torch.device, rows=None) -> torch.Tensor:
    """Stack per-layer feature arrays into one float32 tensor ``[L, len(rows), d]``.

    ``Xs`` is an array ``[L, n, d]`` or a list of ``[n, d]`` arrays (NumPy,
    memory maps of any float dtype, or tensors); ``rows`` selects and orders
    the rows (default: all, in order). The source is read sequentially in
    chunks of 65,536 rows (so a float16 memory map is streamed, never
    materialised in float64) and each chunk is scattered to its positions.
    """
    if isinstance(Xs, (np.ndarray, torch.Tensor)) and Xs.ndim == 2:
        Xs = [Xs]
    n_layers = len(Xs)
    n_src, d = Xs[0].shape[0], Xs[0].shape[1]
    if rows is None:
        pos = np.arange(n_src)
        n = n_src
    else:
        rows = np.asarray(rows)
        pos = np.full(n_src, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        n = len(rows)
    out = torch.empty((n_layers, n, d), dtype=torch.float32, device=device)
    for li, X in enumerate(Xs):
        if X.shape[1] != d:
            raise ValueError(f"all layers must have the same width: layer {li} has {X.shape[1]}, expected {d}")
        for start in range(0, n_src, _CHUNK_ROWS):
            stop = min(n_src, start + _CHUNK_ROWS)
            where = pos[start:stop]
            keep = where >= 0
            if not keep.any():
                continue
            src = X[start:stop]
            if isinstance(src, torch.Tensor):
                chunk = src.detach().to(device=device, dtype=torch.float32)
            else:
                chunk = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32)).to(device)
            if keep.all() and rows is None:
                out[li, start:stop] = chunk
            else:
                keep_t = torch.from_numpy(keep).to(device)
                out[li, torch.from_numpy(where[keep]).to(device)] = chunk[keep_t]
    return out


def _init_params(arch: Arch, d: int, k: int, seeds, n_layers: int, device) -> list[torch.Tensor]:
    """Parameters stacked as ``[L*S, ...]``; probe ``(l, s)`` is initialised from ``seeds[s]`` only."""
    widths = arch.widths(d, k)
    n_lin = len(widths) - 1
    per_seed: list[list[torch.Tensor]] = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        tensors = []
        for i in range(n_lin):
            fan_in, fan_out = widths[i], widths[i + 1]
            if arch.kind == "linear":
                w = torch.zeros(fan_in, fan_out)  # convex: start at zero, as scikit-learn does
            else:
                bound = 1.0 / math.sqrt(fan_in)
                w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
            tensors.append(w)
            if arch.has_bias(i, n_lin):
                tensors.append(torch.zeros(1, fan_out))
        per_seed.append(tensors)
    params = []
    for j in range(len(per_seed[0])):
        stacked = torch.stack([per_seed[s][j] for s in range(len(seeds))])  # [S, ...]
        stacked = stacked.unsqueeze(0).expand(n_layers, *stacked.shape).reshape(-1, *stacked.shape[1:])
        params.append(stacked.to(device).clone().requires_grad_(True))
    return params


def _forward(arch, params, xb, n_layers, n_seeds, k, d, train, gen):
    """Logits ``[P, b, k]`` for features ``xb`` ``[L, b, d]``."""
    widths = arch.widths(d, k)
    n_lin = len(widths) - 1
    it = iter(params)
    h = None
    for i in range(n_lin):
        w = next(it)
        b = next(it) if arch.has_bias(i, n_lin) else None
        if i == 0:
            out_w = w.shape[-1]
            # one bmm for all seeds of a layer: [L, d, S*out]
            w_l = w.view(n_layers, n_seeds, d, out_w).permute(0, 2, 1, 3).reshape(n_layers, d, n_seeds * out_w)
            z = torch.bmm(xb, w_l).view(n_layers, -1, n_seeds, out_w).permute(0, 2, 1, 3)
            z = z.reshape(n_layers * n_seeds, -1, out_w)
            h = z if b is None else z + b
        else:
            h = torch.bmm(h, w) if b is None else torch.baddbmm(b, h, w)
        if arch.nonlinear and i < n_lin - 1:
            h = torch.relu(h)
            if train and arch.dropout > 0:
                keep = 1.0 - arch.dropout
                mask = torch.empty_like(h).bernoulli_(keep, generator=gen)
                h = h * mask / keep
    return h


def _minibatches(n: int, bs: int, epochs: int, gen, device):
    """Minibatch slices of ``epochs`` passes, the batches visited in a fresh random order each pass.

    The rows are shuffled once when the features are loaded (see ``BaseProbe._fit_many``), so a
    batch is a contiguous view: no per-step gather copy of ``[L, bs, d]``.
    """
    n_batches = math.ceil(n / bs)
    for _ in range(epochs):
        if n_batches == 1:
            yield slice(None)
            continue
        for b in torch.randperm(n_batches, generator=gen, device=device).tolist():
            yield slice(b * bs, min(n, (b + 1) * bs))


def _weight_mask(arch: Arch, d: int, k: int) -> list[bool]:
    """For each stacked parameter, whether it is a weight (penalised) or a bias."""
    n_lin = len(arch.widths(d, k)) - 1
    kinds = []
    for i in range(n_lin):
        kinds.append(True)
        if arch.has_bias(i, n_lin):
            kinds.append(False)
    return kinds


def _penalty(params, is_weight, penalty: str) -> torch.Tensor:
    total = 0.0
    for p, w in zip(params, is_weight):
        if w:
            total = total + (p.pow(2).sum((1, 2)) / 2 if penalty == "l2" else p.abs().sum((1, 2)))
    return total


def _per_probe_ce(logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    p, b, k = logits.shape
    ce = F.cross_entropy(logits.reshape(p * b, k), yb.repeat(p), reduction="none")
    return ce.view(p, b).mean(1)


@torch.no_grad()
def _eval_loss(arch, params, X, y, n_seeds, k, d, bs) -> torch.Tensor:
    n_layers, n = X.shape[0], X.shape[1]
    total = torch.zeros(n_layers * n_seeds, device=X.device)
    for start in range(0, n, bs):
        sl = slice(start, min(n, start + bs))
        logits = _forward(arch, params, X[:, sl], n_layers, n_seeds, k, d, False, None)
        total += _per_probe_ce(logits, y[sl]) * (sl.stop - sl.start)
    return total / max(n, 1)


def train_probes(
    arch: Arch,
    cfg: TrainConfig,
    X_tr: torch.Tensor,
    y_tr: torch.Tensor,
    n_classes: int,
    seeds,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Train ``L * len(seeds)`` probes; return their parameters and epochs run.

    Parameters
    ----------
    X_tr : tensor ``[L, n, d]`` float32; y_tr : tensor ``[n]`` int64 class codes.
    X_val, y_val : the validation split for early stopping; without it a probe
        stops when its training loss stops improving by ``tol``.

    Returns
    -------
    params : list of arrays ``[P, in, out]`` / ``[P, 1, out]`` (weights, biases
        in layer order); probe ``p = l * S + s``.
    n_iter : array ``[P]`` of the epoch (or L-BFGS round) each probe stopped at.
    """
    n_layers, n, d = X_tr.shape
    n_seeds = len(seeds)
    P = n_layers * n_seeds
    k = int(n_classes)
    device = X_tr.device
    if cfg.solver == "lbfgs" and arch.kind == "linear" and (cfg.penalty == "l2" or cfg.reg == 0):
        # smooth and convex: per-probe full-batch L-BFGS in whitened coordinates (see _lbfgs)
        return train_linear_lbfgs(cfg, X_tr, y_tr, k, n_seeds, X_val, y_val)
    params = _init_params(arch, d, k, seeds, n_layers, device)
    is_weight = _weight_mask(arch, d, k)
    gen = torch.Generator(device=device).manual_seed(int(cfg.shuffle_seed))
    bs = int(min(max(1, cfg.batch_size), n))

    best_loss = torch.full((P,), float("inf"), device=device)
    best = [p.detach().clone() for p in params]
    stall = torch.zeros(P, dtype=torch.long, device=device)
    done = torch.zeros(P, dtype=torch.bool, device=device)
    n_iter = np.full(P, cfg.max_iter)

    def objective(logits, yb):
        per_probe = _per_probe_ce(logits, yb)
        if cfg.reg > 0:
            per_probe = per_probe + cfg.reg * _penalty(params, is_weight, cfg.penalty)
        return per_probe

    lr = torch.full((P,), float(cfg.lr), device=device)  # per-probe learning rate; 0 once a probe is done
    decays = torch.zeros(P, dtype=torch.long, device=device)

    def monitor(epoch, train_loss, can_decay):
        """Keep each probe's best parameters; on a plateau decay its learning rate, then stop it."""
        nonlocal best_loss
        current = _eval_loss(arch, params, X_val, y_val, n_seeds, k, d, 8192) if X_val is not None else train_loss
        improved = (current < best_loss - cfg.tol) & ~done
        for b_, p_ in zip(best, params):
            b_[improved] = p_.detach()[improved]
        best_loss = torch.where(improved, current, best_loss)
        stall[improved] = 0
        stall[~improved & ~done] += 1
        plateau = (stall >= cfg.n_iter_no_change) & ~done
        decay = plateau & (decays < LR_DECAYS) if can_decay else torch.zeros_like(plateau)
        if bool(decay.any()):  # restart from the best parameters at a tenth of the learning rate
            with torch.no_grad():
                for b_, p_ in zip(best, params):
                    p_[decay] = b_[decay]
            lr[decay] /= 10
            decays[decay] += 1
            stall[decay] = 0
        newly = plateau & ~decay
        n_iter[newly.cpu().numpy()] = epoch + 1
        done.logical_or_(newly)
        lr[done] = 0.0

    if cfg.solver == "adam":
        # Adam written out so that each probe has its own learning rate (decayed, or 0 when stopped)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        t = 0
        # an iteration is one epoch, or enough epochs for MIN_STEPS optimiser steps on small data
        steps_per_epoch = math.ceil(n / bs)
        epochs_per_iter = max(1, math.ceil(MIN_STEPS / steps_per_epoch))
        for epoch in range(cfg.max_iter):
            running = torch.zeros(P, device=device)
            for idx in _minibatches(n, bs, epochs_per_iter, gen, device):
                xb, yb = X_tr[:, idx], y_tr[idx]
                logits = _forward(arch, params, xb, n_layers, n_seeds, k, d, True, gen)
                per_probe = objective(logits, yb)
                grads = torch.autograd.grad(per_probe.sum(), params)
                t += 1
                step = (lr * (math.sqrt(1 - beta2**t) / (1 - beta1**t))).view(P, 1, 1)
                with torch.no_grad():
                    for p_, g, m_, v_ in zip(params, grads, m, v):
                        m_.mul_(beta1).add_(g, alpha=1 - beta1)
                        v_.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                        p_.sub_(step * m_ / (v_.sqrt() + eps))
                running += per_probe.detach() * yb.shape[0]
            monitor(epoch, running / (n * epochs_per_iter), True)
            if bool(done.all()):
                break
    elif cfg.solver == "lbfgs":
        opt = torch.optim.LBFGS(
            params, lr=1.0, max_iter=20, history_size=20, line_search_fn="strong_wolfe", tolerance_change=1e-9
        )
        last = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            # no dropout: L-BFGS's line search needs a deterministic objective
            logits = _forward(arch, params, X_tr, n_layers, n_seeds, k, d, False, None)
            per_probe = objective(logits, y_tr)
            last["loss"] = per_probe.detach()
            total = per_probe.sum()
            total.backward()
            return total

        for epoch in range(cfg.max_iter):
            opt.step(closure)
            monitor(epoch, last["loss"], False)
            if bool(done.all()):
                break
    else:
        raise ValueError(f"solver must be 'adam' or 'lbfgs', got {cfg.solver!r}")

    not_done = int((~done).sum())
    if not_done:
        logger.info("%d of %d probes reached max_iter=%d before converging", not_done, P, cfg.max_iter)
    # every probe ends at its best monitored parameters
    out = [b_.cpu().numpy().astype(np.float32) for b_ in best] if bool(torch.isfinite(best_loss).all()) else None
    if out is None:
        out = [p.detach().cpu().numpy().astype(np.float32) for p in params]
    return out, n_iter
