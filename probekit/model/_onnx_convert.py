"""Convert a BERT encoder exported to ONNX back into a Hugging Face ``BertModel`` folder.

Exports made by ``torch.onnx`` keep most parameters under their module names
(``...encoder.layer.0.attention.self.query.bias``) but store every ``Linear``
weight as an anonymous, transposed ``MatMul`` operand (``onnx::MatMul_470``).
Those are mapped by graph structure: the ``MatMul`` output is consumed by an
``Add`` whose other operand is the named bias, which gives the weight its name.
The architecture numbers (layers, widths, heads, epsilon, activation) are read
from the graph too, and the result is checked by loading it strictly into a
``BertModel``.

``onnx`` is imported only here, and only when a conversion is asked for.
"""

from __future__ import annotations

import importlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np

__all__ = ["bert_from_onnx", "write_bert_folder"]

logger = logging.getLogger(__name__)

_ANCHOR = "embeddings.word_embeddings.weight"
#: tokenizer files copied next to the converted weights when present
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _onnx():
    try:
        return importlib.import_module("onnx")
    except ImportError as exc:
        raise ImportError("converting an ONNX model needs the 'onnx' package; install it with: pip install onnx") \
            from exc


def bert_from_onnx(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a BERT encoder's parameters and architecture out of an ONNX file.

    Parameters
    ----------
    path
        An ONNX export of a ``BertModel`` (possibly wrapped, e.g. by
        sentence-transformers: the common prefix before ``embeddings.`` is
        stripped).

    Returns
    -------
    state_dict : dict of str to numpy.ndarray
        ``BertModel`` parameter names (no ``bert.`` prefix, no pooler) to
        float arrays, ``Linear`` weights in PyTorch's ``(out, in)`` layout.
    config : dict
        Keyword arguments for :class:`transformers.BertConfig`.

    Raises
    ------
    ImportError
        If ``onnx`` is not installed.
    ValueError
        If the graph does not look like a BERT encoder.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    anchors = [n for n in inits if n.endswith(_ANCHOR)]
    if len(anchors) != 1:
        raise ValueError(f"{path}: expected one '*{_ANCHOR}' initializer, found {anchors}")
    prefix = anchors[0][: -len(_ANCHOR)]
    named = {n: n[len(prefix):] for n in inits if n.startswith(prefix)}
    consts = {o: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value" for o in n.output}
    consts.update(inits)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    state = {key: inits[name] for name, key in named.items() if key.split(".")[0] in ("embeddings", "encoder")}
    for node in graph.node:  # anonymous Linear weights: MatMul(x, W) -> Add(named bias)
        if node.op_type != "MatMul" or node.input[1] not in inits or node.input[1] in named:
            continue
        biases = [i for user in consumers.get(node.output[0], []) if user.op_type == "Add"
                  for i in user.input if i in named and named[i].endswith(".bias")]
        if len(biases) != 1:
            raise ValueError(f"{path}: cannot tell which Linear the MatMul weight {node.input[1]!r} belongs to")
        key = named[biases[0]][: -len(".bias")] + ".weight"
        if key in state:
            raise ValueError(f"{path}: two MatMul weights map to {key!r}")
        state[key] = inits[node.input[1]].T
    state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}

    layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    if not layers or layers != set(range(max(layers) + 1)):
        raise ValueError(f"{path}: encoder layers found: {sorted(layers)}")
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    config = dict(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        num_hidden_layers=len(layers),
        num_attention_heads=_heads(graph, consumers, consts, named, hidden),
        intermediate_size=int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        max_position_embeddings=int(state["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        layer_norm_eps=_epsilon(onnx, graph),
        hidden_act=_activation(graph),
        architectures=["BertModel"],
    )
    return state, config


def _heads(graph, consumers: dict, consts: dict, named: dict, hidden: int) -> int:
    """Attention heads: the ``(batch, seq, heads, head_dim)`` reshape of the first layer's query."""
    query_bias = next(n for n, k in named.items() if k == "encoder.layer.0.attention.self.query.bias")
    adds = [n for n in graph.node if n.op_type == "Add" and query_bias in n.input]
    producers = {o: n for n in graph.node for o in n.output}
    for add in adds:
        for user in consumers.get(add.output[0], []):
            if user.op_type != "Reshape":
                continue
            shape = user.input[1]
            if shape in consts:
                dims = [int(d) for d in np.ravel(consts[shape])]
            elif shape in producers and producers[shape].op_type == "Concat":
                dims = [int(np.ravel(consts[i])[0]) for i in producers[shape].input if i in consts]
            else:
                continue
            if len(dims) >= 2 and dims[-2] > 0 and dims[-2] * dims[-1] == hidden:
                return dims[-2]
    raise ValueError("could not find the attention-head reshape of layer 0's query in the ONNX graph")


def _epsilon(onnx, graph) -> float:
    eps = {round(onnx.helper.get_attribute_value(a), 15) for n in graph.node if n.op_type == "LayerNormalization"
           for a in n.attribute if a.name == "epsilon"}
    if len(eps) != 1:
        raise ValueError(f"expected one LayerNormalization epsilon, found {sorted(eps)}")
    return float(f"{eps.pop():.6g}")  # float32 1e-12 -> 1e-12


def _activation(graph) -> str:
    ops = {n.op_type for n in graph.node if "intermediate" in n.name}
    if "Erf" in ops:
        return "gelu"
    if "Tanh" in ops:
        return "gelu_new"
    raise ValueError(f"unrecognised feed-forward activation (ops in 'intermediate': {sorted(ops)})")


def write_bert_folder(onnx_path: str | Path, dest: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Convert an ONNX BERT export into a Hugging Face model folder.

    Parameters
    ----------
    onnx_path
        The ONNX file.
    dest
        Folder to write (created; should be empty or absent). It receives
        ``config.json``, ``model.safetensors`` and the tokenizer files.
    tokenizer_dir
        A folder whose tokenizer files (:data:`TOKENIZER_FILES`) are copied
        into ``dest``; the ONNX file carries no tokenizer.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Notes
    -----
    The state dict is loaded strictly into a fresh ``BertModel`` without a
    pooler before anything is written, so a missing or misshapen parameter
    fails here rather than at load time. Load the folder with
    ``add_pooling_layer=False``.
    """
    import torch
    from safetensors.numpy import save_file
    from transformers import BertConfig, BertModel

    state, cfg = bert_from_onnx(onnx_path)
    config = BertConfig(**cfg)
    with torch.device("meta"):
        skeleton = BertModel(config, add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
        wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        raise ValueError(f"ONNX parameters do not fit BertModel: missing {missing}, unexpected {extra}, "
                         f"wrong shape {wrong}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(dest)
    save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy2(Path(tokenizer_dir) / name, dest / name)
    logger.info("converted %s (%d layers, hidden %d) into %s", onnx_path, cfg["num_hidden_layers"],
                cfg["hidden_size"], dest)
    return dest
