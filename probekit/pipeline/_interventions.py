"""Interventions in an experiment: the ``interventions:`` section, and the ``erase`` and ``amnesic`` stages.

``interventions:`` lists interventions in the text forms of
:func:`probekit.interventions.from_spec` (``ablate:SITE``,
``heads:BLOCK:H1,H2``, ``erase:DIR``) or as descriptions
(:func:`probekit.interventions.from_dict`); they act on every forward pass of
the experiment's model in the ``extract`` and ``task_stores`` stages (not on
the random-weights copy), and enter the stores' fingerprints.

:func:`fit_eraser` and :func:`amnesic_analysis` are the bodies of the
``erase`` / ``amnesic`` stages and of the ``probekit erase`` /
``probekit amnesic`` commands.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from probekit.data import build_task
from probekit.interventions import (
    ClassifierBehaviour,
    InlpEraser,
    LeaceEraser,
    NextTokenBehaviour,
    amnesic_probe,
    from_spec,
)
from probekit.model import as_hooked_model
from probekit.pipeline._common import fresh_store, load_base, model_spec, outputs
from probekit.pipeline._model_tables import amnesic_outputs
from probekit.probes import LinearProbe, extract_task, task_inputs
from probekit.results import Results
from probekit.variants import is_variant_folder, load_model, load_variant

logger = logging.getLogger(__name__)

__all__ = ["config_interventions", "check_interventions_section", "fit_eraser", "amnesic_analysis", "stage_erase",
           "stage_amnesic"]


def config_interventions(cfg: dict) -> list:
    """The interventions of the config's ``interventions:`` section (an empty list without one); eraser folders
    are read as the model folder is, relative to where the run starts."""
    return [from_spec(entry) for entry in cfg.get("interventions") or []]


def _eraser_folder(entry) -> str | None:
    """The folder an ``interventions`` entry reads an eraser from (None: not an eraser)."""
    if isinstance(entry, str) and entry.startswith(("erase:", "erase-other-model:")):
        return entry.partition(":")[2]
    if isinstance(entry, dict) and "eraser" in entry:
        return str(entry["eraser"])
    return None


def eraser_fingerprints(cfg: dict) -> dict[str, str | None]:
    """The fingerprint of each eraser the ``interventions`` section reads, by the entry's index.

    The section names erasers by folder; the stage keys hash these too, so that an eraser fitted again into the
    same folder re-runs the stages it acts in. None where the folder holds no readable eraser (the stage then
    stops, naming it).
    """
    out: dict[str, str | None] = {}
    for i, entry in enumerate(cfg.get("interventions") or []):
        if _eraser_folder(entry) is None:
            continue
        try:
            out[str(i)] = from_spec(entry).fingerprint()
        except (OSError, ValueError, TypeError, LookupError):
            out[str(i)] = None
    return out


def check_interventions_section(cfg: dict, lines: dict, errors: list[str], base_dir: Path) -> None:
    """Each ``interventions`` entry parses (and an eraser folder holds an eraser), with its line."""
    for i, entry in enumerate(cfg.get("interventions") or []):
        p = f"interventions[{i}]"
        where = f" (line {lines[p]})" if p in lines else (f" (line {lines['interventions']})"
                                                            if "interventions" in lines else "")
        folder = _eraser_folder(entry)
        if folder is not None:
            if not (base_dir / os.path.expanduser(folder) / "eraser.json").is_file():
                errors.append(f"{p!r}{where}: no eraser saved in {folder} (write one with 'probekit erase' or "
                              "Eraser.save)")
            continue
        try:
            from_spec(entry)
        except (ValueError, TypeError, LookupError) as exc:
            errors.append(f"{p!r}{where}: {exc}")


def fit_eraser(model, task, site: str, method: str, store_dir: str | os.PathLike, *, seed: int = 0,
               progress: bool = False, overwrite: bool = False):
    """Fit a LEACE or INLP eraser of ``task`` at ``site`` on the task's training rows.

    Returns ``(eraser, info)``: ``info`` holds the site, method, rank, width and a linear probe's test accuracy
    before and after erasure.
    """
    site = str(as_hooked_model(model).site(site))
    store = extract_task(model, task, store_dir, [site], progress=progress, overwrite=overwrite)
    eraser = (LeaceEraser(site) if method == "leace" else InlpEraser(site, random_state=seed)).fit(store, task)
    inp = task_inputs(store, task, [site])
    X, y, tr, te = inp.X[0], inp.y, inp.train, inp.test
    before = LinearProbe(random_state=seed).fit(X[tr], y[tr]).score(X[te], y[te])
    after = LinearProbe(random_state=seed).fit(eraser(X[tr]), y[tr]).score(eraser(X[te]), y[te])
    info = {"task": task.name, "site": site, "method": method, "rank": int(eraser.rank_), "d": int(eraser.d_),
            "split": inp.test_split, "accuracy_before": float(before), "accuracy_after": float(after),
            "fingerprint": eraser.fingerprint()}
    return eraser, info


def _class_indices(labels: list, names) -> list[int]:
    """The classifier's class index of each sentence label: the integer itself for integer labels, else the
    label's place among the task's classes (sentiment: ``neg`` 0, ``pos`` 1, as the corpus numbers them)."""
    try:
        return [int(str(v)) for v in labels]
    except ValueError:
        order = list(names)
        return [order.index(str(v)) for v in labels]


def amnesic_analysis(model, task, store_dir: str | os.PathLike, *, sites=None, behaviour: str = "lm",
                     method: str = "leace", held_out: int = 200, n_random: int = 1, seed: int = 0,
                     n_boot: int = 1000, progress: bool = False, overwrite: bool = False
                     ) -> tuple[Results, object, int]:
    """Amnesic probing of ``task``: the behaviour on the task's first ``held_out`` test sentences, the task store
    at ``sites`` (default every residual site), :func:`probekit.interventions.amnesic_probe`.

    Returns ``(results, store, number of held-out sentences)``.

    Raises
    ------
    ValueError
        No test split, a classifier behaviour without a sequence classifier or a sentence-level task, or more
        classes than the classifier has.
    """
    hooked = as_hooked_model(model)
    if behaviour == "classifier" and not type(hooked.model).__name__.endswith("ForSequenceClassification"):
        raise ValueError(f"{hooked.name} is not a sequence classifier; the classifier behaviour needs one (e.g. a "
                         "folder written by 'probekit finetune')")
    test = [i for i, s in enumerate(task.dataset.splits) if s == "test"][:held_out]
    if not test:
        raise ValueError(f"task {task.name} has no test split to measure behaviour on")
    words = task.dataset.word_lists()
    texts = [" ".join(words[i]) for i in test]
    if behaviour == "lm":
        beh = NextTokenBehaviour(texts)
    else:
        if task.level != "sentence":
            raise ValueError("the classifier behaviour needs a sentence-level task (its labels are the "
                             "classifier's classes)")
        labels = _class_indices([task.dataset.labels[i] for i in test], task.label_names)
        n_out = int(getattr(hooked.config, "num_labels", 0) or 0)
        if n_out and max(labels) >= n_out:
            raise ValueError(f"task {task.name} has {len(task.label_names)} classes ({', '.join(task.label_names)}) "
                             f"but the classifier {hooked.name} has {n_out} outputs")
        beh = ClassifierBehaviour(texts, labels)
    store = extract_task(model, task, store_dir, sites, progress=progress, overwrite=overwrite)
    res = amnesic_probe(model, store, task, beh, method=method, n_random=n_random, seed=seed, n_boot=n_boot,
                        progress=progress)
    return res, store, len(texts)


def _task(cfg: dict, name: str):
    d = cfg["data"]
    return build_task(name, d["source"], path=d["path"], limit=d["sentences"], seed=cfg["seed"])


def stage_erase(ctx) -> dict:
    """Fit the configured eraser on the experiment's model (``models/erasers/<task>-<site>``, table ``erasure``)."""
    cfg, ec = ctx.cfg, ctx.cfg["erase"]
    model = load_base(ctx)
    task = _task(cfg, ec["task"])
    # fresh_store: the store an earlier config left in this folder is replaced, as every stage's own
    eraser, info = fresh_store(ctx, lambda ow: fit_eraser(
        model, task, ec["site"], ec["method"], ctx.path("stores", f"erase-{ec['task']}"), seed=cfg["seed"],
        progress=ctx.progress, overwrite=ow))
    rel = f"models/erasers/{ec['task']}-{info['site']}"
    eraser.save(ctx.path(rel), overwrite=True)
    out = outputs(ctx, [rel, f"stores/erase-{ec['task']}"])
    import pandas as pd

    out.table(pd.DataFrame([info]), "erasure")
    return {"outputs": out.written, "fingerprints": {"eraser": info["fingerprint"]}, "info": info}


def stage_amnesic(ctx) -> dict:
    """Amnesic probing of the configured task: on the language model's next-token behaviour, or on the fine-tuned
    classifier's predictions (``behaviour: classifier``)."""
    cfg, ac = ctx.cfg, ctx.cfg["amnesic"]
    if ac["behaviour"] == "classifier":
        model = ctx.cached("finetuned", lambda: load_variant(ctx.run_dir / "models" / "finetuned"))
    else:
        spec, name, seed = model_spec(cfg)
        head = None if is_variant_folder(spec) else "causal-lm"
        model = ctx.cached("causal-lm", lambda: load_model(spec, head=head, seed=seed, name=name))
    task = _task(cfg, ac["task"])
    res, store, n = fresh_store(ctx, lambda ow: amnesic_analysis(
        model, task, ctx.path("stores", f"amnesic-{ac['task']}"), sites=ac["sites"], behaviour=ac["behaviour"],
        method=ac["method"], held_out=ac["held_out"], n_random=ac["n_random"], seed=cfg["seed"],
        n_boot=ac["n_boot"], progress=ctx.progress, overwrite=ow))
    out = outputs(ctx, [f"stores/amnesic-{ac['task']}"])
    tables = amnesic_outputs(res, out)
    return {"outputs": out.written, "fingerprints": {f"amnesic-{ac['task']}": store.fingerprint},
            "info": {"held_out": n, "sites": tables["amnesic_summary"]["site"].tolist()}}
