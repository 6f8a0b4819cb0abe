"""Knowledge distillation into a smaller student (DistilBERT-style initialisation).

The student copies the teacher's embeddings, pooler, classifier and every
other block (or the blocks named in the recipe). It trains on
``alpha * CE + (1 - alpha) * T^2 * KL(teacher^T || student^T)`` (Hinton et al.
2015; Sanh et al. 2019), plus an optional cosine loss between aligned hidden
states. Teacher logits are computed once, before training, and cached with
the data; only the cosine loss needs the teacher during training.
"""

from __future__ import annotations

import copy
import logging
import os
import re

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from probekit.model import HookedModel, adapter_for
from probekit.variants._data import as_frame, encode
from probekit.variants._recipes import DistillRecipe
from probekit.variants._trainer import evaluate, predict_logits, train_in_place
from probekit.variants._variant import LayerMap, ModelVariant, parent_info, wrap

__all__ = ["distill", "init_student", "distill_loss", "hidden_cosine_loss"]

logger = logging.getLogger(__name__)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                 alpha: float, temperature: float) -> torch.Tensor:
    """``alpha * CE(s, y) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``, batch mean.

    Examples
    --------
    >>> s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    >>> round(float(distill_loss(s, t, torch.tensor([0]), alpha=1.0, temperature=2.0)), 4)
    0.1269
    """
    s, t = student_logits.float(), teacher_logits.float()
    ce = F.cross_entropy(s, labels)
    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                  reduction="batchmean", log_target=True)
    return alpha * ce + (1 - alpha) * temperature ** 2 * kl


def hidden_cosine_loss(student_hidden, teacher_hidden, pairs, mask: torch.Tensor) -> torch.Tensor:
    """Mean over ``pairs`` ``(student index, teacher index)`` and real tokens of ``1 - cos``."""
    m = mask.bool()
    losses = [1 - F.cosine_similarity(student_hidden[i][m].float(), teacher_hidden[k][m].float(), dim=-1).mean()
              for i, k in pairs]
    return torch.stack(losses).mean()


def _layer_prefix(model: nn.Module) -> str:
    layers = adapter_for(model).layers
    return f"{model.base_model_prefix}.{layers}." if model.base_model is not model else f"{layers}."


def init_student(teacher: HookedModel, recipe: DistillRecipe | None = None, *, config=None
                 ) -> tuple[nn.Module, tuple[int, ...]]:
    """A student model and the teacher layer behind each of its layers.

    With no ``config``, the student is the teacher's architecture with the
    recipe's layers (default every other one), initialised by copying those
    blocks and everything outside the blocks. With a ``config`` (any smaller
    config of the same family), it is randomly initialised and its layers map
    evenly onto the teacher's.
    """
    recipe = recipe or DistillRecipe()
    n_t = teacher.n_layers
    if config is not None:
        n_s = config.num_hidden_layers
        if n_s > n_t:
            raise ValueError(f"a student of {n_s} layers is deeper than its teacher ({n_t} layers)")
        layers = DistillRecipe(n_layers=n_s).teacher_layers(n_t)
        for k, v in {"num_labels": teacher.config.num_labels, "id2label": teacher.config.id2label}.items():
            setattr(config, k, v)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            return type(teacher.model)(config), layers
    layers = recipe.teacher_layers(n_t)
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        student = type(teacher.model)(cfg)
    prefix = _layer_prefix(teacher.model)
    pat = re.compile("^" + re.escape(prefix) + r"(\d+)\.(.*)$")
    new_index = {k: i for i, k in enumerate(layers)}
    state = {}
    for name, t in teacher.model.state_dict().items():
        m = pat.match(name)
        if m is None:
            state[name] = t.clone()
        elif int(m.group(1)) in new_index:
            state[f"{prefix}{new_index[int(m.group(1))]}.{m.group(2)}"] = t.clone()
    student.load_state_dict(state, strict=True)
    return student, layers


class _DistillTrainer(Trainer):
    def __init__(self, *args, teacher=None, recipe: DistillRecipe = None, pairs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher, self.recipe, self.pairs = teacher, recipe, pairs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        t_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        want_h = self.recipe.cosine > 0 and t_logits is not None
        out = model(**inputs, output_hidden_states=want_h)
        if t_logits is None:  # evaluation batches: plain cross-entropy
            loss = F.cross_entropy(out.logits.float(), labels)
        else:
            loss = distill_loss(out.logits, t_logits, labels, alpha=self.recipe.alpha,
                                temperature=self.recipe.temperature)
            if want_h:
                with torch.no_grad():
                    t_out = self.teacher(**inputs, output_hidden_states=True)
                loss = loss + self.recipe.cosine * hidden_cosine_loss(
                    out.hidden_states, t_out.hidden_states, self.pairs, inputs["attention_mask"])
        return (loss, out) if return_outputs else loss


class _Collator:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features):
        feats = [dict(f) for f in features]
        t = [f.pop("teacher_logits") for f in feats] if "teacher_logits" in feats[0] else None
        batch = self.tokenizer.pad(feats, return_tensors="pt")
        if t is not None:
            batch["teacher_logits"] = torch.tensor(t, dtype=torch.float32)
        return batch


def distill(teacher: HookedModel | ModelVariant, data, recipe: DistillRecipe | None = None, *, eval_data=None,
            student_config=None, out: str | os.PathLike | None = None, progress: bool = True,
            **recipe_kwargs) -> ModelVariant:
    """Distil a sequence classifier into a smaller student.

    Parameters
    ----------
    teacher : HookedModel or ModelVariant
        A fine-tuned sequence classifier (not modified).
    data, eval_data
        Training and validation data (texts + labels; see
        :mod:`probekit.variants._data`).
    recipe : DistillRecipe, optional
        Or its fields as keyword arguments (``alpha=0.5, temperature=2``).
    student_config : PretrainedConfig, optional
        A smaller config of the same family (random init, layers spread
        evenly); default: copy every other teacher layer.
    out : path, optional
        Save the student there as a variant folder.

    Returns
    -------
    ModelVariant
        ``layer_map.layers[i]`` is the teacher layer behind student layer ``i``.
    """
    recipe = recipe or DistillRecipe(**recipe_kwargs)
    parent, base, lineage, pmap, structure = parent_info(teacher)
    if not type(parent.model).__name__.endswith("ForSequenceClassification"):
        raise TypeError("distillation needs a sequence-classification teacher")
    if structure.get("heads") or structure.get("ffn"):
        raise ValueError("the teacher has pruned heads/FFN neurons of uneven shape; distil from its unpruned parent")
    if student_config is None:
        recipe.teacher_layers(parent.n_layers)  # errors now if the student would be deeper
    df = as_frame(data)
    student, layers = init_student(parent, recipe, config=student_config)
    logger.info("student: %d layers from teacher layers %s", len(layers), layers)
    t_logits = predict_logits(parent, df["text"], max_length=recipe.max_length)
    enc = encode(parent.tokenizer, df, max_length=recipe.max_length).add_column(
        "teacher_logits", t_logits.tolist())
    child = LayerMap(tuple(layers))
    variant = wrap(student, parent, recipe=recipe, base=base, lineage=lineage, layer_map=pmap.compose(child),
                   name=f"{parent.name}+student{len(layers)}")
    pairs = [(0, 0)] + [(i + 1, k + 1) for i, k in enumerate(layers)]

    class _T(_DistillTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, teacher=parent.model, recipe=recipe, pairs=pairs, **kw)

    report = train_in_place(variant.model, recipe, df, eval_data, out=out, progress=progress, trainer_cls=_T,
                            train_dataset=enc, collator=_Collator(parent.tokenizer),
                            extra_args={"remove_unused_columns": False})
    if eval_data is not None:
        report["eval"] = evaluate(variant.model, eval_data, max_length=recipe.max_length)
    variant.report.update(report)
    if out is not None:
        variant.save(out)
    return variant
