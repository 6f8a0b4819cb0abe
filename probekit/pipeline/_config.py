"""Experiment configs: schema, YAML loading with line-numbered errors, and the demo's built-in config.

An experiment config is one YAML mapping. Its sections turn stages on: a
section that is absent (or ``null``) skips its stages, e.g. a config without
``finetune`` runs no fine-tuning, variants, attribution or comparison.
Every key is checked against :data:`SCHEMA` before anything runs; an error
names the key, its line in the file, and for an unknown key the closest
known one.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

from probekit.attention import AttentionSuite
from probekit.attribution import Attributor
from probekit.data import TASKS, build_task, default_ud_path
from probekit.model import ALIASES, Site
from probekit.pipeline._interventions import check_interventions_section
from probekit.probes import PROBES, ProbeSuite
from probekit.store import extract
from probekit.validation import Interval, ListOf, constraint_of, explain
from probekit.variants import DistillRecipe, FinetuneRecipe, HeadPruneRecipe, MagnitudePruneRecipe, QuantizeRecipe

__all__ = ["ConfigError", "SCHEMA", "DEMO_CONFIG", "QUICK_OVERRIDES", "FULL_OVERRIDES", "load_config",
           "validate", "resolve", "merge"]


class ConfigError(ValueError):
    """An experiment config that cannot run: the message names the key and, from a file, its line."""


@dataclass(frozen=True)
class F:
    """One config field: accepted types, default, allowed values and the declared constraint.

    ``accepts`` is the list of alternatives (:mod:`probekit.validation`) a
    value must satisfy, taken from the declaration of the class or function
    the setting is passed to (:func:`declared`), so a range is written once:
    there. A list's items are checked one by one (``probes.seeds[1]``) when
    the declaration is a :class:`~probekit.validation.ListOf`.
    """

    types: tuple
    default: Any = None
    choices: tuple | None = None
    item: tuple | None = None  # element types of a list
    item_choices: tuple | None = None
    doc: str = ""
    accepts: tuple | None = None

    def item_accepts(self) -> tuple | None:
        """The alternatives of one list item, when ``accepts`` declares a list."""
        lists = [c for c in self.accepts or () if isinstance(c, ListOf)]
        return (lists[0].item,) if lists else None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not accepted (``None`` when it is), item by item for lists."""
        if self.accepts is None:
            return None
        if isinstance(value, list) and self.item_accepts() is not None:
            lists = [c for c in self.accepts if isinstance(c, ListOf)]
            if len(value) < lists[0].min_len:
                return "is empty"
            return None  # items are checked one by one, each with its own line
        return explain(value, list(self.accepts))


def declared(owner: Any, name: str) -> tuple:
    """The constraint ``owner`` declares for its setting ``name`` (what a schema field accepts)."""
    return tuple(constraint_of(owner, name))


def own(*alternatives) -> tuple:
    """The constraint of a setting only the pipeline reads (declared here, in the schema, once)."""
    return tuple(alternatives)


def _n(low: int) -> Interval:
    return Interval(Integral, low, None, closed="left")


_NUM = (int, float)
_SEQ_PROBES = tuple(PROBES)

#: The schema: sections map key -> :class:`F` or a nested section (a dict). Ranges come from the declarations
#: of the classes and functions each setting is passed to.
SCHEMA: dict[str, Any] = {
    "name": F((str,), "experiment", doc="run name: the run folder is runs/<name>, so a plain folder name"),
    "seed": F((int,), 0, doc="seed of data sampling, splits and training", accepts=declared(build_task, "seed")),
    "model": F((str, dict), "minilm-l6", doc="alias, model folder, or {name, config, seed}"),
    "data": {
        "source": F((str,), "rt", choices=("rt", "ud")),
        "path": F((str, type(None)), None, doc="UD folder or .conllu file (source ud; null: $PROBEKIT_UD_PATH, else "
                                               "the copy fetched by 'probekit data fetch ud_ewt')"),
        "sentences": F((int, type(None)), None, doc="sentences per source file (null: all)",
                       accepts=declared(build_task, "limit")),
    },
    "extract": {
        "sites": F((str, list), "resid", item=(str,), doc="'resid', 'all' or a list of sites"),
        "attention": F((bool,), True, doc="also store every layer's attention pattern"),
        "dtype": F((str,), "float16", doc="of stores/main and of the task stores derived from it",
                   accepts=declared(extract, "dtype")),
        "batch_tokens": F((int,), 2048, accepts=declared(extract, "batch_tokens")),
        "autocast": F((str, type(None)), None, accepts=declared(extract, "autocast"),
                      doc="run every forward pass (main, task and random-weights stores) under bf16 autocast; "
                          "faster only where the CPU or GPU has native bf16"),
    },
    "probes": {
        "tasks": F((list,), ["sentiment"], item=(str,)),
        "probes": F((list,), ["linear"], item=(str,), item_choices=_SEQ_PROBES),
        "seeds": F((list,), [0], item=(int,), accepts=declared(ProbeSuite, "seeds")),
        "controls": F((bool,), True),
        "random_init": F((bool,), True, doc="random-weights baseline store (random_init_copy)"),
        "n_boot": F((int,), 1000, doc="bootstrap replicates of every interval", accepts=declared(ProbeSuite, "n_boot")),
    },
    "attention": {
        "example": F((int,), 0, doc="the sentence drawn as a heatmap and rollout map",
                     accepts=declared(AttentionSuite.rollout, "i")),
        "heatmap_layers": F((list, type(None)), None, item=(int,), accepts=own(ListOf(_n(1)), None),
                            doc="layers to draw (block i's attention is layer i + 1); default: first, middle, last"),
    },
    "finetune": {
        "train_size": F((int, type(None)), None, doc="seeded sample of the RT train split (null: all)",
                        accepts=own(_n(1), None)),
        "eval_size": F((int, type(None)), None, doc="validation/test sentences used (null: all)",
                       accepts=own(_n(1), None)),
        "epochs": F(_NUM, 1.0, accepts=declared(FinetuneRecipe, "epochs")),
        "lr": F(_NUM, 1e-4, accepts=declared(FinetuneRecipe, "lr")),
        "batch_size": F((int,), 32, accepts=declared(FinetuneRecipe, "batch_size")),
        "max_length": F((int,), 64, accepts=declared(FinetuneRecipe, "max_length")),
    },
    "variants": {
        "magnitude_prune": {"sparsity": F(_NUM, 0.5, accepts=declared(MagnitudePruneRecipe, "sparsity")),
                            "recover_epochs": F(_NUM, 0.0, accepts=declared(MagnitudePruneRecipe, "recover_epochs"))},
        "prune_heads": {"fraction": F(_NUM, 0.4, accepts=declared(HeadPruneRecipe, "fraction")),
                        "recover_epochs": F(_NUM, 0.0, accepts=declared(HeadPruneRecipe, "recover_epochs")),
                        "importance": F((str,), "michel", accepts=declared(HeadPruneRecipe, "importance")),
                        "importance_sentences": F((int,), 256, accepts=own(_n(1)))},
        "quantize": {"method": F((str,), "dynamic-int8", accepts=declared(QuantizeRecipe, "method"))},
        "distill": {"n_layers": F((int,), 3, accepts=declared(DistillRecipe, "n_layers")),
                    "epochs": F(_NUM, 1.0, accepts=declared(DistillRecipe, "epochs")),
                    "train_size": F((int, type(None)), None, accepts=own(_n(1), None)),
                    "alpha": F(_NUM, 0.5, accepts=declared(DistillRecipe, "alpha")),
                    "temperature": F(_NUM, 2.0, accepts=declared(DistillRecipe, "temperature"))},
        "latency_repeats": F((int,), 20, accepts=own(_n(1))),
    },
    "attribution": {
        "sentences": F((int,), 4, accepts=own(_n(1))),
        "methods": F((list,), ["integrated_gradients", "saliency"], item=(str,),
                     accepts=(ListOf(declared(Attributor, "method")[0], min_len=1),)),
        "n_steps": F((int,), 32, accepts=declared(Attributor.attribute, "n_steps")),
    },
    "compare": {
        "sentences": F((int,), 500, doc="sentences extracted for every variant (similarity needs two)",
                       accepts=own(_n(2))),
        "probe_task": F((str, type(None)), "sentiment", doc="sentence task probed on every variant"),
    },
    "interventions": F((list, type(None)), None, item=(str, dict),
                       doc="interventions on every forward pass of the model in extract and task_stores: "
                           "'ablate:SITE', 'heads:BLOCK:H1,H2', 'erase:DIR' or descriptions (to_dict)"),
    "erase": {
        "task": F((str,), "upos", doc="word- or sentence-level task whose concept is erased"),
        "site": F((str,), "L1.resid", doc="site the eraser is fitted at (saved under models/erasers/)"),
        "method": F((str,), "leace", choices=("leace", "inlp")),
    },
    "amnesic": {
        "task": F((str,), "upos", doc="the property erased at each site"),
        "sites": F((list, type(None)), None, item=(str,), doc="sites (null: every residual site)"),
        "behaviour": F((str,), "lm", choices=("lm", "classifier"),
                       doc="lm: next-token loss of the model with its LM head; classifier: the fine-tuned "
                           "classifier's accuracy (needs finetune)"),
        "method": F((str,), "leace", choices=("leace", "inlp")),
        "held_out": F((int,), 200, doc="test sentences the behaviour runs on", accepts=own(_n(1))),
        "n_random": F((int,), 1, doc="random same-rank erasures per site", accepts=own(_n(1))),
        "n_boot": F((int,), 1000, accepts=own(_n(1))),
    },
    "outputs": {
        "figures": F((bool,), True),
        "report": F((bool,), True),
    },
}

#: Sections that may be absent (their stages are then skipped). Sub-sections of ``variants`` too.
OPTIONAL = {"extract", "probes", "attention", "finetune", "variants", "attribution", "compare", "erase", "amnesic",
            "variants.magnitude_prune", "variants.prune_heads", "variants.quantize", "variants.distill"}

#: What ``probekit demo`` runs (``examples/demo.yaml`` holds the same). Sized for a few minutes on
#: 2 idle CPU cores (measured 2.6 min on a 2-core AMD EPYC: benchmarks/results/demo_stores.json).
DEMO_CONFIG: dict[str, Any] = {
    "name": "demo",
    "seed": 0,
    "model": "minilm-l6",
    "data": {"source": "rt", "path": None, "sentences": 2000},
    "extract": {"sites": "resid", "attention": True, "dtype": "float16", "batch_tokens": 2048},
    "probes": {"tasks": ["sentiment", "sentlen", "bigramshift", "tense", "subjnum", "upos", "deprel"],
               "probes": ["linear"], "seeds": [0, 1], "controls": True, "random_init": True, "n_boot": 200},
    "attention": {"example": 0, "heatmap_layers": None},
    "finetune": {"train_size": 2000, "eval_size": 400, "epochs": 1.0, "lr": 1e-4, "batch_size": 16,
                 "max_length": 64},
    "variants": {"magnitude_prune": {"sparsity": 0.5, "recover_epochs": 0.0},
                 "prune_heads": {"fraction": 0.4, "recover_epochs": 0.0, "importance": "michel",
                                 "importance_sentences": 128},
                 "quantize": {"method": "dynamic-int8"},
                 "distill": {"n_layers": 3, "epochs": 1.0, "train_size": 1000, "alpha": 0.5, "temperature": 2.0},
                 "latency_repeats": 20},
    "attribution": {"sentences": 4, "methods": ["integrated_gradients", "saliency"], "n_steps": 32},
    "compare": {"sentences": 400, "probe_task": "sentiment"},
    "outputs": {"figures": True, "report": True},
}

#: ``probekit demo --quick``: the same stages on less data (under 3 minutes).
QUICK_OVERRIDES: dict[str, Any] = {
    "data": {"sentences": 300},
    "probes": {"tasks": ["sentiment", "sentlen", "upos"], "seeds": [0], "n_boot": 100},
    "finetune": {"train_size": 320, "eval_size": 128, "lr": 2e-4, "epochs": 2.0},  # 1 epoch stays at chance
    "variants": {"prune_heads": {"importance_sentences": 32}, "distill": {"train_size": 128},
                 "latency_repeats": 5},
    "attribution": {"n_steps": 16},
    "compare": {"sentences": 120},
}

#: ``probekit demo --full``: all the data (slow on a CPU).
FULL_OVERRIDES: dict[str, Any] = {
    "data": {"sentences": None},
    "probes": {"seeds": [0, 1, 2], "n_boot": 1000},
    "finetune": {"train_size": None, "eval_size": None, "epochs": 3.0},
    "variants": {"distill": {"train_size": None, "epochs": 3.0}},
    "compare": {"sentences": 2000},
}


def merge(base: dict, over: dict) -> dict:
    """A deep copy of ``base`` with ``over`` merged in (mappings recursively, other values replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------- validation
def _where(lines: dict, path: str) -> str:
    line = lines.get(path)
    return f" (line {line})" if line else ""


def _tname(types: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _is(value, types: tuple) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _check_section(cfg: dict, schema: dict, prefix: str, lines: dict, errors: list[str]) -> None:
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(schema)}"
            errors.append(f"unknown key {path!r}{_where(lines, path)}{hint}")
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            if value is None and path in OPTIONAL:
                continue
            if not isinstance(value, dict):
                errors.append(f"{path!r}{_where(lines, path)} must be a mapping, not {type(value).__name__}")
                continue
            _check_section(value, spec, path + ".", lines, errors)
            continue
        if not _is(value, spec.types):
            errors.append(f"{path!r}{_where(lines, path)} must be {_tname(spec.types)}, not {value!r}")
            continue
        bad = spec.problem(value)
        if bad is not None:
            errors.append(f"{path!r}{_where(lines, path)} {bad}")
        if spec.choices is not None and value is not None and value not in spec.choices:
            close = difflib.get_close_matches(str(value), spec.choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(f"{path!r}{_where(lines, path)} must be one of {', '.join(spec.choices)}, "
                          f"not {value!r}{hint}")
        if isinstance(value, list) and spec.item is not None:
            item_accepts = spec.item_accepts()
            for i, v in enumerate(value):
                ipath = f"{path}[{i}]"
                where = _where(lines, ipath) or _where(lines, path)
                if not _is(v, spec.item):
                    errors.append(f"{ipath!r}{where} must be {_tname(spec.item)}, not {v!r}")
                elif item_accepts is not None and explain(v, list(item_accepts)) is not None:
                    errors.append(f"{ipath!r}{where} {explain(v, list(item_accepts))}")
                elif spec.item_choices is not None and v not in spec.item_choices:
                    close = difflib.get_close_matches(str(v), spec.item_choices, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    errors.append(f"{ipath!r}{where} must be one of {', '.join(spec.item_choices)}, not {v!r}{hint}")


def check_run_name(name: str) -> str | None:
    """Why ``name`` cannot name a run folder under ``runs/`` (``None`` when it can).

    The name becomes ``runs/<name>``: a path separator, ``..`` or an absolute
    path would put the run somewhere else.

    Examples
    --------
    >>> check_run_name("demo") is None
    True
    >>> print(check_run_name("../../x"))
    must be a plain folder name (no path separator, not '.' or '..', no leading '.'), not '../../x'
    """
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not name.strip() or name != name.strip() or any(c in name for c in seps) or name.startswith(".") \
            or "\0" in name:
        return f"must be a plain folder name (no path separator, not '.' or '..', no leading '.'), not {name!r}"
    return None


def _check_semantics(cfg: dict, lines: dict, errors: list[str], base_dir: Path) -> None:
    name = cfg.get("name")
    if isinstance(name, str) and check_run_name(name) is not None:
        errors.append(f"'name'{_where(lines, 'name')} {check_run_name(name)}")
    heads = (cfg.get("variants") or {}).get("prune_heads") if isinstance(cfg.get("variants"), dict) else None
    if isinstance(heads, dict):
        try:  # what the variants stage will build: cross-field checks ("nothing to prune") fail here, not there
            HeadPruneRecipe(**{k: heads[k] for k in ("fraction", "importance", "recover_epochs") if k in heads})
        except ValueError as exc:
            errors.append(f"'variants.prune_heads'{_where(lines, 'variants.prune_heads')}: {exc}")
    data = cfg.get("data") or {}
    source = data.get("source", "rt")
    path = data.get("path")
    if source == "ud":
        if path is None:
            try:
                default_ud_path()
            except FileNotFoundError as exc:
                errors.append(f"'data.path'{_where(lines, 'data')} is not given with source 'ud': {exc}")
        elif not (base_dir / os.path.expanduser(path)).exists():
            errors.append(f"'data.path'{_where(lines, 'data.path')}: no such file or folder: {path}")
    probes = cfg.get("probes")
    if isinstance(probes, dict):
        for i, t in enumerate(probes.get("tasks") or []):
            if not isinstance(t, str):
                continue
            _check_task(t, f"probes.tasks[{i}]", source, lines, errors, parent="probes.tasks")
        if isinstance(probes.get("seeds"), list) and not probes["seeds"]:
            errors.append(f"'probes.seeds'{_where(lines, 'probes.seeds')} is empty")
    _check_sites(cfg, lines, errors)
    comp = cfg.get("compare")
    if isinstance(comp, dict) and isinstance(comp.get("probe_task"), str):
        _check_task(comp["probe_task"], "compare.probe_task", source, lines, errors)
    for sec in ("erase", "amnesic"):
        if isinstance(cfg.get(sec), dict) and isinstance(cfg[sec].get("task"), str):
            _check_task(cfg[sec]["task"], f"{sec}.task", source, lines, errors)
    if isinstance(cfg.get("amnesic"), dict) and cfg["amnesic"].get("behaviour") == "classifier" \
            and cfg.get("finetune") is None:
        errors.append(f"'amnesic.behaviour'{_where(lines, 'amnesic.behaviour')} is 'classifier', which needs a "
                      "'finetune' section (the classifier it measures)")
    check_interventions_section(cfg, lines, errors, base_dir)
    att = cfg.get("attention")
    n = data.get("sentences")
    if isinstance(att, dict) and isinstance(att.get("example"), int) and isinstance(n, int) and att["example"] >= n:
        errors.append(f"'attention.example'{_where(lines, 'attention.example')} is {att['example']}, but "
                      f"data.sentences keeps only sentences 0-{n - 1}")
    model = cfg.get("model")
    if isinstance(model, dict):
        unknown = set(model) - {"name", "config", "seed", "path"}
        for k in sorted(unknown):
            close = difflib.get_close_matches(k, ["name", "config", "seed", "path"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(f"unknown key 'model.{k}'{_where(lines, 'model.' + k)}{hint}")
        if ("config" in model) == ("path" in model):
            errors.append(f"'model'{_where(lines, 'model')} needs exactly one of 'config' (a transformers config "
                          "mapping with model_type) or 'path' (a model folder)")
        if isinstance(model.get("config"), dict) and "model_type" not in model["config"]:
            errors.append(f"'model.config'{_where(lines, 'model.config')} needs a 'model_type' (e.g. bert)")
        if "path" in model and not (base_dir / os.path.expanduser(str(model["path"]))).exists():
            errors.append(f"'model.path'{_where(lines, 'model.path')}: no such folder: {model['path']}")
    elif isinstance(model, str) and (model.startswith((".", "/", "~")) or os.sep in model):
        if model not in ALIASES and not (base_dir / os.path.expanduser(model)).exists():
            errors.append(f"'model'{_where(lines, 'model')}: no such model folder: {model}")
    for sec in ("attribution", "compare", "variants"):
        if cfg.get(sec) is not None and cfg.get("finetune") is None:
            errors.append(f"'{sec}'{_where(lines, sec)} needs a 'finetune' section (it works on the fine-tuned "
                          "classifier)")
    if cfg.get("attention") is not None and not (cfg.get("extract") or {}).get("attention", True):
        errors.append(f"'attention'{_where(lines, 'attention')} needs extract.attention: true")
    if cfg.get("attention") is not None and cfg.get("extract") is None:
        errors.append(f"'attention'{_where(lines, 'attention')} needs an 'extract' section (it reads its store)")


def _check_task(t: str, p: str, source, lines, errors: list[str], parent: str | None = None) -> None:
    """A task name at config path ``p``: known, and built from the config's data source."""
    if t not in TASKS:
        close = difflib.get_close_matches(t, list(TASKS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known tasks: {', '.join(sorted(TASKS))}"
        where = _where(lines, p) or (_where(lines, parent) if parent else "")
        errors.append(f"unknown task {t!r} at {p!r}{where}{hint}")
    elif source not in TASKS[t].sources:
        errors.append(f"task {t!r} at {p!r}{_where(lines, p)} is not built from source {source!r} "
                      f"(it needs {' or '.join(TASKS[t].sources)})")


def _check_sites(cfg: dict, lines: dict, errors: list[str]) -> None:
    """``extract.sites``: 'resid', 'all', or site names; ``erase.site`` and ``amnesic.sites``: site names (all
    checked against the model when it is loaded)."""
    ext = cfg.get("extract")
    sites = ext.get("sites") if isinstance(ext, dict) else None
    if sites is None:
        return
    items = [s.strip() for s in sites.split(",")] if isinstance(sites, str) else list(sites)
    for i, s in enumerate(items):
        if not isinstance(s, str) or s in ("resid", "all"):
            continue
        try:
            Site.parse(s)
        except (ValueError, TypeError) as exc:
            p = f"extract.sites[{i}]" if isinstance(sites, list) else "extract.sites"
            errors.append(f"{p!r}{_where(lines, p) or _where(lines, 'extract.sites')}: {exc}")
    # the sites an eraser is fitted at: names in the same grammar (checked against the model when it is loaded)
    named = []
    if isinstance(cfg.get("erase"), dict) and isinstance(cfg["erase"].get("site"), str):
        named.append(("erase.site", cfg["erase"]["site"]))
    if isinstance(cfg.get("amnesic"), dict) and isinstance(cfg["amnesic"].get("sites"), list):
        named += [(f"amnesic.sites[{i}]", s) for i, s in enumerate(cfg["amnesic"]["sites"]) if isinstance(s, str)]
    for p, s in named:
        try:
            Site.parse(s)
        except (ValueError, TypeError) as exc:
            errors.append(f"{p!r}{_where(lines, p) or _where(lines, p.split('[')[0])}: {exc}")


def validate(cfg: Any, lines: dict | None = None, *, base_dir: str | os.PathLike = ".") -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (key paths, and lines when known)."""
    lines = lines or {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"an experiment config is a mapping of sections, not {type(cfg).__name__}")
    errors: list[str] = []
    _check_section(cfg, SCHEMA, "", lines, errors)
    if not errors:
        _check_semantics(cfg, lines, errors, Path(base_dir))
    if errors:
        raise ConfigError("invalid experiment config:\n  " + "\n  ".join(errors))


def _fill(cfg: dict, schema: dict, prefix: str = "") -> dict:
    out = {}
    for key, spec in schema.items():
        path = prefix + key
        if isinstance(spec, dict):
            if key in cfg and cfg[key] is None:
                out[key] = None
            elif key not in cfg and path in OPTIONAL:
                out[key] = None
            else:
                out[key] = _fill(cfg.get(key) or {}, spec, path + ".")
        else:
            out[key] = copy.deepcopy(cfg.get(key, spec.default))
    return out


def resolve(cfg: dict, *, base_dir: str | os.PathLike = ".", lines: dict | None = None) -> dict:
    """Validate ``cfg`` and fill in every default: the resolved config a run records."""
    validate(cfg, lines, base_dir=base_dir)
    out = _fill(cfg, SCHEMA)
    data = out.get("data")
    if isinstance(data, dict) and data.get("source") == "ud" and data.get("path") is None:
        data["path"] = str(default_ud_path())  # the folder in use is part of the record and of every stage key
    return out


# ---------------------------------------------------------------- YAML
def _lines(node, prefix: str = "", out: dict | None = None, dups: list | None = None) -> dict:
    """Key path -> 1-based line of every mapping key and list item of a composed YAML node.

    A key given twice in one mapping is appended to ``dups`` as ``(path, first line, second line)``
    (YAML loaders keep the last value silently).
    """
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for k, v in node.value:
            path = f"{prefix}{k.value}"
            line = k.start_mark.line + 1
            if k.value in seen and dups is not None:
                dups.append((path, seen[k.value], line))
            seen.setdefault(k.value, line)
            out[path] = line
            _lines(v, path + ".", out, dups)
    elif isinstance(node, yaml.SequenceNode):
        base = prefix[:-1]
        for i, v in enumerate(node.value):
            out[f"{base}[{i}]"] = v.start_mark.line + 1
            _lines(v, f"{base}[{i}].", out, dups)
    return out


def load_config(path: str | os.PathLike) -> dict:
    """Read, validate and resolve an experiment YAML file.

    Relative paths in it (``data.path``, ``model`` folders) are taken
    relative to the current directory, as on the command line.

    Raises
    ------
    ConfigError
        Naming the bad key and its line.
    FileNotFoundError
        The file does not exist.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no experiment config at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if cfg is None:
        raise ConfigError(f"{path} is empty")
    dups: list = []
    lines = _lines(node, dups=dups)
    if dups:
        raise ConfigError(f"{path}: " + "; ".join(f"key {p!r} is given twice, at lines {a} and {b} (YAML would keep "
                                                   f"the second silently); keep one" for p, a, b in dups))
    try:
        return resolve(cfg, lines=lines)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
