"""``aimusic eval --task relevance|sentiment|stance`` on any labelled TSV, through one reader and one metrics
module (scikit-learn underneath, macro recall over all classes of the task, ECE next to it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.debate.labelled import DATA_DIR, load_labelled, multi_report
from sentiment.evaluate import TASK_LABELS, expected_calibration_error, metrics, read_tsv

runner = CliRunner()

# the columns of realistic_dev.tsv (relevant, sentiment, stance, text, notes); the rows are invented
REALISTIC = (
    "relevant\tsentiment\tstance\ttext\tnotes\n"
    "1\tnegative\tagainst\tAI music is theft from real artists, pay them\t\n"
    "1\tpositive\tfor\tI love making songs with Suno, best tool ever\t\n"
    "1\tneutral\tneutral\tUdio released a new model with longer songs today\t\n"
    "0\tnegative\t\tBreaking Bad's finale still makes me angry\t\n"
    "0\tpositive\t\tmy band played a great gig last night\t\n"
)


@pytest.fixture
def realistic(tmp_path: Path) -> Path:
    path = tmp_path / "realistic_like.tsv"
    path.write_text(REALISTIC, encoding="utf-8")
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_reader_maps_each_task_to_its_column(realistic):
    relevance = read_tsv(realistic, "relevance")
    assert relevance.label_column == "relevant" and relevance.labels == ["relevant"] * 3 + ["off_topic"] * 2
    stance = read_tsv(realistic, "stance")
    assert stance.label_column == "stance" and stance.labels == ["anti", "pro", "neutral"]
    assert stance.skipped == {"no label": 2}  # off-topic rows have no stance
    sentiment = read_tsv(realistic, "sentiment")
    assert sentiment.label_column == "sentiment" and len(sentiment) == 5


def test_a_named_label_column_wins_and_a_missing_one_is_a_clear_error(realistic):
    from sentiment.base import ScorerError

    assert read_tsv(realistic, "relevance", label_column="relevant").labels[0] == "relevant"
    with pytest.raises(ScorerError, match="'nope' and 'text'"):
        read_tsv(realistic, "relevance", label_column="nope")
    with pytest.raises(ScorerError, match="no usable rows"):
        read_tsv(realistic, "sentiment", label_column="relevant")


def test_project_files_read_the_same_through_the_one_reader():
    for name in ("relevance.tsv", "stance_eval.tsv", "arguments.tsv"):
        rows = load_labelled(DATA_DIR / name)
        assert len(rows) >= 90 and all(e.text and "\\n" not in e.text for e in rows)
    assert any("\n\n" in e.text for e in load_labelled(DATA_DIR / "relevance.tsv"))  # title\n\nbody


def test_eval_relevance_on_realistic_columns(realistic):
    figures = _json(runner.invoke(app, ["eval", "--task", "relevance", "--data", str(realistic), "--model", "rules",
                                        "--json"]))
    assert figures["label_column"] == "relevant" and figures["n"] == 5 and figures["data"] == str(realistic)
    assert figures["rules"]["precision"] == 1.0 and figures["rules"]["tp"] == 3 and figures["model"] == "rules"


def test_eval_sentiment_on_realistic_columns(realistic):
    figures = _json(runner.invoke(app, ["eval", "--task", "sentiment", "--data", str(realistic), "--model", "vader",
                                        "--json"]))
    assert figures["label_column"] == "sentiment" and figures["n"] == 5 and 0 <= figures["ece"] <= 1
    assert figures["labels"] == list(TASK_LABELS["sentiment"])


def test_eval_stance_and_relevance_take_a_label_column(realistic):
    from aimusic.cli.debate import eval_task_command

    out = Console(record=True, width=400)
    code = eval_task_command("relevance", realistic, "rules", as_json=True, console=out, out=out,
                             label_column="relevant")
    assert code == 0 and json.loads(out.export_text())["n"] == 5
    bad = Console(record=True, width=400)
    assert eval_task_command("relevance", realistic, "rules", as_json=True, console=bad, out=bad,
                             label_column="nope") == 2
    assert "'nope' and 'text'" in bad.export_text()
    assert eval_task_command("nonsense", realistic, None, as_json=True, console=bad, out=bad) == 2


def test_eval_relevance_text_output_names_the_data(realistic):
    result = runner.invoke(app, ["eval", "--task", "relevance", "--data", str(realistic), "--model", "rules"])
    assert result.exit_code == 0 and f"measured on {realistic} (n=5)" in " ".join(result.output.split())


def test_macro_recall_averages_over_all_classes_of_the_task():
    from sklearn.metrics import recall_score

    true, pred = ["anti", "anti", "pro"], ["anti", "pro", "pro"]
    m = metrics(true, pred, TASK_LABELS["stance"])
    expected = recall_score(true, pred, labels=list(TASK_LABELS["stance"]), average="macro", zero_division=0)
    assert m["macro_recall"] == pytest.approx(expected) == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["absent"] == ["neutral"]
    report = multi_report(true, pred, TASK_LABELS["stance"])  # labelled.py uses the same definition
    assert report.macro_recall == pytest.approx(m["macro_recall"])
    with pytest.raises(ValueError, match="unknown label"):
        metrics(["anti"], ["maybe"], TASK_LABELS["stance"])


def test_expected_calibration_error():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20_000)
    right = rng.uniform(size=confidence.size) < confidence  # calibrated: right as often as confident
    probs = np.column_stack([confidence, 1 - confidence])
    truth = np.where(right, 0, 1)
    assert expected_calibration_error(probs, truth) < 0.02
    assert expected_calibration_error(probs, np.ones_like(truth)) > 0.5  # confident and always wrong
    assert expected_calibration_error(np.zeros((0, 3)), []) == 0.0
