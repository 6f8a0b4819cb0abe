"""Training checks: a fine-tune that learned nothing says so, with its numbers; accumulation is exact."""

import json
import warnings

import pytest
import torch

from probekit.variants import FinetuneRecipe, TrainingWarning, finetune
from probekit.variants._checks import loss_did_not_fall, one_class_predictions
from probekit.variants._trainer import train_in_place
from tests.conftest import tiny_config


def _classifier(seed: int = 0):
    import probekit

    cfg = tiny_config("bert")
    cfg.hidden_dropout_prob = 0.0
    cfg.attention_probs_dropout_prob = 0.0
    return probekit.load_model(cfg, head="sequence-classification", num_labels=2, seed=seed)


def test_one_class_predictions_names_the_numbers():
    msg = one_class_predictions([[0, 26], [1, 23]], where="evaluation")
    assert "class 1 for 49 of 50 evaluation examples (98.0%)" in msg
    assert "52.0%" in msg and "accuracy 0.460" in msg
    assert one_class_predictions([[20, 5], [6, 19]]) is None
    # labels that are themselves (almost) one class: predicting it is no collapse
    assert one_class_predictions([[0, 1], [0, 99]]) is None
    assert one_class_predictions([[0, 0], [0, 0]]) is None


def test_loss_did_not_fall_compares_first_and_last_quarters():
    assert loss_did_not_fall([0.69, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25]) is None
    msg = loss_did_not_fall([0.70, 0.69, 0.70, 0.69, 0.70, 0.69, 0.70, 0.69], steps=10, examples_per_step=128)
    assert msg.startswith("the training loss did not fall: 0.695") and "10 optimizer steps of 128 examples" in msg
    assert loss_did_not_fall([0.7]) is None  # nothing to compare
    assert loss_did_not_fall([0.5, float("nan"), 0.9]) is not None


def test_finetune_that_learns_nothing_warns_and_records_it(rt_small, tmp_path):
    model = _classifier()
    with torch.no_grad():  # a head that answers "1" whatever the input, as an untrained head often does
        model.model.classifier.bias.copy_(torch.tensor([-20.0, 20.0]))
    recipe = FinetuneRecipe(epochs=2, lr=1e-9, batch_size=4, grad_accum=4, precision="bf16", max_length=32,
                            early_stopping=None)
    with pytest.warns(TrainingWarning) as caught:
        v = finetune(model, rt_small, recipe, eval_data=rt_small[:20], out=tmp_path / "ft", progress=False)
    texts = [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]
    one = [t for t in texts if "predicts class 1 for 20 of 20 evaluation examples (100.0%)" in t]
    loss = [t for t in texts if "the training loss did not fall" in t]
    assert one and loss, texts
    assert "6 optimizer steps" in one[0] and "grad_accum 4" in one[0]  # 48 examples / (4 x 4) x 2 epochs
    assert v.report["warnings"] == texts
    saved = json.loads((tmp_path / "ft" / "recipe.json").read_text())
    assert saved["report"]["warnings"] == texts


def test_finetune_without_eval_data_checks_training_predictions(rt_small):
    model = _classifier()
    with torch.no_grad():
        model.model.classifier.bias.copy_(torch.tensor([20.0, -20.0]))
    with pytest.warns(TrainingWarning, match=r"predicts class 0 for 48 of 48 training examples"):
        finetune(model, rt_small, epochs=1, lr=1e-9, batch_size=16, max_length=32, early_stopping=None,
                 precision="fp32", progress=False)


def test_a_run_that_learns_is_not_flagged():
    words = {1: ["great", "superb", "moving"], 0: ["awful", "dull", "tedious"]}
    pairs = [(f"the film was {words[y][i % 3]} .", y) for i in range(24) for y in (0, 1)]
    data = ([t for t, _ in pairs], [y for _, y in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        v = finetune(_classifier(), data, epochs=6, lr=3e-3, batch_size=8, max_length=16, early_stopping=None,
                     precision="fp32", warmup_ratio=0.0, progress=False)
    assert v.report["warnings"] == []
    assert v.report["losses"][-1] < 0.7 * v.report["losses"][0]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gradient_accumulation_makes_the_same_step_as_one_big_batch(rt_small, precision):
    """One plain SGD step over 8 examples: batch 8 x accumulation 1 == batch 2 x accumulation 4.

    SGD, because Adam's first step hardly depends on the gradient's scale: this guards the loss scaling
    under accumulation (each micro-batch's mean loss divided by the accumulation steps) and the schedule
    (with no warm-up the one step runs at the full learning rate).
    """
    data = rt_small[:8]
    common = dict(epochs=1, lr=0.5, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1e9, max_length=32,
                  early_stopping=None, precision=precision)
    start = _classifier().model.state_dict()
    steps = []
    for batch, accum in ((8, 1), (2, 4)):
        model = _classifier()
        report = train_in_place(model, FinetuneRecipe(batch_size=batch, grad_accum=accum, **common), data,
                                extra_args={"optim": "sgd"})
        assert report["global_step"] == 1
        steps.append({n: p.detach() - start[n] for n, p in model.model.named_parameters()})
    worst = max(float((steps[0][n] - steps[1][n]).abs().max()) for n in steps[0])
    largest = max(float(d.abs().max()) for d in steps[0].values())
    assert largest > 1e-3  # the step did something
    assert worst <= (1e-4 if precision == "fp32" else 0.05) * largest, (worst, largest)


def test_training_warnings_land_in_the_html_report(tmp_path):
    import pandas as pd

    from probekit.report import write_report

    msg = "finetune of minilm-l6: " + one_class_predictions([[0, 300], [0, 300]])
    tables = tmp_path / "run" / "tables"
    tables.mkdir(parents=True)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"name": "w", "started": "2026-01-01T00:00:00+00:00",
                                                           "finished": "2026-01-01T00:01:00+00:00"}))
    pd.DataFrame({"variant": ["finetuned", "quantize"], "accuracy": [0.5, 0.5], "warnings": [msg, ""]}).to_csv(
        tables / "variants.csv", index=False)
    html = write_report(tmp_path / "run").read_text()
    md = (tmp_path / "run" / "report.md").read_text()
    for text in (html, md):
        assert "Training warnings" in text
        assert "predicts class 1 for 600 of 600 evaluation examples (100.0%)" in text
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert "Warning: finetuned: finetune of minilm-l6: the model predicts class 1" in findings
