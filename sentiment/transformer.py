"""``transformer:<hub id or local path>``: any Hugging Face sequence-classification model whose labels are
negative / neutral / positive, run efficiently on CPU or GPU.

Name syntax: ``transformer:<id or path>[@revision][?option&option...]`` with options

- ``labels=negative,neutral,positive``: the class order, for a model whose config only says ``LABEL_0`` ...
  (take it from the model card; nothing is guessed);
- ``precision=auto|fp32|bf16|int8``: ``bf16`` runs matrix products in bfloat16 (autocast), ``int8``
  quantises the linear layers dynamically (CPU only). ``auto`` (the default) is ``bf16`` where the hardware
  computes bfloat16 natively (CPUs with AVX512-BF16 or AMX, Ampere+ GPUs) and ``fp32`` elsewhere. Measured
  on real weights (all-MiniLM-L6-v2 + our head, val.tsv, ``benchmarks/bench_precision.py``): bf16 kept
  99.95% of fp32's labels (macro recall -0.001); int8 (per-channel weight scales) kept 91.9% (-0.004), so
  it is never chosen automatically. Reduced precision is part of the stored model id (``+bf16``, ``+int8``);
- ``max_length=N``: read at most N tokens (default: the model's limit).

What it does: preprocesses like the cardiffnlp model cards (``@user``, ``http``); keeps the head and the tail
of posts longer than the model's limit (a quarter of the budget from the start, three quarters from the
end); sorts a batch by token length and pads each mini-batch only to its own longest post; runs under
``torch.inference_mode``; uses every CPU this process may use (one intra-op thread each, one inter-op
thread) unless ``OMP_NUM_THREADS`` says otherwise; uses a GPU when one is present.

Loading never hangs: a model already in the local Hugging Face cache loads with no network; otherwise the
hub is contacted only if it answers a TCP connect within :data:`HUB_CHECK_SECONDS` (and not at all under
``HF_HUB_OFFLINE=1``), else a :class:`~sentiment.base.ScorerError` says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from sentiment.base import LABELS, Scorer, ScorerError
from sentiment.preprocess import clip_chars, head_tail, normalize_social

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cardiffnlp/twitter-roberta-base-sentiment-latest"
MULTILINGUAL_MODEL = "cardiffnlp/twitter-xlm-roberta-base-sentiment"
#: models known to read many languages: their scorer is not gated to English unless ``languages=`` says so
MULTILINGUAL_MODELS = frozenset({MULTILINGUAL_MODEL})
HUB_CHECK_SECONDS = 2.0
PRECISIONS = ("auto", "fp32", "bf16", "int8")
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
_TRUE = {"1", "on", "yes", "true"}


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

def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def go_offline() -> None:
    """Make every later Hugging Face call in this process (and its children) skip the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        pass


def hub_unreachable(timeout: float = HUB_CHECK_SECONDS) -> str | None:
    """Why the hub endpoint does not accept a TCP connection within ``timeout`` seconds (DNS included), or
    ``None`` when it does. Runs in a daemon thread, so a resolver that hangs cannot hold the caller."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(f"{host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=probe, daemon=True, name="hf-hub-probe")
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"{host}:{port}: no answer within {timeout:.0f}s"


def cached_locally(model: str, revision: str | None) -> bool:
    """Whether the hub model's config is in the local cache (checked without importing transformers)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return True
    try:
        return isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str)
    except ValueError:  # not a valid repo id
        return False


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
    directories, plus ``+bf16``/``+int8``/``+len<N>`` when those options are used, so scores of different
    weights or settings are never mixed.
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
        max_batch_tokens: int = 8_192,
        device: str | None = None,
        languages: frozenset[str] | None = frozenset({"en"}),
    ) -> None:
        if precision not in PRECISIONS:
            raise ScorerError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.name = model
        self.languages = languages
        local = Path(model).expanduser()
        if local.is_dir():
            self._load(str(local), local_only=True, revision=None, labels=labels)
            rev = "sha-" + _dir_fingerprint(local)[:12]
            shown = local.resolve().name
        else:
            if model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model:
                raise ScorerError(f"transformer model directory {model} does not exist")
            if not _HUB_ID.match(model):
                raise ScorerError(f"{model!r} is neither a local directory nor a Hugging Face model id (owner/name)")
            self._load_from_hub(model, revision, labels)
            commit = getattr(self.config, "_commit_hash", None)
            rev = commit[:12] if commit else (revision or "unknown-revision")
            shown = model
        self._setup_runtime(precision, device, max_length)
        precision = self.precision
        suffix = ("" if precision == "fp32" else f"+{precision}") + (f"+len{max_length}" if max_length else "")
        self.model_id = f"transformer:{shown}@{rev}{suffix}"
        on_gpu = self.device.type == "cuda"
        self.batch_size = batch_size or (128 if on_gpu else 32)
        self.max_batch_tokens = max_batch_tokens * (8 if on_gpu else 1)
        limit = self.budget + len(self._prefix) + len(self._suffix)
        log.info("loaded %s on %s (%d-token limit, %d threads)", self.model_id, self.device, limit, self.threads)

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

    def _setup_runtime(self, precision: str, device: str | None, max_length: int | None) -> None:
        import torch

        self.threads = configure_threads()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if precision == "auto":
            precision = "bf16" if native_bf16(self.device) else "fp32"
        self.precision = precision
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
        self._autocast = precision == "bf16"
        if self._autocast:
            # linear weights stored in bfloat16 once (what autocast would cast them to on every call: same
            # numbers, less work, half their memory); layer norms and softmax stay float32 under autocast
            for module in self.model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)
        # special tokens around one sequence, found by probing (works for every tokenizer family)
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a")["input_ids"]
        start = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), 0)
        self._prefix, self._suffix = full[:start], full[start + len(bare) :]
        limit = model_limit(self.tokenizer, self.model.config)
        if max_length:
            limit = min(limit, max_length)
        self.budget = limit - len(self._prefix) - len(self._suffix)
        if self.budget < 8:
            raise ScorerError(f"{self.name}: a {limit}-token limit leaves no room for text")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

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
        with torch.inference_mode():
            for batch in self.batches([len(x) for x in ids]):
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, : len(ids[i])] = 1
                inputs = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
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
