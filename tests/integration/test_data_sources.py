"""The pipeline end to end on the other data sources params can choose: the organizers' files with real MMLU, and the
bare layout the official evaluation reads (forget.jsonl + retain.jsonl, no MIA files). Each builds its own
repository: a module of its own, so that under pytest-xdist it runs beside the pipeline module's."""
import json

import pytest
from dvc_repos import HEADLINE_STAGES, TINY, make_repo, stages_ran
from helpers import SHARED_DATA, merge, params_with

from unlearning.data.synthetic import generate

pytestmark = pytest.mark.integration

SEMEVAL, MMLU = SHARED_DATA / "semeval25-unlearning-data", SHARED_DATA / "mmlu"


@pytest.mark.skipif(not (SEMEVAL.is_dir() and MMLU.is_dir()), reason=f"real SemEval data / MMLU not found in {SHARED_DATA}")
def test_repro_on_the_real_semeval_data_and_real_mmlu(tmp_path):
    """The same stages on the organizers' files and Hendrycks MMLU, chosen by params alone: one document per task
    and split, a tiny model from scratch, two MMLU subjects."""
    real = merge(json.loads(json.dumps(TINY)), {
        "data": {"source": str(SEMEVAL), "limit": 1},
        "model": {"scratch": {"max_position_embeddings": 2048}, "require": None},
        "mmlu": {"source": str(MMLU), "subjects": ["anatomy", "astronomy"], "limit": 2}})
    repo = make_repo(tmp_path / "repo", real)
    assert len(stages_ran((repo.parent / "first_run.log").read_text())) == len(HEADLINE_STAGES)
    info = json.loads((repo / "data" / "prepared" / "info.json").read_text())
    assert info["source"] == str(SEMEVAL) and info["counts"]["forget_train.jsonl"] == 1 * (2 + 6 + 2)
    metrics = json.loads((repo / "reports" / "metrics" / "detail.json").read_text())
    assert metrics["split"] == "train"
    for key in ("before", "after"):
        assert set(metrics[key]["mmlu_per_subject"]) == {"anatomy", "astronomy"}
        assert 0.0 <= metrics[key]["final"] <= 1.0
    mmlu = json.loads((repo / "reports" / "eval" / "target" / "mmlu" / "mmlu.json").read_text())
    assert mmlu["n"] == 4 and mmlu["source"] == f"MMLU (Hendrycks CSV, {MMLU})"
    assert "## MMLU by subject" in (repo / "reports" / "report.md").read_text()


def test_repro_on_a_jsonl_only_dataset_without_mia_files(tmp_path):
    """The layout the official evaluation script reads, forget.jsonl + retain.jsonl and nothing else (no MIA files,
    no validation split), with a Hendrycks-format MMLU directory: every stage runs, the MIA and final scores are
    n/a (officially -1) and the rest is scored as usual."""
    tiny_world = generate(params_with(TINY)["data"]["synthetic"], 0)
    source = tmp_path / "jsonl"
    source.mkdir()
    for split in ("forget", "retain"):
        rows = [{key: row[key] for key in ("id", "input", "output", "task")} for row in tiny_world[f"{split}_train"]]
        (source / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for split, questions in (("dev", ["Sky colour?", "Grass colour?"]), ("test", ["Sun colour?", "Snow colour?"])):
        (tmp_path / "mmlu" / split).mkdir(parents=True)
        (tmp_path / "mmlu" / split / f"colours_{split}.csv").write_text(
            "".join(f'"{q}",red,green,blue,yellow,{"ABCD"[i]}\n' for i, q in enumerate(questions)))
    repo = make_repo(tmp_path / "repo", merge(json.loads(json.dumps(TINY)), {
        "data": {"source": str(source)}, "mmlu": {"source": str(tmp_path / "mmlu"), "k": 1}}))
    assert stages_ran((repo.parent / "first_run.log").read_text()) == HEADLINE_STAGES
    assert not (repo / "data" / "prepared" / "mia").exists()
    for model in ("target", "unlearned"):
        mia = json.loads((repo / "reports" / "eval" / model / "mia" / "mia.json").read_text())
        assert mia["available"] is False and mia["auc"] is None
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    assert headline["final"] is headline["auc"] is headline["mia"] is None
    assert 0 <= headline["task"] <= 1 and 0 <= headline["mmlu"] <= 1
    report = (repo / "reports" / "report.md").read_text()
    assert "| after (unlearned) | n/a | " in report and "reports the final score as -1" in report
