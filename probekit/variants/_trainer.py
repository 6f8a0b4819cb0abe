"""Fine-tuning on top of the Hugging Face ``Trainer``.

The loop is the Hugging Face ``Trainer`` (itself on ``accelerate``), so
``accelerate launch`` or ``torchrun`` run the same code data-parallel on
several GPUs or machines; probekit only builds the arguments, the data and the
metrics. Mixed precision: bf16 autocast on CPU; on CUDA fp16 with a gradient
scaler (or bf16 where supported).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import (
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainingArguments,
)

from probekit.model import HookedModel, as_hooked_model, load_hooked_model
from probekit.variants._checks import TrainingWarning, loss_did_not_fall, one_class_predictions, warn_all
from probekit.variants._data import as_frame, encode
from probekit.variants._recipes import FinetuneRecipe
from probekit.variants._variant import ModelVariant, parent_info, wrap

__all__ = ["finetune", "evaluate", "predict_logits", "FinetuneRecipe", "train_in_place", "precision_flags",
           "TrainingWarning"]

logger = logging.getLogger(__name__)

def precision_flags(precision: str) -> dict:
    """``bf16``/``fp16`` TrainingArguments flags for a recipe precision on this machine."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "bf16"
    if precision == "fp16" and not cuda:
        raise ValueError("precision='fp16' needs CUDA (fp16 autocast with a gradient scaler); on CPU use 'bf16'")
    flags = {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    if not cuda:
        flags["use_cpu"] = True  # bf16 autocast on CPU
    return flags

class _Progress(ProgressCallback):
    """The usual progress bar, with the running loss and samples per second."""

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self._t0, self._step0 = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            seen = (state.global_step - self._step0) * args.train_batch_size * \
                args.gradient_accumulation_steps * max(args.world_size, 1)
            rate = seen / max(time.perf_counter() - self._t0, 1e-9)
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", samples_s=f"{rate:.1f}")
            logger.info("step %d loss %.4f (%.1f samples/s)", state.global_step, logs["loss"], rate)
            return
        super().on_log(args, state, control, logs=logs, **kwargs)

def _metrics(preds: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    keep = labels != -100
    p, y = preds[keep], labels[keep]
    return {"accuracy": float(accuracy_score(y, p)), "macro_f1": float(f1_score(y, p, average="macro")),
            "report": classification_report(y, p, output_dict=True, zero_division=0),
            "confusion": confusion_matrix(y, p).tolist(), "n": int(keep.sum())}

def predict_logits(model: HookedModel | ModelVariant, texts, *, batch_size: int = 64,
                   max_length: int = 128, interventions=()) -> torch.Tensor:
    """Classifier logits for ``texts`` (float32, on CPU), in input order; batches sorted by length.

    ``interventions`` (:mod:`probekit.interventions`) are applied during every forward pass.
    """
    model = as_hooked_model(model)
    cls = type(model.model).__name__
    if not cls.endswith(_HEAD_CLASS["sequence-classification"]):
        raise ValueError(f"predict_logits and evaluate need a sequence classifier, and {model.name!r} is a {cls} "
                         f"without a classification head (it returns hidden states, no logits). Fine-tune one "
                         f"(probekit.variants.finetune), or load a classifier with probekit.load_model(spec, "
                         f"head='sequence-classification', num_labels=N)")
    tok = model.tokenizer
    enc = tok(list(map(str, texts)), truncation=True, max_length=max_length)
    order = np.argsort([len(x) for x in enc["input_ids"]], kind="stable")
    out: list[torch.Tensor | None] = [None] * len(order)
    with model.evaluating(), torch.inference_mode(), model.intervening(interventions):
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx],
                             "attention_mask": [enc["attention_mask"][i] for i in idx]}, return_tensors="pt")
            logits = model.model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu()
            for j, i in enumerate(idx):
                out[i] = logits[j]
    return torch.stack(out)

def evaluate(model: HookedModel | ModelVariant, data, *, batch_size: int = 64, max_length: int = 128,
             interventions=()) -> dict:
    """Accuracy, macro-F1, scikit-learn classification report and confusion matrix of a sequence classifier.

    ``interventions`` (:mod:`probekit.interventions`) are applied during every forward pass.
    """
    df = as_frame(data)
    logits = predict_logits(model, df["text"], batch_size=batch_size, max_length=max_length,
                            interventions=interventions)
    return _metrics(logits.argmax(-1).numpy(), df["label"].to_numpy().astype(int))

def _args(recipe, out: Path, n_train: int, has_eval: bool, progress: bool, **extra) -> TrainingArguments:
    steps_per_epoch = math.ceil(n_train / (recipe.batch_size * recipe.grad_accum))
    total = max(1, math.ceil(steps_per_epoch * recipe.epochs))
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.lr,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size * 2,
        gradient_accumulation_steps=recipe.grad_accum,
        weight_decay=getattr(recipe, "weight_decay", 0.01),
        max_grad_norm=getattr(recipe, "max_grad_norm", 1.0),
        lr_scheduler_type="linear",
        warmup_steps=int(getattr(recipe, "warmup_ratio", 0.1) * total),
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=has_eval,
        metric_for_best_model=getattr(recipe, "metric", "accuracy") if has_eval else None,
        greater_is_better=True,
        logging_steps=max(1, min(50, steps_per_epoch // 4)),
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if getattr(recipe, "group_by_length", False) else "random",
        **precision_flags(recipe.precision),
        **extra,
    )

def _pickle_free_saves(trainer) -> None:
    """Make the Trainer's checkpoints pickle-free: its ``training_args.bin`` (a pickled
    ``TrainingArguments``) is replaced by ``training_args.json`` as soon as it is written.

    Everything else a checkpoint holds is safetensors, JSON or text, or a tensor-only
    ``torch.save`` file (optimizer, scheduler, RNG state) that transformers 5 reads back
    with ``torch.load(weights_only=True)`` on resume.
    """
    original = trainer._save

    def _save(output_dir=None, state_dict=None):
        original(output_dir, state_dict=state_dict)
        folder = Path(output_dir if output_dir is not None else trainer.args.output_dir)
        pickled = folder / "training_args.bin"
        if pickled.exists():
            (folder / "training_args.json").write_text(trainer.args.to_json_string(), encoding="utf-8")
            pickled.unlink()

    trainer._save = _save


def train_in_place(model: HookedModel, recipe: FinetuneRecipe, train, eval_data=None, *, out=None,
                   resume: bool = False, progress: bool = False, callbacks=(), trainer_cls=Trainer,
                   train_dataset=None, collator=None, extra_args: dict | None = None) -> dict:
    """Train ``model.model`` in place with a Hugging Face ``Trainer``; returns the training report."""
    import tempfile

    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="probekit-ft-")
        out = tmp.name
    out = Path(out)
    tok = model.tokenizer
    task = getattr(recipe, "task", "sequence-classification")
    enc_train = train_dataset if train_dataset is not None else \
        encode(tok, train, max_length=recipe.max_length, task=task)
    enc_eval = encode(tok, eval_data, max_length=recipe.max_length, task=task) if eval_data is not None else None
    if collator is None:
        collator = DataCollatorForTokenClassification(tok) if task == "token-classification" \
            else DataCollatorWithPadding(tok)
    history: list[dict] = []

    def compute_metrics(pred):
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        m = _metrics(np.asarray(logits).argmax(-1).reshape(-1), np.asarray(pred.label_ids).reshape(-1))
        history.append(m)
        logger.info("eval accuracy %.4f macro-F1 %.4f", m["accuracy"], m["macro_f1"])
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    args = _args(recipe, out, len(enc_train), enc_eval is not None, progress, **(extra_args or {}))
    cbs = list(callbacks)
    if enc_eval is not None and getattr(recipe, "early_stopping", None):
        cbs.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping))
    model.model.train()
    trainer = trainer_cls(model=model.model, args=args, train_dataset=enc_train, eval_dataset=enc_eval,
                          data_collator=collator, processing_class=tok,
                          compute_metrics=compute_metrics if enc_eval is not None else None, callbacks=cbs)
    # classification losses are batch means, not sums over num_items_in_batch: let the Trainer divide by the
    # accumulation steps (transformers 5.24 otherwise assumes the model did, and gradients grow with grad_accum)
    trainer.loss_is_scaled_for_ga = False
    _pickle_free_saves(trainer)
    if progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_Progress)
    else:  # without a progress bar the Trainer prints every log dict to stdout; the report keeps them
        trainer.remove_callback(PrinterCallback)
    ckpt = None
    if resume:
        found = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        ckpt = str(found[-1]) if found else None
        logger.info("resuming from %s", ckpt) if ckpt else logger.info("no checkpoint in %s; starting fresh", out)
    result = trainer.train(resume_from_checkpoint=ckpt)
    # accelerate patches an instance-level forward with a mixed-precision autocast wrapper; take it off
    # again (its own unwrap_model(keep_fp32_wrapper=False) also strips transformers' decorators)
    model.model.__dict__.pop("forward", None)
    model.model.__dict__.pop("_original_forward", None)
    model.model.eval()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    report = {"train_loss": float(result.training_loss), "losses": losses, "history": history,
              "global_step": trainer.state.global_step, "resumed_from": ckpt,
              "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
              "train_samples_per_second": float(result.metrics.get("train_samples_per_second", float("nan"))),
              "best_checkpoint": trainer.state.best_model_checkpoint, "precision": precision_flags(recipe.precision)}
    if tmp is not None:
        tmp.cleanup()
    return report

def _check_run(variant: ModelVariant, recipe: FinetuneRecipe, df, report: dict) -> list[str]:
    """Warn (:class:`TrainingWarning`) when the run ended predicting one class or its loss did not fall."""
    msgs = [loss_did_not_fall(report.get("losses", []))]
    if "eval" in report:
        msgs.append(one_class_predictions(report["eval"]["confusion"], where="evaluation"))
    elif recipe.task == "sequence-classification":
        sample = df.sample(min(512, len(df)), random_state=recipe.seed) if len(df) > 512 else df
        cm = evaluate(variant.model, sample, max_length=recipe.max_length)["confusion"]
        msgs.append(one_class_predictions(cm, where="training"))
    elif report.get("history"):
        msgs.append(one_class_predictions(report["history"][-1]["confusion"], where="evaluation"))
    steps = report.get("global_step")
    hint = (f"the run made {steps} optimizer steps ({len(df)} examples, batch {recipe.batch_size} x grad_accum "
            f"{recipe.grad_accum}, {recipe.epochs:g} epochs, lr {recipe.lr:g}); train for more steps (more epochs "
            "or data, a smaller grad_accum) or raise the learning rate")
    return warn_all(msgs, what=f"finetune of {variant.model.name}", hint=hint)


_HEAD_CLASS = {"sequence-classification": "ForSequenceClassification",
               "token-classification": "ForTokenClassification"}


def _check_head(model, task: str) -> None:
    """A loaded model must carry the head its task trains (a bare encoder returns no loss to train on)."""
    cls = type(model.model).__name__
    if not cls.endswith(_HEAD_CLASS[task]):
        raise ValueError(f"finetune with task {task!r} needs a model with a {task} head, and {model.name!r} is a "
                         f"{cls} without one. Pass the model's spec (alias, folder or config) so that finetune loads "
                         f"it with the head, or load it with probekit.load_model(spec, head={task!r}, num_labels=N)")


def finetune(model, data, recipe: FinetuneRecipe | None = None, *, eval_data=None, out: str | os.PathLike | None = None,
             num_labels: int | None = None, resume: bool = False, progress: bool = True, callbacks=(),
             **recipe_kwargs) -> ModelVariant:
    """Fine-tune a model for sequence or token classification.

    Parameters
    ----------
    model : HookedModel, ModelVariant, or anything ``load_model`` takes
        A spec is loaded with the recipe's task head and ``num_labels``
        (default: the number of distinct labels in ``data``). The input
        model is not modified (its weights are copied).
    data, eval_data
        Training and validation data (see :mod:`probekit.variants._data`).
        With ``eval_data``, each epoch is evaluated, the best epoch (by
        ``recipe.metric``) is kept, and early stopping applies.
    recipe : FinetuneRecipe, optional
        Or give its fields as keyword arguments (``epochs=1, grad_accum=4``).
    out : path, optional
        Checkpoints go to ``out/checkpoints``; the best model is saved to
        ``out`` as a variant folder (safetensors, config, tokenizer, recipe).
    resume : bool
        Continue from the last checkpoint in ``out/checkpoints``.
    progress : bool
        Show a progress bar with loss and throughput.

    Returns
    -------
    ModelVariant
        ``variant.report`` holds losses, per-epoch metrics, the final
        validation metrics and ``warnings``.

    Warns
    -----
    TrainingWarning
        When the model ends predicting one class for >= 95% of the
        evaluation examples (of up to 512 training examples without
        ``eval_data``) while the labels are more varied, or when the logged
        training loss did not fall; the message names the numbers and is kept
        in ``report["warnings"]``.

    Examples
    --------
    A tiny randomly initialised BERT on a few labelled sentences:

    >>> import probekit, tempfile, transformers
    >>> cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                               intermediate_size=37)
    >>> texts, labels = ["a fine film", "a dull film", "great fun", "long and boring"] * 4, [1, 0, 1, 0] * 4
    >>> out = tempfile.mkdtemp() + "/ft"
    >>> v = finetune(cfg, (texts, labels), epochs=1, lr=1e-3, batch_size=4, out=out, progress=False)
    >>> probekit.load_model(out).recipe
    FinetuneRecipe(task='sequence-classification', epochs=1, ...)
    """
    recipe = recipe or FinetuneRecipe(**recipe_kwargs)
    df = as_frame(data)
    if not isinstance(model, (HookedModel, ModelVariant)):
        if num_labels is None:
            labels = df["label"] if recipe.task == "sequence-classification" else \
                [x for row in df["label"] for x in row]
            num_labels = int(max(labels)) + 1
        model = load_hooked_model(model, head=recipe.task, num_labels=num_labels, seed=recipe.seed)
    parent, base, lineage, pmap, structure = parent_info(model)
    _check_head(parent, recipe.task)
    work = copy.deepcopy(parent.model)
    variant = wrap(work, parent, recipe=recipe, base=base, lineage=lineage, layer_map=pmap, structure=structure)
    report = train_in_place(variant.model, recipe, df, eval_data, out=out, resume=resume, progress=progress,
                            callbacks=callbacks)
    if eval_data is not None and recipe.task == "sequence-classification":
        report["eval"] = evaluate(variant.model, eval_data, max_length=recipe.max_length)
    report["warnings"] = _check_run(variant, recipe, df, report)
    variant.report.update(report)
    if out is not None:
        variant.save(out)
    return variant
