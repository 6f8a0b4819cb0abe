import importlib.util

import pytest
import torch

from probekit.variants import compare_latency, export, measure_latency, quantize

from .conftest import TEXTS


@pytest.mark.parametrize("fmt", ["torchscript", "torch.export"])
def test_torch_export_parity(bert_cls, tmp_path, fmt):
    e = export(bert_cls, tmp_path / "m", format=fmt, texts=TEXTS, repeats=2)
    assert e.path.exists()
    assert e.max_abs_diff < 1e-5
    assert set(e.latency_ms) == {"eager", "exported"}


def test_torchscript_of_int8_variant(bert_cls, tmp_path):
    e = export(quantize(bert_cls), tmp_path / "q.pt", format="torchscript", texts=TEXTS, repeats=2)
    assert e.max_abs_diff < 1e-5


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
                    reason="optional extra: pip install onnx onnxruntime (probekit[onnx])")
def test_onnx_parity(bert_cls, tmp_path):
    e = export(bert_cls, tmp_path / "m.onnx", format="onnx", texts=TEXTS, repeats=2)
    assert e.max_abs_diff < 1e-4
    with pytest.raises(ValueError, match="ONNX export of a torch.ao-quantized"):
        export(quantize(bert_cls), tmp_path / "q.onnx", format="onnx")


def _spin(n: int):
    """A callable whose cost grows with ``n`` (a pure-Python loop: no threads, no I/O)."""
    def run():
        s = 0
        for i in range(n):
            s += i * i
        return s
    return run


def test_compare_latency_ranks_by_work_and_pairs_rounds():
    c = compare_latency({"slow": _spin(40_000), "fast": _spin(10_000)}, [()] * 5, rounds=3, warmup=1)
    assert len(c.rounds) == 3 and set(c.rounds[0]) == {"slow", "fast"}
    s = c.summary("slow")
    assert s.loc["slow", "speedup_paired"] == 1.0
    # 4x less work: clearly faster, whatever else runs on the machine (same-round pairing)
    assert s.loc["fast", "speedup_paired"] > 1.5
    assert s.loc["fast", "latency_ratio_paired"] < 0.67
    assert s.loc["fast", "speedup_min"] <= s.loc["fast", "speedup_paired"] <= s.loc["fast", "speedup_max"]
    assert s.loc["fast", "best_ms"] <= s.loc["fast", "median_ms"]


def test_compare_latency_units_threads_and_cpu_clock(bert_cls):
    before = torch.get_num_threads()
    enc = bert_cls.tokenizer(TEXTS, padding=True, return_tensors="pt")
    model = bert_cls.model.eval()
    seen = []

    def run(ids, mask):
        seen.append(torch.get_num_threads())
        return model(input_ids=ids, attention_mask=mask)

    with torch.inference_mode():
        c = compare_latency({"m": run}, [(enc["input_ids"], enc["attention_mask"])], units=[len(TEXTS)], rounds=2,
                            warmup=1, threads=1, clock="cpu")
    assert set(seen) == {1} and c.threads == 1 and torch.get_num_threads() == before
    r = c.rounds[0]["m"]
    assert r["per_s"] == pytest.approx(len(TEXTS) / r["total_s"])
    assert measure_latency(lambda: run(enc["input_ids"], enc["attention_mask"]), repeats=2, threads=1) > 0


def test_timing_bad_input():
    with pytest.raises(ValueError, match="units has 2 entries for 1 inputs"):
        compare_latency({"a": lambda: None}, units=[1, 2])
    with pytest.raises(ValueError, match="clock must be"):
        compare_latency({"a": lambda: None}, clock="gpu")
    with pytest.raises(ValueError, match="at least one callable"):
        compare_latency({})
    with pytest.raises(KeyError, match="baseline 'b'"):
        compare_latency({"a": lambda: None}, rounds=1).summary("b")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        measure_latency(lambda: None, threads=0)


def test_parameter_count_and_size_cover_packed_int8():
    from probekit.variants import parameter_count, state_dict_bytes

    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    q = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    assert parameter_count(net) == 8 * 4 + 4 + 4 * 2 + 2
    # packed (weight, bias) tuples are counted, plus each quantized linear's scale and zero point
    assert parameter_count(q) == parameter_count(net) + 2 * 2
    assert state_dict_bytes(net) > (8 * 4 + 4 + 4 * 2 + 2) * 4
