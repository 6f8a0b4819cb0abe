"""Model variants: fine-tuned, pruned, quantized, distilled and exported models.

Each step makes a :class:`ModelVariant`: a :class:`~probekit.HookedModel` plus
a frozen recipe, its lineage and a :class:`LayerMap` back to the base model.
A variant hooks through the same sites as its base, saves to a folder that
:func:`probekit.load_model` reads back, and compares layer by layer with its
base.

One line per file:

- ``_checks``: Checks that a training run learned something: warnings that name the numbers.
- ``_data``: Training data for variants: one simple input contract, and the fixed Rotten Tomatoes split.
- ``_distill``: Knowledge distillation into a smaller student (DistilBERT-style initialisation).
- ``_export``: Export a model or variant to TorchScript, ``torch.export`` or ONNX, with a parity check and latency.
- ``_heads``: Structured pruning: attention heads and feed-forward neurons, physically removed.
- ``_load``: Loading saved variants: :func:`load_variant`, and :func:`load_model` (``probekit.load_model``), the
  one public loader.
- ``_prune``: Unstructured magnitude pruning with torch's pruning utilities, made permanent.
- ``_quantize``: Post-training quantization of the linear layers.
- ``_recipes``: Recipes: frozen, validated descriptions of how a variant was made.
- ``_recover``: Recovery fine-tuning after pruning: what was pruned stays pruned.
- ``_trainer``: Fine-tuning on top of the Hugging Face ``Trainer``.
- ``_variant``: ``ModelVariant``: a model plus the recipe that made it and a layer map to its base.

Examples
--------
Fine-tune a (here tiny, randomly initialised) classifier, quantize it, save
and load it back:

>>> import probekit, tempfile, transformers
>>> from probekit.variants import finetune, quantize
>>> cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
...                               intermediate_size=37)
>>> texts, labels = ["a fine film", "a dull film", "great fun", "long and boring"] * 4, [1, 0, 1, 0] * 4
>>> runs = tempfile.mkdtemp()
>>> ft = finetune(cfg, (texts, labels), epochs=1, lr=1e-3, batch_size=4, out=runs + "/ft", progress=False)
>>> q = quantize(ft, method="dynamic-int8")
>>> path = q.save(runs + "/int8")
>>> probekit.load_model(path).recipe.method   # a ModelVariant
'dynamic-int8'
"""

from probekit.variants._checks import TrainingWarning
from probekit.variants._data import as_frame, rotten_tomatoes_splits
from probekit.variants._distill import distill, distill_loss, hidden_cosine_loss, init_student
from probekit.variants._export import (
    ExportedModel,
    LatencyComparison,
    compare_latency,
    export,
    fixed_threads,
    measure_latency,
    parameter_count,
    state_dict_bytes,
)
from probekit.variants._heads import ATTENTION_TABLES, head_magnitudes, prune_heads
from probekit.variants._load import is_variant_folder, load_model, load_variant
from probekit.variants._prune import magnitude_prune, sparsity_report
from probekit.variants._quantize import WeightOnlyLinear, quantize
from probekit.variants._recipes import (
    DistillRecipe,
    FinetuneRecipe,
    HeadPruneRecipe,
    MagnitudePruneRecipe,
    QuantizeRecipe,
    Recipe,
    recipe_from_dict,
)
from probekit.variants._trainer import evaluate, finetune, predict_logits
from probekit.variants._variant import LayerMap, ModelVariant

__all__ = [
    "ModelVariant", "LayerMap", "load_variant", "load_model", "is_variant_folder",
    "Recipe", "FinetuneRecipe", "MagnitudePruneRecipe", "HeadPruneRecipe", "QuantizeRecipe", "DistillRecipe",
    "recipe_from_dict",
    "finetune", "evaluate", "predict_logits", "TrainingWarning",
    "magnitude_prune", "sparsity_report",
    "prune_heads", "head_magnitudes", "ATTENTION_TABLES",
    "quantize", "WeightOnlyLinear",
    "distill", "init_student", "distill_loss", "hidden_cosine_loss",
    "export", "ExportedModel", "measure_latency", "compare_latency", "LatencyComparison", "fixed_threads",
    "parameter_count", "state_dict_bytes",
    "as_frame", "rotten_tomatoes_splits",
]
