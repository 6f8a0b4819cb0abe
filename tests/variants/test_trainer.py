import pytest
import torch
from transformers import TrainerCallback
from transformers.trainer_pt_utils import safe_globals

import probekit
from probekit.variants import FinetuneRecipe, evaluate, finetune

RECIPE = FinetuneRecipe(epochs=2, lr=2e-3, batch_size=8, grad_accum=2, precision="bf16", max_length=32,
                        early_stopping=None, warmup_ratio=0.0)


class _Interrupt(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("simulated crash after the first checkpoint")


def test_loss_goes_down_with_accumulation_and_bf16(bert_cls, rt_small, tmp_path, capsys):
    v = finetune(bert_cls, rt_small, RECIPE, eval_data=rt_small[:16], out=tmp_path / "ft", progress=False)
    assert capsys.readouterr().out == ""  # no progress: the Trainer's log dicts stay in the report, not on stdout
    losses = v.report["losses"]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    assert v.report["precision"]["bf16"]
    # loss is a per-example mean (not summed over the accumulation steps)
    assert losses[0] < 1.0
    ev = v.report["eval"]
    assert {"accuracy", "macro_f1", "report", "confusion"} <= set(ev)
    assert len(v.report["history"]) == 2  # evaluated each epoch
    # best checkpoint: safetensors + config + tokenizer + recipe, nothing pickled
    files = {p.name for p in (tmp_path / "ft").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "recipe.json", "layer_map.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))]
    back = probekit.load_model(tmp_path / "ft")
    assert back.recipe == RECIPE
    assert evaluate(back, rt_small[:16])["accuracy"] == ev["accuracy"]
    # accelerate's autocast wrapper is gone: inference runs in float32
    assert "forward" not in v.model.model.__dict__


def test_interrupted_finetune_resumes(bert_cls, rt_small, tmp_path):
    full = finetune(bert_cls, rt_small, RECIPE, out=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        finetune(bert_cls, rt_small, RECIPE, out=tmp_path / "b", progress=False, callbacks=[_Interrupt()])
    assert list((tmp_path / "b" / "checkpoints").glob("checkpoint-*"))
    # every file of a checkpoint loads without unrestricted unpickling
    for ckpt in (tmp_path / "b" / "checkpoints").glob("checkpoint-*"):
        names = {p.name for p in ckpt.iterdir()}
        assert "training_args.json" in names and "training_args.bin" not in names
        for f in ckpt.iterdir():
            if f.suffix in (".safetensors", ".json", ".txt", ".jinja"):
                continue
            assert f.suffix in (".pt", ".pth"), f.name
            with safe_globals():  # the RNG state holds numpy arrays: allow-listed numpy types only, as on resume
                torch.load(f, weights_only=True)  # raises on anything but tensors, containers and those
    resumed = finetune(bert_cls, rt_small, RECIPE, out=tmp_path / "b", progress=False, resume=True)
    assert resumed.report["resumed_from"] is not None
    assert resumed.report["global_step"] == full.report["global_step"]
    for (n, a), (_, b) in zip(full.model.model.named_parameters(), resumed.model.model.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=n)


def test_fp16_on_cpu_is_a_clear_error(bert_cls, rt_small):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="fp16"):
        finetune(bert_cls, rt_small, FinetuneRecipe(precision="fp16"), progress=False)


def test_a_model_without_the_task_head_is_a_clear_error(rt_small):
    import transformers

    bare = probekit.load_model(transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                       intermediate_size=37), seed=0)
    with pytest.raises(ValueError, match="needs a model with a sequence-classification head.*BertModel without one"):
        finetune(bare, rt_small, RECIPE, progress=False)
    with pytest.raises(ValueError, match="token-classification head"):
        finetune(bare, rt_small, FinetuneRecipe(task="token-classification"), progress=False)


def test_predict_logits_and_evaluate_need_a_classifier_and_say_so(rt_small):
    """A model without a classification head gave AttributeError: ... 'logits'."""
    from probekit.variants import predict_logits
    from tests.conftest import tiny_config

    bare = probekit.load_model(tiny_config("bert"), seed=0)
    with pytest.raises(ValueError, match=r"need a sequence classifier, and 'random-bert' is a BertModel without a "
                                         r"classification head.*head='sequence-classification'"):
        predict_logits(bare, ["a fine film"])
    with pytest.raises(ValueError, match="need a sequence classifier"):
        evaluate(bare, rt_small.head(4))


def test_predict_logits_restores_train_mode(rt_small):
    from probekit.variants import predict_logits
    from tests.variants.conftest import tiny_classifier

    clf = tiny_classifier()
    clf.model.train()
    predict_logits(clf, list(rt_small["text"][:3]))
    assert clf.model.training
