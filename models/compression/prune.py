"""Structured pruning of BERT-style encoders: attention heads and FFN neurons, scored and then really removed.

Importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): a mask of ones multiplies each head's
output (and each FFN neuron's activation); the importance of a unit is the mean |d loss / d mask| over batches of
labelled data. The masks are applied by forward pre-hooks on the output projections, so any encoder whose layers
look like BERT's (`attention.output.dense`, `intermediate.dense`, `output.dense`) can be scored.

Removal slices the nn.Linear weights (query/key/value rows and the attention output's columns per head; the FFN's
rows and columns per neuron): masks alone give no speed. transformers 5 dropped `prune_heads`, and its BertConfig
cannot say "fewer heads per layer" (head size = hidden / heads), so every layer keeps the same number of heads and
the count is recorded in the config as `zero2one_heads_kept`; `load_compressed` rebuilds that shape before it loads
the weights. FFN pruning keeps `intermediate_size` uniform, which a plain config expresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

HEADS_KEY = "zero2one_heads_kept"  # config field: heads kept in every layer of a head-pruned model


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer blocks of a BERT-like classifier (BERT, RoBERTa, ELECTRA, XLM-R share this layout)."""
    try:
        return model.base_model.encoder.layer
    except AttributeError as e:
        raise ValueError(f"{type(model).__name__}: not a BERT-style encoder (no base_model.encoder.layer)") from e


def head_size(model: PreTrainedModel) -> int:
    return model.config.hidden_size // model.config.num_attention_heads


def _masked_input(mask: torch.Tensor, group: int):
    """A pre-hook multiplying the last dim of a Linear's input by `mask`, each entry covering `group` features."""

    def hook(module, args):
        x = args[0]
        gate = mask.repeat_interleave(group).to(x.dtype)
        return (x * gate,)

    return hook


def importance(model: PreTrainedModel, batches: Iterable[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(head importance [layers, heads], FFN neuron importance [layers, neurons]): mean |grad| of the loss on masks.

    `batches` are model inputs with `labels`. The model's weights are left unchanged (their grads are cleared).
    """
    layers = encoder_layers(model)
    dim = head_size(model)
    heads = [layer.attention.output.dense.in_features // dim for layer in layers]
    neurons = [layer.output.dense.in_features for layer in layers]
    head_masks = [torch.ones(h, requires_grad=True) for h in heads]
    ffn_masks = [torch.ones(n, requires_grad=True) for n in neurons]
    hooks = []
    for layer, hm, fm in zip(layers, head_masks, ffn_masks, strict=True):
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(_masked_input(hm, dim)))
        hooks.append(layer.output.dense.register_forward_pre_hook(_masked_input(fm, 1)))
    head_score = torch.zeros(len(layers), max(heads))
    ffn_score = torch.zeros(len(layers), max(neurons))
    was_training, count = model.training, 0
    model.eval()  # no dropout: the gradient is the loss's, not the noise's
    try:
        for batch in batches:
            loss = model(**batch).loss
            grads = torch.autograd.grad(loss, head_masks + ffn_masks)
            for i in range(len(layers)):
                head_score[i, : heads[i]] += grads[i].abs()
                ffn_score[i, : neurons[i]] += grads[len(layers) + i].abs()
            count += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if count == 0:
        raise ValueError("importance: no batches to score the heads and neurons on")
    return head_score / count, ffn_score / count


def _rows(linear: nn.Linear, keep: torch.Tensor) -> None:
    """Keep the output features `keep` of `linear` (in place, new smaller Parameters)."""
    linear.weight = nn.Parameter(linear.weight.data[keep].clone())
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.data[keep].clone())
    linear.out_features = len(keep)


def _columns(linear: nn.Linear, keep: torch.Tensor) -> None:
    """Keep the input features `keep` of `linear`."""
    linear.weight = nn.Parameter(linear.weight.data[:, keep].clone())
    linear.in_features = len(keep)


def slice_ffn(layer: nn.Module, keep: torch.Tensor) -> None:
    """Remove every FFN neuron of `layer` not in `keep` (sorted indices)."""
    _rows(layer.intermediate.dense, keep)
    _columns(layer.output.dense, keep)


def slice_heads(layer: nn.Module, keep_heads: torch.Tensor, dim: int) -> None:
    """Remove every attention head of `layer` not in `keep_heads`; the forward reshapes with -1 heads."""
    keep = torch.cat([torch.arange(h * dim, (h + 1) * dim) for h in keep_heads.tolist()])
    attention = layer.attention
    for name in ("query", "key", "value"):
        _rows(getattr(attention.self, name), keep)
    _columns(attention.output.dense, keep)
    attention.self.num_attention_heads = len(keep_heads)
    attention.self.all_head_size = len(keep)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` largest scores, in their original order (so kept units keep their order)."""
    return torch.topk(scores, k).indices.sort().values


def prune(
    model: PreTrainedModel, head_scores: torch.Tensor, ffn_scores: torch.Tensor, heads: int | None, neurons: int | None
) -> dict[str, int]:
    """Keep the `heads` most important heads and `neurons` FFN neurons in every layer; returns what was removed.

    The same count in every layer keeps the model expressible as a config (see the module docstring) and the ONNX
    attention fusion uniform.
    """
    dim = head_size(model)
    removed = {"heads": 0, "neurons": 0}
    for i, layer in enumerate(encoder_layers(model)):
        now_heads = layer.attention.output.dense.in_features // dim
        now_neurons = layer.output.dense.in_features
        if heads is not None and heads < now_heads:
            slice_heads(layer, top_k(head_scores[i, :now_heads], heads), dim)
            removed["heads"] += now_heads - heads
        if neurons is not None and neurons < now_neurons:
            slice_ffn(layer, top_k(ffn_scores[i, :now_neurons], neurons))
            removed["neurons"] += now_neurons - neurons
    if heads is not None and heads < model.config.num_attention_heads:
        setattr(model.config, HEADS_KEY, heads)
    if neurons is not None:
        model.config.intermediate_size = min(neurons, model.config.intermediate_size)
    return removed


def load_compressed(model_dir: str | Path, **kwargs) -> PreTrainedModel:
    """A saved classifier, head-pruned or not: the pruned shape is rebuilt from the config, then weights load."""
    config = AutoConfig.from_pretrained(str(model_dir), **kwargs)
    heads = getattr(config, HEADS_KEY, None)
    if heads is None:
        return AutoModelForSequenceClassification.from_pretrained(str(model_dir), **kwargs)
    from safetensors.torch import load_file

    model = AutoModelForSequenceClassification.from_config(config)
    dim = config.hidden_size // config.num_attention_heads
    for layer in encoder_layers(model):
        slice_heads(layer, torch.arange(heads), dim)
    state = load_file(str(Path(model_dir) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if "position_ids" not in k] or unexpected:
        raise ValueError(
            f"{model_dir}: weights do not fit the pruned shape: missing {missing}, unexpected {unexpected}"
        )
    return model.eval()
