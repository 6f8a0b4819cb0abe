"""Weights hashes that stay true: SHA-256 of a module's state, re-taken only when a cheap signature changes.

See :mod:`probekit.fingerprint` ("Keeping a weights hash truthful") for what the signature notices.
"""

from __future__ import annotations

import hashlib
import math
import weakref

from probekit.fingerprint._json import canonical_json

__all__ = ["weights_hash", "SAMPLE"]

#: elements of every tensor compared bit for bit on each check (see the module notes)
SAMPLE = 64


def _int_view(t):
    """``t`` (1-D) reinterpreted as raw bytes, or ``None`` for dtypes without a plain byte layout."""
    import torch

    if t.is_quantized or t.is_complex() or t.layout != torch.strided or t.device.type == "meta" or _wrapper(t):
        return None
    try:
        return t.view(torch.uint8)
    except RuntimeError:
        return None


def _wrapper(t) -> bool:
    """Whether ``t`` is a tensor subclass holding other tensors (torchao's quantized weights)."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    return is_traceable_wrapper_subclass(t)


def _positions(shape: tuple[int, ...]):
    """Fixed pseudo-random element positions sampled from a tensor of ``shape`` (``None`` when empty)."""
    import torch

    numel = math.prod(shape)
    if numel == 0:
        return None
    if numel <= SAMPLE:
        return torch.arange(numel)
    return torch.randint(numel, (SAMPLE,), generator=torch.Generator().manual_seed(numel))


def _custom_state_modules(module) -> list:
    """Submodules that keep state outside parameters and buffers (they override ``_save_to_state_dict``)."""
    from torch import nn

    base = nn.Module._save_to_state_dict
    return [(n, m) for n, m in module.named_modules(remove_duplicate=False)
            if type(m)._save_to_state_dict is not base]


_PLAIN_MODULE_ATTRS: frozenset = frozenset()


class _Same:
    """Identity of an object: by weak reference where it allows one, else by a strong one."""

    def __init__(self, obj):
        try:
            self._ref = weakref.ref(obj)
        except TypeError:
            self._ref = lambda: obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and self._ref() is not None and self._ref() is other._ref()

    __hash__ = None


def _custom_state(m) -> list:
    """What a module keeps outside parameters and buffers: plain values by value, objects by identity.

    torch.ao quantized layers hold their packed weights in an object that is replaced, never
    changed in place, whenever the weights change (``set_weight_bias``, ``load_state_dict``).
    """
    import torch
    from torch import nn

    global _PLAIN_MODULE_ATTRS
    if not _PLAIN_MODULE_ATTRS:
        _PLAIN_MODULE_ATTRS = frozenset(vars(nn.Module()))
    out = []
    for key, v in sorted(vars(m).items()):
        if key in _PLAIN_MODULE_ATTRS:
            continue
        if v is None or isinstance(v, (bool, int, float, str, torch.dtype)):
            out.append((key, v))
        elif isinstance(v, torch.Tensor):
            out.append((key, _Same(v), v._version, tuple(v.shape), v.dtype))
        else:
            out.append((key, _Same(v)))
    return out


class _WeightsState:
    """The cheap signature of a module's weights: see the module notes."""

    def __init__(self, module):
        self.tensors = self._tensors(module)
        self.positions = [_positions(meta[3]) if meta[7] else None for _ref, meta in self.tensors]
        self._on_device: dict = {}  # positions copied to an accelerator, once per tensor size and device
        self.sample = self._sample(self.tensors)
        self.custom = [(n, _custom_state(m)) for n, m in _custom_state_modules(module)]

    @staticmethod
    def _tensors(module) -> list:
        import torch

        out = []
        for kind, items in (("p", module.named_parameters(remove_duplicate=False)),
                            ("b", module.named_buffers(remove_duplicate=False))):
            for name, t in items:
                strided = t.layout == torch.strided and t.device.type != "meta"
                # an inference tensor has no version counter (accelerate's offload hooks put meta ones back
                # after a forward under inference_mode); it is compared by identity and sampled bytes only
                version = -1 if t.is_inference() else t._version
                meta = (kind, name, t.dtype, tuple(t.shape), t.device, version,
                        t.data_ptr() if strided else 0, tuple(t.stride()) if strided else ())
                out.append((weakref.ref(t), meta))
        return out

    def _sample(self, tensors: list) -> dict:
        """The sampled elements' bytes, per device (sparse and meta tensors have none)."""
        import torch

        per_device: dict = {}
        with torch.no_grad():
            for (ref, meta), pos in zip(tensors, self.positions):
                t = ref()
                if t is None or pos is None or t.layout != torch.strided or t.device.type == "meta" or _wrapper(t):
                    continue
                flat = t.detach().reshape(-1)
                if flat.device.type != "cpu":
                    key = (flat.device, meta[3])
                    if key not in self._on_device:
                        self._on_device[key] = pos.to(flat.device)
                    pos = self._on_device[key]
                raw = _int_view(flat[pos])
                if raw is not None:
                    per_device.setdefault(str(flat.device), []).append(raw)
        return {dev: torch.cat(parts).cpu().numpy().tobytes() for dev, parts in per_device.items()}

    def matches(self, module) -> bool:
        now = self._tensors(module)
        if len(now) != len(self.tensors):
            return False
        for (ref_old, meta_old), (ref_new, meta_new) in zip(self.tensors, now):
            if meta_old != meta_new or ref_old() is not ref_new():
                return False
        if self._sample(now) != self.sample:
            return False
        return [(n, _custom_state(m)) for n, m in _custom_state_modules(module)] == self.custom


_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _feed(h, name: str, value, torch) -> None:
    """Feed one state entry to ``h``: tensors by dtype, shape and bytes, quantized tensors by their
    integer values and quantization parameters, packed tuples (torch.ao quantized linears) element
    by element, anything else by its canonical JSON."""
    if isinstance(value, (tuple, list)):
        for k, v in enumerate(value):
            _feed(h, f"{name}[{k}]", v, torch)
        return
    if not isinstance(value, torch.Tensor):
        h.update(f"{name}={canonical_json(value)}".encode())
        return
    if _wrapper(value):  # torchao: its inner tensors and its (JSON-able) metadata
        inner, ctx = value.__tensor_flatten__()
        h.update(f"{name}:subclass:{type(value).__name__}:{tuple(value.shape)}:{ctx!r}".encode())
        for attr in inner:
            _feed(h, f"{name}.{attr}", getattr(value, attr), torch)
        return
    t = value.detach().cpu()
    if t.is_quantized:
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            params = (t.q_per_channel_scales(), t.q_per_channel_zero_points(), t.q_per_channel_axis())
        else:
            params = (t.q_scale(), t.q_zero_point())
        h.update(f"{name}:q:{t.dtype}:{tuple(t.shape)}:{t.qscheme()}".encode())
        for k, p in enumerate(params):
            _feed(h, f"{name}.qparam{k}", p, torch)
        t = _quantized_values(t, torch)
    t = t.contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")


def _quantized_values(t, torch):
    """The integer values of a quantized tensor; read straight from its storage when it is dense
    (``int_repr`` copies element by element: 20 ms for one 384x1536 int8 matrix)."""
    storage = t.untyped_storage()
    if t.is_contiguous() and t.storage_offset() == 0 and storage.nbytes() == t.numel() * t.element_size():
        ints = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}.get(t.dtype)
        if ints is not None:
            return torch.empty(0, dtype=torch.uint8).set_(storage).view(ints).view(t.shape)
    return t.int_repr()


def _offloaded(module) -> dict:
    """Weights accelerate keeps outside the module (CPU or disk offload): ``{state name: tensor}``.

    An offloaded module's parameters are on the meta device; its hook's
    ``weights_map`` holds the values (read from the offload files), so a split
    or offloaded model hashes like the whole one.
    """
    out: dict = {}
    for prefix, m in module.named_modules():
        hook = getattr(m, "_hf_hook", None)
        for hk in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
            wmap = getattr(hk, "weights_map", None)
            if wmap is None:
                continue
            for kind in (m.named_parameters, m.named_buffers):
                for name, t in kind(remove_duplicate=False):
                    full = f"{prefix}.{name}" if prefix else name
                    if t.device.type == "meta" and full not in out:
                        out[full] = wmap[name]
    return out


def _full_weights_hash(module) -> str:
    import torch

    entries = dict(module.state_dict())
    for name, b in module.named_buffers(remove_duplicate=False):  # non-persistent buffers shape outputs too
        entries.setdefault(name, b)
    if any(isinstance(v, torch.Tensor) and v.device.type == "meta" for v in entries.values()):
        offloaded = _offloaded(module)
        entries = {k: offloaded.get(k, v) if isinstance(v, torch.Tensor) and v.device.type == "meta" else v
                   for k, v in entries.items()}
        missing = [k for k, v in entries.items() if isinstance(v, torch.Tensor) and v.device.type == "meta"]
        if missing:
            raise ValueError(f"weights {missing[:3]} are on the meta device and held by no offload hook, so they "
                             "have no values to hash; load the model's weights first")
    h = hashlib.sha256()
    for name in sorted(entries):
        _feed(h, name, entries[name], torch)
    return h.hexdigest()


def weights_hash(module, *, refresh: bool = False) -> str:
    """SHA-256 over every parameter, buffer and custom state entry of ``module`` (names, dtypes, shapes, bytes).

    The hash is remembered per module with a cheap state signature and
    computed again whenever the signature shows a change (see the module
    notes for exactly what it notices).

    Parameters
    ----------
    module : torch.nn.Module
    refresh : bool
        Hash every byte again regardless of the signature (after a sparse
        write through ``.data``, which the signature can miss).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(3, 1)
    >>> h = weights_hash(lin)
    >>> weights_hash(lin) == h            # unchanged: not hashed again
    True
    >>> lin.weight.data.mul_(0.5)         # bypasses the version counter  # doctest: +ELLIPSIS
    tensor(...)
    >>> weights_hash(lin) == h            # caught by the sampled elements
    False
    """
    if not refresh:
        known = _WEIGHTS.get(module)
        if known is not None and known[0].matches(module):
            return known[1]
    state = _WeightsState(module)
    digest = _full_weights_hash(module)
    _WEIGHTS[module] = (state, digest)
    return digest
