"""Linear probes trained from features streamed out of a store, in bounded memory.

One layer at a time, every linear probe that reads the same rows -- several
label sets (a task, its control task, other tasks of the same sentences) and
several seeds -- is trained together on each chunk of features as it is read:
one multinomial logistic model per seed with the classes of all label sets
side by side (``[S, d, K]``, ``K`` the sum of the label sets' class counts),
so every pass over the features serves all of them. A label set leaves the
products once every seed's probe of it has stopped.

The training rows of a layer are read in *blocks* of ``BLOCK_ROWS``
consecutive rows. A first pass streams the standardization statistics (mean
and standard deviation per feature, accumulated in float64); then each epoch
visits the blocks in a random order (one order per epoch, shared by the
seeds), and each seed walks a block in its own random row order in
minibatches of Adam (written out with a per-probe learning rate, as in
:mod:`probekit.probes._engine`: a probe whose validation loss stalls restarts
from its best parameters at a tenth of its rate, twice, then stops; every
probe ends at its best parameters). The two matrix products of a training
step run in bfloat16 where the hardware has fast kernels for it (CUDA, CPUs
with AVX-512 BF16 or AMX; ``matmul_dtype``), with float32 parameters,
softmax and optimiser state (mixed precision); validation losses and test
predictions are computed in float32. Validation rows (``validation_fraction``
of the training rows) and test rows are streamed the same way.

The memory budget decides only what is kept between passes: blocks are
cached while they fit in the budget (training rows standardized, in the
dtype of the products; validation rows standardized in float32) and read
again from the store otherwise. The
trajectory depends on the blocks, never on the budget, so a store larger
than the budget gives exactly the probes of an in-memory run.

The penalty ``reg / 2 * ||W||^2`` (``reg = 1 / (C * n_train)``) applies to the
weights on standardized features (as a scikit-learn pipeline of
``StandardScaler`` and ``LogisticRegression`` would); the intercept is not
penalised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["StreamConfig", "StreamedFit", "fit_streamed", "parse_bytes", "BLOCK_ROWS", "DEFAULT_BUDGET"]

logger = logging.getLogger(__name__)

BLOCK_ROWS = 8192
DEFAULT_BUDGET = 1 << 30  # bytes of features kept in memory between passes
LR_DECAYS = 2

#: ``read(rows) -> float array [len(rows), d]`` for row indices into the task's rows
Reader = Callable[[np.ndarray], np.ndarray]


def parse_bytes(value) -> int:
    """``1 << 30``, ``"512MB"``, ``"2 GiB"``, ``"1.5GB"`` -> bytes (decimal and binary units both as powers of 2)."""
    if isinstance(value, (int, np.integer)):
        if value <= 0:
            raise ValueError(f"memory_budget must be positive, got {value}")
        return int(value)
    s = str(value).strip().upper().replace(" ", "").rstrip("B").rstrip("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        out = int(float(s[:-1]) * units[s[-1]]) if s and s[-1] in units else int(float(s))
    except ValueError:
        raise ValueError(f"memory_budget must be bytes or a size such as '512MB' or '2GB', got {value!r}") from None
    if out <= 0:
        raise ValueError(f"memory_budget must be positive, got {value!r}")
    return out


@dataclass(frozen=True)
class StreamConfig:
    """Settings of a streamed fit (see :class:`~probekit.probes.LinearProbe` for their meaning)."""

    lr: float = 1e-2
    batch_size: int = 1024
    max_iter: int = 100
    tol: float = 1e-3
    n_iter_no_change: int = 2
    validation_fraction: float = 0.1
    C: float = 1.0
    shuffle_seed: int = 0
    memory_budget: int = DEFAULT_BUDGET
    device: str = "cpu"
    matmul_dtype: str = "auto"


@dataclass
class StreamedFit:
    """Result of :func:`fit_streamed`.

    ``predictions[l][t][s]``: predicted class codes of layer ``l``, label set
    ``t``, seed ``s`` on the test rows; ``n_iter[l]`` ``[S, T]`` epochs run;
    ``profile``: seconds per stage (``read``, ``stats``, ``train``, ``validate``,
    ``predict``) and ``peak_cache_bytes``.
    """

    predictions: list
    n_iter: list
    profile: dict


class _Blocks:
    """Row blocks of one layer, cached while the budget allows: in the store dtype until the standardization
    statistics are known, then standardized in the dtype they are used in (:meth:`prepared`)."""

    def __init__(self, read: Reader, rows: np.ndarray, budget: _Budget, profile: dict):
        self.read, self.budget, self.profile = read, budget, profile
        self.blocks = [rows[i:i + BLOCK_ROWS] for i in range(0, len(rows), BLOCK_ROWS)]
        self.cache: dict[int, np.ndarray] = {}
        self.ready: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.blocks)

    def raw(self, i: int) -> np.ndarray:
        if i in self.cache:
            return self.cache[i]
        t = _now()
        x = np.asarray(self.read(self.blocks[i]))
        self.profile["read"] += _now() - t
        if self.budget.take(x.nbytes):
            self.cache[i] = x
        return x

    def prepared(self, i: int, standardize: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
        """Block ``i`` through ``standardize`` (the same function for every call on these blocks); a cached raw
        block is replaced by its result when the budget allows, so later epochs neither convert nor cast it."""
        if i in self.ready:
            return self.ready[i]
        x = standardize(self.raw(i))
        raw = self.cache.get(i)
        if raw is not None:
            self.budget.give(raw.nbytes)
            if self.budget.take(x.element_size() * x.nelement()):
                self.ready[i] = x
                del self.cache[i]
            else:
                self.budget.take(raw.nbytes)  # it fitted before: keep the raw block
        return x

    def release(self) -> None:
        for x in self.cache.values():
            self.budget.give(x.nbytes)
        for x in self.ready.values():
            self.budget.give(x.element_size() * x.nelement())
        self.cache.clear()
        self.ready.clear()


class _Budget:
    def __init__(self, limit: int):
        self.limit, self.used, self.peak = limit, 0, 0

    def take(self, nbytes: int) -> bool:
        if self.used + nbytes > self.limit:
            return False
        self.used += nbytes
        self.peak = max(self.peak, self.used)
        return True

    def give(self, nbytes: int) -> None:
        self.used -= nbytes


def _now() -> float:
    import time

    return time.perf_counter()


def _tensor(x: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _matmul_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype of the training matmuls: ``"auto"`` is bfloat16 on CUDA and on CPUs with bfloat16 kernels."""
    if name == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return torch.bfloat16 if fast else torch.float32
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"matmul_dtype must be 'auto', 'float32' or 'bfloat16', got {name!r}")
    return getattr(torch, name)


def _gather(x: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``x[perms]`` ``[S, n, d]``; on the CPU through NumPy's ``take``, several times faster than torch's indexing
    (bfloat16 rows travel as int16: a gather moves bits and does no arithmetic)."""
    if x.device.type == "cpu":
        bits = x.dtype == torch.bfloat16
        xn = (x.view(torch.int16) if bits else x).numpy()
        if len(perms) == 1:
            out = torch.from_numpy(np.take(xn, perms[0].numpy(), axis=0)).unsqueeze(0)
        else:
            out = torch.from_numpy(np.stack([np.take(xn, p.numpy(), axis=0) for p in perms]))
        return out.view(torch.bfloat16) if bits else out
    return torch.stack([x.index_select(0, p.to(x.device)) for p in perms])


def _split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(fit, validation)`` in ``range(n)``, both sorted; no validation when too small."""
    n_val = int(math.floor(n * fraction))
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    val = np.sort(np.random.default_rng(seed).choice(n, size=n_val, replace=False))
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def _losses(Z: torch.Tensor, Y: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """Mean cross-entropy ``[S, T]`` of logits ``Z`` ``[S, b, K]`` against codes ``Y`` ``[b, T]``."""
    out = []
    for t in range(len(offsets) - 1):
        seg = Z[:, :, offsets[t]:offsets[t + 1]]
        lse = torch.logsumexp(seg, dim=2)  # [S, b]
        gold = seg.gather(2, Y[:, t].view(1, -1, 1).expand(Z.shape[0], -1, 1)).squeeze(2)
        out.append((lse - gold).mean(1))
    return torch.stack(out, 1)


def _predict(Z: torch.Tensor, offsets: Sequence[int]) -> list[torch.Tensor]:
    return [Z[:, :, offsets[t]:offsets[t + 1]].argmax(2) for t in range(len(offsets) - 1)]


@torch.no_grad()
def _fit_layer(read: Reader, d: int, Y_all: torch.Tensor, offsets: list[int], seg_of_col: torch.Tensor,
               fit_rows: np.ndarray, val_rows: np.ndarray, test_rows: np.ndarray, seeds: Sequence[int], reg: float,
               bs: int, cfg: StreamConfig, budget: _Budget, profile: dict, device) -> tuple[list, np.ndarray]:
    """Train the probes of one layer (all label sets and seeds); predicted codes ``[T][S]`` and epochs ``[S, T]``."""
    S, T, K = len(seeds), len(offsets) - 1, int(offsets[-1])
    fit_b = _Blocks(read, fit_rows, budget, profile)
    val_b = _Blocks(read, val_rows, budget, profile)
    # ---- standardization statistics (float64), streamed over the fitting rows
    t0 = _now()
    s1 = torch.zeros(d, dtype=torch.float64, device=device)
    s2 = torch.zeros(d, dtype=torch.float64, device=device)
    for i in range(len(fit_b)):
        x = _tensor(fit_b.raw(i), device).double()
        s1 += x.sum(0)
        s2 += (x * x).sum(0)
    m = max(len(fit_rows), 1)
    mu64 = s1 / m
    sd64 = ((s2 / m - mu64 * mu64).clamp_min(0.0)).sqrt()
    sd64 = torch.where(sd64 > 1e-6 * max(float(sd64.max()), 1e-30), sd64, torch.ones_like(sd64))
    mu, inv_sd = mu64.float(), (1.0 / sd64).float()
    profile["stats"] += _now() - t0

    def standardizer(dtype: torch.dtype) -> Callable[[np.ndarray], torch.Tensor]:
        return lambda raw: ((_tensor(raw, device) - mu) * inv_sd).to(dtype)

    as_float32 = standardizer(torch.float32)

    def block(blocks: _Blocks, i: int) -> torch.Tensor:  # standardized float32 rows (validation, test)
        return blocks.prepared(i, as_float32)

    # ---- parameters of all seeds and label sets; Adam with a learning rate per probe column
    W = torch.zeros(S, d, K, device=device)
    b = torch.zeros(S, 1, K, device=device)
    mm_dtype = _matmul_dtype(cfg.matmul_dtype, device)
    mW, vW = torch.zeros_like(W), torch.zeros_like(W)
    mb, vb = torch.zeros_like(b), torch.zeros_like(b)
    best_W, best_b = W.detach().clone(), b.detach().clone()
    lr = torch.full((S, T), float(cfg.lr), device=device)
    best_loss = torch.full((S, T), float("inf"), device=device)
    stall = torch.zeros(S, T, dtype=torch.long, device=device)
    decays = torch.zeros(S, T, dtype=torch.long, device=device)
    done = torch.zeros(S, T, dtype=torch.bool, device=device)
    n_iter = np.full((S, T), cfg.max_iter)
    order_gen = np.random.default_rng(cfg.shuffle_seed)
    row_gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    beta1, beta2, eps, step_t = 0.9, 0.999, 1e-8, 0

    def val_loss() -> torch.Tensor:
        t1 = _now()
        total = torch.zeros(S, T, device=device)
        blocks, rows = (val_b, val_rows) if len(val_rows) else (fit_b, fit_rows)
        with torch.no_grad():
            for i in range(len(blocks)):
                # without validation rows the training rows' own (the blocks kept for training are in the
                # products' dtype: float32 is made again from the raw rows)
                x = block(blocks, i) if blocks is val_b else as_float32(blocks.raw(i))
                Y = Y_all[torch.from_numpy(blocks.blocks[i]).to(device)]
                Z = torch.baddbmm(b, x.unsqueeze(0).expand(S, -1, -1), W)
                total += _losses(Z, Y, offsets) * x.shape[0]
        profile["validate"] += _now() - t1
        out = total / max(len(rows), 1)
        if reg > 0:
            sq = (W.detach() ** 2).sum(1)  # [S, K]
            out = out + 0.5 * reg * torch.zeros(S, T, device=device).index_add_(1, seg_of_col, sq)
        return out

    as_matmul = standardizer(mm_dtype)  # training rows: standardized once, kept in the dtype of the products
    for epoch in range(cfg.max_iter):
        t1 = _now()
        # label sets whose probes have all stopped leave the products: their columns are set aside and return
        # unchanged at the end of the epoch (a stopped probe's learning rate is 0 anyway)
        active = [t for t in range(T) if not bool(done[:, t].all())]
        if len(active) == T:
            cols, offs, seg, tsel = None, offsets, seg_of_col, None
            P = [W, b, mW, vW, mb, vb]
        else:
            tsel = torch.as_tensor(active, device=device)
            cols = torch.cat([torch.arange(offsets[t], offsets[t + 1]) for t in active]).to(device)
            widths = [offsets[t + 1] - offsets[t] for t in active]
            offs = np.concatenate([[0], np.cumsum(widths)]).tolist()
            seg = torch.repeat_interleave(torch.arange(len(active)), torch.as_tensor(widths)).to(device)
            P = [q[:, :, cols] for q in (W, b, mW, vW, mb, vb)]  # indexing with a tensor copies
        Wa, ba, mWa, vWa, mba, vba = P
        Ta = len(active)
        gold_shift = torch.as_tensor(offs[:-1], device=device).view(1, 1, Ta)
        minus_one = torch.full((S, bs, Ta), -1.0, device=device)
        col_lr = lr[:, active][:, seg].unsqueeze(1)  # [S, 1, K_active]: the rates change only between epochs
        for i in order_gen.permutation(len(fit_b)):
            x = fit_b.prepared(int(i), as_matmul)
            Y = Y_all[torch.from_numpy(fit_b.blocks[int(i)]).to(device)]
            if tsel is not None:
                Y = Y[:, tsel]
            n_b = x.shape[0]
            perms = torch.stack([torch.randperm(n_b, generator=g) for g in row_gens])  # [S, n_b]
            xs = _gather(x, perms)  # [S, n_b, d]: each seed's own order of the block's rows
            Ys = Y[perms.to(device)] + gold_shift  # [S, n_b, T]: the columns of the gold classes
            for a in range(0, n_b, bs):
                xb, Yb = xs[:, a:a + bs], Ys[:, a:a + bs]
                # the gradient of the mean cross-entropy of every label set, written out: softmax - one-hot
                G = torch.baddbmm(ba.to(mm_dtype), xb, Wa.to(mm_dtype)).float()  # logits [S, bsz, K]
                for t in range(Ta):
                    g_seg = G[:, :, offs[t]:offs[t + 1]]
                    g_seg.copy_(torch.softmax(g_seg, dim=2))
                G.scatter_add_(2, Yb, minus_one[:, :Yb.shape[1]])
                G.div_(Yb.shape[1])
                # as (G^T x)^T: x^T G with x's rows transposed runs at half the speed on CPUs
                gW = torch.bmm(G.to(mm_dtype).transpose(1, 2), xb).float().transpose(1, 2).contiguous()
                if reg > 0:
                    gW.add_(Wa, alpha=reg)
                gb = G.sum(1, keepdim=True)
                step_t += 1
                scale = math.sqrt(1 - beta2 ** step_t) / (1 - beta1 ** step_t)
                for p_, g_, m_, v_ in ((Wa, gW, mWa, vWa), (ba, gb, mba, vba)):
                    m_.mul_(beta1).add_(g_, alpha=1 - beta1)
                    v_.mul_(beta2).addcmul_(g_, g_, value=1 - beta2)
                    p_.sub_(col_lr * scale * m_ / (v_.sqrt() + eps))
        if cols is not None:
            for full, part in zip((W, b, mW, vW, mb, vb), P):
                full[:, :, cols] = part
        profile["train"] += _now() - t1
        current = val_loss()
        improved = (current < best_loss - cfg.tol) & ~done
        better = (current < best_loss) & ~done
        cols = better[:, seg_of_col].unsqueeze(1)  # [S, 1, K]
        best_W = torch.where(cols, W.detach(), best_W)
        best_b = torch.where(cols, b.detach(), best_b)
        best_loss = torch.where(better, current, best_loss)
        stall[improved] = 0
        stall[~improved & ~done] += 1
        plateau = (stall >= cfg.n_iter_no_change) & ~done
        decay = plateau & (decays < LR_DECAYS)
        if bool(decay.any()):  # restart from the best parameters at a tenth of the learning rate
            cols_d = decay[:, seg_of_col].unsqueeze(1)
            with torch.no_grad():
                W.copy_(torch.where(cols_d, best_W, W))
                b.copy_(torch.where(cols_d, best_b, b))
            lr[decay] /= 10
            decays[decay] += 1
            stall[decay] = 0
        newly = plateau & ~decay
        n_iter[newly.cpu().numpy()] = epoch + 1
        done |= newly
        lr[done] = 0.0
        if bool(done.all()):
            break
    fit_b.release()
    val_b.release()
    # ---- predictions on the test rows, streamed
    t1 = _now()
    test_b = _Blocks(read, test_rows, _Budget(0), profile)
    preds = [[[] for _ in range(S)] for _ in range(T)]
    with torch.no_grad():
        for i in range(len(test_b)):
            x = block(test_b, i)
            Z = torch.baddbmm(best_b, x.unsqueeze(0).expand(S, -1, -1), best_W)
            for t, p in enumerate(_predict(Z, offsets)):
                for s in range(S):
                    preds[t][s].append(p[s].cpu().numpy())
    profile["predict"] += _now() - t1
    return [[np.concatenate(p) if p else np.zeros(0, np.int64) for p in per_t] for per_t in preds], n_iter


def fit_streamed(readers: Sequence[Reader], d: int, labels: Sequence[np.ndarray], n_classes: Sequence[int],
                 train_rows: np.ndarray, test_rows: np.ndarray, seeds: Sequence[int],
                 cfg: StreamConfig = StreamConfig(), progress: bool = False) -> StreamedFit:
    """Train linear probes of every layer, label set and seed on streamed features; predict the test rows.

    Parameters
    ----------
    readers : sequence of callables
        One per layer: ``read(rows)`` returns the features of those rows
        (``[len(rows), d]``, any float dtype); called with sorted row blocks.
    d : int
        Feature width.
    labels : sequence of int arrays
        Class codes ``0..n_classes[t]-1`` of every row, one array per label set
        (only the training rows' codes are used).
    n_classes : sequence of int
    train_rows, test_rows : int arrays
        Row indices (sorted) to train on and to predict.
    seeds : sequence of int
        One probe per seed and label set; a seed fixes its probes' order of
        rows within each block.
    cfg : StreamConfig
    progress : bool
        A tqdm bar over layers.

    Returns
    -------
    StreamedFit

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 3000)
    >>> X = rng.normal(size=(3000, 8)).astype(np.float32) + 2 * np.eye(8, dtype=np.float32)[y]
    >>> fit = fit_streamed([lambda r: X[r]], 8, [y], [3], np.arange(2500), np.arange(2500, 3000), [0, 1])
    >>> [bool((p == y[2500:]).mean() > 0.8) for p in fit.predictions[0][0]]
    [True, True]
    """
    device = torch.device(cfg.device)
    train_rows = np.asarray(train_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    T, S = len(labels), len(seeds)
    if T == 0 or S == 0:
        raise ValueError("fit_streamed needs at least one label set and one seed")
    codes = np.stack([np.asarray(y, dtype=np.int64) for y in labels], 1)  # [n_rows, T]
    offsets = np.concatenate([[0], np.cumsum(n_classes)]).tolist()
    seg_of_col = torch.repeat_interleave(torch.arange(T), torch.as_tensor(list(n_classes))).to(device)
    fit_pos, val_pos = _split_validation(len(train_rows), cfg.validation_fraction, cfg.shuffle_seed)
    fit_rows, val_rows = train_rows[fit_pos], train_rows[val_pos]
    reg = 0.0 if np.isinf(cfg.C) else 1.0 / (float(cfg.C) * len(train_rows))
    bs = int(max(1, min(cfg.batch_size, len(fit_rows))))
    budget = _Budget(int(cfg.memory_budget))
    profile = {"read": 0.0, "stats": 0.0, "train": 0.0, "validate": 0.0, "predict": 0.0}
    predictions, n_iters = [], []
    Y_all = torch.from_numpy(codes).to(device)
    layers = range(len(readers))
    if progress:
        from tqdm.auto import tqdm

        layers = tqdm(layers, desc="probe layers", unit="layer")
    for li in layers:
        preds, n_iter = _fit_layer(readers[li], d, Y_all, offsets, seg_of_col, fit_rows, val_rows, test_rows, seeds,
                                   reg, bs, cfg, budget, profile, device)
        predictions.append(preds)
        n_iters.append(n_iter)
        logger.info("layer %d: %d probes (%d label sets x %d seeds) in %s epochs", li, S * T, T, S,
                    int(n_iter.max()))
    profile["peak_cache_bytes"] = budget.peak
    return StreamedFit(predictions, n_iters, profile)
