"""What a model *does*, measured per example, with and without interventions.

Amnesic probing (:func:`probekit.interventions.amnesic_probe`) compares a
model's behaviour when a property is erased with its behaviour when a random
subspace of the same rank is erased. A behaviour returns per-example sums
(so that bootstrap resamples of examples give every metric exactly):

- :class:`NextTokenBehaviour`: a causal language model's next-token loss
  (mean cross-entropy, nats) and top-1 accuracy over every predicted token of
  held-out texts;
- :class:`ClassifierBehaviour`: a sequence classifier's accuracy on labelled
  held-out texts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Behaviour", "NextTokenBehaviour", "ClassifierBehaviour"]

logger = logging.getLogger(__name__)


class Behaviour:
    """Base: ``stats(model, interventions)`` -> per-example sums; ``metrics(sums)`` -> metric values.

    ``metrics`` takes the sums over (possibly resampled) examples, as a
    mapping of arrays whose leading axis may be bootstrap replicates.
    """

    name: str = ""
    #: metric -> +1 when larger is better, -1 when smaller is better
    directions: dict[str, int] = {}

    def stats(self, model, interventions=()) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def metrics(self, sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"behaviour": self.name}


def _texts(texts) -> list:
    out = [t if isinstance(t, str) else list(t) for t in texts]
    if not out:
        raise ValueError("a behaviour needs at least one held-out text")
    return out


class NextTokenBehaviour(Behaviour):
    """Next-token loss and accuracy of a causal LM on held-out texts.

    Parameters
    ----------
    texts : sequence of str or of word lists
        Held-out text (e.g. UD EWT dev sentences); pre-split words are joined
        by the tokenizer as in :meth:`HookedModel.tokenize`.
    batch_size : int
        Rows per forward pass.

    Examples
    --------
    >>> import probekit, transformers
    >>> cfg = transformers.GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=4, bos_token_id=101,
    ...                               eos_token_id=102)
    >>> m = probekit.load_model(cfg, head="causal-lm")
    >>> b = NextTokenBehaviour(["the cat sat on the mat", "it rained"])
    >>> s = b.stats(m)
    >>> sorted(b.metrics({k: v.sum(0) for k, v in s.items()}))
    ['lm_accuracy', 'lm_loss']
    """

    name = "next_token"
    directions = {"lm_loss": -1, "lm_accuracy": 1}

    def __init__(self, texts: Sequence, *, batch_size: int = 16):
        self.texts = _texts(texts)
        self.batch_size = int(batch_size)

    def stats(self, model, interventions=()) -> dict[str, np.ndarray]:
        from probekit.model import as_hooked_model

        model = as_hooked_model(model)
        if not type(model.model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
            raise TypeError("next-token behaviour needs a causal language model: load_model(..., head='causal-lm')")
        batch = model.tokenize(self.texts)
        if batch.is_windowed:
            raise ValueError("held-out texts must fit the model's maximum length")
        rows = [w.row_ids for w in batch.windows]
        n = len(rows)
        loss, correct, count = np.zeros(n), np.zeros(n), np.zeros(n)
        order = np.argsort([len(r) for r in rows], kind="stable")
        for a in range(0, n, self.batch_size):
            idx = [int(i) for i in order[a: a + self.batch_size]]
            with model.evaluating(), torch.inference_mode(), model.intervening(interventions, examples=idx):
                logits = model.forward_rows([rows[i] for i in idx]).logits.float()
            for j, i in enumerate(idx):
                k = len(rows[i])
                if k < 2:
                    continue
                target = torch.tensor(rows[i][1:], device=logits.device)
                lg = logits[j, : k - 1]
                loss[i] = float(torch.nn.functional.cross_entropy(lg, target, reduction="sum"))
                correct[i] = float((lg.argmax(-1) == target).sum())
                count[i] = k - 1
        if not count.sum():
            raise ValueError("the held-out texts have no token to predict (each needs at least two tokens)")
        return {"loss": loss, "correct": correct, "count": count}

    def metrics(self, sums):
        return {"lm_loss": sums["loss"] / sums["count"], "lm_accuracy": sums["correct"] / sums["count"]}

    def describe(self) -> dict:
        return {"behaviour": self.name, "n_texts": len(self.texts)}


class ClassifierBehaviour(Behaviour):
    """Accuracy of a sequence classifier on labelled held-out texts.

    Parameters
    ----------
    texts : sequence of str
    labels : sequence of int
        The class index of each text (the model's label ids).
    """

    name = "classifier"
    directions = {"accuracy": 1}

    def __init__(self, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 64, max_length: int = 128):
        self.texts = [str(t) for t in _texts(texts)]
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (len(self.texts),):
            raise ValueError(f"{len(self.texts)} texts but labels of shape {self.labels.shape}")
        self.batch_size, self.max_length = int(batch_size), int(max_length)

    def stats(self, model, interventions=()) -> dict[str, np.ndarray]:
        from probekit.variants import predict_logits

        logits = predict_logits(model, self.texts, batch_size=self.batch_size, max_length=self.max_length,
                                interventions=interventions)
        correct = (logits.argmax(-1).numpy() == self.labels).astype(np.float64)
        return {"correct": correct, "count": np.ones(len(correct))}

    def metrics(self, sums):
        return {"accuracy": sums["correct"] / sums["count"]}

    def describe(self) -> dict:
        return {"behaviour": self.name, "n_texts": len(self.texts)}
