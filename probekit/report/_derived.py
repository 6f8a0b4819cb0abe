"""Tables the report derives from a run's tidy tables (summaries by layer; the layer axis of results tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["probe_summary", "expected_layers", "head_summary", "layer_means"]


def probe_summary(probes: pd.DataFrame) -> pd.DataFrame:
    """Wide per-layer summary of tidy :class:`~probekit.probes.ProbeSuite` rows.

    Columns: ``model, variant, task, probe, layer, site, accuracy, ci_low, ci_high``
    (``site`` the probed site beside its layer, where the rows name it; the
    mean over seeds of the per-seed accuracy and of its bootstrap interval),
    ``control`` (the control task's accuracy), ``selectivity``, ``majority``
    and ``random_init`` (the ``random-init`` variant's accuracy at the same
    layer) where those rows exist.

    Examples
    --------
    >>> rows = pd.DataFrame({"model": "m", "variant": None, "task": ["t", "t", "t.control", "t"],
    ...                      "layer": [1, 1, 1, np.nan], "probe": ["linear"] * 3 + ["majority"],
    ...                      "seed": [0, 1, 0, np.nan], "metric": "accuracy", "value": [0.8, 0.9, 0.5, 0.5],
    ...                      "ci_low": [0.7, 0.8, 0.4, np.nan], "ci_high": [0.9, 1.0, 0.6, np.nan]})
    >>> probe_summary(rows)[["task", "layer", "accuracy", "control", "majority"]].round(2).values.tolist()
    [['t', 1, 0.85, 0.5, 0.5]]
    """
    need = {"task", "layer", "probe", "metric", "value"}
    if not need <= set(probes.columns):
        raise ValueError(f"tables/probes.csv lacks columns {sorted(need - set(probes.columns))} of a tidy "
                         "ProbeSuite table")
    df = probes.copy()
    for c in ("model", "variant", "ci_low", "ci_high"):
        if c not in df.columns:
            df[c] = np.nan
    df["variant"] = df["variant"].fillna("")
    df["model"] = df["model"].fillna("")
    df["task"] = df["task"].astype(str)
    is_ctrl = df["task"].str.endswith(".control")
    df["base_task"] = df["task"].str.replace(r"\.control$", "", regex=True)
    acc = df[(df["metric"] == "accuracy") & df["layer"].notna() & (df["probe"] != "majority")]
    keys = ["model", "variant", "base_task", "probe", "layer"]
    main = acc[~is_ctrl.loc[acc.index]].groupby(keys)[["value", "ci_low", "ci_high"]].mean()
    if main.empty:
        return pd.DataFrame(columns=["task", "probe", "layer", "accuracy", "ci_low", "ci_high"])
    out = main.rename(columns={"value": "accuracy"})
    ctrl = acc[is_ctrl.loc[acc.index]].groupby(keys)["value"].mean()
    if not ctrl.empty:
        out["control"] = ctrl
    sel = df[df["metric"] == "selectivity_mean"].groupby(keys)["value"].mean()
    if sel.empty:
        sel = df[df["metric"] == "selectivity"].groupby(keys)["value"].mean()
    if not sel.empty:
        out["selectivity"] = sel
    out = out.reset_index()
    maj = df[(df["probe"] == "majority") & (df["metric"] == "accuracy") & ~is_ctrl]
    if not maj.empty:
        m = maj.groupby(["model", "variant", "base_task"])["value"].mean().rename("majority").reset_index()
        out = out.merge(m, on=["model", "variant", "base_task"], how="left")
    rand = out[out["variant"] == "random-init"]
    if not rand.empty:
        r = rand[["model", "base_task", "probe", "layer", "accuracy"]].rename(columns={"accuracy": "random_init"})
        out = out[out["variant"] != "random-init"].merge(r, on=["model", "base_task", "probe", "layer"], how="left")
    if "site" in acc.columns and acc["site"].notna().any():
        site = acc.groupby(["model", "variant", "base_task", "probe", "layer"])["site"].first().rename("site")
        out = out.merge(site.reset_index(), on=["model", "variant", "base_task", "probe", "layer"], how="left")
        out.insert(list(out.columns).index("layer") + 1, "site", out.pop("site"))
    out = out.rename(columns={"base_task": "task"})
    out["layer"] = out["layer"].astype(int)
    if (out["variant"] == "").all():
        out = out.drop(columns="variant")
    if out["model"].nunique() <= 1:
        out = out.drop(columns="model")
    return out.sort_values([c for c in ("model", "variant", "task", "probe", "layer") if c in out.columns],
                           ignore_index=True)


def expected_layers(probes: pd.DataFrame) -> pd.DataFrame:
    """``task, probe, expected_layer, center_of_gravity`` from the suite's tidy rows (empty if none)."""
    df = probes[probes["metric"].isin(["expected_layer", "center_of_gravity"])]
    if df.empty:
        return pd.DataFrame()
    keys = [c for c in ("model", "variant", "task", "probe") if c in df.columns and df[c].notna().any()]
    # pivot_table drops rows whose keys are missing: the real model's variant is empty, not absent
    df = df.assign(**{k: df[k].fillna("") for k in keys})
    return df.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean").reset_index()


def head_summary(heads: pd.DataFrame) -> pd.DataFrame:
    """Per-layer mean over heads of every head statistic (``layer`` x ``metric``) of a tidy table."""
    need = {"layer", "metric", "value"}
    if not need <= set(heads.columns):
        raise ValueError(f"the head statistics table lacks columns {sorted(need - set(heads.columns))}")
    keys = [c for c in ("variant",) if c in heads.columns and heads[c].notna().any()] + ["layer"]
    wide = heads.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    wide["layer"] = wide["layer"].astype(int)
    return wide


def layer_means(df: pd.DataFrame, measure_col: str) -> pd.DataFrame:
    """Per (variant and) layer, the mean of ``value`` for each value of ``measure_col``, one column each."""
    keys = [c for c in ("variant",) if c in df.columns and df[c].notna().any()] + ["layer"]
    wide = df.pivot_table(index=keys, columns=measure_col, values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    wide["layer"] = wide["layer"].astype(int)
    return wide
