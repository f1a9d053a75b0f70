"""``transformer:<hub id or local path>``: any Hugging Face sequence-classification model whose labels are
negative / neutral / positive, run efficiently on CPU or GPU.

Name syntax: ``transformer:<id or path>[@revision][?option&option...]`` with options

- ``labels=negative,neutral,positive``: the class order, for a model whose config only says ``LABEL_0`` ...
  (take it from the model card; nothing is guessed);
- ``precision=auto|fp32|bf16|fp16|int8``: ``fp32`` runs on ONNX Runtime (an exported graph, cached; see
  :mod:`sentiment.runtime`) or PyTorch, with the same probabilities; ``bf16`` runs matrix products in
  bfloat16 (PyTorch autocast); ``fp16`` likewise on a CUDA GPU; ``int8`` quantises the linear layers
  dynamically (CPU only: ONNX Runtime's quantisation, id ``+onnx-int8``, or torch's when ONNX Runtime is
  unusable, id ``+int8``). ``auto`` (the default) is ``bf16`` where the hardware computes bfloat16 natively
  (CPUs with AVX512-BF16 or AMX, Ampere+ GPUs), ``fp16`` on other GPUs and ``fp32`` elsewhere. Measured on
  real weights (all-MiniLM-L6-v2 + our head, val.tsv, ``benchmarks/bench_precision.py``): bf16 kept 99.95%
  of fp32's labels, int8 far fewer (see docs/models.md), so int8 is never chosen automatically. Reduced
  precision is part of the stored model id;
- ``max_length=N``: read at most N tokens (default: the model's limit).

What it does: preprocesses like the cardiffnlp model cards (``@user``, ``http``); keeps the head and the tail
of posts longer than the model's limit (a quarter of the budget from the start, three quarters from the
end); sorts a batch by token length and pads each mini-batch only to its own longest post; runs under
``torch.inference_mode``; uses every CPU this process may use (one intra-op thread each, one inter-op
thread) unless ``OMP_NUM_THREADS`` says otherwise; uses a GPU when one is present.

Loading never hangs: a model already in the local Hugging Face cache loads with no network; otherwise the
hub is contacted only if it answers a TCP connect within :data:`~sentiment.hub.HUB_CHECK_SECONDS` (and not at
all under ``HF_HUB_OFFLINE=1``), else a :class:`~sentiment.base.ScorerError` says what to do.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.hub import HUB_CHECK_SECONDS as HUB_CHECK_SECONDS  # re-exported: the probe moved to sentiment.hub
from sentiment.hub import cached_locally, go_offline, hub_offline, hub_unreachable
from sentiment.preprocess import clip_chars, head_tail, normalize_social

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cardiffnlp/twitter-roberta-base-sentiment-latest"
MULTILINGUAL_MODEL = "cardiffnlp/twitter-xlm-roberta-base-sentiment"
#: models known to read many languages: their scorer is not gated to English unless ``languages=`` says so
MULTILINGUAL_MODELS = frozenset({MULTILINGUAL_MODEL})
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: label spellings accepted in a model's ``id2label`` (compared lower-case)
SYNONYMS: dict[str, str] = {
    "negative": "negative", "neg": "negative",
    "neutral": "neutral", "neu": "neutral",
    "positive": "positive", "pos": "positive",
}
#: models whose config only says LABEL_0..LABEL_2 but whose model card documents the order
DOCUMENTED_ORDERS: dict[str, tuple[str, ...]] = {
    # https://huggingface.co/cardiffnlp/twitter-roberta-base-sentiment: "0 -> Negative; 1 -> Neutral; 2 -> Positive"
    "cardiffnlp/twitter-roberta-base-sentiment": LABELS,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# --- names and options ----------------------------------------------------------------------------------

def parse_name(arg: str) -> tuple[str, str | None, dict[str, str]]:
    """``id-or-path[@revision][?k=v&flag]`` -> (id-or-path, revision, options)."""
    base, _, query = arg.partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        options[key.strip().lower()] = value.strip()
    revision = None
    if "@" in base and not Path(base).expanduser().exists():
        base, _, revision = base.rpartition("@")
    return base.strip(), (revision or None), options


def map_labels(id2label: dict[int, str], model: str, order: Sequence[str] | None = None) -> list[int]:
    """For each of (negative, neutral, positive), the model's output index; a clear error if they don't map."""
    n = len(id2label)
    if order is None:
        names = [str(id2label[i]).strip().lower() for i in sorted(id2label)]
        if all(re.fullmatch(r"label_\d+", x) for x in names):
            order = DOCUMENTED_ORDERS.get(model)
            if order is None:
                raise ScorerError(
                    f"model {model} names its classes only {', '.join(str(id2label[i]) for i in sorted(id2label))}, "
                    "so which is negative, neutral or positive cannot be told. If its model card documents the "
                    f"order, name it: transformer:{model}?labels=negative,neutral,positive (in the card's order)"
                )
        else:
            order = names
    mapped = [SYNONYMS.get(str(x).strip().lower()) for x in order]
    if len(mapped) != n:
        raise ScorerError(f"model {model} has {n} classes but {len(mapped)} labels were given: {list(order)}")
    if any(m is None for m in mapped) or sorted(mapped) != sorted(LABELS):  # type: ignore[type-var]
        raise ScorerError(
            f"model {model} has labels {[str(id2label[i]) for i in sorted(id2label)]}, which do not map one-to-one "
            f"onto {', '.join(LABELS)}; use a 3-class sentiment model (e.g. {DEFAULT_MODEL})"
        )
    keys = sorted(id2label)
    return [keys[mapped.index(label)] for label in LABELS]


# --- loading ----------------------------------------------------------------------------------------------

def _dir_fingerprint(path: Path) -> str:
    """sha256 over the files that decide a local model's outputs (:func:`sentiment.fingerprint.dir_fingerprint`)."""
    from sentiment.fingerprint import dir_fingerprint

    return dir_fingerprint(path)


def configure_threads() -> int:
    """One intra-op thread per CPU this process may use (respecting ``OMP_NUM_THREADS``), one inter-op thread."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work already started: keep what it is
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


class TransformerScorer(Scorer):
    """A Hugging Face sequence classifier with negative/neutral/positive labels.

    ``model`` is a hub id or a local directory; ``model_id`` becomes ``transformer:<id>@<commit>`` for hub
    models (the revision the cache resolved) or ``transformer:<dir name>@sha-<hash of its files>`` for local
    directories, plus ``+bf16``/``+fp16``/``+onnx-int8``/``+int8``/``+len<N>`` when those options are used, so
    scores of different weights or settings are never mixed.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        revision: str | None = None,
        labels: Sequence[str] | None = None,
        precision: str = "auto",
        max_length: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        device: str | None = None,
        languages: frozenset[str] | None = frozenset({"en"}),
        runtime: str | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ScorerError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.name = model
        self.languages = languages
        local = Path(model).expanduser()
        if local.is_dir():
            self._load(str(local), local_only=True, revision=None, labels=labels)
            full_rev = "sha-" + _dir_fingerprint(local)
            rev, shown = full_rev[:16], local.resolve().name
        else:
            if model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model:
                raise ScorerError(f"transformer model directory {model} does not exist")
            if not _HUB_ID.match(model):
                raise ScorerError(f"{model!r} is neither a local directory nor a Hugging Face model id (owner/name)")
            self._load_from_hub(model, revision, labels)
            commit = getattr(self.config, "_commit_hash", None)
            rev = commit[:12] if commit else (revision or "unknown-revision")
            full_rev, shown = commit or rev, model
        self._setup_runtime(precision, device, max_length, runtime, f"{shown}@{full_rev}")
        precision = self.precision
        suffix = ("" if precision == "fp32" else f"+{precision}") + (f"+len{max_length}" if max_length else "")
        self.model_id = f"transformer:{shown}@{rev}{suffix}"
        on_gpu = self.device.type == "cuda"
        self.batch_size = batch_size or (self.plan.batch_size if on_gpu else 32)
        from sentiment import runtime as rt

        # the runtime's limits (sentiment.runtime: 2,048 padded tokens on a CPU, where ONNX Runtime's arena keeps
        # the largest batch; long posts: 1,210 MB instead of 2,089 MB peak and 14.6 instead of 10.9 posts/s)
        self.max_batch_tokens = max_batch_tokens or (rt.GPU_BATCH_TOKENS if on_gpu else rt.CPU_BATCH_TOKENS)
        limit = self.budget + len(self._prefix) + len(self._suffix)
        log.info("loaded %s on %s %s (%d-token limit, %d threads)", self.model_id, self.runtime, self.device, limit,
                 self.threads)

    # -- loading ----------------------------------------------------------------------------------------
    def _load_from_hub(self, model: str, revision: str | None, labels: Sequence[str] | None) -> None:
        if cached_locally(model, revision):
            try:
                self._load(model, local_only=True, revision=revision, labels=labels)
                return
            except _NotCached:  # config cached, weights or tokenizer not: download what is missing
                pass
        if hub_offline():
            raise ScorerError(
                f"{model} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; "
                f"download it once with network access, or pass a local directory (transformer:/path/to/model)"
            )
        reason = hub_unreachable()
        if reason:
            go_offline()
            raise ScorerError(
                f"{model} is not in the local Hugging Face cache and the hub cannot be reached ({reason}); "
                "download it once with network access, or pass a local directory"
            )
        log.info("downloading %s from the Hugging Face hub (once; later runs use the local cache)", model)
        self._load(model, local_only=False, revision=revision, labels=labels)

    def _load(self, location: str, *, local_only: bool, revision: str | None, labels: Sequence[str] | None) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        kwargs: dict[str, Any] = {"local_files_only": local_only}
        if revision:
            kwargs["revision"] = revision
        try:
            config = AutoConfig.from_pretrained(location, **kwargs)
        except OSError as exc:
            if local_only and not Path(location).expanduser().is_dir():
                raise _NotCached(str(exc)) from None
            raise ScorerError(f"cannot load the configuration of {location}: {_first_line(exc)}") from None
        except ValueError as exc:
            raise ScorerError(f"{location} is not a usable transformers model: {_first_line(exc)}") from None
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        self.label_index = map_labels(id2label, location, labels)  # before loading the weights: fail fast
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
            self.model = AutoModelForSequenceClassification.from_pretrained(location, **kwargs)
            self._reload = lambda: AutoModelForSequenceClassification.from_pretrained(location, **kwargs).eval()
        except OSError as exc:
            if local_only and not Path(location).expanduser().is_dir():
                raise _NotCached(str(exc)) from None
            raise ScorerError(f"cannot load the model {location}: {_first_line(exc)}") from None
        except ValueError as exc:
            raise ScorerError(f"cannot load the model {location}: {_first_line(exc)}") from None
        self.config = config
        self.model.eval()
        # we cut long inputs ourselves (head+tail) after tokenising them whole: not a problem to warn about
        self.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True

    def _setup_runtime(
        self, precision: str, device: str | None, max_length: int | None, runtime: str | None, key: str
    ) -> None:
        import torch

        from sentiment import runtime as rt

        setting = rt.runtime_setting(runtime)
        self.plan = rt.choose(setting, device=device or "auto")
        self.threads = configure_threads()
        self.device = torch.device(self.plan.device)
        if precision == "auto":
            native = native_bf16(self.device) and setting != "onnx"
            precision = "bf16" if native else ("fp16" if self.device.type == "cuda" else "fp32")
        if precision == "fp16" and self.device.type != "cuda":
            raise ScorerError("precision=fp16 runs on a CUDA GPU only (on a CPU: fp32, bf16 or int8)")
        self.precision = precision
        self.onnx: rt.OnnxModel | None = None
        if precision in ("fp32", "int8") and not (precision == "int8" and self.plan.on_gpu):
            self.onnx = rt.try_onnx(f"transformer {self.name}", self.plan, lambda: self._load_onnx(key, precision),
                                    strict=setting == "onnx")
        elif setting == "onnx":
            raise ScorerError(f"precision={precision} runs on PyTorch only; unset AIMUSIC_RUNTIME or use fp32/int8")
        self.runtime = "onnx" if self.onnx is not None else "torch"
        if self.onnx is not None:
            self.precision = "onnx-int8" if precision == "int8" else "fp32"  # not torch's int8: another id
            self.threads = rt.all_cores()
        else:
            if self.model is None:  # the session failed after the weights were freed
                self.model = self._reload()
            self._setup_torch(precision)
        # special tokens around one sequence, found by probing (works for every tokenizer family)
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a")["input_ids"]
        start = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), 0)
        self._prefix, self._suffix = full[:start], full[start + len(bare) :]
        limit = model_limit(self.tokenizer, self.config)
        if max_length:
            limit = min(limit, max_length)
        self.budget = limit - len(self._prefix) - len(self._suffix)
        if self.budget < 8:
            raise ScorerError(f"{self.name}: a {limit}-token limit leaves no room for text")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _setup_torch(self, precision: str) -> None:
        import torch

        if precision == "int8":
            if self.device.type != "cpu":
                raise ScorerError("precision=int8 (dynamic quantisation) runs on CPU only")
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig

            with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(
                    self.model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
                )
        self.model.to(self.device)
        self._autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if self._autocast is torch.bfloat16:
            # linear weights stored in bfloat16 once (what autocast would cast them to on every call: same
            # numbers, less work, half their memory); layer norms and softmax stay float32 under autocast
            for module in self.model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)

    def _load_onnx(self, key: str, precision: str) -> Any:
        """The ONNX Runtime session on this model's exported graph (ids, mask -> probabilities in its own order)."""
        import torch

        from sentiment import runtime as rt

        def export(target: Path) -> None:
            def probs(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)

            ids = torch.full((2, 8), 5, dtype=torch.long)
            rt.export_graph(rt.wrap(self.model.float(), probs), (ids, torch.ones_like(ids)), target)

        graph, _ = rt.cached_graph("transformer", key, export, int8=precision == "int8")
        self.model = None  # freed before the session reads its own copy (lower peak memory); reloaded if it fails
        gc.collect()
        return rt.OnnxModel(graph, self.plan)

    # -- scoring ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text: normalised, head+tail within the model's limit, special tokens added."""
        prepared = [normalize_social(clip_chars(t, self.budget)) for t in texts]
        ids = self.tokenizer(prepared, add_special_tokens=False, truncation=False)["input_ids"]
        return [[*self._prefix, *head_tail(x, self.budget), *self._suffix] for x in ids]

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped by similar length: at most ``batch_size`` posts and ``max_batch_tokens`` padded tokens."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        out: list[list[int]] = []
        current: list[int] = []
        for i in order:
            longest = lengths[i]  # sorted ascending: the new item is the longest
            if current and (len(current) >= self.batch_size or longest * (len(current) + 1) > self.max_batch_tokens):
                out.append(current)
                current = []
            current.append(i)
        if current:
            out.append(current)
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, 3))
        ids = self.encode(texts)
        probs = np.zeros((len(ids), 3))
        if self.onnx is not None:
            from sentiment.runtime import pad

            for batch in self.batches([len(x) for x in ids]):
                p = np.asarray(self.onnx(*pad([ids[i] for i in batch], self.pad_id)), dtype=np.float64)
                probs[batch] = (p / p.sum(axis=1, keepdims=True))[:, self.label_index]
            return probs
        with torch.inference_mode():
            for batch in self.batches([len(x) for x in ids]):
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, : len(ids[i])] = 1
                inputs = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
                with torch.autocast(self.device.type, dtype=self._autocast or torch.float32,
                                    enabled=self._autocast is not None):
                    logits = self.model(**inputs).logits
                p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                probs[batch] = p[:, self.label_index]
        return probs


class _NotCached(Exception):
    pass


def native_bf16(device: Any) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX; GPU: Ampere or newer)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def model_limit(tokenizer: Any, config: Any) -> int:
    """Tokens the model accepts, special tokens included."""
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    if "roberta" in str(getattr(config, "model_type", "")) or getattr(config, "model_type", "") in {"camembert"}:
        pad = getattr(config, "pad_token_id", 1)
        positions -= (pad if pad is not None else 1) + 1  # RoBERTa's position ids start after the padding index
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:
        return min(declared, positions)
    return positions


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
