"""Cost of a truthful weights fingerprint: the check of an unchanged model against a full re-hash.

``probekit.fingerprint.weights_hash`` remembers a model's SHA-256 with a cheap state signature (names,
tensor identity, storage address, version counters, 64 sampled elements per tensor, the identity of
quantized packed state) and re-hashes only when the signature changes. This measures, per model:

- ``full_ms`` / ``full_best_ms``: a full SHA-256 over every parameter and buffer (``refresh=True``;
  what a first call or a call after an edit costs);
- ``check_ms`` / ``check_best_ms``: a call on an unchanged model (the signature check that replaced
  re-hashing);
- ``edit_detected``: that an in-place edit through ``.data`` (which bypasses the version counters) is
  still noticed by the check.

``probekit.extract`` hashes every byte of the weights at each call (a one-element ``.data`` edit can
escape the sampled check), so the second table puts that full hash next to the work it guards: a small
extraction of MiniLM-L6 (``--sentences`` Rotten Tomatoes sentences, every residual site, float16,
timed end to end including the hash) and reports the hash's share of it (``hash_share``). The hash
is the same for any extraction of the model; the extraction grows with the data, so a larger one
only lowers the share.

Models: the real MiniLM-L6 (22.7M parameters), its dynamic int8 quantization, and randomly
initialised BERT-base and BERT-large shapes (110M and 335M parameters; the cost depends on the
bytes, not on the values). Medians over ``--repeats`` calls (full hash: ``max(3, repeats // 10)``)
and the best call (on a shared machine the least disturbed). Writes
``benchmarks/results/fingerprint.json`` and prints a table.

Usage: ``python benchmarks/fingerprint.py [--repeats 50] [--no-large] [--sentences 256] [--quick]``
(``--quick``: a smoke run at tiny sizes; its figures mean nothing)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from _machine import machine  # noqa: E402

import probekit  # noqa: E402
from probekit.fingerprint import weights_hash  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "fingerprint.json"


def _times_ms(fn, n: int) -> tuple[float, float]:
    """(median, best) of ``n`` calls, in ms: on a shared machine the best is the least disturbed."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def models(large: bool):
    """(name, module) pairs, built one at a time so only one large model is in memory."""
    minilm = probekit.load_model("minilm-l6").model
    yield "minilm-l6", minilm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(minilm, {torch.nn.Linear}, dtype=torch.qint8)
    yield "minilm-l6 dynamic int8", q
    del minilm, q
    shapes = [("bert-base shape (random)", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                intermediate_size=3072))]
    if large:
        shapes.append(("bert-large shape (random)", dict(hidden_size=1024, num_hidden_layers=24,
                                                         num_attention_heads=16, intermediate_size=4096)))
    for name, kw in shapes:
        torch.manual_seed(0)
        yield name, transformers.BertModel(transformers.BertConfig(**kw)).eval()


def _state(value) -> tuple[int, int]:
    """(elements, bytes) of a state-dict entry; packed quantized weights are tuples of tensors."""
    if isinstance(value, (tuple, list)):
        parts = [_state(v) for v in value]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)
    if isinstance(value, torch.Tensor):
        return value.numel(), value.numel() * value.element_size()
    return 0, 0


def measure(name: str, module, repeats: int) -> dict:
    sizes = [_state(v) for v in module.state_dict().values()]
    n_params, n_bytes = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
    h = weights_hash(module, refresh=True)
    full, full_best = _times_ms(lambda: weights_hash(module, refresh=True), max(3, repeats // 10))
    check, check_best = _times_ms(lambda: weights_hash(module), repeats)
    assert weights_hash(module) == h
    p = next((t for t in module.parameters() if t.numel() > 1000), None)
    detected = None
    if p is not None:
        p.data.mul_(0.5)
        detected = weights_hash(module) != h
        p.data.mul_(2.0)
    return {"model": name, "state_elements": int(n_params), "state_mb": round(n_bytes / 2**20, 1),
            "tensors": len(list(module.parameters())) + len(list(module.buffers())),
            "full_ms": round(full, 2), "check_ms": round(check, 3), "speedup": round(full / check, 1),
            "full_best_ms": round(full_best, 2), "check_best_ms": round(check_best, 3),
            "speedup_best": round(full_best / check_best, 1), "edit_detected": detected}


def extraction_overhead(n_sentences: int, repeats: int) -> dict:
    """The full weights hash beside a small MiniLM-L6 extraction that includes it (medians of ``repeats``)."""
    from probekit.data import load_movie_reviews

    model = probekit.load_model("minilm-l6")
    texts = load_movie_reviews("rotten_tomatoes")["text"].head(n_sentences).tolist()
    full, full_best = _times_ms(lambda: model.weights_hash(refresh=True), max(3, repeats))
    root = Path(tempfile.mkdtemp(prefix="probekit-bench-"))
    times = []
    try:
        for k in range(max(1, repeats)):
            out = root / f"s{k}"
            t0 = time.perf_counter()
            probekit.extract(model, texts, "resid", out, progress=False)
            times.append(time.perf_counter() - t0)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    extract_ms, extract_best = 1e3 * statistics.median(times), 1e3 * min(times)
    return {"model": "minilm-l6", "sentences": n_sentences, "sites": "resid (7)", "dtype": "float16",
            "full_hash_ms": round(full, 2), "full_hash_best_ms": round(full_best, 2),
            "extract_ms": round(extract_ms, 1), "extract_best_ms": round(extract_best, 1),
            "hash_share": round(full / extract_ms, 4), "hash_share_best": round(full_best / extract_best, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--no-large", action="store_true", help="Skip the BERT-large shape (1.3 GB).")
    ap.add_argument("--sentences", type=int, default=256, help="Sentences of the small extraction.")
    ap.add_argument("--quick", action="store_true", help="Smoke run: 3 repeats, 16 sentences, no BERT-large, "
                                                         "results not written.")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.sentences, args.no_large = 3, 16, True
    rows = [measure(name, m, args.repeats) for name, m in models(not args.no_large)]
    overhead = extraction_overhead(args.sentences, max(1, args.repeats // 10))
    out = {"machine": machine(repeats=args.repeats), "rows": rows, "extraction": overhead,
           "note": "check_ms: weights_hash on an unchanged model (signature check, no re-hash); full_ms: a full "
                   "SHA-256 (refresh=True). edit_detected: p.data.mul_(0.5) on one tensor, which does not bump "
                   "its version counter, is noticed without refresh. extraction: the full hash every "
                   "probekit.extract takes, as a share of a small extraction (hash included)."}
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'model':<26} {'elements':>12} {'MB':>7} {'full ms':>16} {'check ms':>15} {'x':>11} {'.data edit':>10}")
    print(f"{'':<26} {'':>12} {'':>7} {'median / best':>16} {'median / best':>15} {'med / best':>11}")
    for r in rows:
        print(f"{r['model']:<26} {r['state_elements']:>12,} {r['state_mb']:>7} "
              f"{r['full_ms']:>8.1f} /{r['full_best_ms']:>6.1f} {r['check_ms']:>7.2f} /{r['check_best_ms']:>5.2f} "
              f"{r['speedup']:>5.0f} /{r['speedup_best']:>4.0f} {str(r['edit_detected']):>10}")
    e = overhead
    print(f"\nfull weights hash at every extraction: {e['full_hash_ms']:.1f} / {e['full_hash_best_ms']:.1f} ms "
          f"(median / best) beside a {e['sentences']}-sentence MiniLM-L6 extraction of {e['extract_ms']:.0f} / "
          f"{e['extract_best_ms']:.0f} ms: {100 * e['hash_share']:.1f}% / {100 * e['hash_share_best']:.1f}% of it")
    print("(quick run: not written)" if args.quick else f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
