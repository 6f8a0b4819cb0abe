"""Helpers shared by the stages: the model spec, the sentences, figures and tables."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from probekit.data import load_sentences
from probekit.labels import canonical_label
from probekit.runfolder import Outputs
from probekit.store import FingerprintMismatchError
from probekit.variants import load_model

logger = logging.getLogger(__name__)

#: A tiny experiment for examples and quick checks: a 2-layer BERT built from its config, probed for sentiment on
#: 60 Rotten Tomatoes sentences, no figures and no report (seconds on a CPU).
TINY_CONFIG: dict = {
    "name": "tiny", "data": {"source": "rt", "sentences": 60},
    "model": {"name": "tiny-bert", "config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                                              "num_attention_heads": 4, "intermediate_size": 37}},
    "probes": {"tasks": ["sentiment"], "n_boot": 50, "random_init": False},
    "outputs": {"figures": False, "report": False},
}


def model_spec(cfg: dict):
    """``(spec for load_model, name, seed)`` of the config's ``model``."""
    m = cfg["model"]
    if isinstance(m, str):
        return m, m if "/" not in m else Path(m).name, 0
    seed = int(m.get("seed", 0))
    if "path" in m:
        return m["path"], m.get("name") or Path(m["path"]).name, seed
    import transformers

    conf = dict(m["config"])
    config = transformers.AutoConfig.for_model(conf.pop("model_type"), **conf)
    return config, m.get("name") or config.model_type, seed


def load_base(ctx):
    """The experiment's model (loaded once per run)."""
    def make():
        spec, name, seed = model_spec(ctx.cfg)
        return load_model(spec, seed=seed, name=name)

    return ctx.cached("model", make)


def sentences_frame(cfg: dict, limit: int | None) -> pd.DataFrame:
    """The experiment's sentences as pre-split words (``id, words, split`` and ``label`` for RT)."""
    d = cfg["data"]
    sents, splits = load_sentences(d["source"], path=d["path"], limit=limit, seed=cfg["seed"])
    df = pd.DataFrame({"id": range(len(sents)), "words": [list(s.words) for s in sents], "split": splits})
    labels = [getattr(s, "extra", {}).get("label") if isinstance(getattr(s, "extra", None), dict) else None
              for s in sents]
    if any(v is not None for v in labels):
        df["label"] = [v if v is None else canonical_label(v) for v in labels]  # a missing one is refused by extract
    return df


def outputs(ctx, written: list[str] | None = None) -> Outputs:
    """The run folder's writer, figures as the config says; what it writes is appended to ``written``."""
    return Outputs(ctx.run_dir, figures=ctx.cfg["outputs"]["figures"], written=written)


def fresh_store(ctx, make):
    """``make(overwrite)`` -> store: reuse (or resume) a store of the same inputs, replace one of other inputs.

    A stage runs only when its inputs changed (or with ``--force``), so a store
    left by an earlier config in the same folder is stale and is replaced.
    """
    try:
        return make(ctx.force)
    except FingerprintMismatchError as exc:
        logger.info("replacing a store made from other inputs: %s", str(exc)[:200])
        return make(True)
