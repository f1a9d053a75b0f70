"""The PyTorch side of the fine-tuned MiniLM models (:mod:`sentiment.finetuned`): the network, loading the packaged
encoder, merging an adapter, exporting the ONNX graph, PyTorch inference, and what training needs.

Kept apart so that scoring on ONNX Runtime never imports torch (about 200 MB of resident memory and a second of
start-up per process): :mod:`sentiment.finetuned` imports this module only for an export, the PyTorch runtime or
training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentiment.base import LABELS, ScorerError
from sentiment.finetuned import Adapter, check_encoder, default_encoder_dir


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding excluded (fp32 whatever the autocast dtype)."""
    weights = mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class SentimentNet(nn.Module):
    """Encoder -> mean pooling -> linear layer to the 3 classes (logits)."""

    def __init__(self, encoder: nn.Module, n_labels: int = len(LABELS)) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.config.hidden_size), n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask))


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers 5 prints a load report for the (unused) pooler weights it skips: not worth a warning."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def load_base(encoder_dir: Path | None = None) -> tuple[nn.Module, Any]:
    """The plain encoder (fp32, no pooler) and its tokenizer, from a local directory; no network."""
    from transformers import AutoModel, AutoTokenizer

    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    try:
        with _quiet_transformers():
            encoder, info = AutoModel.from_pretrained(
                encoder_dir, add_pooling_layer=False, dtype=torch.float32, output_loading_info=True
            )
            tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    except (OSError, ValueError) as exc:
        raise ScorerError(f"the encoder in {encoder_dir} cannot load: {exc}") from None
    if info.get("missing_keys"):
        raise ScorerError(f"the encoder in {encoder_dir} lacks weights: {sorted(info['missing_keys'])[:5]}")
    return encoder, tokenizer


def merge_adapter(encoder: nn.Module, adapter: Adapter) -> nn.Module:
    """Fold the adapter into a plain encoder in place: ``W += scale * B @ A``, then the replaced parameters."""
    with torch.no_grad():
        for name, (a, b, scale) in adapter.lora.items():
            try:
                layer = encoder.get_submodule(name)
            except AttributeError:
                raise ScorerError(f"the adapter names a layer {name!r} that the encoder does not have") from None
            delta = torch.from_numpy(b.astype(np.float32)) @ torch.from_numpy(a.astype(np.float32))
            if delta.shape != layer.weight.shape:
                raise ScorerError(f"adapter {name}: shape {tuple(delta.shape)} != weight {tuple(layer.weight.shape)}")
            layer.weight.add_(delta.mul_(scale).to(layer.weight.device, layer.weight.dtype))
        for name, value in adapter.params.items():
            try:
                param = encoder.get_parameter(name)
            except AttributeError:
                raise ScorerError(f"the adapter names a parameter {name!r} that the encoder does not have") from None
            if tuple(param.shape) != value.shape:
                raise ScorerError(f"adapter {name}: shape {value.shape} != parameter {tuple(param.shape)}")
            param.copy_(torch.from_numpy(value.astype(np.float32)))
    return encoder


def build_model(
    adapter: Adapter, encoder_dir: Path | None = None, *, check_base: bool = True
) -> tuple[SentimentNet, Any]:
    """The packaged (or given) encoder with the adapter merged and its head, in eval mode, plus the tokenizer."""
    encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
    if check_base:
        check_encoder(adapter, encoder_dir)
    encoder, tokenizer = load_base(encoder_dir)
    merge_adapter(encoder, adapter)
    model = SentimentNet(encoder)
    with torch.no_grad():
        if tuple(model.head.weight.shape) != adapter.head_weight.shape:
            raise ScorerError(f"head shape {adapter.head_weight.shape} does not fit the encoder")
        model.head.weight.copy_(torch.from_numpy(adapter.head_weight.astype(np.float32)))
        model.head.bias.copy_(torch.from_numpy(adapter.head_bias.astype(np.float32)))
    return model.eval(), tokenizer


def layernorm_params(encoder: nn.Module) -> list[str]:
    """Names of the LayerNorm weights and biases of a module."""
    return [f"{mname}.{pname}" for mname, module in encoder.named_modules() if isinstance(module, nn.LayerNorm)
            for pname, _ in module.named_parameters(recurse=False)]


def export_adapter(
    model: SentimentNet, meta: dict[str, Any], *, dtype: str = "float16", layernorm: bool = True
) -> Adapter:
    """A trained model whose encoder carries peft LoRA layers -> an :class:`Adapter` (factors in ``dtype``;
    with ``layernorm``, the LayerNorm parameters too; the head always, in float32). Needs no peft import."""
    lora = {}
    for name, module in model.encoder.named_modules():
        if "default" in (getattr(module, "lora_A", None) or {}):
            a = module.lora_A["default"].weight.detach().float().cpu().numpy().astype(dtype)
            b = module.lora_B["default"].weight.detach().float().cpu().numpy().astype(dtype)
            lora[name] = (a, b, float(module.scaling["default"]))
    state = dict(model.encoder.named_parameters())
    params = {name: state[name].detach().float().cpu().numpy() for name in layernorm_params(model.encoder)
              } if layernorm else {}
    return Adapter(lora=lora, params=params, head_weight=model.head.weight.detach().float().cpu().numpy(),
                   head_bias=model.head.bias.detach().float().cpu().numpy(), meta=meta)


def export_graph(adapter: Adapter, encoder_dir: Path, target: Path) -> None:
    """The merged model (encoder, mean pooling, head, softmax) as an ONNX graph at ``target``."""
    from sentiment import runtime as rt

    model, _ = build_model(adapter, encoder_dir, check_base=False)
    example = torch.ones((2, 8), dtype=torch.long)
    net = rt.wrap(model, lambda m, ids, mask: torch.softmax(m(ids, mask), dim=-1))
    rt.export_graph(net, (example, torch.ones_like(example)), target)


def export_file_graph(weights: str, encoder_dir: str, target: Path) -> None:
    """:func:`export_graph` of an adapter file (what a child process runs, see
    :func:`sentiment.child_export.exports_in_child`)."""
    export_graph(Adapter.load(Path(weights)), Path(encoder_dir), target)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (ids, attention mask), padded to the longest of the batch only."""
    from sentiment.runtime import pad

    ids, mask = pad(seqs, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def predict_logits(
    model: nn.Module,
    ids: Sequence[Sequence[int]],
    pad_id: int,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    autocast: torch.dtype | None = None,
) -> np.ndarray:
    """Logits (n, 3) float32 for tokenised texts: length-sorted batches, dynamic padding, one host copy."""
    n = len(ids)
    if n == 0:
        return np.zeros((0, len(LABELS)), np.float32)
    device = torch.device(device)
    order = np.argsort([len(s) for s in ids], kind="stable")
    was_training = model.training
    model.eval()
    parts = []
    ctx = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        for start in range(0, n, batch_size):
            batch, mask = pad_batch([ids[i] for i in order[start : start + batch_size]], pad_id)
            parts.append(model(batch.to(device, non_blocking=True), mask.to(device, non_blocking=True)).float())
    model.train(was_training)
    out = np.empty((n, len(LABELS)), np.float32)
    out[order] = torch.cat(parts).cpu().numpy()
    return out
