import importlib.util

import pytest

from probekit.variants import export, quantize

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
