import math

import pytest
import torch

import probekit
from probekit.variants import DistillRecipe, distill, distill_loss, init_student

from .conftest import TEXTS, logits, tiny_classifier


def test_student_copies_every_other_layer_exactly():
    teacher = tiny_classifier("bert", layers=4)
    student, layers = init_student(teacher)
    assert layers == (0, 2)
    assert student.config.num_hidden_layers == 2
    t, s = teacher.model.state_dict(), student.state_dict()
    for i, k in enumerate(layers):
        for name, val in s.items():
            if name.startswith(f"bert.encoder.layer.{i}."):
                assert torch.equal(val, t[name.replace(f"layer.{i}.", f"layer.{k}.", 1)]), name
    for name in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert torch.equal(s[name], t[name])


def test_distilbert_family_init():
    teacher = tiny_classifier("distilbert", layers=4)
    student, layers = init_student(teacher, DistillRecipe(layers=(1, 3)))
    assert torch.equal(student.distilbert.transformer.layer[0].ffn.lin1.weight,
                       teacher.model.distilbert.transformer.layer[1].ffn.lin1.weight)


def test_loss_matches_hand_computation():
    s = torch.tensor([[1.0, -0.5], [0.2, 0.3]])
    t = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    y = torch.tensor([0, 1])
    alpha, T = 0.3, 2.0

    def softmax(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    ce = kl = 0.0
    for i in range(2):
        ps = softmax(s[i].tolist())
        ce += -math.log(ps[y[i]])
        pt_T, ps_T = softmax((t[i] / T).tolist()), softmax((s[i] / T).tolist())
        kl += sum(p * math.log(p / q) for p, q in zip(pt_T, ps_T))
    expected = alpha * ce / 2 + (1 - alpha) * T * T * kl / 2
    assert float(distill_loss(s, t, y, alpha=alpha, temperature=T)) == pytest.approx(expected, rel=1e-6)


def test_student_deeper_than_teacher_errors_before_work(bert_cls, rt_small):
    with pytest.raises(ValueError, match="deeper than its teacher"):
        distill(bert_cls, rt_small, n_layers=3)


def test_distill_trains_saves_and_maps_layers(rt_small, tmp_path):
    teacher = tiny_classifier("bert", layers=4)
    v = distill(teacher, rt_small, DistillRecipe(epochs=1, batch_size=16, lr=1e-3, max_length=32, cosine=0.1),
                out=tmp_path / "student", progress=False)
    assert v.layer_map.layers == (0, 2)
    assert v.model.n_layers == 2 and len(v.report["losses"]) >= 1
    back = probekit.load_model(tmp_path / "student")
    assert back.recipe == v.recipe and back.layer_map.layers == (0, 2)
    torch.testing.assert_close(logits(back.model, TEXTS), logits(v.model, TEXTS))
