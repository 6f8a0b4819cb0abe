"""One interface over captum's attribution methods, for classifiers and probes.

What is explained and where is fixed at construction (``Attributor(model,
method, ...)``); data and algorithm settings go to the call
(``attribute(inputs, baseline=..., target=..., n_steps=...)``), as in captum.

Every method attributes a scalar output ``f`` (the target class probability
by default) to the token positions of the embedding layer's output (or of
``site`` for layer conductance). Per-token scores are the attribution summed
over the hidden dimension; ``normalised`` divides them by their L2 norm.

Baselines: each content token is replaced by the pad token (``"pad"``, the
default), the mask token (``"mask"``) or the unknown-word token (``"unk"``,
the blank-out of Abnar & Zuidema 2020); special tokens ([CLS], [SEP]) stay,
so the baseline is a sentence of the same length with no content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Literal, get_args

import captum.attr as ca
import numpy as np
import torch
from torch import nn

from probekit.attribution._results import Attribution, attribution_results
from probekit.model import HookedModel, Site, as_hooked_model, capture
from probekit.results import Results
from probekit.validation import Interval, Options, declare, validate_params

__all__ = ["Attributor", "Attribution", "METHODS"]

logger = logging.getLogger(__name__)

Method = Literal["integrated_gradients", "layer_conductance", "saliency", "input_x_gradient", "deeplift",
                 "gradient_shap", "attention_x_gradient", "blank_out"]
#: a head over one site's activations: ``[batch, tokens, d], mask [batch, tokens] -> logits [batch, classes]``
ProbeHead = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


#: The method names, in the order of the method table (``typing.get_args(Method)`` lists the same).
METHODS: tuple[str, ...] = get_args(Method)

#: Methods that run the model forward only (no gradients), so they also explain quantized models.
GRADIENT_FREE = ("blank_out",)
_POSITIVE = Interval(Integral, 1, None, closed="left")


def _check_gradients(model: HookedModel, method: str, is_variant: bool) -> None:
    """Refuse a gradient method on a model whose quantized kernels have no gradients, saying what to do."""
    quantized = [name for name, m in model.model.named_modules()
                 if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized"))]
    if not quantized:
        return
    parent = ("its float parent (the model it was quantized from: the variant's float_model, or the model "
              "folder it was made from)" if is_variant else "the float model it was quantized from")
    raise ValueError(f"{method} needs gradients, and {model.name!r} is quantized ({len(quantized)} int8 modules, "
                     f"e.g. {quantized[0]!r}): quantized kernels have no gradients. Attribute {parent} instead, or "
                     f"use method='blank_out', which runs the model forward only")


class _Forward(nn.Module):
    """``ids, mask -> f`` as an nn.Module (DeepLift wants a module)."""

    def __init__(self, hooked: HookedModel, probe: ProbeHead | None, site: Site | None, output: str,
                 interventions=()):
        super().__init__()
        self.hooked = hooked
        self.interventions = list(interventions)
        self.probe = probe
        self.site = site
        self.output = output
        self.inner = hooked.model

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # token ids, or word embeddings for the methods that interpolate their inputs
        key = "inputs_embeds" if inputs.is_floating_point() else "input_ids"
        kwargs = {key: inputs, "attention_mask": attention_mask.expand(inputs.shape[0], -1)}
        if self.probe is None:
            with self.hooked.intervening(self.interventions):
                logits = self.inner(**kwargs).logits
        else:
            got: dict = {}
            module, hook = self.hooked.module_of(self.site)
            with self.hooked.intervening(self.interventions), \
                    capture({self.site: (module, hook)}, got.__setitem__, detach=False):
                self.inner(**kwargs)
            logits = self.probe(got[self.site], kwargs["attention_mask"])
        return logits.softmax(-1) if self.output == "prob" else logits


class Attributor:
    """Attribute a classifier's (or a probe's) prediction to input tokens.

    Parameters
    ----------
    model : HookedModel or ModelVariant
        A sequence-classification model, or any model when ``probe`` is given.
    method : str
        One of :data:`METHODS`.
    probe : callable, optional
        ``(activations [B, T, d], mask [B, T]) -> logits [B, C]`` applied to
        ``probe_site``: attributes the probe's prediction through the frozen
        model (e.g. which tokens a layer-6 UPOS probe relies on).
    probe_site : Site or str, optional
        The site the probe reads (required with ``probe``).
    site : Site or str, optional
        Layer whose tokens receive the attribution for ``layer_conductance``
        (default ``emb``) and whose attention is used by
        ``attention_x_gradient`` (default: the last block).
    output : {"prob", "logit"}
        Explain the target class probability (default) or its logit.
    interventions : sequence, optional
        Interventions (:mod:`probekit.interventions`) applied during every
        forward pass: attributes the intervened model's prediction.
    """

    #: What each setting accepts (checked in the constructor; :meth:`attribute` declares its own).
    _parameter_constraints = {
        "method": [Options(METHODS)],
        "output": [Options({"prob", "logit"})],
        "probe": ["callable", None],
    }

    def __init__(self, model: HookedModel, method: Method = "integrated_gradients", *,
                 probe: ProbeHead | None = None, probe_site: Site | str | None = None,
                 site: Site | str | None = None, output: Literal["prob", "logit"] = "prob", interventions=()):
        validate_params(Attributor, locals())
        float_parent = getattr(model, "float_model", None)
        model = as_hooked_model(model)
        if method not in GRADIENT_FREE:
            _check_gradients(model, method, float_parent is not None)
        if probe is None and not type(model.model).__name__.endswith("ForSequenceClassification"):
            raise TypeError("attribution needs a sequence-classification model (load_model(..., "
                            "head='sequence-classification')) or a probe head with probe_site")
        if probe is not None and probe_site is None:
            raise ValueError("a probe needs probe_site, the site whose activations it reads")
        self.model = model
        self.method = method
        self.output = output
        self.probe_site = model.site(probe_site) if probe_site is not None else None
        from probekit.model import as_interventions

        self.interventions = as_interventions(interventions)
        self.forward = _Forward(model, probe, self.probe_site, output, self.interventions)
        default = Site(model.n_layers - 1, "attn.pattern") if method == "attention_x_gradient" else Site(None, "emb")
        self.site = model.site(site) if site is not None else default
        if method == "attention_x_gradient" and not self.site.is_attention:
            raise ValueError(f"attention_x_gradient reads an attn.pattern site, not {self.site}")

    # ------------------------------------------------------------------
    def _embedding_module(self) -> nn.Module:
        hook = self.model.adapter.embed_hook(self.model.base)
        return self.model.base.get_submodule(hook.path)

    def _layer(self) -> nn.Module:
        if self.site.component == "emb":
            return self._embedding_module()
        if self.site.component != "resid":
            raise ValueError(f"layer attribution reads a residual site (emb or L{{i}}.resid), not {self.site}")
        return self.model.blocks[self.site.layer]

    def _baseline_ids(self, ids: torch.Tensor, special: Sequence[bool], baseline: str) -> torch.Tensor:
        tok = self.model.tokenizer
        fill = {"pad": tok.pad_token_id, "mask": tok.mask_token_id, "unk": tok.unk_token_id}.get(baseline, "?")
        if fill == "?":
            raise ValueError(f"baseline must be 'pad', 'mask' or 'unk', not {baseline!r}")
        if fill is None:
            raise ValueError(f"the tokenizer has no {baseline} token; use another baseline")
        out = ids.clone()
        out[0, ~torch.tensor(special)] = fill
        return out

    @declare({
        "target": [Interval(Integral, 0, None, closed="left"), None],
        "baseline": [Options({"pad", "mask", "unk"})],
        "n_steps": [_POSITIVE],
        "internal_batch_size": [_POSITIVE],
        "n_samples": [_POSITIVE],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "max_delta": [Interval(Real, 0, None, closed="left")],
    })
    def attribute(self, inputs, *, target: int | None = None, baseline: str = "pad", n_steps: int = 50,
                  internal_batch_size: int = 16, n_samples: int = 20, seed: int = 0,
                  max_delta: float = 0.01) -> list[Attribution]:
        """Attribute each input separately (bounded memory: one example at a time).

        Parameters
        ----------
        inputs : str or list of str / word lists
        target : int, optional
            Class to explain; default the predicted class of each example.
        baseline : {"pad", "mask", "unk"}
        n_steps : int
            Integration steps (integrated gradients, conductance).
        internal_batch_size : int
            Steps (integrated gradients, conductance) or blanked-out copies
            (blank-out) evaluated per forward pass, which bounds memory.
        n_samples : int
            Samples of gradient SHAP (seeded with ``seed``).
        max_delta : float
            Integrated gradients whose completeness error exceeds this
            fraction log a warning.
        """
        validate_params(Attributor.attribute, locals())
        batch = self.model.tokenize(inputs)  # long inputs are refused with the example named
        results = []
        with self.model.evaluating():  # the model's own train()/eval() mode comes back after
            for ex in batch.examples:
                ids = torch.tensor([ex.input_ids], device=self.model.device)
                mask = torch.ones_like(ids)
                special = [w is None for w in ex.word_ids]
                base_ids = self._baseline_ids(ids, special, baseline)
                with torch.no_grad():
                    probs = self.forward(ids, mask)
                    f_base_all = self.forward(base_ids, mask)
                tgt = int(probs.argmax(-1)) if target is None else int(target)
                if not 0 <= tgt < probs.shape[-1]:
                    raise ValueError(f"target {tgt} is outside the model's {probs.shape[-1]} classes")
                scores, delta, extra = self._run(ids, base_ids, mask, tgt, n_steps, internal_batch_size, n_samples,
                                                 seed)
                has_completeness = self.method in ("integrated_gradients", "deeplift", "gradient_shap")
                a = Attribution(self.method, self.model.tokenizer.convert_ids_to_tokens(list(ex.input_ids)),
                                scores, tgt, float(probs[0, tgt]),
                                float(f_base_all[0, tgt]) if has_completeness else None, delta, extra,
                                site=str(self.site), n_blocks=self.model.n_layers)
                if self.method == "integrated_gradients" and a.completeness_error > max_delta:
                    logger.warning("integrated gradients: completeness error %.3g > %.3g for %r; raise n_steps",
                                   a.completeness_error, max_delta, ex.text[:60])
                results.append(a)
        return results

    def run(self, inputs, *, task: str = "attribution", **kwargs) -> Results:
        """The attributions of ``inputs`` as tidy result rows, as every suite's ``run`` gives.

        ``kwargs`` are those of :meth:`attribute`; see
        :func:`probekit.attribution.attribution_results` for the rows.

        Examples
        --------
        >>> import probekit
        >>> m = probekit.load_model(probekit.model.tiny_config(), head="sequence-classification", num_labels=2)
        >>> res = Attributor(m, "saliency").run(["a fine film"])
        >>> sorted(set(res.to_frame()["metric"]))[:1]
        ['saliency']
        """
        return attribution_results({self.method: self.attribute(inputs, **kwargs)}, task=task,
                                   model=str(self.model.name))

    def _run(self, ids, base_ids, mask, tgt, n_steps, ibs, n_samples, seed):
        run = _Run(self, ids, base_ids, mask, tgt, n_steps, ibs, n_samples, seed)
        attr, delta, summed = _RUNNERS[self.method](run)
        if isinstance(attr, tuple):
            attr = attr[0]
        if isinstance(attr, np.ndarray):
            return attr, delta, {}
        scores = attr[0].detach().double()
        return (scores.sum(-1) if summed else scores).cpu().numpy(), delta, {}

    def _attention_x_gradient(self, ids, mask, tgt) -> np.ndarray:
        module, hook = self.model.module_of(self.site)
        got: dict = {}
        with self.model.eager_attention(), capture({self.site: (module, hook)}, got.__setitem__, detach=False):
            with torch.enable_grad():
                out = self.forward(ids, mask)[0, tgt]
                attn = got[self.site]
                (grad,) = torch.autograd.grad(out, attn)
        # per attended token: sum over heads and queries of attention times its gradient
        return (attn * grad)[0].sum(dim=(0, 1)).detach().double().cpu().numpy()


class _Run:
    """One example's attribution inputs, as every method in :data:`_RUNNERS` reads them."""

    def __init__(self, attributor, ids, base_ids, mask, tgt, n_steps, ibs, n_samples, seed):
        self.a, self.f = attributor, attributor.forward
        self.ids, self.base_ids, self.mask, self.tgt = ids, base_ids, mask, tgt
        self.n_steps, self.ibs, self.n_samples, self.seed = n_steps, ibs, n_samples, seed

    def layer(self, cls, **kw):
        return cls(self.f, self.a._embedding_module(), **kw)

    def embedded(self):
        emb = self.a.model.model.get_input_embeddings()
        return emb(self.ids).detach(), emb(self.base_ids).detach()


def _integrated_gradients(r: _Run):
    attr, d = r.layer(ca.LayerIntegratedGradients).attribute(
        r.ids, r.base_ids, target=r.tgt, additional_forward_args=(r.mask,), n_steps=r.n_steps,
        internal_batch_size=r.ibs, return_convergence_delta=True)
    return attr, float(d.item()), True


def _layer_conductance(r: _Run):
    x, base = r.embedded()
    attr = ca.LayerConductance(r.f, r.a._layer()).attribute(
        x, base, target=r.tgt, additional_forward_args=(r.mask,), n_steps=r.n_steps, internal_batch_size=r.ibs)
    return attr, None, True


def _saliency(r: _Run):
    attr = r.layer(ca.LayerGradientXActivation, multiply_by_inputs=False).attribute(
        r.ids, target=r.tgt, additional_forward_args=(r.mask,))
    return attr.abs(), None, True


def _input_x_gradient(r: _Run):
    return r.layer(ca.LayerGradientXActivation).attribute(r.ids, target=r.tgt, additional_forward_args=(r.mask,)), \
        None, True


def _deeplift(r: _Run):
    attr, d = r.layer(ca.LayerDeepLift).attribute(r.ids, r.base_ids, target=r.tgt, additional_forward_args=(r.mask,),
                                                 return_convergence_delta=True)
    return attr, float(d.sum().item()), True


def _gradient_shap(r: _Run):
    torch.manual_seed(r.seed)
    x, base = r.embedded()
    attr, d = r.layer(ca.LayerGradientShap).attribute(x, base, n_samples=r.n_samples, target=r.tgt,
                                                      additional_forward_args=(r.mask,),
                                                      return_convergence_delta=True)
    return attr, float(d.mean().item()), True


def _attention_x_gradient_run(r: _Run):
    return r.a._attention_x_gradient(r.ids, r.mask, r.tgt), None, False


def _blank_out(r: _Run):
    """The drop in f when each content token alone is replaced by the baseline token."""
    feature_mask = torch.arange(r.ids.shape[1], device=r.ids.device)[None]
    attr = ca.FeatureAblation(r.f).attribute(r.ids, r.base_ids, target=r.tgt, additional_forward_args=(r.mask,),
                                             feature_mask=feature_mask, perturbations_per_eval=r.ibs)
    return attr, None, False


#: The attribution methods, by name: each turns one example's inputs into ``(scores, convergence delta, whether
#: the scores are summed over the hidden dimension)``. :data:`METHODS` is this table's keys.
_RUNNERS: dict[str, Callable[[_Run], tuple]] = {
    "integrated_gradients": _integrated_gradients, "layer_conductance": _layer_conductance, "saliency": _saliency,
    "input_x_gradient": _input_x_gradient, "deeplift": _deeplift, "gradient_shap": _gradient_shap,
    "attention_x_gradient": _attention_x_gradient_run, "blank_out": _blank_out,
}
