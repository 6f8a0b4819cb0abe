"""Attribution through captum: completeness, hand-checked blank-out, probes, bad input."""

import warnings

import numpy as np
import pytest
import torch

import probekit
from probekit.attribution import METHODS, Attributor, agreement
from tests.conftest import tiny_config
from tests.test_hooks import _n_hooks

TEXTS = ["a gorgeous, witty, seductive movie.", "the plot is a mess and the acting is dull"]


@pytest.fixture(scope="module")
def clf():
    return probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=3, seed=4)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_scores_every_token(clf, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns about functional non-linearities under DeepLift
        out = Attributor(clf, method).attribute(TEXTS, target=2)
    assert len(out) == 2
    for a in out:
        assert a.target == 2 and a.method == method
        assert a.scores.shape == (len(a.tokens),) and np.isfinite(a.scores).all()
        assert a.tokens[0] == "[CLS]"
        assert np.linalg.norm(a.normalised) == pytest.approx(1.0) or not a.scores.any()
    assert _n_hooks(clf.model) == 0


def test_integrated_gradients_completeness(clf):
    (a,) = Attributor(clf, "integrated_gradients", output="logit").attribute(TEXTS[:1], n_steps=64)
    assert a.completeness_error < 0.01
    assert abs(a.delta) <= 0.01 * abs(a.f_input - a.f_baseline) + 1e-6


def test_integrated_gradients_completeness_real_weights():
    m = probekit.load_model("minilm-l6", head="sequence-classification", num_labels=2, seed=0)
    (a,) = Attributor(m, "integrated_gradients").attribute(["an utterly charming and funny film."], n_steps=32)
    assert a.completeness_error < 0.01, a.completeness_error


def test_blank_out_by_hand(clf):
    (a,) = Attributor(clf, "blank_out").attribute(TEXTS[:1], target=1)
    ids = torch.tensor([clf.tokenize(TEXTS[:1]).examples[0].input_ids])
    with torch.no_grad():
        f = clf.model(input_ids=ids).logits.softmax(-1)[0, 1]
        blank = ids.clone()
        blank[0, 3] = clf.tokenizer.pad_token_id
        g = clf.model(input_ids=blank).logits.softmax(-1)[0, 1]
    assert a.scores[3] == pytest.approx((f - g).item(), abs=1e-6)
    assert a.scores[0] == 0 and a.scores[-1] == 0  # special tokens are never blanked


def test_blank_out_with_unk_by_hand(clf):
    """Blank-out as Abnar & Zuidema 2020 define it: each token replaced by the unknown-word token."""
    (a,) = Attributor(clf, "blank_out").attribute(TEXTS[:1], target=1, baseline="unk")
    ids = torch.tensor([clf.tokenize(TEXTS[:1]).examples[0].input_ids])
    with torch.no_grad():
        f = clf.model(input_ids=ids).logits.softmax(-1)[0, 1]
        blank = ids.clone()
        blank[0, 2] = clf.tokenizer.unk_token_id
        g = clf.model(input_ids=blank).logits.softmax(-1)[0, 1]
    assert a.scores[2] == pytest.approx((f - g).item(), abs=1e-6)
    (pad,) = Attributor(clf, "blank_out").attribute(TEXTS[:1], target=1)
    assert not np.allclose(a.scores, pad.scores)  # another baseline token, other scores


def test_blank_out_batched_equals_one_at_a_time(clf):
    one = Attributor(clf, "blank_out").attribute(TEXTS, internal_batch_size=1)
    many = Attributor(clf, "blank_out").attribute(TEXTS, internal_batch_size=7)
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        assert np.abs(a.scores).sum() > 0


def test_probe_attribution_through_frozen_model():
    m = probekit.load_model(tiny_config("bert"), seed=1)
    torch.manual_seed(0)
    probe = torch.nn.Linear(32, 5)

    def head(acts, mask):  # a sentence probe on mean-pooled layer-1 states
        return probe((acts * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))

    (a,) = Attributor(m, "integrated_gradients", probe=head, probe_site="L1.resid").attribute(TEXTS[:1], target=3)
    assert a.completeness_error < 0.01
    assert _n_hooks(m.model) == 0
    with pytest.raises(ValueError, match="probe_site"):
        Attributor(m, probe=head)


def test_bad_input(clf):
    with pytest.raises(ValueError, match="'method' parameter of Attributor must be one of .*; got 'lime'"):
        Attributor(clf, "lime")
    with pytest.raises(TypeError, match="sequence-classification"):
        Attributor(probekit.load_model(tiny_config("bert")), "saliency")
    with pytest.raises(ValueError, match="target 7 is outside"):
        Attributor(clf, "saliency").attribute(TEXTS[:1], target=7)
    with pytest.raises(ValueError, match="'baseline' parameter of Attributor.attribute must be one of"):
        Attributor(clf, "integrated_gradients").attribute(TEXTS[:1], baseline="zeros")
    with pytest.raises(ValueError, match="input 0 is empty"):
        Attributor(clf, "saliency").attribute([""])


def test_agreement():
    x = [np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])]
    df = agreement({"a": x, "b": [v * 2 for v in x], "c": [v[::-1] for v in x]})
    mean = df.groupby(["a", "b"])["spearman"].mean()
    assert mean[("a", "b")] == pytest.approx(1.0)
    assert mean[("a", "c")] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one array per example"):
        agreement({"a": x, "b": x[:1]})


def test_a_quantized_model_is_refused_for_gradient_methods_with_what_to_do(clf):
    """An int8 variant gave a raw autograd RuntimeError; now: quantized kernels have no gradients, and what to do."""
    from probekit.variants import quantize

    q = quantize(clf, method="dynamic-int8")
    with pytest.raises(ValueError, match=r"integrated_gradients needs gradients.*is quantized \(\d+ int8 modules.*"
                                         r"its float parent.*method='blank_out'"):
        Attributor(q, "integrated_gradients")
    with pytest.raises(ValueError, match="saliency needs gradients"):
        Attributor(q.model, "saliency")
    out = Attributor(q, "blank_out").attribute(TEXTS[:1], target=0)  # forward passes only: works
    assert np.isfinite(out[0].scores).all()


def test_attribute_leaves_the_model_in_its_own_mode(clf):
    clf.model.train()
    try:
        Attributor(clf, "saliency").attribute(TEXTS[:1])
        assert clf.model.training and all(m.training for m in clf.model.modules())
    finally:
        clf.model.eval()


def test_the_methods_are_one_table():
    import typing

    from probekit.attribution import _core

    assert tuple(_core._RUNNERS) == _core.METHODS == typing.get_args(_core.Method)
