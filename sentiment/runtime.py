"""Where the encoders run: ONNX Runtime on an exported graph cached on disk, or PyTorch; on CPU or on a GPU.

One setting, ``AIMUSIC_RUNTIME`` (:data:`RUNTIME_ENV`), for every encoder of the project (the fine-tuned
sentiment model ``minilm-ft``, the shared sentence encoder of :mod:`sentiment.embedding`, the transformer
scorer):

- ``auto`` (default): a GPU that torch sees -> PyTorch on CUDA with fp16 arithmetic and large batches (or
  ONNX Runtime's CUDA provider when ``onnxruntime-gpu`` provides one); otherwise ONNX Runtime on the CPU when
  ``onnxruntime`` imports; otherwise PyTorch. A failed export or session falls back to PyTorch with one
  logged line.
- ``onnx``: ONNX Runtime or a clear error (never a silent fallback).
- ``torch``: PyTorch only (the reference implementation).

ONNX Runtime computes the same fp32 functions as PyTorch (probabilities within ~1e-5), so the runtime is not
part of a model id; reduced precision (int8, fp16, bf16) is, because it can change labels.

Exported graphs are built on first use with ``torch.onnx.export`` and cached under :func:`cache_root`
(``AIMUSIC_CACHE_DIR``, else the user cache directory), one file per (what was exported, the model's
weights fingerprint, the onnxruntime and torch versions, :data:`EXPORT_VERSION`), written to a temporary
file and renamed into place, so a crash or a concurrent process never leaves a half-written graph. Nothing of
it is committed; deleting the folder only costs a re-export (seconds for MiniLM, about a minute for a
roberta-base-sized model).

An export holds the PyTorch model, the traced graph and the serialised one at once: for MiniLM about 400 MB
above the loaded session, and some of it is not given back to the system afterwards. Inside
:func:`sentiment.child_export.exports_in_child` (``aimusic backfill``, whose goal is a peak under 1 GB), a model
that names a module-level export function (``child=`` of :func:`cached_graph`) is exported in a child process
instead, so that memory is never this process's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentiment import child_export
from sentiment.base import ScorerError

log = logging.getLogger(__name__)

RUNTIME_ENV = "AIMUSIC_RUNTIME"
CACHE_ENV = "AIMUSIC_CACHE_DIR"
RUNTIMES = ("auto", "onnx", "torch")
#: bumped when the export recipe changes, so graphs exported by an older recipe are not reused
EXPORT_VERSION = "1"
OPSET = 17
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
#: posts per batch: short posts on CPU (64 was best for MiniLM on 2 cores), many more on a GPU
CPU_BATCH = 64
GPU_BATCH = 256
#: padded tokens per batch on CPU. ONNX Runtime's memory arena keeps the largest batch's activations for the
#: session's life, and they grow with the batch (attention with its length squared): 32 posts of 256 tokens
#: held +782 MB, 8 posts +170 MB, at the same 43 posts/s (MiniLM, 2 cores; docs/models.md "Memory")
CPU_BATCH_TOKENS = 2_048
#: padded tokens per batch on a GPU
GPU_BATCH_TOKENS = 65_536


def all_cores() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def runtime_setting(value: str | None = None) -> str:
    """``value``, else ``$AIMUSIC_RUNTIME``, else ``auto``; an unknown value fails clearly."""
    chosen = (value if value is not None else os.environ.get(RUNTIME_ENV, "")).strip().lower() or "auto"
    if chosen not in RUNTIMES:
        raise ScorerError(f"{RUNTIME_ENV}={chosen!r} is not a runtime; use one of {', '.join(RUNTIMES)}")
    return chosen


def cache_root() -> Path:
    """Where exported graphs live: ``$AIMUSIC_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/aimusic-monitor/onnx``
    (``~/.cache/aimusic-monitor/onnx``), the folder :mod:`sentiment.train_head` caches embeddings in."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    base = Path(explicit).expanduser() if explicit else (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aimusic-monitor"
    )
    return base / "onnx"


def onnxruntime() -> Any:
    """The ``onnxruntime`` module; raises ImportError (or OSError for a broken native library) when unusable."""
    import onnxruntime as ort

    return ort


def ort_version() -> str:
    try:
        return str(onnxruntime().__version__)
    except (ImportError, OSError):
        return "none"


#: traces of a GPU driver on Linux: NVIDIA's and AMD's (ROCm) kernel modules and device files, WSL's GPU. The
#: modules count too, because NVIDIA's device files may appear only when the first CUDA program runs
_GPU_TRACES = ("/proc/driver/nvidia", "/sys/module/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/sys/module/amdgpu",
               "/dev/kfd", "/dev/dxg")


def torch_cuda() -> bool:
    """Does torch see a GPU. On Linux with no trace of a GPU driver (:data:`_GPU_TRACES`), no, without importing
    torch (about 200 MB and a second that ONNX Runtime on the CPU does not need); else
    ``torch.cuda.is_available()``."""
    import sys

    if "torch" not in sys.modules and sys.platform.startswith("linux") and not any(
            os.path.exists(f) for f in _GPU_TRACES):
        return False
    return _torch_sees_cuda()


def _torch_sees_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def torch_version() -> str:
    """The installed torch's version, read from its metadata (no import), ``none`` when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def ort_providers() -> list[str] | None:
    """ONNX Runtime's execution providers here, or ``None`` when it does not import."""
    try:
        return list(onnxruntime().get_available_providers())
    except (ImportError, OSError):
        return None


# ------------------------------------------------------------------------------------------- runtime choice


@dataclass(frozen=True)
class Plan:
    """How an encoder runs: ``backend`` onnx or torch, on ``device`` cpu or cuda, with these batch limits.

    ``half`` is fp16 arithmetic (PyTorch on CUDA only); ``fallback`` says why ``auto`` could not use ONNX
    Runtime (logged once by the caller), empty when nothing fell back.
    """

    backend: str
    device: str
    providers: tuple[str, ...] = ()
    batch_size: int = CPU_BATCH
    max_batch_tokens: int = CPU_BATCH_TOKENS
    half: bool = False
    fallback: str = ""

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


def choose(
    setting: str | None = None,
    *,
    device: str = "auto",
    cuda: bool | None = None,
    providers: Sequence[str] | Literal["probe"] | None = "probe",
) -> Plan:
    """The runtime plan for ``setting`` (``AIMUSIC_RUNTIME`` when ``None``) and ``device`` (auto, cpu, cuda).

    ``cuda`` (does torch see a GPU) and ``providers`` (ONNX Runtime's providers, ``None`` when it does not
    import) are probed when not given; tests pass them to check the selection without a GPU.
    """
    setting = runtime_setting(setting)
    if device not in ("auto", "cpu", "cuda"):
        raise ScorerError(f"unknown device {device!r}; use auto, cpu or cuda")
    if cuda is not None:
        has_cuda = cuda
    elif device == "cpu":  # not asked
        has_cuda = False
    elif device == "cuda":  # asked for: torch itself says, whatever the traces say
        has_cuda = _torch_sees_cuda()
    else:
        has_cuda = torch_cuda()
    provs = ort_providers() if providers == "probe" else providers
    if device == "cuda" and not has_cuda and not (provs and CUDA_EP in provs):
        raise ScorerError("device cuda: no CUDA device is visible to torch or ONNX Runtime")
    gpu = device != "cpu" and (has_cuda or (setting != "torch" and bool(provs) and CUDA_EP in provs))
    gpu_batches = {"batch_size": GPU_BATCH, "max_batch_tokens": GPU_BATCH_TOKENS}
    if setting != "torch" and gpu and provs and CUDA_EP in provs:
        return Plan("onnx", "cuda", (CUDA_EP, CPU_EP), **gpu_batches)
    if gpu and setting != "onnx":
        return Plan("torch", "cuda", half=True, **gpu_batches)
    if device == "cuda":
        raise ScorerError(f"device cuda with {RUNTIME_ENV}={setting}: ONNX Runtime has no CUDA provider here "
                          "(pip install onnxruntime-gpu) and PyTorch was not chosen")
    if setting == "torch":
        return Plan("torch", "cpu")
    if provs is None:
        if setting == "onnx":
            raise ScorerError(f"{RUNTIME_ENV}=onnx but onnxruntime does not import here: pip install onnxruntime")
        return Plan("torch", "cpu", fallback="onnxruntime does not import")
    return Plan("onnx", "cpu", (CPU_EP,))


# -------------------------------------------------------------------------------------------- graph cache


def graph_path(kind: str, key: str, variant: str = "fp32") -> Path:
    """The cache file of one exported graph: readable prefix + a hash of everything that decides its content."""
    material = f"{EXPORT_VERSION}|{kind}|{key}|{variant}|onnxruntime {ort_version()}|torch {torch_version()}"
    digest = hashlib.sha256(material.encode()).hexdigest()[:20]
    return cache_root() / f"{kind}-{variant}-{digest}.onnx"


def _atomic_write(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file next to ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp's 0600 would hide the cache from the other users of a shared folder
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def export_graph(
    module: Any,
    example: tuple[Any, ...],
    path: Path,
    *,
    input_names: Sequence[str] = ("input_ids", "attention_mask"),
    output_name: str = "probs",
) -> Path:
    """``torch.onnx.export`` (TorchScript exporter, opset 17) with dynamic batch and sequence axes, atomically.

    ``module(*example)`` must return one tensor whose first axis is the batch.
    """
    import warnings

    import torch

    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes[output_name] = {0: "batch"}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches of transformers
            torch.onnx.export(
                module.eval(), example, str(tmp), dynamo=False, opset_version=OPSET, input_names=list(input_names),
                output_names=[output_name], dynamic_axes=axes, do_constant_folding=True,
            )

    return _atomic_write(path, write)


def wrap(model: Any, forward: Callable[[Any, Any, Any], Any]) -> Any:
    """A module to export: ``(input_ids, attention_mask) -> forward(model, input_ids, attention_mask)``, with
    ``model``'s parameters registered (so they become the graph's weights)."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return forward(self.model, input_ids, attention_mask)

    return Exported()


def quantize_graph(source: Path, target: Path, exclude: Sequence[str] = ()) -> Path:
    """Dynamic int8 quantisation (weights per output channel, activations per batch) of ``source``, atomically.

    Measured on the fine-tuned MiniLM and val.tsv: per-channel weight scales kept 97.0% of fp32's labels, one
    scale per tensor 93.6% (macro recall 0.7428 and 0.7342 against fp32's 0.7413). ``exclude``: names of nodes
    left in fp32 (``benchmarks/bench_int8_smoothing.py`` tries some).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        root = logging.getLogger()
        root.addFilter(_no_quantizer_chatter)
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=list(exclude))
        finally:
            root.removeFilter(_no_quantizer_chatter)

    return _atomic_write(target, write)


def _no_quantizer_chatter(record: logging.LogRecord) -> bool:
    """Drops onnxruntime.quantization's chatter (a pre-processing hint, one line per tensor), which it logs on the
    root logger."""
    return "onnxruntime" not in record.pathname.replace("\\", "/").split("site-packages")[-1]


def cached_graph(kind: str, key: str, build: Callable[[Path], None], *, int8: bool = False,
                 child: child_export.Recipe | None = None,
                 before_int8: tuple[str, Callable[[Path, Path], None]] | None = None) -> tuple[Path, bool]:
    """The cached graph for (``kind``, ``key``), exporting it with ``build(path)`` when missing (and quantising it
    when ``int8``); returns (path, whether anything was built now). Inside ``exports_in_child``, ``child``
    (when given) exports it in a child process instead of ``build``
    (:func:`sentiment.child_export.exports_in_child`). ``before_int8`` = (variant name, ``rewrite(fp32, target)``):
    a rewrite of the fp32 graph (smoothing, :mod:`sentiment.int8_smoothing`) quantised instead of it, cached as
    that variant."""
    fp32 = graph_path(kind, key)
    built = False
    if not fp32.is_file():
        log.info("exporting %s to ONNX (once; cached in %s)", kind, fp32.parent)
        if child is not None and child_export.enabled():
            try:
                child_export.export_in_child(child, fp32, kind)
            except (OSError, RuntimeError) as exc:  # the graph is still wanted: export it here, as without a child
                log.warning("%s; exporting in this process instead", " ".join(str(exc).split())[:300])
                build(fp32)
        else:
            build(fp32)
        built = True
    if not int8:
        return fp32, built
    q8 = graph_path(kind, key, before_int8[0] if before_int8 else "int8")
    if not q8.is_file():
        if before_int8 is None:
            quantize_graph(fp32, q8)
        else:
            with tempfile.TemporaryDirectory(prefix="aimusic-int8-") as tmp:  # the system's: nothing left here
                rewritten = Path(tmp) / "rewritten.onnx"
                before_int8[1](fp32, rewritten)
                quantize_graph(rewritten, q8)
        built = True
    return q8, built


# --------------------------------------------------------------------------------------------- inference


class OnnxModel:
    """An ONNX Runtime session on one cached graph, with every core of the process (or the GPU)."""

    def __init__(self, path: Path, plan: Plan, *, threads: int | None = None) -> None:
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or all_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # idle workers sleep instead of spinning: no speed lost here (MiniLM, 2 cores), and no CPU taken from
        # other work between batches on a shared machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=list(plan.providers or (CPU_EP,)))
        self.input_names = [x.name for x in self.session.get_inputs()]

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices sorted by length and cut into batches of at most ``batch_size`` items and ``max_batch_tokens``
    padded tokens (so each batch pads only to its own longest item)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) >= batch_size or lengths[i] * (len(current) + 1) > max_batch_tokens):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists -> (ids, attention mask) as int64 arrays padded to the longest of them."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    return ids, mask


@dataclass
class BatchRunner:
    """Runs ``model(ids, mask) -> (batch, k)`` over token id lists in length buckets; rows come back in input order."""

    model: Callable[[np.ndarray, np.ndarray], Any]
    pad_id: int
    width: int
    batch_size: int = CPU_BATCH
    max_batch_tokens: int = CPU_BATCH_TOKENS
    calls: list[int] = field(default_factory=list, repr=False)

    def __call__(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(ids), self.width), np.float32)
        for batch in length_batches([len(x) for x in ids], self.batch_size, self.max_batch_tokens):
            tokens, mask = pad([ids[i] for i in batch], self.pad_id)
            out[batch] = np.asarray(self.model(tokens, mask), dtype=np.float32)
            self.calls.append(len(batch))
        return out


def try_onnx(
    what: str, plan: Plan, load: Callable[[], OnnxModel], *, strict: bool
) -> OnnxModel | None:
    """``load()`` when the plan says ONNX; ``None`` (PyTorch) otherwise. A failure is an error under
    ``AIMUSIC_RUNTIME=onnx`` (``strict``), else one warning line and ``None``."""
    if plan.backend != "onnx":
        if plan.fallback:
            log.warning("%s: running on PyTorch, because %s", what, plan.fallback)
        return None
    try:
        return load()
    except Exception as exc:  # export and ORT raise many types; the fallback is logged (or raised when strict)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        if strict:
            raise ScorerError(f"{what}: ONNX Runtime failed ({reason}); unset {RUNTIME_ENV} to fall back") from exc
        log.warning("%s: ONNX Runtime failed, running on PyTorch (%s)", what, reason)
        return None
