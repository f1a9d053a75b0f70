"""The inference runtime (sentiment.runtime): ONNX export matches PyTorch, the graph cache, the fallback, GPU choice.

Every model is tiny and built here (a 2-layer BERT for ``minilm-ft`` and the sentence encoder, a 2-layer
RoBERTa for the transformer scorer); exported graphs go to a temporary folder; no GPU is needed (the
selection logic is checked with the probes' answers passed in).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from sentiment import ScorerError, child_export, load_scorer  # noqa: E402
from sentiment import runtime as rt  # noqa: E402
from sentiment.finetuned import FORMAT, Adapter, MinilmFinetunedScorer, encoder_fingerprint  # noqa: E402
from sentiment.synthetic import build_tiny_classifier  # noqa: E402

SENTENCE = ("i love hate this song it is great awful terrible wonderful the album was released on friday music ai "
            "new model writes songs user http happy sad")
TEXTS = ["i love this song", "this ai music is awful and terrible", "the album was released on friday " * 6,
         "@someone i hate this http://x.y/z", "great"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh graph cache per test, and the default runtime whatever the environment says."""
    monkeypatch.setenv("AIMUSIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AIMUSIC_RUNTIME", raising=False)
    return tmp_path / "cache" / "onnx"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer, saved like the packaged encoder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "@", "!", ".", ",", ":", "/", *sorted(set(SENTENCE.split())),
             *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], *"abcdefghijklmnopqrstuvwxyz0123456789"]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(out / "vocab.txt"), do_lower_case=True, model_max_length=512).save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160, pad_token_id=0)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(out)
    return out


def write_adapter(encoder_dir: Path, path: Path, seed: int = 0) -> Path:
    """A random (non-trivial) minilm-ft adapter for the tiny BERT: LoRA factors on two layers, LayerNorms, head."""
    rng = np.random.default_rng(seed)
    lora = {
        "encoder.layer.0.attention.self.query": (rng.normal(size=(4, 32)).astype(np.float32),
                                                 rng.normal(size=(32, 4)).astype(np.float32), 0.5),
        "encoder.layer.1.intermediate.dense": (rng.normal(size=(4, 32)).astype(np.float32),
                                               rng.normal(size=(64, 4)).astype(np.float32), 0.5),
    }
    params = {"encoder.layer.1.output.LayerNorm.weight": (1 + 0.3 * rng.normal(size=32)).astype(np.float32)}
    meta = {"format": FORMAT, "encoder_weights_sha256": encoder_fingerprint(encoder_dir)}
    Adapter(lora, params, rng.normal(size=(3, 32)).astype(np.float32), rng.normal(size=3).astype(np.float32),
            meta).save(path)
    return path


@pytest.fixture(scope="module")
def adapter(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_adapter(tiny_bert, tmp_path_factory.mktemp("w") / "ft.npz")


def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = rt.export_graph

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(rt, "export_graph", counting)
    return calls


# ----------------------------------------------------------------------------------------- export = PyTorch


def test_minilm_ft_onnx_matches_torch_and_the_cache_is_reused(tiny_bert, adapter, cache, monkeypatch):
    exports = count_exports(monkeypatch)
    onnx = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    torch_ = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", runtime="torch")
    assert (onnx.runtime, torch_.runtime) == ("onnx", "torch")
    assert onnx.model is None  # the session holds the weights; no PyTorch copy is kept
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), torch_.predict_proba(TEXTS), atol=1e-4)
    assert onnx.model_id == torch_.model_id == f"minilm-ft@{onnx.adapter.sha256[:12]}"  # the runtime is no part
    assert len(exports) == 1 and [p.name for p in cache.iterdir()] == [exports[0].name]  # no temporary left

    again = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    assert len(exports) == 1 and again.onnx.path == onnx.onnx.path  # second load: no re-export
    np.testing.assert_allclose(again.predict_proba(TEXTS), onnx.predict_proba(TEXTS), atol=1e-7)


def test_inside_exports_in_child_the_graph_is_exported_by_a_child_process(tiny_bert, adapter, cache, monkeypatch):
    exports = count_exports(monkeypatch)  # counts exports in this process only
    with child_export.exports_in_child():
        child = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    assert child.runtime == "onnx" and exports == []
    assert [p.name for p in cache.iterdir()] == [child.onnx.path.name]  # the child's graph, no temporary left
    reference = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", runtime="torch")
    np.testing.assert_allclose(child.predict_proba(TEXTS), reference.predict_proba(TEXTS), atol=1e-4)
    assert not child_export.enabled()  # the block ends


def test_a_failed_child_export_says_why_in_one_line(tmp_path, cache, capfd):
    recipe = ("sentiment.finetuned_torch:export_file_graph", (str(tmp_path / "missing.npz"), str(tmp_path)))
    with pytest.raises(RuntimeError, match=r"exporting minilm-ft in a child process failed \(exit code 1\): "
                                           r"ScorerError: .*missing\.npz") as raised:
        child_export.export_in_child(recipe, cache / "g.onnx", "minilm-ft")
    assert "\n" not in str(raised.value) and not (cache / "g.onnx").exists()
    assert "Traceback" not in capfd.readouterr().err  # the child printed nothing of its own


def test_new_weights_invalidate_the_cached_graph(tiny_bert, adapter, tmp_path, monkeypatch):
    exports = count_exports(monkeypatch)
    first = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    retrained = MinilmFinetunedScorer(write_adapter(tiny_bert, tmp_path / "b.npz", seed=1), encoder_dir=tiny_bert,
                                      device="cpu")
    assert len(exports) == 2 and first.onnx.path != retrained.onnx.path
    assert not np.allclose(first.predict_proba(TEXTS), retrained.predict_proba(TEXTS), atol=1e-3)
    reference = MinilmFinetunedScorer(tmp_path / "b.npz", encoder_dir=tiny_bert, device="cpu", runtime="torch")
    np.testing.assert_allclose(retrained.predict_proba(TEXTS), reference.predict_proba(TEXTS), atol=1e-4)


def test_transformer_onnx_matches_torch_and_the_cache_is_reused(tmp_path, monkeypatch):
    model = build_tiny_classifier(tmp_path / "model", max_length=64)
    exports = count_exports(monkeypatch)
    onnx = load_scorer(f"transformer:{model}?precision=fp32")
    assert onnx.runtime == "onnx" and onnx.model is None
    monkeypatch.setenv("AIMUSIC_RUNTIME", "torch")
    reference = load_scorer(f"transformer:{model}?precision=fp32")
    assert reference.runtime == "torch" and reference.model_id == onnx.model_id
    texts = [*TEXTS, "what a great beautiful happy day " * 40]  # the last one is cut to the 64-token limit
    np.testing.assert_allclose(onnx.predict_proba(texts), reference.predict_proba(texts), atol=1e-4)
    monkeypatch.delenv("AIMUSIC_RUNTIME")
    load_scorer(f"transformer:{model}?precision=fp32")
    assert len(exports) == 1


def test_sentence_encoder_onnx_matches_sentence_transformers(tiny_bert, caplog):
    pytest.importorskip("sentence_transformers")
    from sentiment.embedding import Encoder

    onnx = Encoder(tiny_bert, device="cpu")
    reference = Encoder(tiny_bert, device="cpu", runtime="torch")
    assert (onnx.runtime, reference.runtime) == ("onnx", "torch")
    got, expected = onnx.embed(TEXTS), reference.embed(TEXTS)
    assert got.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_int8_is_opt_in_named_in_the_id_and_close(tiny_bert, adapter, cache):
    fp32 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    int8 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", precision="int8")
    assert int8.model_id == fp32.model_id + "+int8" and fp32.precision == "fp32"
    assert len(list(cache.glob("minilm-ft-int8-*.onnx"))) == 1
    named = MinilmFinetunedScorer(f"{adapter}?precision=int8", encoder_dir=tiny_bert, device="cpu")  # registry form
    assert named.model_id == int8.model_id
    np.testing.assert_allclose(int8.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.1)
    with pytest.raises(ScorerError, match="int8 runs on ONNX Runtime"):
        MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", runtime="torch", precision="int8")


def test_smoothed_int8_same_function_own_id_and_fallbacks(tiny_bert, adapter, cache, tmp_path, caplog):
    """Smoothing (sentiment.int8_smoothing) rewrites the graph without changing its fp32 function; int8 scorers
    use it under their own id when the calibration fits the adapter and the graph, and plain int8 otherwise."""
    from sentiment import int8_smoothing as sq

    fp32 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    sha = Adapter.load(adapter).sha256
    calibration = sq.Smoothing(sq.calibrate(fp32, TEXTS * 3), sq.ALPHA, sha, "")
    calibration.save(tmp_path / "cal.npz", {"what": "test"})
    loaded = sq.Smoothing.load(tmp_path / "cal.npz")
    assert loaded.adapter_sha256 == sha and set(loaded.maxima) == set(calibration.maxima)
    sq.smooth_graph(Path(fp32.onnx.path), tmp_path / "smoothed.onnx", loaded)
    smoothed = rt.OnnxModel(tmp_path / "smoothed.onnx", fp32.plan)
    ids, mask = rt.pad([[2, 7, 9, 3], [2, 11, 3]], 0)
    np.testing.assert_allclose(smoothed(ids, mask), fp32.onnx(ids, mask), atol=1e-5)

    int8 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", precision="int8",
                                 int8_calibration=tmp_path / "cal.npz")
    assert int8.model_id == f"{fp32.model_id}+int8-{loaded.tag}" and int8.smoothing is not None
    assert loaded.tag == f"sq{sq.SMOOTHING_VERSION}.{loaded.sha256[:12]}"
    assert [p.name.split("-")[3] for p in cache.glob("minilm-ft-int8-*.onnx")] == [loaded.tag]
    np.testing.assert_allclose(int8.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.1)

    # made for another adapter, or naming tensors this graph lacks: plain int8, said in one line
    sq.Smoothing(calibration.maxima, sq.ALPHA, "0" * 64, "").save(tmp_path / "other.npz", {})
    renamed = {f"x{i}": v for i, v in enumerate(calibration.maxima.values())}
    sq.Smoothing(renamed, sq.ALPHA, sha, "").save(tmp_path / "renamed.npz", {})
    nan = {k: np.full_like(v, np.nan) for k, v in calibration.maxima.items()}
    sq.Smoothing(nan, sq.ALPHA, sha, "").save(tmp_path / "nan.npz", {})
    (tmp_path / "corrupt.npz").write_bytes((tmp_path / "cal.npz").read_bytes()[:200])
    for name, why in (("other.npz", "another adapter"), ("renamed.npz", "does not fit this graph"),
                      ("missing.npz", "no usable calibration"), ("nan.npz", "no usable calibration"),
                      ("corrupt.npz", "no usable calibration")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            plain = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", precision="int8",
                                          int8_calibration=tmp_path / name)
        assert plain.model_id == fp32.model_id + "+int8" and plain.smoothing is None
        assert why in caplog.text


def test_shipped_int8_calibration_is_the_shipped_adapters():
    from sentiment import int8_smoothing as sq
    from sentiment.finetuned import WEIGHTS_FILE

    shipped = sq.for_adapter(Adapter.load(WEIGHTS_FILE).sha256)
    assert shipped is not None and shipped.alpha == sq.ALPHA
    assert len(shipped.maxima) == 24  # 6 layers x (Q/K/V, attention output, FFN up, FFN down)
    assert all(m.ndim == 1 and (m > 0).all() for m in shipped.maxima.values())


@pytest.mark.slow
def test_shipped_int8_is_smoothed_end_to_end(cache):
    """The packaged model's int8, exported and quantised here: the shipped calibration fits the exported graph's
    tensor names (an exporter that names them otherwise would fall back to plain int8 silently but for this)."""
    int8 = MinilmFinetunedScorer(device="cpu", precision="int8")
    assert int8.smoothing is not None and int8.model_id.endswith(f"+int8-{int8.smoothing.tag}")
    probs = int8.predict_proba(["I love this song", "this AI slop is theft"])
    assert probs.argmax(axis=1).tolist() == [2, 0]


# ------------------------------------------------------------------------------------------------ fallback


def test_fallback_to_torch_when_onnxruntime_does_not_import(tiny_bert, adapter, caplog, monkeypatch):
    def broken() -> None:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(rt, "onnxruntime", broken)
    caplog.set_level(logging.INFO)
    scorer = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    assert scorer.runtime == "torch" and scorer.predict_proba(TEXTS).shape == (len(TEXTS), 3)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert "PyTorch" in warnings[0].getMessage() and "onnxruntime" in warnings[0].getMessage()
    with pytest.raises(ScorerError, match="AIMUSIC_RUNTIME=onnx but onnxruntime does not import"):
        MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", runtime="onnx")


def test_fallback_to_torch_when_the_export_fails(tmp_path, cache, caplog, monkeypatch):
    model = build_tiny_classifier(tmp_path / "model", max_length=64)

    def fails(module, example, path, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nsecond line")

    monkeypatch.setattr(rt, "export_graph", fails)
    caplog.set_level(logging.WARNING)
    scorer = load_scorer(f"transformer:{model}?precision=fp32")
    assert scorer.runtime == "torch" and scorer.score(["i love this song"]).status == ["scored"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "ONNX Runtime failed, running on PyTorch" in line and "\n" not in line and "operator foo" in line
    assert not list(cache.glob("*.onnx"))
    monkeypatch.setenv("AIMUSIC_RUNTIME", "onnx")
    with pytest.raises(ScorerError, match="ONNX Runtime failed"):
        load_scorer(f"transformer:{model}?precision=fp32")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        rt._atomic_write(tmp_path / "g.onnx", crash)
    assert list(tmp_path.iterdir()) == []


def test_graph_keys_and_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMUSIC_CACHE_DIR", str(tmp_path))
    a = rt.graph_path("minilm-ft", "weights-a")
    assert a.parent == tmp_path / "onnx" and a == rt.graph_path("minilm-ft", "weights-a")
    assert a != rt.graph_path("minilm-ft", "weights-b") and a != rt.graph_path("minilm-ft", "weights-a", "int8")
    monkeypatch.setattr(rt, "ort_version", lambda: "9.9.9")  # another onnxruntime: another graph
    assert a != rt.graph_path("minilm-ft", "weights-a")
    monkeypatch.delenv("AIMUSIC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rt.cache_root() == tmp_path / "xdg" / "aimusic-monitor" / "onnx"
    monkeypatch.setenv("AIMUSIC_RUNTIME", "tensorrt")
    with pytest.raises(ScorerError, match="AIMUSIC_RUNTIME='tensorrt' is not a runtime"):
        rt.runtime_setting()


def test_length_batches_pad_only_to_their_longest():
    lengths = [10, 60, 30, 5, 50, 40, 8, 9, 7]
    groups = rt.length_batches(lengths, 4, 100)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(len(g) <= 4 and len(g) * max(lengths[i] for i in g) <= 100 for g in groups)
    assert [lengths[g[0]] for g in groups] == sorted(lengths[g[0]] for g in groups)  # length-sorted
    ids, mask = rt.pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


# --------------------------------------------------------------------------------------- GPU selection logic

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("setting", "device", "cuda", "providers", "expected"),
    [
        ("auto", "auto", False, CPU_ONLY, ("onnx", "cpu", False, rt.CPU_BATCH)),
        ("auto", "auto", True, CPU_ONLY, ("torch", "cuda", True, rt.GPU_BATCH)),  # a GPU beats ORT on the CPU
        ("auto", "auto", True, WITH_CUDA, ("onnx", "cuda", False, rt.GPU_BATCH)),  # onnxruntime-gpu
        ("auto", "cpu", True, WITH_CUDA, ("onnx", "cpu", False, rt.CPU_BATCH)),  # the GPU left alone on request
        ("torch", "auto", True, WITH_CUDA, ("torch", "cuda", True, rt.GPU_BATCH)),
        ("torch", "auto", False, CPU_ONLY, ("torch", "cpu", False, rt.CPU_BATCH)),
        ("onnx", "auto", True, CPU_ONLY, ("onnx", "cpu", False, rt.CPU_BATCH)),  # asked for ONNX: ORT on the CPU
        ("auto", "auto", False, None, ("torch", "cpu", False, rt.CPU_BATCH)),  # no onnxruntime: PyTorch
        ("auto", "auto", True, None, ("torch", "cuda", True, rt.GPU_BATCH)),
    ],
)
def test_gpu_and_runtime_selection(setting, device, cuda, providers, expected):
    plan = rt.choose(setting, device=device, cuda=cuda, providers=providers)
    assert (plan.backend, plan.device, plan.half, plan.batch_size) == expected
    assert plan.on_gpu == (expected[1] == "cuda")
    if plan.backend == "onnx":
        assert plan.providers[0] == ("CUDAExecutionProvider" if plan.on_gpu else "CPUExecutionProvider")
    assert bool(plan.fallback) == (providers is None and not cuda)


def test_gpu_selection_failures_are_clear():
    with pytest.raises(ScorerError, match="no CUDA device"):
        rt.choose("auto", device="cuda", cuda=False, providers=CPU_ONLY)
    with pytest.raises(ScorerError, match="onnxruntime does not import"):
        rt.choose("onnx", device="auto", cuda=False, providers=None)
    with pytest.raises(ScorerError, match="no CUDA provider"):
        rt.choose("onnx", device="cuda", cuda=True, providers=CPU_ONLY)
    assert rt.choose("torch", device="cuda", cuda=True, providers=CPU_ONLY).device == "cuda"
    with pytest.raises(ScorerError, match="unknown device"):
        rt.choose("auto", device="tpu", cuda=False, providers=CPU_ONLY)


def test_probes_are_used_when_nothing_is_passed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(rt, "ort_providers", lambda: list(CPU_ONLY))
    assert (rt.choose().backend, rt.choose().device) == ("torch", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (rt.choose().backend, rt.choose().device) == ("onnx", "cpu")


def test_gpu_plans_reach_the_scorers(tiny_bert, adapter, tmp_path, monkeypatch):
    """On a (mocked) GPU the fine-tuned scorer computes in fp16 and says so in its id; int8 is refused there."""
    gpu = rt.Plan("torch", "cuda", half=True, batch_size=rt.GPU_BATCH)
    monkeypatch.setattr(rt, "choose", lambda *a, **k: gpu)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)  # no CUDA here: stay on the CPU
    scorer = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert)
    assert scorer.model_id.endswith("+fp16") and scorer.batch_size == rt.GPU_BATCH and scorer.runtime == "torch"
    with pytest.raises(ScorerError, match="int8 runs on ONNX Runtime on the CPU only"):
        MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, precision="int8")



def test_a_session_that_fails_after_the_weights_were_freed_reloads_them(tmp_path, caplog, monkeypatch):
    model = build_tiny_classifier(tmp_path / "model", max_length=64)

    def no_session(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model failed")

    monkeypatch.setattr(rt, "OnnxModel", no_session)
    caplog.set_level(logging.WARNING)
    scorer = load_scorer(f"transformer:{model}?precision=fp32")
    assert scorer.runtime == "torch" and scorer.model is not None
    assert scorer.score(["i love this song"]).status == ["scored"]
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_a_failed_child_export_is_done_in_this_process_instead(cache, caplog):
    built: list[Path] = []

    def build(path: Path) -> None:
        built.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"graph")

    caplog.set_level(logging.WARNING)
    with child_export.exports_in_child():
        path, fresh = rt.cached_graph("minilm-ft", "key", build, child=("no_such_module:export", ()))
    assert fresh and built == [path] and path.read_bytes() == b"graph"
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "in a child process failed (exit code 1): ModuleNotFoundError" in line and "in this process" in line


def test_the_gpu_probe_follows_the_device_asked_for(monkeypatch):
    def never() -> bool:
        raise AssertionError("probed")

    monkeypatch.setattr(rt, "torch_cuda", never)
    monkeypatch.setattr(rt, "_torch_sees_cuda", never)
    assert rt.choose("auto", device="cpu", providers=CPU_ONLY).device == "cpu"  # not asked: not probed
    monkeypatch.setattr(rt, "_torch_sees_cuda", lambda: True)  # asked for: torch itself, not the traces
    assert rt.choose("torch", device="cuda", providers=CPU_ONLY).device == "cuda"
    monkeypatch.setattr(rt, "torch_cuda", lambda: False)
    assert rt.choose("auto", device="auto", providers=CPU_ONLY).device == "cpu"


def test_bf16_is_an_opt_in_pytorch_precision_with_its_own_id(tiny_bert, adapter, monkeypatch):
    fp32 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu")
    bf16 = MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", precision="bf16")
    assert (bf16.runtime, bf16.precision, bf16.onnx) == ("torch", "bf16", None)
    assert bf16.model_id == fp32.model_id + "+bf16"  # never mixed with fp32 scores
    np.testing.assert_allclose(bf16.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.05)
    monkeypatch.setenv("AIMUSIC_RUNTIME", "onnx")
    with pytest.raises(ScorerError, match="precision=bf16 runs on PyTorch"):
        MinilmFinetunedScorer(adapter, encoder_dir=tiny_bert, device="cpu", precision="bf16")
