"""``load_model``: aliases, local folders, hub names, configs and model objects."""

from __future__ import annotations

import copy
import logging
import os
from numbers import Integral
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.utils.quantization_config import QuantizationConfigMixin

from probekit.model._assets import ALIASES, DEFAULT_MODEL, resolve_alias
from probekit.model._discovery import adapter_for
from probekit.model._hooked import HookedModel
from probekit.model._placement import (
    QUANTIZE_METHODS,
    check_placement,
    check_quantization,
    dispatch,
    placement_of,
    quantization_of,
)
from probekit.validation import Boolean, Device, InstanceOf, Interval, Options, declare, validate_params

__all__ = ["load_model", "load_tokenizer", "HEADS", "DTYPES", "LOAD_CONSTRAINTS"]

logger = logging.getLogger(__name__)

Head = Literal["sequence-classification", "token-classification", "causal-lm", "masked-lm"]
HEADS = {
    None: AutoModel,
    "sequence-classification": AutoModelForSequenceClassification,
    "token-classification": AutoModelForTokenClassification,
    "causal-lm": AutoModelForCausalLM,
    "masked-lm": AutoModelForMaskedLM,
}


#: Weight precisions ``load_model(dtype=...)`` accepts, by name or as the torch dtype.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                                  "float64": torch.float64}

class _QuantizationConfig(InstanceOf):
    """A transformers quantization config (its base class cannot be built without arguments)."""

    def valid_example(self):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True)


#: What ``load_model``'s settings accept (also ``probekit.load_model``'s, for a saved variant too).
LOAD_CONSTRAINTS: dict[str, list] = {
    "head": [Options(k for k in HEADS if k is not None), None],
    "num_labels": [Interval(Integral, 1, None, closed="left"), None],
    "seed": [Interval(Integral, 0, None, closed="left")],
    "device": [Device(), None],
    "dtype": [Options(DTYPES), Options(DTYPES.values()), None],
    "trust_remote_code": [Boolean()],
    "revision": [str, None],
    "name": [str, None],
    "device_map": [Options({"auto", "balanced", "balanced_low_0", "sequential"}), InstanceOf(dict), None],
    "max_memory": [InstanceOf(dict), None],
    "offload_folder": [InstanceOf(str, os.PathLike, name="a folder path"), None],
    "quantization": [Options(QUANTIZE_METHODS),
                     _QuantizationConfig(QuantizationConfigMixin, name="a transformers quantization config "
                                         "(TorchAoConfig, BitsAndBytesConfig)"), None],
}


class HubUnreachableError(OSError):
    """A hub name could not be fetched (offline, or no network)."""


@declare(LOAD_CONSTRAINTS)
def load_model(
    spec: str | os.PathLike | PretrainedConfig | PreTrainedModel = DEFAULT_MODEL,
    *,
    head: Head | None = None,
    num_labels: int | None = None,
    tokenizer=None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    name: str | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | os.PathLike | None = None,
    quantization=None,
) -> HookedModel:
    """Load a model of a supported family and wrap it as a :class:`HookedModel`.

    Parameters
    ----------
    spec : str, path, PretrainedConfig or PreTrainedModel
        An alias (``"minilm-l6"``, the default; see ``probekit.ALIASES``), a
        local folder in Hugging Face format (not a saved probekit variant, one
        holding ``recipe.json``: ``probekit.load_model`` loads those), a hub name (needs a network or a
        local hub cache), a ``transformers`` config (random weights drawn with
        ``seed``), or an already built model.
    head : {None, "sequence-classification", "token-classification", "causal-lm", "masked-lm"}
        ``None`` loads the base model; otherwise the task-head model.
    num_labels : int, optional
        Labels of a classification head.
    tokenizer : tokenizer or str, optional
        A tokenizer object or anything ``load_tokenizer`` takes. Default: the
        spec's own; for a config or model object, the default model's
        WordPiece tokenizer when the vocabulary fits.
    seed : int
        Seed of the random initialisation when ``spec`` is a config (and of
        any freshly initialised head).
    device : str or torch.device, optional
        Where to place the weights (``"cpu"``, ``"cuda"``, ``"cuda:1"``); a
        device that is not available here is refused before anything loads.
    dtype : {"float32", "float16", "bfloat16", "float64"} or torch.dtype, optional
        The precision of the weights.
    trust_remote_code : bool
        Off by default: probekit never runs code shipped with weights unless
        asked.
    revision : str, optional
        Hub revision.
    name : str, optional
        Name shown in stores and tables (default: derived from ``spec``).
    device_map : {"auto", "balanced", "balanced_low_0", "sequential"} or dict, optional
        Spread the blocks over devices through ``accelerate`` (a subject
        larger than one device): a strategy, or ``{module path: device}``
        with devices such as ``0``, ``"cuda:1"``, ``"cpu"`` or ``"disk"``.
        Hooks, caches and interventions work as on one device. The placement
        is recorded (:attr:`HookedModel.placement`) but is not part of the
        weights' fingerprint: activations are the same wherever blocks sit.
    max_memory : dict, optional
        Per-device budget for ``device_map="auto"`` (``{0: "20GiB", "cpu": "60GiB"}``).
    offload_folder : path, optional
        Where blocks mapped to ``"disk"`` keep their weights.
    quantization : transformers quantization config, optional
        Load quantized weights through Hugging Face: ``TorchAoConfig``
        (torchao weight-only int8 runs on CPU) or ``BitsAndBytesConfig``
        (4/8-bit, CUDA only). Needs a folder, alias or hub name. The config
        becomes part of the model config, so of every fingerprint.
        ``probekit.load_model`` also takes a probekit method
        (``"weight-int8"``, ``"weight-int4"``, ``"dynamic-int8"``) and returns a
        quantized :class:`~probekit.variants.ModelVariant`.

    Examples
    --------
    >>> from transformers import BertConfig
    >>> m = load_model(BertConfig(hidden_size=32, num_hidden_layers=2,
    ...                           num_attention_heads=4, intermediate_size=37))
    >>> m.n_layers, m.d_model
    (2, 32)
    """
    validate_params(load_model, locals())
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    check_placement(device, device_map, max_memory, offload_folder)
    check_quantization(quantization, spec)
    placed = {k: v for k, v in (("device_map", device_map), ("max_memory", max_memory),
                                ("offload_folder", offload_folder)) if v is not None}
    if isinstance(spec, (str, os.PathLike)) and (Path(spec).expanduser() / "recipe.json").is_file():
        # rebuilding pruned shapes and re-applying quantization is the variants' job, not the core's
        raise ValueError(f"{spec} holds a saved model variant (recipe.json): load it with probekit.load_model "
                         f"or probekit.variants.load_variant, which return the ModelVariant")
    auto = HEADS[head]
    head_kwargs = {"num_labels": num_labels} if num_labels is not None else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(spec, PreTrainedModel):
            model, source = spec, {"kind": "object", "class": type(spec).__name__}
            default_name = spec.config.name_or_path or type(spec).__name__
        elif isinstance(spec, PretrainedConfig):
            if not trust_remote_code:  # a meta-device skeleton: an unsupported architecture fails before any weights
                adapter_for(spec)
            config = copy.deepcopy(spec)  # the head settings and pad token id are the model's, not the caller's
            for k, v in head_kwargs.items():
                setattr(config, k, v)
            model = auto.from_config(config, trust_remote_code=trust_remote_code)
            source = {"kind": "config", "config": config.to_diff_dict(), "seed": seed}
            default_name = f"random-{config.model_type}"
        elif isinstance(spec, (str, os.PathLike)):
            folder, kwargs, source, default_name = _locate(spec, revision)
            config = _from_pretrained(AutoConfig, folder, spec, trust_remote_code=trust_remote_code,
                                      revision=revision, **_hub_kwargs(kwargs))
            if not trust_remote_code:  # remote code builds its own classes: mapped once the model is built
                adapter_for(config)
            for k, v in head_kwargs.items():
                setattr(config, k, v)
            if quantization is not None:
                kwargs["quantization_config"] = quantization
            if dtype is not None and placed:  # weights dispatched by from_pretrained are cast as they load
                kwargs["dtype"] = dtype
            model = _from_pretrained(auto, folder, spec, config=config, trust_remote_code=trust_remote_code,
                                     revision=revision, **placed, **kwargs)
            placed = {}  # from_pretrained placed the weights
            if tokenizer is None:
                tokenizer = load_tokenizer(folder, revision=revision, trust_remote_code=trust_remote_code, **kwargs)
        else:
            raise TypeError(f"spec must be an alias, a path, a hub name, a transformers config or a model; "
                            f"got {type(spec).__name__}")
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = _default_tokenizer(model) if tokenizer is None else load_tokenizer(tokenizer)
    if placed:  # a config or a built model: dispatched once its weights exist
        if dtype is not None:
            model.to(dtype=dtype)
        model = dispatch(model, **placed)
    elif getattr(model, "hf_device_map", None) is None and (device is not None or dtype is not None):
        model.to(device=device, dtype=dtype)
    model.eval()
    hooked = HookedModel(model, tokenizer, name=name or default_name, source=source)
    logger.debug("%s: placement %s, quantization %s", hooked.name, placement_of(model), quantization_of(model))
    return hooked


def load_tokenizer(spec: str | os.PathLike, *, revision: str | None = None, trust_remote_code: bool = False, **kwargs):
    """Load a fast tokenizer from an alias, a folder or a hub name."""
    if isinstance(spec, str) and spec in ALIASES:
        folder, extra = resolve_alias(spec)
        kwargs = {**extra, **kwargs}
        spec = folder
    kwargs = _hub_kwargs(kwargs)
    try:
        return AutoTokenizer.from_pretrained(spec, revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as exc:
        raise _hub_error(str(spec), exc) from exc


def _hub_kwargs(kwargs: dict) -> dict:
    """The subset of model kwargs that config/tokenizer loaders accept."""
    return {k: v for k, v in kwargs.items() if k in ("gguf_file",)}


def _locate(spec, revision) -> tuple[str, dict, dict, str]:
    text = os.fspath(spec)
    if text in ALIASES:
        folder, kwargs = resolve_alias(text)
        return str(folder), kwargs, {"kind": "alias", "alias": text}, text
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not any(path.glob("*.gguf")):
            raise FileNotFoundError(f"{path} is a folder but holds no config.json; is it a Hugging Face model folder?")
        return str(path), {}, {"kind": "path", "path": str(path.resolve())}, path.name
    if path.exists() or text.startswith((".", "/", "~")) or os.sep in text and text.count("/") > 1:
        raise FileNotFoundError(f"model folder {text!r} does not exist")
    return text, {}, {"kind": "hub", "name": text, "revision": revision}, text


def _from_pretrained(auto, folder: str, spec, **kwargs):
    try:
        return auto.from_pretrained(folder, **kwargs)
    except OSError as exc:
        raise _hub_error(str(spec), exc) from exc
    except (ValueError, TypeError, LookupError, RuntimeError, ImportError):
        raise
    except Exception as exc:  # e.g. safetensors' SafetensorError on a truncated weights file
        raise OSError(f"cannot load {spec} ({type(exc).__name__}: {exc}); its files may be damaged") from exc


def _hub_error(spec: str, exc: Exception) -> Exception:
    if Path(spec).exists():
        return exc
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached or has no such model"
    aliases = ", ".join(ALIASES)
    return HubUnreachableError(
        f"could not load {spec!r} from the Hugging Face hub ({why}). On a machine with a network, download it "
        f"(`hf download {spec} --local-dir DIR`), copy DIR here and call load_model('DIR'); "
        f"or use a bundled alias: {aliases}. Original error: {exc}"
    )


def _default_tokenizer(model):
    tok = load_tokenizer(DEFAULT_MODEL)
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and len(tok) > vocab:
        raise ValueError(
            f"no tokenizer given, and the default ({DEFAULT_MODEL}, {len(tok)} tokens) does not fit this model's "
            f"vocab_size={vocab}; pass tokenizer=... or set vocab_size >= {len(tok)}"
        )
    return tok
