"""mkdocs hook: the benchmarks page is generated from ``benchmarks/results/*.json`` at every build.

``docs/benchmarks.md`` holds the marker ``<!-- benchmarks -->``; this hook replaces it with one section per
results file: what was measured and on which machine, a table with the baseline (the tool or naive method
probekit is measured against) in the first row, a bar chart of the same figures, and the benchmark's own
targets, met or missed, as it recorded them. A results file this hook does not know, or one that lacks a field
a known table reads, fails the build with a message naming the file and the field.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.benchmarks")

MARKER = "<!-- benchmarks -->"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

Row = tuple[str, str, float | None]  # (contender, figure as shown, value to plot or None)


class BenchmarkSchemaError(KeyError):
    """A results file lacks a field its table reads."""


def _get(d: dict, *path: str, file: str):
    cur = d
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            raise BenchmarkSchemaError(f"benchmarks/results/{file} has no field {'.'.join(path)!r}")
        cur = cur[key]
    return cur


def _fmt(x: float, digits: int = 3) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.{digits}g}"


# ---------------------------------------------------------------------------------------------- tables per file
def _extraction(d: dict, f: str):
    tps = _get(d, "tokens_per_s", file=f)
    rows = [("naive cache (`output_hidden_states` + `torch.save`)", tps["naive_cache"]),
            ("nnsight", tps["nnsight"]), ("bare forward (no caching)", tps["bare_forward"]),
            ("probekit.extract", tps["probekit_extract"]),
            ("probekit's own batches, nothing stored", tps["probekit_bare"])]
    return ("tokens per second (higher is better)", [(n, f"{_fmt(v)}", v) for n, v in rows])


def _fingerprint(d: dict, f: str):
    rows = []
    for r in _get(d, "rows", file=f):
        rows.append((f"{r['model']}: full SHA-256 of the weights", f"{_fmt(r['full_ms'])} ms", r["full_ms"]))
        rows.append((f"{r['model']}: probekit signature check", f"{_fmt(r['check_ms'])} ms ({_fmt(r['speedup'])}x)",
                     r["check_ms"]))
    return ("median milliseconds per call on an unchanged model (lower is better)", rows)


def _probes(d: dict, f: str):
    s = _get(d, "seconds", file=f)
    gap = _get(d, "max_accuracy_gap_points_vs_sklearn_default", file=f)
    rows = [("scikit-learn `LogisticRegression`, defaults", f"{_fmt(s['sklearn_default'])} s", s["sklearn_default"]),
            ("scikit-learn, run to convergence", f"{_fmt(s['sklearn'])} s", s["sklearn"]),
            ("probekit L-BFGS (`fit_batched`)", f"{_fmt(s['probekit'])} s (gap {gap['probekit']:.2f} points)",
             s["probekit"]),
            ("probekit Adam", f"{_fmt(s['probekit_adam'])} s (gap {gap['probekit_adam']:.2f} points)",
             s["probekit_adam"])]
    return ("seconds for UPOS probes at 7 layers, one thread (lower is better)", rows)


def _probe_suite(d: dict, f: str):
    rows = []
    for threads in ("1", "2"):
        r = _get(d, "table", "runs", threads, file=f)
        rows.append((f"scikit-learn defaults, {threads} thread(s)", f"{_fmt(r['sklearn_default_s'])} s",
                     r["sklearn_default_s"]))
        rows.append((f"probekit, {threads} thread(s)", f"{_fmt(r['probekit_s'])} s "
                     f"({_fmt(r['speedup_vs_sklearn_default'])}x, gap {r['max_accuracy_gap_points']:.2f} points)",
                     r["probekit_s"]))
    study = _get(d, "study_minilm-l6", file=f)
    rows.append(("the whole UD EWT study (probekit)",
                 f"{_fmt(study['wall_s'])} s, {study['peak_rss_gb']:.2f} GB peak RSS", None))
    return ("seconds for the whole layer-wise table, 84 probes (lower is better)", rows)


def _similarity(d: dict, f: str):
    rows = []
    for level in ("sentence", "token"):
        s = _get(d, "summary", level, file=f)
        rows.append((f"torch-cka, {level} vectors", f"{_fmt(s['torch_cka_s'])} s", s["torch_cka_s"]))
        rows.append((f"probekit end to end (both extractions), {level}",
                     f"{_fmt(s['probekit_end_to_end_s'])} s ({_fmt(s['speedup_vs_torch_cka'])}x)",
                     s["probekit_end_to_end_s"]))
        rows.append((f"probekit from stores, {level}", f"{_fmt(s['probekit_cka_from_stores_s'])} s "
                     f"({_fmt(s['speedup_vs_torch_cka_from_stores'])}x)", s["probekit_cka_from_stores_s"]))
    return ("seconds for a 7x7 linear-CKA matrix (lower is better)", rows)


def _erasure(d: dict, f: str):
    rows = []
    for site, s in _get(d, "sites", file=f).items():
        ce, pk = s["concept_erasure"], s["probekit"]
        rows.append((f"EleutherAI concept-erasure, {site}", f"{_fmt(ce['seconds'])} s, {_fmt(ce['peak_anon_mb'])} MB",
                     ce["seconds"]))
        rows.append((f"probekit LEACE streamed from the store, {site}",
                     f"{_fmt(pk['seconds'])} s, {_fmt(pk['peak_anon_mb'])} MB "
                     f"(max diff {_fmt(s['max_abs_diff_vs_concept_erasure'])})", pk["seconds"]))
    return ("seconds to fit LEACE on 204,577 words (lower is better); peak anonymous memory", rows)


def _startup(d: dict, f: str):
    res = _get(d, "results", file=f)
    rows = []
    for what in ("import probekit", "probekit --help"):
        rows.append((f"{what}, before (eager imports)", f"{_fmt(res['before'][what]['median_s'])} s",
                     res["before"][what]["median_s"]))
        rows.append((f"{what}, now", f"{_fmt(res['this'][what]['median_s'])} s", res["this"][what]["median_s"]))
    rows.append(("`import torch` alone, same rounds", f"{_fmt(res['this']['import torch']['median_s'])} s", None))
    return ("median seconds in a fresh interpreter (lower is better)", rows)


def _demo_stores(d: dict, f: str):
    runs = _get(d, "runs", file=f)
    rows = []
    for name in ("before", "now"):
        r = runs[name]
        rows.append((f"`probekit demo`, {name} ({r['revision']})",
                     f"{_fmt(r['wall_s'])} s, {r['stores_bytes'] / 1e9:.2f} GB of stores, "
                     f"{r['examples_run_base_model_tasks']:,} task sentences through the model", r["wall_s"]))
    return ("wall seconds of the whole demo (lower is better)", rows)


def _variants(d: dict, f: str):
    rows = []
    for name, v in _get(d, "variants", file=f).items():
        rows.append((name, f"accuracy {v['accuracy']:.3f}, throughput {v['throughput_ratio']:.2f}x the teacher",
                     v["throughput_ratio"]))
    return ("test accuracy and batch-32 throughput against the fine-tuned teacher, 1 thread (higher is better)", rows)


def _ratios(d: dict, f: str):
    """The benchmark's ``ratios`` (each one probekit's figure over its baseline's, or the reverse, as named);
    a file holding one record per device (``{"cpu": {...}, "gpu": {...}}``) gets the device before each name."""
    devices = {k: v for k, v in d.items() if k in ("cpu", "gpu") and isinstance(v, dict)}
    sources = [(f"{k}: ", _get(v, "ratios", file=f)) for k, v in devices.items()] if devices and "ratios" not in d \
        else [("", _get(d, "ratios", file=f))]
    rows = [(prefix + name.replace("_", " "), _fmt(float(v)), float(v)) for prefix, ratios in sources
            for name, v in ratios.items() if isinstance(v, (int, float))]
    return ("ratio (each named as the benchmark records it; its target below)", rows)


TABLES: dict[str, tuple[str, Callable]] = {
    "extraction.json": ("Extraction: caching activations to disk", _extraction),
    "fingerprint.json": ("Weights fingerprint: noticing an edit without re-hashing", _fingerprint),
    "probes.json": ("Probes: one task, one seed, against scikit-learn", _probes),
    "probe_suite.json": ("Probe suite: the whole UD EWT layer-wise table", _probe_suite),
    "similarity.json": ("Similarity: CKA of a model and its int8 copy, against torch-cka", _similarity),
    "similarity_magnitude50.json": ("Similarity: a float32 pair (50% magnitude-pruned)", _similarity),
    "erasure.json": ("Erasure: LEACE against EleutherAI's concept-erasure", _erasure),
    "startup.json": ("Start-up: import and --help", _startup),
    "demo_stores.json": ("Extract once: the demo's forward passes and disk", _demo_stores),
    "variants.json": ("Variants: fine-tune, prune, quantize, distil", _variants),
    "remote_store.json": ("Remote stores: object storage against local disk", _ratios),
    "decoder_extraction.json": ("Decoder extraction: SmolLM2-135M, all residual sites", _ratios),
    "probe_study_e2e.json": ("A whole probe study against its forward passes", _ratios),
}


# ----------------------------------------------------------------------------------------------- rendering
def _met(ok) -> str:
    return "met" if ok is True else "**missed**"


def _targets(d: dict) -> list[tuple[str, str]]:
    """Every ``targets`` mapping anywhere in the file, as (target, met / missed)."""
    out: list[tuple[str, str]] = []

    def walk(x, prefix: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "targets" and isinstance(v, dict):
                    for name, t in v.items():
                        if isinstance(t, dict) and "met" in t:  # {"target": "...", "met": bool}
                            out.append((f"{prefix}{name}: {t.get('target', '')}", _met(t["met"])))
                        elif isinstance(t, dict):  # one verdict per level: {"sentence": bool, "token": bool}
                            out.extend((f"{prefix}{name} ({level})", _met(ok)) for level, ok in t.items())
                        else:
                            out.append((f"{prefix}{name}", _met(t)))
                elif isinstance(v, dict) and k not in ("machine", "setup"):
                    walk(v, f"{prefix}{k} / " if k.startswith("study") else prefix)

    walk(d, "")
    return out


def _machine(d: dict) -> str:
    m = d.get("machine")
    if m is None:
        for v in d.values():
            if isinstance(v, dict) and isinstance(v.get("machine"), dict):
                m = v["machine"]
                break
    if not m:
        return "machine not recorded"
    load = m.get("load_average")
    load_s = f", load average {load[0]:.1f}" if isinstance(load, list) and load else ""
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('torch_threads', '?')} torch threads, "
            f"torch {m.get('torch', '?')}, transformers {m.get('transformers', '?')}{load_s}")


def _bar_chart(rows: list[Row], label: str) -> str:
    """A horizontal bar chart of the plotted rows as an inline PNG (baseline on top, in grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(n.replace("`", ""), v) for n, _, v in rows if v is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(pts) + 0.9))
    names = [p[0] for p in pts][::-1]
    vals = [p[1] for p in pts][::-1]
    colours = ["#1f77b4"] * (len(pts) - 1) + ["#9a9a9a"]
    ax.barh(range(len(pts)), vals, color=colours)
    ax.set_yticks(range(len(pts)), names, fontsize=8)
    ax.set_xlabel(label, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render(results: Path = RESULTS) -> str:
    """The markdown of every benchmark section, in file-name order."""
    # smoke runs (``--quick``) write ``*.quick.json`` beside the results; they are not the benchmarks' figures
    files = sorted(p for p in results.glob("*.json") if not p.name.endswith(".quick.json"))
    if not files:
        raise FileNotFoundError(f"no benchmark results under {results}")
    parts = []
    for path in files:
        if path.name not in TABLES:
            raise BenchmarkSchemaError(f"benchmarks/results/{path.name} has no table in docs/hooks/benchmarks.py; "
                                       f"add one to TABLES")
        d = json.loads(path.read_text())
        title, table = TABLES[path.name]
        label, rows = table(d, path.name)
        script = path.name.split("_magnitude")[0].removesuffix(".json") + ".py"
        parts.append(f"## {title}\n\n`benchmarks/{script}` → `benchmarks/results/{path.name}`. "
                     f"Machine: {_machine(d)}.\n")
        parts.append(f"| contender | {label} |\n|---|---|")
        parts += [f"| {name} | {shown} |" for name, shown, _ in rows]
        if sum(v is not None for _, _, v in rows) >= 2:
            png = _bar_chart(rows, label)
            parts.append(f"\n![{title}](data:image/png;base64,{png})\n")
        targets = _targets(d)
        if targets:
            parts.append("| target | result |\n|---|---|")
            parts += [f"| {t} | {r} |" for t, r in targets]
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001  (mkdocs hook signature)
    if MARKER not in markdown:
        return markdown
    log.info("benchmarks page generated from %s", RESULTS)
    return markdown.replace(MARKER, render())
