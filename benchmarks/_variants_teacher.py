"""Trained models of the variant benchmark, cached by fingerprint so re-runs do not retrain.

Each trained model (the fine-tuned teacher, a recovered pruned model, the
student) is saved as a variant folder (safetensors + JSON) under
``CACHE/NAME-KEY``. ``KEY`` is the fingerprint (:func:`probekit.fingerprint.hash_json`)
of everything its weights depend on: what it was made from (the base weights
with their seeded classifier head, or the parent's key), the recipe, and the
training and validation rows. Same settings: loaded; any change: trained anew.
An interrupted run resumes from the checkpoints in ``CACHE/NAME-KEY.partial``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from probekit.fingerprint import hash_json, hash_json_lines
from probekit.variants import FinetuneRecipe, ModelVariant, finetune, load_variant

logger = logging.getLogger("benchmarks.variants")


def data_hash(df: pd.DataFrame) -> str:
    """Fingerprint of the ``text, label`` rows, in order."""
    return hash_json_lines([str(t), int(y)] for t, y in zip(df["text"], df["label"]))


def cached(name: str, key: dict, make: Callable[[Path], ModelVariant], cache: Path) -> tuple[ModelVariant, dict]:
    """Load ``CACHE/NAME-KEY`` or make it with ``make(partial_folder)`` and save it there.

    Returns the variant and ``{"key", "folder", "cached", "wall_s"}``; ``wall_s`` is the time the run that
    made the folder spent making it (kept in the variant's report).
    """
    k = hash_json({"name": name, **key})[:20]
    folder = Path(cache) / f"{name}-{k}"
    if (folder / "recipe.json").exists() and (folder / "layer_map.json").exists():
        v = load_variant(folder)
        logger.info("%s: loaded from cache %s", name, folder)
        return v, {"key": k, "folder": str(folder), "cached": True, "wall_s": v.report.get("wall_s"),
                   "train_runtime_s": v.report.get("train_runtime_s")}
    part = folder.with_name(folder.name + ".partial")
    t0 = time.time()
    v = make(part)
    v.report["wall_s"] = time.time() - t0
    v.save(part)
    shutil.rmtree(part / "checkpoints", ignore_errors=True)
    part.rename(folder)
    logger.info("%s: made in %.0f s, cached at %s", name, v.report["wall_s"], folder)
    return v, {"key": k, "folder": str(folder), "cached": False, "wall_s": v.report["wall_s"],
               "train_runtime_s": v.report.get("train_runtime_s")}


def cached_finetune(name: str, base, data: pd.DataFrame, recipe: FinetuneRecipe, *, eval_data: pd.DataFrame,
                    cache: Path) -> tuple[ModelVariant, dict]:
    """Fine-tune ``base`` (a loaded model) with ``recipe`` on ``data``, or load the cached result."""
    key = {"base": base.weights_hash(), "recipe": recipe.to_dict(), "train": data_hash(data),
           "eval": data_hash(eval_data)}

    def make(part: Path) -> ModelVariant:
        return finetune(base, data, recipe, eval_data=eval_data, out=part, resume=part.exists(), progress=False)

    return cached(name, key, make, cache)
