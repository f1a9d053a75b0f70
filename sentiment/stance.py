"""Stance toward AI-generated music: ``anti``, ``neutral`` (neutral or mixed) or ``pro`` - not sentiment.

"This AI track is terrifyingly good" is negative in tone and admiring in stance; a stance scorer reads the
position the author takes on AI music. Scorers share the sentiment :class:`~sentiment.base.Scorer` interface
(empty texts and unsupported languages are marked, never fed to the model; ``model_id`` is stored with every
row) and are chosen by name from :data:`REGISTRY`:

- ``ensemble`` (default, offline): the mean of the two models below (:mod:`sentiment.stance_ens`), whose
  figures are in ``sentiment/weights/stance_ens.json``.
- ``minilm-ft`` (offline): the encoder fine-tuned end to end on target/text pairs
  (:mod:`sentiment.stance_ft`, built by :mod:`sentiment.finetune_stance`; ``sentiment/weights/stance_ft.npz``),
  temperature-calibrated, with its own ``unclear`` threshold.
- ``minilm`` (offline): all-MiniLM-L6-v2 embeddings (the shared encoder, :func:`encode`) and a
  logistic-regression head trained by :mod:`sentiment.train_stance` on the project's stance sentences and,
  target-aware, on SemEval-2016 stance tweets; temperature-calibrated on held-out folds. A post whose
  calibrated confidence is below the head's ``unclear_below`` is labelled :data:`UNCLEAR` instead of being
  forced to a side. The head ships in the repository (``sentiment/weights/stance_head.npz``, provenance and
  held-out figures, each naming the data it was measured on, in ``stance_head.json``).
- ``nli:<hub id or local dir>[@revision]``: a zero-shot natural-language-inference model (e.g.
  ``nli:MoritzLaurer/deberta-v3-base-zeroshot-v2.0`` or ``nli:facebook/bart-large-mnli``). Each post is the
  premise; the hypotheses say the author is against / neutral about / in favour of AI-generated music, and
  the entailment scores are normalised into the three probabilities. Loads from a local directory or the
  Hugging Face cache with no network; the hub is only tried when it answers within seconds.

Probabilities are columns (anti, neutral, pro), in the positions of the sentiment columns (negative, neutral,
positive), so the shared ``Scorer.score`` logic applies; :meth:`StanceScorer.score` renames the labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.base import ScoreBatch, Scorer, ScorerError

log = logging.getLogger(__name__)

STANCE_LABELS: tuple[str, str, str] = ("anti", "neutral", "pro")
#: the label of a post whose calibrated confidence is too low to name a side (its probabilities are still stored)
UNCLEAR = "unclear"
#: every value ``stances.label`` can hold
STANCE_VOCABULARY: tuple[str, ...] = (*STANCE_LABELS, UNCLEAR)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HEAD_FILE = WEIGHTS_DIR / "stance_head.npz"
PROVENANCE_FILE = WEIGHTS_DIR / "stance_head.json"
#: the dashboard marks stance "experimental" while the model's held-out macro recall is below this
TRUSTED_MACRO_RECALL = 0.70
#: zero-shot hypotheses, in STANCE_LABELS order
NLI_TEMPLATE = "The author of this post is {} AI-generated music."
NLI_CHOICES: tuple[str, str, str] = ("against", "neutral about", "in favour of")

_URL = re.compile(r"https?://\S+")
_USER = re.compile(r"(?<![\w@])@\w{1,30}")


def prepare(text: str) -> str:
    """What the encoder reads: links and @handles replaced by placeholders, whitespace collapsed."""
    return " ".join(_USER.sub("@user", _URL.sub("http", text)).split())


class StanceScorer(Scorer):
    """A stance model: ``predict_proba`` returns columns (anti, neutral, pro)."""

    #: True when :meth:`predict_embeddings` works on the shared encoder's embeddings
    uses_embeddings: bool = False
    #: a scored post whose highest (calibrated) probability is below this is labelled UNCLEAR
    unclear_below: float = 0.0

    def label_of(self, probs: np.ndarray) -> str:
        """The stance label for one row of probabilities (anti, neutral, pro), or UNCLEAR when unsure."""
        best = int(np.argmax(probs))
        return UNCLEAR if float(probs[best]) < self.unclear_below else STANCE_LABELS[best]

    def decided(self, probs: np.ndarray) -> ScoreBatch:
        """The batch :meth:`score` returns for rows of probabilities this model computed before (all scored)."""
        rows = np.asarray(probs, dtype=np.float64).reshape(-1, 3)
        batch = ScoreBatch(labels=[self.label_of(row) for row in rows], probs=rows, status=["scored"] * len(rows))
        return _mark_unclear(batch)

    def score(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None, *, embeddings: np.ndarray | None = None
    ) -> ScoreBatch:
        """Like :meth:`Scorer.score`, with stance labels. ``embeddings`` (the shared encoder's, one row per
        text) are used instead of encoding the texts again when the model reads embeddings."""
        if embeddings is None or not self.uses_embeddings:
            batch = super().score(texts, langs)
            batch.labels = [None if lab is None else self.label_of(row) for lab, row in zip(batch.labels, batch.probs,
                                                                                            strict=True)]
            return _mark_unclear(batch)
        n = len(texts)
        langs = list(langs) if langs is not None else [None] * n
        probs = np.full((n, 3), np.nan)
        status = ["scored"] * n
        for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
            if not text or not text.strip():
                status[i] = "empty"
            elif not self.supports(lang):
                status[i] = "language"
        todo = [i for i in range(n) if status[i] == "scored"]
        if todo:
            given = np.array(np.asarray(embeddings)[todo], dtype=np.float32)
            blank = np.flatnonzero(~given.any(axis=1))  # rows the caller did not embed (e.g. a language it skips)
            if len(blank):
                given[blank] = embed([texts[todo[i]] for i in blank])
            probs[todo] = self.predict_with_embeddings([texts[i] for i in todo], given)
        labels = [self.label_of(probs[i]) if status[i] == "scored" else None for i in range(n)]
        return _mark_unclear(ScoreBatch(labels=labels, probs=probs, status=status))

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not read embeddings")

    def predict_with_embeddings(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """Probabilities of texts whose shared-encoder embeddings are at hand (default: from the embeddings alone;
        a model that reads both overrides this)."""
        return self.predict_embeddings(embeddings)

    def measured(self) -> dict[str, Any]:
        """What is known of this model's quality (``macro_recall`` on the held-out set, when measured)."""
        return {}


def _mark_unclear(batch: ScoreBatch) -> ScoreBatch:
    """An ``unclear`` post gets status ``unclear`` too, so readers that count ``status = 'scored'`` rows see only
    the three sides, as before; its probabilities are kept."""
    batch.status = [UNCLEAR if lab == UNCLEAR else st for lab, st in zip(batch.labels, batch.status, strict=True)]
    return batch


# --- the offline default: embeddings + a trained head ----------------------------------------------------


@dataclass(frozen=True)
class StanceHead:
    """Multinomial logistic regression over L2-normalised embeddings: ``softmax(x @ coef.T + bias)``."""

    coef: np.ndarray  # (3, 384), rows in STANCE_LABELS order (calibration already folded in)
    bias: np.ndarray  # (3,)
    sha256: str = ""
    unclear_below: float = 0.0  # calibrated confidence under which a post is labelled UNCLEAR

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        z = np.asarray(embeddings, dtype=np.float64) @ self.coef.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> str:
        from sentiment.common import save_npz_reproducible

        return save_npz_reproducible(path, {
            "coef": self.coef.astype(np.float32), "bias": self.bias.astype(np.float32),
            "labels": np.array(STANCE_LABELS), "unclear_below": np.array([self.unclear_below], np.float64),
        })

    @classmethod
    def load(cls, path: Path) -> StanceHead:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ScorerError(
                f"the stance head {path} is missing ({exc.strerror}); rebuild it with "
                "`python -m sentiment.train_stance`"
            ) from None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                labels = tuple(str(x) for x in data["labels"])
                coef, bias = data["coef"].astype(np.float64), data["bias"].astype(np.float64)
                unclear = float(data["unclear_below"][0]) if "unclear_below" in data.files else 0.0
                head = cls(coef, bias, hashlib.sha256(raw).hexdigest(), unclear)
        except (KeyError, ValueError, OSError) as exc:
            raise ScorerError(f"the stance head {path} is unreadable ({exc}); rebuild it") from None
        if labels != STANCE_LABELS or head.coef.shape[0] != 3:
            raise ScorerError(f"the stance head {path} has labels {labels}, expected {STANCE_LABELS}")
        return head


class MinilmStanceScorer(StanceScorer):
    """all-MiniLM-L6-v2 embeddings + the project's stance head; English only.

    ``model_id`` is ``stance-minilm@<12 hex>``: a hash of the head file and the encoder version, so a retrained
    head never writes under an old id.
    """

    languages = frozenset({"en"})
    uses_embeddings = True

    def __init__(self, head_file: Path | None = None, *, eager: bool = True) -> None:
        """``eager``: load the shared encoder now (fail clearly now, not at the first batch); otherwise only check
        that its package is installed, and load it with the first texts (a member of another model)."""
        from sentiment.embedding import load_encoder, model_path

        self.head_file = head_file or HEAD_FILE
        self.head = StanceHead.load(self.head_file)
        self.unclear_below = self.head.unclear_below
        if eager:
            load_encoder()
        else:
            model_path()
        self.model_id = head_model_id(self.head.sha256)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_embeddings(embed(texts))

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        if len(embeddings) == 0:
            return np.zeros((0, 3))
        return self.head.predict_proba(embeddings)

    def measured(self) -> dict[str, Any]:
        return measured_for(self.model_id, self.head_file.with_suffix(".json"))


def embed(texts: Sequence[str]) -> np.ndarray:
    """The shared encoder's embeddings of prepared texts (see :func:`prepare`)."""
    from sentiment.embedding import encode

    return encode([prepare(t) for t in texts])


def head_model_id(head_sha256: str) -> str:
    """The model id of the MiniLM stance head with this file hash (see :class:`MinilmStanceScorer`)."""
    from sentiment.embedding import ENCODER_ID

    return f"stance-minilm@{hashlib.sha256(f'{head_sha256}|{ENCODER_ID}'.encode()).hexdigest()[:12]}"


def measured_for(model_id: str, path: Path | None = None) -> dict[str, Any]:
    """The held-out figures recorded for ``model_id`` by the training script (empty if it was not measured).
    Reads only the provenance file (``path``, default: the shipped model's): no model is loaded."""
    if model_id.startswith("stance-ens@"):  # the ensemble (sentiment.stance_ens): figures keyed by its model id
        provenance = read_provenance(path or WEIGHTS_DIR / "stance_ens.json")
        return dict(provenance.get("heldout", {})) if provenance.get("model_id") == model_id else {}
    if model_id.startswith("stance-ft@"):  # the fine-tuned model (sentiment.stance_ft): its own provenance file
        provenance = read_provenance(path or WEIGHTS_DIR / "stance_ft.json")
        same = str(provenance.get("file_sha256", ""))[:12] == model_id.removeprefix("stance-ft@")[:12]
        return dict(provenance.get("heldout", {})) if same else {}
    provenance = read_provenance(path or PROVENANCE_FILE)
    sha = provenance.get("head_sha256")
    if not sha or head_model_id(sha) != model_id:
        return {}
    return dict(provenance.get("heldout", {}))


def read_provenance(path: Path = PROVENANCE_FILE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --- optional: a zero-shot NLI transformer ---------------------------------------------------------------


class NliStanceScorer(StanceScorer):
    """Zero-shot stance with an NLI model (premise: the post; hypotheses: :data:`NLI_TEMPLATE`)."""

    languages = frozenset({"en"})

    def __init__(self, location: str, *, revision: str | None = None, batch_size: int = 16,
                 max_length: int = 256) -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise ScorerError(f"nli stance needs torch and transformers: {exc}") from None
        self._torch = torch
        self.batch_size = batch_size
        self.max_length = max_length
        local = Path(location).expanduser()
        load_kwargs: dict[str, Any] = {}
        if local.is_dir():
            source = str(local)
            fingerprint = _dir_fingerprint(local)
        else:
            source = location
            load_kwargs = {"revision": revision, "local_files_only": not _hub_usable()}
            fingerprint = revision or "main"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
            self.model = AutoModelForSequenceClassification.from_pretrained(source, **load_kwargs)
        except (OSError, ValueError) as exc:
            where = "offline: put the model in the Hugging Face cache or pass a local directory" if load_kwargs.get(
                "local_files_only"
            ) else "check the hub id"
            raise ScorerError(f"cannot load NLI model {location!r} ({where}): {str(exc).splitlines()[0]}") from None
        self.model.eval()
        self.entail = _entailment_index(self.model.config.id2label)
        self.model_id = f"nli:{location}@{fingerprint}"
        self.hypotheses = [NLI_TEMPLATE.format(choice) for choice in NLI_CHOICES]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), 3))
        for start in range(0, len(texts), self.batch_size):
            chunk = [prepare(t) for t in texts[start : start + self.batch_size]]
            premises = [t for t in chunk for _ in self.hypotheses]
            hypotheses = self.hypotheses * len(chunk)
            enc = self.tokenizer(
                premises, hypotheses, padding=True, truncation="only_first", max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**enc).logits.float().numpy()
            entail = logits[:, self.entail].reshape(len(chunk), 3)
            entail -= entail.max(axis=1, keepdims=True)
            e = np.exp(entail)
            out[start : start + len(chunk)] = e / e.sum(axis=1, keepdims=True)
        return out


def _entailment_index(id2label: dict[int, str]) -> int:
    for index, label in id2label.items():
        if str(label).lower().startswith("entail"):
            return int(index)
    raise ScorerError(f"not an NLI model: no 'entailment' label in {dict(id2label)}")


def _dir_fingerprint(path: Path) -> str:
    """A content hash of the model files (a model retrained in place gets a new id)."""
    from sentiment.fingerprint import dir_fingerprint

    return dir_fingerprint(path)[:12]


def _hub_usable() -> bool:
    from sentiment.hub import hub_offline, hub_unreachable

    return not hub_offline() and hub_unreachable() is None


# --- registry --------------------------------------------------------------------------------------------


def _minilm(arg: str | None) -> StanceScorer:
    return MinilmStanceScorer(Path(arg) if arg else None)


def _finetuned(arg: str | None) -> StanceScorer:
    from sentiment.stance_ft import FinetunedStanceScorer

    return FinetunedStanceScorer(arg)


def _ensemble(arg: str | None) -> StanceScorer:
    from sentiment.stance_ens import EnsembleStanceScorer, shared

    return EnsembleStanceScorer.from_argument(arg) if arg else shared()  # the shipped one: once per process


def _nli(arg: str | None) -> StanceScorer:
    if not arg:
        raise ScorerError("name the NLI model: nli:<hub id or local dir>[@revision]")
    location, _, revision = arg.partition("@")
    return NliStanceScorer(location, revision=revision or None)


#: family name -> factory(argument or None)
REGISTRY: dict[str, Callable[[str | None], StanceScorer]] = {
    "ensemble": _ensemble, "minilm": _minilm, "minilm-ft": _finetuned, "nli": _nli,
}
DEFAULT_STANCE = "ensemble"


def load_stance(name: str | None = None) -> StanceScorer:
    """The stance scorer called ``name`` (``family`` or ``family:argument``; default :data:`DEFAULT_STANCE`)."""
    family, _, arg = (name or DEFAULT_STANCE).partition(":")
    factory = REGISTRY.get(family.strip().lower())
    if factory is None:
        raise ScorerError(f"unknown stance model {name!r}; known: {', '.join(sorted(REGISTRY))} (nli:<hub id or dir>)")
    return factory(arg or None)
